"""Cards a prescriber can read (engine/cards.py) and the finding titles they start with (v2 `findings`).

Results come from the real engine on intake records and Synthea FHIR bundles; a dose suggestion is read
back through engine/fhir.py and evaluated again, so the amount the card states is the amount the order
gives.
"""

from __future__ import annotations

import copy
import json
import re

import pytest

from engine import cards, fhir, ruleset_check
from engine import ruleset as rs
from engine import vocabulary as vocab
from engine.errors import RecordError
from tests.helpers import record
from tests.helpers.cdshooks import EXTERNAL, magnesium_order, synthea

V2 = json.loads((rs.RULESETS_DIR / "magnesium" / "v2.json").read_text("utf-8"))
TITLES = V2["findings"]
REASONS = {"PHYSICIAN_ORDER": "A physician ordered it"}


def make_cards(result, draft=None, **kwargs):
    return cards.cards(
        result,
        hook_instance="hook-1",
        draft_order=draft,
        sources_url="https://mgreview.example/sources",
        override_reasons=REASONS,
        titles=TITLES,
        **kwargs,
    )


def by_code(made):
    return {c["source"]["topic"]["code"]: c for c in made}


# --- titles in the ruleset data and the checker -----------------------------------------------------


def test_every_catalogue_finding_has_a_short_title_in_v2():
    assert set(TITLES) == set(vocab.FINDING_IDS)
    for fid, entry in TITLES.items():
        assert 0 < len(entry["title"]) <= 60 and 0 < len(entry["title_nl"]) <= 60, fid


def _check(findings, version=2):
    return [str(e) for e in ruleset_check.check_finding_titles(findings, version, "magnesium v2")]


@pytest.mark.parametrize(
    "what, change, error",
    [
        ("v2 as shipped (false alarm)", lambda f: None, None),
        ("a title missing", lambda f: f.pop("RENAL_SEVERE"), "RENAL_SEVERE has no title"),
        ("a title too long", lambda f: f["SPLIT_DOSE"].update(title="x" * 61), "at most 60 characters (61 given)"),
        ("a title of 60 (false alarm)", lambda f: f["SPLIT_DOSE"].update(title="x" * 60), None),
        ("a Dutch title empty", lambda f: f["SPLIT_DOSE"].update(title_nl=" "), "title_nl must be a non-empty"),
        ("an invented id", lambda f: f.update(RENAL_SEVER={"title": "x", "title_nl": "x"}), "not a catalogue finding"),
        ("an unknown key", lambda f: f["SPLIT_DOSE"].update(titel="x"), "unknown key 'titel'"),
        ("two lines", lambda f: f["SPLIT_DOSE"].update(title="Split\nthe dose"), "one line"),
    ],
)
def test_the_checker_checks_the_titles(what, change, error):
    findings = copy.deepcopy(TITLES)
    change(findings)
    errors = _check(findings)
    if error is None:
        assert errors == []
    else:
        assert any(error in e for e in errors), errors


def test_titles_are_required_from_v2_and_the_whole_file_is_checked():
    assert _check(None, version=1) == []  # v1 is published and never changes
    assert any("'findings'" in e for e in _check(None, version=2))
    data = copy.deepcopy(V2)
    del data["findings"]["ROUTE_NOT_ORAL"]
    assert any("ROUTE_NOT_ORAL has no title" in str(e) for e in ruleset_check.check_data(data))
    assert list(ruleset_check.check_data(V2)) == []


# --- summaries --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("Separate from levothyroxine by 4 h", 139, "Separate from levothyroxine by 4 h"),
        ("one two three four", 12, "one two…"),
        ("one two three four", 13, "one two…"),  # never "one two thre…"
        ("one two three four", 14, "one two three…"),
        ("Kidney: eGFR 26.7, stop", 16, "Kidney: eGFR…"),
        ("a  b\n c", 139, "a b c"),
    ],
)
def test_shorten_never_cuts_a_word(text, limit, expected):
    assert cards.shorten(text, limit) == expected


def _records():
    yield "levothyroxine", record(id="levo", medications=["Euthyrox 100 mcg"]), "LEVOTHYROXINE_SEPARATION"
    yield "doxycycline", record(id="doxy", medications=["doxycyclin 100mg"]), "TETRACYCLINE_SEPARATION"
    yield "gabapentin", record(id="gaba", medications=["Neurontin 300 mg"]), "GABAPENTIN_SEPARATION"
    yield "severe renal", record(id="ckd", egfr_ml_min_1_73m2=22), "RENAL_SEVERE"
    high = {"form": "citrate", "dose_mg": 600, "dose_basis": "elemental"}
    yield "high dose EU", record(id="eu", jurisdiction="EU", supplement=high), "DOSE_ABOVE_UL_EU"
    yield "low Mg", record(id="lowmg", serum_magnesium={"value": "0,6", "unit": "mmol/L"}), "HYPOMAGNESEMIA"
    yield "child", record(id="kid", age_years=8), "PEDIATRIC"
    yield "unrecognised", record(id="unk", medications=["Zzyzxvar 10 mg"]), "UNRECOGNIZED_MEDICATION"


@pytest.mark.parametrize("what, rec, fid", list(_records()), ids=[r[0] for r in _records()])
def test_summaries_start_with_the_title_and_keep_the_action(evaluator, what, rec, fid):
    if isinstance(rec["serum_magnesium"]["value"], str):  # decimal comma as typed
        rec["serum_magnesium"]["value"] = float(rec["serum_magnesium"]["value"].replace(",", "."))
    result = evaluator.evaluate(rec).to_dict()
    made = by_code(make_cards(result))
    card = made[fid]
    summary = card["summary"]
    assert len(summary) < 140 and not summary.endswith(("…", " "))
    assert fid.replace("_", " ").lower() not in summary.lower()  # never "Dose above ul eu"
    expected = {
        "LEVOTHYROXINE_SEPARATION": "Separate from levothyroxine by 4 h",
        "TETRACYCLINE_SEPARATION": "Take doxycycline 2 h before or 4 h after magnesium",
        "GABAPENTIN_SEPARATION": "Take gabapentin at least 2 h after magnesium",
        "RENAL_SEVERE": "Severe kidney impairment (eGFR 22): no magnesium; a physician decides",
        "DOSE_ABOVE_UL_EU": "Dose above the EU upper limit: 600 mg/day asked; at most 250 mg/day elemental",
        "HYPOMAGNESEMIA": "Low serum magnesium (serum Mg 0.6 mmol/L): supplementation is reasonable",
        "PEDIATRIC": "Child under 18 (age 8 y): at most 110 mg/day elemental; a physician supervises",
        "UNRECOGNIZED_MEDICATION": "Medicine not recognised: no interaction check was possible for it",
    }[fid]
    assert summary.startswith(expected), summary
    if fid == "UNRECOGNIZED_MEDICATION":
        assert "Zzyzxvar" not in summary  # patient text stays in the (escaped) detail


def _synthea_results(evaluator):
    for path in sorted((EXTERNAL / "fhir").glob("*.json")):
        bundle = json.loads(path.read_text("utf-8"))
        resources = [e["resource"] for e in bundle["entry"]]
        patient = next(r for r in resources if r["resourceType"] == "Patient")
        order = magnesium_order(patient["id"], 300, 2, "Magnesium Oxide 400 MG Oral Tablet")
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": bundle["entry"] + [{"resource": order}]}
        try:
            record = fhir.bundle_to_record(bundle, as_of=fhir.parse_date("2021-01-15"))
        except RecordError:  # the two deceased patients: no plan, hence no finding cards (see test_cdshooks)
            continue
        yield path.name, evaluator.evaluate(record).to_dict()


def test_no_summary_over_the_limit_or_cut_mid_word_on_any_synthea_patient(evaluator):
    seen = 0
    for _name, result in _synthea_results(evaluator):
        for card in make_cards(result, min_severity="info"):
            seen += 1
            summary = card["summary"]
            assert len(summary) < 140, summary
            if summary.endswith("…"):
                # the text before the ellipsis ends a word of the full text
                assert summary[-2].isalnum() or summary[-2] in ")%", summary
            assert not re.search(r"\b[A-Z]+_[A-Z_]+\b", summary), summary  # no finding ids
    assert seen > 40


# --- suggestions ------------------------------------------------------------------------------------


def test_remove_the_order_is_one_suggestion_on_one_card(evaluator):
    # severe renal impairment AND toxic magnesium AND a red flag: three stoppers, one "remove"
    result = evaluator.evaluate(
        record(id="stop", egfr_ml_min_1_73m2=20, serum_magnesium={"value": 1.9, "unit": "mmol/L"}, symptoms=["seizure"])
    ).to_dict()
    made = make_cards(result, magnesium_order())
    with_suggestions = [c for c in made if c.get("suggestions")]
    assert len([c for c in made if c["indicator"] == "critical"]) >= 3
    (card,) = with_suggestions
    assert card["suggestions"][0]["actions"][0]["type"] == "delete"
    uuids = [s["uuid"] for c in made for s in c.get("suggestions", [])]
    assert len(uuids) == len(set(uuids))
    other_call = make_cards(result, magnesium_order()) and cards.cards(
        result,
        hook_instance="hook-2",
        draft_order=magnesium_order(),
        sources_url="x",
        override_reasons=REASONS,
        titles=TITLES,
    )
    assert {s["uuid"] for c in other_call for s in c.get("suggestions", [])}.isdisjoint(uuids)


def test_a_cap_above_zero_gets_no_remove_suggestion(evaluator):
    result = evaluator.evaluate(
        record(id="eu", jurisdiction="EU", supplement={"form": "citrate", "dose_mg": 600, "dose_basis": "elemental"})
    ).to_dict()
    made = make_cards(result, magnesium_order())
    actions = [a["type"] for c in made for s in c.get("suggestions", []) for a in s["actions"]]
    assert actions == ["update"]


def _read_back(evaluator, patient_resources, order):
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in patient_resources]}
    bundle["entry"].append({"resource": order})
    return evaluator.evaluate(fhir.bundle_to_record(bundle, as_of=fhir.parse_date("2021-01-15"))).to_dict()


PRODUCTS = [
    # (product as named, dose per intake, intakes a day, expected words in the suggestion)
    ("Magnesium Oxide 400 MG Oral Tablet", 400, 2, "mg magnesium oxide"),
    ("Magnesium citrate 100 MG Oral Tablet", 600, 3, "(7 tablets) 2 times a day"),
    ("Magnesium glycinate 500 MG Oral Capsule", 1000, 2, "(1 capsule)"),
    ("Magnesium citrate (elemental) oral tablet", 250, 2, "mg elemental magnesium"),
    ("Magnesium hydroxide 400 MG/5ML Oral Suspension", 1200, 2, "mg magnesium hydroxide"),
]


@pytest.mark.parametrize("name, dose, per_day, words", PRODUCTS, ids=[p[0] for p in PRODUCTS])
def test_the_dose_update_reads_back_as_the_elemental_amount_it_states(evaluator, name, dose, per_day, words):
    """Gayla (Synthea, eGFR 152, EU default jurisdiction): the order is capped at 250 mg/day elemental."""
    resources = [r for r in synthea("Gayla") if r["resourceType"] in ("Patient", "Observation", "Condition")]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    order = magnesium_order(patient["id"], dose, per_day, name)
    result = _read_back(evaluator, resources, order)
    card = by_code(make_cards(result, order))["DOSE_ABOVE_UL_EU"]
    (suggestion,) = card["suggestions"]
    (action,) = suggestion["actions"]
    assert words in action["description"], action["description"]
    stated = float(re.search(r"= ([\d.]+) mg elemental magnesium per day", action["description"]).group(1))
    again = _read_back(evaluator, resources, action["resource"])
    assert again["facts"]["patient"]["supplement_dose_elemental_mg"] == pytest.approx(stated, abs=0.05)
    assert 125 < stated <= 250  # near the cap in whole units, never over it
    assert not {"DOSE_ABOVE_UL_EU", "DOSE_ABOVE_UL_US"} & {f["id"] for f in again["findings"]}
    # the old suggestion wrote elemental mg into a salt-named order: read back, it was not what it said
    if "elemental" not in name:
        naive = copy.deepcopy(order)
        naive["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 125
        naive["dosageInstruction"][0]["timing"]["repeat"]["frequency"] = 2
        assert _read_back(evaluator, resources, naive)["facts"]["patient"]["supplement_dose_elemental_mg"] != 250


@pytest.mark.parametrize(
    "name, strength, unit",
    [
        ("Magnesium Oxide 400 MG Oral Tablet", 400, "tablet"),
        ("magnesium citrate 150 mg capsule", 150, "capsule"),
        ("Magnesium hydroxide 400 MG/5ML Oral Suspension", None, None),
        ("Magnesium 250 MG / Zinc 10 MG Oral Tablet", 250, "tablet"),  # the magnesium part, as engine.dosage reads it
        ("Magnesiumcitraat 1,5 MG tablet", 1.5, "tablet"),
        ("Magnesium citrate oral tablet", None, "tablet"),
    ],
)
def test_product_strength_parser(name, strength, unit):
    assert cards.product_strength_mg(name) == strength
    assert cards.product_unit(name) == unit


def test_dose_in_product_terms_never_exceeds_the_cap():
    for cap in range(1, 400, 7):
        for doses in (1, 2, 3):
            for name, fraction in [("Magnesium Oxide 400 MG Oral Tablet", 0.603), ("Magnesium lactate", 0.12)]:
                dose = cards.dose_in_product_terms(cap, doses, basis="salt", fraction=fraction, product_name=name)
                if dose is not None:
                    assert dose.elemental_mg_per_day <= cap
                    assert dose.mg_per_dose * doses * fraction == pytest.approx(dose.elemental_mg_per_day, abs=0.06)
    assert cards.dose_in_product_terms(250, 2, basis="salt", fraction=None, product_name="x") is None  # form unknown


# --- children, non-oral orders ---------------------------------------------------------------------


@pytest.mark.parametrize("age, shown", [(8, True), (2.5, True), (17.9, True), (18, False), (45, False)])
def test_children_get_a_visible_pediatric_card_with_the_cap(evaluator, age, shown):
    result = evaluator.evaluate(record(id="kid", age_years=age, jurisdiction="US")).to_dict()
    made = by_code(make_cards(result))
    assert ("PEDIATRIC" in made) is shown
    if shown:
        cap = result["plan"]["max_elemental_mg_per_day"]
        expected = f"at most {cap} mg/day" if cap else "no supplement without a physician"
        assert expected in made["PEDIATRIC"]["summary"]


def test_route_not_oral_gets_no_oral_plan_and_no_dose_suggestion(evaluator):
    result = evaluator.evaluate(
        record(id="iv", jurisdiction="EU", supplement={"form": "sulfate", "dose_mg": 4000, "dose_basis": "salt"})
    ).to_dict()
    order = magnesium_order(text="Magnesium sulfate 500 MG/ML Injectable Solution")
    oral = make_cards(result, order)
    assert any(c.get("suggestions") for c in oral)  # false alarm: an oral order over the limit gets one
    not_oral = copy.deepcopy(result)
    not_oral["findings"].insert(
        0,
        {
            "id": "ROUTE_NOT_ORAL",
            "severity": "major",
            "message": "This magnesium order is not oral (Intravenous): out of scope for oral supplementation advice.",
            "sources": ["S13"],
            "confidence": "V",
            "rules": ["ROUTE_NOT_ORAL"],
            "evidence": [],
        },
    )
    made = make_cards(not_oral, order)
    assert made[0]["source"]["topic"]["code"] == "ROUTE_NOT_ORAL"
    assert made[0]["summary"].startswith("Not an oral magnesium order: no oral advice")
    assert not any(c.get("suggestions") for c in made)
    assert not any("Suggested cap" in c["detail"] or "mg/day elemental" in c["summary"] for c in made)


# --- detail markdown that cannot attack its reader -------------------------------------------------

ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "[click here](javascript:alert(1))",
    "![x](https://evil.example/pixel.png)",
    "<javascript:alert(1)>",
    "# Heading\n- injected bullet",
    "**bold** _it_ `code`",
]


@pytest.mark.parametrize("text", ATTACKS)
def test_patient_text_is_escaped_in_the_detail(evaluator, text):
    result = evaluator.evaluate(record(id="x", medications=[text])).to_dict()
    detail = "\n".join(c["detail"] for c in make_cards(result))
    assert "<img" not in detail and "<javascript" not in detail
    assert "](" not in detail and "javascript:" not in detail
    assert "\n- injected" not in detail and "\n# Heading" not in detail
    assert not re.search(r"(?<!\\)\*\*bold", detail)


def test_ruleset_messages_are_escaped_too(evaluator):
    result = evaluator.evaluate(record(id="x", egfr_ml_min_1_73m2=20)).to_dict()
    result["findings"][0]["message"] = "See [the protocol](javascript:alert(document.cookie)) <script>x</script>"
    detail = make_cards(result)[0]["detail"]
    assert "<script>" not in detail and "](javascript" not in detail and "&lt;script&gt;" in detail


@pytest.mark.parametrize(
    "text, expected",
    [
        ("eGFR 26.7 is below 30", "eGFR 26.7 is below 30"),  # plain text unchanged (false alarm)
        ("3-6 months", "3-6 months"),
        ("a < b & c", "a &lt; b &amp; c"),
        ("[x](y)", "\\[x\\]\\(y\\)"),
        ("- item", "\\- item"),
        ("1. item", "\\1. item"),
    ],
)
def test_md_escape(text, expected):
    assert cards.md_escape(text) == expected

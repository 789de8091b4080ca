"""QA rows on text and vocabulary (QA_REPORT rows 5, 7, 8, 10-17, 21 and the unrecognised desk lines): each
QA input as written (true positive) beside the false alarm it must not become, and the reverse."""

from __future__ import annotations

import json

import pytest

from engine import ruleset_check
from engine.lexicon import PhraseIndex
from tests.helpers import DATA, RULESETS, finding, ids, record

QA_INPUTS = DATA / "qa"  # written by a QA engineer, not by the code's authors


def ok(evaluator, **changes):
    result = evaluator.evaluate(record(jurisdiction="EU", **changes)).to_dict()
    assert result["status"] == "ok", result.get("errors")
    return result


def concepts_of(result):
    """(asserted concepts, history, family history, negated) over every condition and symptom entry."""
    rows = result["facts"]["concepts"]
    return (
        {c for r in rows for c in r["concepts"]},
        {c for r in rows for c in r.get("history", [])},
        {c for r in rows for c in r.get("family_history", [])},
        {c for r in rows for c in r["negated"]},
    )


# --- rows 10, 11, 12, 17: the wording around a condition ------------------------------------------------------


@pytest.mark.parametrize(
    "text, finding_id, fires, read_as",
    [
        # row 10: family history is never the patient's condition
        ("moeder heeft epilepsie", "RED_FLAG_SYMPTOMS", False, "family"),
        ("familieanamnese: epilepsie", "RED_FLAG_SYMPTOMS", False, "family"),
        ("epilepsie in de familie", "RED_FLAG_SYMPTOMS", False, "family"),
        ("family history of myasthenia gravis", "MYASTHENIA_GRAVIS", False, "family"),
        ("epilepsie", "RED_FLAG_SYMPTOMS", True, "current"),  # the patient's own
        ("myasthenia gravis", "MYASTHENIA_GRAVIS", True, "current"),
        # row 12: an acute episode in the past is history
        ("status na appendicitis 1985", "GI_OBSTRUCTION", False, "past"),
        ("s/p appendicitis", "GI_OBSTRUCTION", False, "past"),
        ("st.p. appendicitis", "GI_OBSTRUCTION", False, "past"),
        ("appendicitis (1985)", "GI_OBSTRUCTION", False, "past"),
        ("ileus in 2001", "GI_OBSTRUCTION", False, "past"),
        ("voorgeschiedenis: ileus", "GI_OBSTRUCTION", False, "past"),
        ("ileus", "GI_OBSTRUCTION", True, "current"),
        ("ileus 2026", "GI_OBSTRUCTION", True, "current"),  # a bare year may be this year: stays current
        ("tremor 2024", "RED_FLAG_SYMPTOMS", True, "current"),
        ("appendicitis", "GI_OBSTRUCTION", True, "current"),
        ("History of seizure", "RED_FLAG_SYMPTOMS", False, "none"),  # Synthea's past single seizure concept
        # ... but a chronic disease named in the past tense still counts (safe reading)
        ("history of epilepsy", "RED_FLAG_SYMPTOMS", True, "current"),
        ("voorgeschiedenis: AV-blok 2e graad", "CARDIAC_CONDUCTION_DISORDER", True, "current"),
        ("alcoholisme in de voorgeschiedenis", "ALCOHOL_USE_DISORDER", True, "current"),
        # row 11: form-style negation
        ("tremor: nee", "RED_FLAG_SYMPTOMS", False, "negated"),
        ("insulten: nee", "RED_FLAG_SYMPTOMS", False, "negated"),
        ("seizures: no", "RED_FLAG_SYMPTOMS", False, "negated"),
        ("hartkloppingen - geen", "RED_FLAG_SYMPTOMS", False, "negated"),
        ("tremor: ja", "RED_FLAG_SYMPTOMS", True, "current"),
        ("insulten", "RED_FLAG_SYMPTOMS", True, "current"),
        # row 17: ambiguous wording, the reading chosen
        ("trillen van de kou", "RED_FLAG_SYMPTOMS", False, "none"),  # shivering from cold is not tremor
        ("trillen", "RED_FLAG_SYMPTOMS", True, "current"),
        ("tremor bij angst, bekend sinds 2010", "RED_FLAG_SYMPTOMS", True, "current"),  # in doubt: a red flag
        ("pacemaker sinds 2015 ivm AV-blok", "CARDIAC_CONDUCTION_DISORDER", True, "current"),  # chronic
        ("ex-alcoholist, 20 jaar droog", "ALCOHOL_USE_DISORDER", False, "past"),  # clearly ended
        ("alcoholist", "ALCOHOL_USE_DISORDER", True, "current"),
        ("borstvoeding gestopt in 2019", "LACTATION", False, "past"),
        ("geeft borstvoeding", "LACTATION", True, "current"),
    ],
)
def test_condition_wording(evaluator, text, finding_id, fires, read_as):
    result = ok(evaluator, conditions=[text])
    assert (finding_id in ids(result)) is fires
    current, past, family, negated = concepts_of(result)
    expected = {"current": current, "past": past, "family": family, "negated": negated}
    if read_as in expected:
        assert expected[read_as], f"{text!r} should be read as {read_as}: {result['facts']['concepts']}"
    if read_as != "current":
        assert finding_id not in ids(result)


def test_history_and_family_are_shown_with_the_wording(evaluator):
    result = ok(evaluator, conditions=["status na appendicitis 1985", "moeder heeft epilepsie"])
    rows = {r["text"]: r for r in result["facts"]["concepts"]}
    assert rows["status na appendicitis 1985"]["history"] == ["acute_gi_condition"]
    assert rows["status na appendicitis 1985"]["read_from_wording"] == "status na"
    assert rows["moeder heeft epilepsie"]["family_history"] == ["seizure"]
    assert result["plan"]["max_elemental_mg_per_day"] == 250


def test_pregnancy_in_the_past_does_not_make_the_patient_pregnant(evaluator):
    past = ok(evaluator, conditions=["zwanger in 2015"])
    now = ok(evaluator, conditions=["zwanger"])
    assert "PREGNANCY" not in ids(past) and past["facts"]["patient"]["pregnant"] is False
    assert "PREGNANCY" in ids(now)


# --- rows 8, 13: names and spelling tolerance -------------------------------------------------------------


@pytest.mark.parametrize(
    "text, concept, not_concept",
    [
        ("alcoholabusus", "alcohol_use_disorder", None),
        ("diabetische neuropathie", "neuropathy", "ckd"),
        ("Neuropathy due to type 2 diabetes mellitus", "neuropathy", "ckd"),
        ("polyneuropathie", "neuropathy", "ckd"),
        ("diabetische nefropathie", "ckd", "neuropathy"),  # the true positive beside it
        ("nefropathie", "ckd", "neuropathy"),
    ],
)
def test_condition_names_and_no_cross_concept_spelling(evaluator, text, concept, not_concept):
    current, *_ = concepts_of(ok(evaluator, conditions=[text]))
    assert concept in current
    assert not_concept not in current


@pytest.mark.parametrize("text, severity", [("diabetische neuropathie", "info"), ("diabetische nefropathie", "major")])
def test_renal_data_missing_follows_the_kidney_not_the_nerve(evaluator, text, severity):
    result = ok(evaluator, conditions=[text], egfr_ml_min_1_73m2=None)
    assert finding(result, "RENAL_DATA_MISSING")["severity"] == severity


# --- row 5: SNOMED CT only -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, finding_id",
    [
        ("233917008", "CARDIAC_CONDUCTION_DISORDER"),  # AV block
        ("195042002", "CARDIAC_CONDUCTION_DISORDER"),  # second-degree AV block
        ("27885002", "CARDIAC_CONDUCTION_DISORDER"),  # complete AV block
        ("91637004", "MYASTHENIA_GRAVIS"),
        ("80313002", "RED_FLAG_SYMPTOMS"),  # palpitations
    ],
)
def test_snomed_only_conditions(evaluator, code, finding_id):
    assert finding_id in ids(ok(evaluator, conditions=[{"snomed": code}]))


def test_an_unknown_snomed_code_is_no_finding(evaluator):
    result = ok(evaluator, conditions=[{"snomed": "38341003"}])  # hypertension: known, no rule
    assert not {"CARDIAC_CONDUCTION_DISORDER", "MYASTHENIA_GRAVIS", "RED_FLAG_SYMPTOMS"} & ids(result)


# --- rows 7, 14, 15, desk lines: medications as written ----------------------------------------------------------


@pytest.mark.parametrize(
    "line, finding_id, fires",
    [
        # row 14: quinine is its own drug
        ("Quinine 200 mg a.n.", "OTHER_CHELATION_SEPARATION", False),
        ("Kinidine 200 mg", "OTHER_CHELATION_SEPARATION", True),
        # row 15: topical, ear, eye and nose products do not chelate
        ("Ciprofloxacine oordruppels", "FLUOROQUINOLONE_SEPARATION", False),
        ("Ciprofloxacine 500 mg 2dd", "FLUOROQUINOLONE_SEPARATION", True),
        ("Doxycycline zalf", "TETRACYCLINE_SEPARATION", False),
        ("Doxycycline 100 mg", "TETRACYCLINE_SEPARATION", True),
        ("Magnesium spray (huid)", "CUMULATIVE_MG_SOURCES", False),
        ("Magnesium olie op de huid", "CUMULATIVE_MG_SOURCES", False),
        ("Magnesiumcitraat 200 mg", "CUMULATIVE_MG_SOURCES", True),
        ("Ferro fumaraat", "OTHER_CHELATION_SEPARATION", True),  # iron taken by mouth binds magnesium
        # row 7: magnesium written as Mg, and Gaviscon
        ("Mg 150mg elementair 1x daags", "CUMULATIVE_MG_SOURCES", True),
        ("Gaviscon zn", "CUMULATIVE_MG_SOURCES", True),
        ("Omeprazol 20 mg", "CUMULATIVE_MG_SOURCES", False),  # the "mg" after a number is the unit
    ],
)
def test_medication_lines(evaluator, line, finding_id, fires):
    result = ok(evaluator, medications=[line])
    assert (finding_id in ids(result)) is fires
    assert "UNRECOGNIZED_MEDICATION" not in ids(result)


def test_local_route_is_shown_and_keeps_the_ingredient(evaluator):
    result = ok(evaluator, medications=["Ciprofloxacine oordruppels"])
    (med,) = result["facts"]["medications"]
    assert (med["ingredient"], med["classes"], med["local_route"]) == ("ciprofloxacin", [], "oordruppels")


def test_an_oral_gel_stays_oral(evaluator):
    (med,) = ok(evaluator, medications=["Daktarin orale gel"])["facts"]["medications"]
    assert "local_route" not in med


def test_mg_abbreviation_amount_is_subtracted(evaluator):
    result = ok(evaluator, medications=["Mg 150mg elementair 1x daags"])
    assert result["facts"]["patient"]["other_mg_elemental_mg_per_day"] == 150
    assert result["plan"]["max_elemental_mg_per_day"] == 100  # EU 250 - 150


DESK_LINES = [
    "nicotinepleister",
    "Emconcor 5",
    "nitrospray zn",
    "oxycodon 5 mg",
    "Calci-Chew D3",
    "Methotrexaat 15 mg 1x per week",
    "Gaviscon zn",
    "Microlax",
    "Domperidon 10 mg",
    "Mometason neusspray",
    "Ferro fumaraat",
    "Tradolan",
    "Fentanylpleister 25 mcg/u",
    "Testosterongel",
    "Ursodeoxycholzuur",
    "Mictonorm",
    "Solifenacine 5 mg",
    "Mg 150mg elementair 1x daags",
]


@pytest.mark.parametrize("line", DESK_LINES)
def test_desk_lines_are_recognised(evaluator, line):
    result = ok(evaluator, medications=[line])
    assert "UNRECOGNIZED_MEDICATION" not in ids(result)


@pytest.mark.parametrize("line", ["Xyzzoprazol 20 mg", "Blorftabletten"])
def test_an_unknown_name_is_still_unrecognised(evaluator, line):
    assert "UNRECOGNIZED_MEDICATION" in ids(ok(evaluator, medications=[line]))


def test_qa_med_lines_file_has_no_unrecognised_line(evaluator):
    unrecognised = []
    for line in (QA_INPUTS / "med_lines.jsonl").read_text("utf-8").splitlines():
        result = evaluator.evaluate(json.loads(line)).to_dict()
        unrecognised += [m["text"] for m in result["facts"]["medications"] if m["matched_by"] == "unrecognized"]
    assert unrecognised == []


DESK_CASES = json.loads((QA_INPUTS / "desk_cases.json").read_text("utf-8"))


@pytest.mark.parametrize("case_id", sorted(DESK_CASES))
def test_desk_record_as_the_qa_engineer_expected(evaluator, case_id):
    """75 records typed as a Dutch pharmacy desk or a US intake form, with what a careful clinician expects
    (REFERENCE section in `ref`), written before the engine's output was seen."""
    case = DESK_CASES[case_id]
    expect, result = case["expect"], evaluator.evaluate(case["record"]).to_dict()
    if expect.get("reject"):
        assert result["status"] == "rejected", case["ref"]
        return
    assert result["status"] == "ok", result.get("errors")
    found = {f["id"]: f["severity"] for f in result["findings"]}
    assert set(expect.get("must", [])) <= set(found), case["ref"]
    assert not set(expect.get("must_not", [])) & set(found), case["ref"]
    if "cap" in expect:
        assert result["plan"]["max_elemental_mg_per_day"] == expect["cap"], case["ref"]
    if "urgent" in expect:
        assert result["plan"]["urgent"] == expect["urgent"], case["ref"]
    for key, fid in (
        ("ppi_severity", "PPI_LONG_TERM"),
        ("ksp_severity", "K_SPARING_DIURETIC"),
        ("renal_missing_severity", "RENAL_DATA_MISSING"),
    ):
        if key in expect and fid in found:
            assert found[fid] == expect[key], case["ref"]


# --- row 16: no oral advice beside ROUTE_NOT_ORAL -----------------------------------------------------------------


@pytest.mark.parametrize(
    "route, oral_advice",
    [("IV", False), ("rectaal", False), ("oraal", True), (None, True)],
)
def test_oral_advice_only_for_an_oral_order(evaluator, route, oral_advice):
    supplement = {"form": "oxide", "dose_mg": 400, "dose_basis": "salt", **({"route": route} if route else {})}
    result = ok(evaluator, supplement=supplement)
    assert ("ROUTE_NOT_ORAL" in ids(result)) is not oral_advice
    assert ("FORM_LOW_SOLUBILITY" in ids(result)) is oral_advice
    assert ("DOSE_BASIS_SALT" in ids(result)) is oral_advice


# --- row 21: JSON supplement whose form names the salt --------------------------------------------------------


@pytest.mark.parametrize(
    "form, status, elemental",
    [
        ("Magnesiumoxide 400 mg tablet", "ok", 964.8),  # 2 x 2 x 400 mg MgO x 0.603
        ("Magnesiumcitraat 150 mg elementair", "ok", 600.0),  # says elemental: not converted
    ],
)
def test_supplement_form_names_the_salt(evaluator, form, status, elemental):
    result = evaluator.evaluate(
        record(jurisdiction="EU", supplement={"form": form, "dose": {"value": 2, "unit": "tablet", "times_per_day": 2}})
    ).to_dict()
    assert result["status"] == status, result.get("errors")
    assert result["facts"]["patient"]["supplement_dose_elemental_mg"] == elemental


def test_supplement_form_without_strength_still_needs_its_basis(evaluator):
    result = evaluator.evaluate(record(supplement={"form": "oxide", "dose_mg": 400})).to_dict()
    assert result["status"] == "rejected"
    assert {e["field"] for e in result["errors"]} == {"supplement.dose_basis"}


@pytest.mark.parametrize(
    "word, found",
    [
        ("neuropathie", []),  # another organ: no guess, even with no neuropathy entry
        ("nefropatie", ["ckd"]),  # a misspelling of the word itself
        ("nefropathy", ["ckd"]),
    ],
)
def test_spelling_keeps_the_first_letters(word, found):
    index = PhraseIndex([("nefropathie", "ckd")])
    assert [m.key for m in index.find(word)] == found


# --- the checker refuses malformed text-reading data ----------------------------------------------------------


def _v2() -> dict:
    return json.loads((RULESETS / "v2.json").read_text())


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda v: v["condition_history"]["past_concepts"].append("nosuch"), "unknown concept 'nosuch'"),
        (lambda v: v["condition_history"]["family_phrases"].append("Moeder heeft"), "must be lower-case"),
        (lambda v: v["routes"]["oral"].update(local=True), "oral is never local"),
        (lambda v: v["condition_history"].update(years_are_past="yes"), "years_are_past"),
        (lambda v: v["route_policy"].update(sources=["NOSUCH"]), "unknown source 'NOSUCH'"),
    ],
)
def test_checker_refuses_bad_text_reading_data(change, message):
    doc = _v2()
    assert not [e for e in ruleset_check.check_data(doc) if "condition_history" in str(e) or "route" in str(e)]
    change(doc["vocabulary"])
    assert any(message in str(e) for e in ruleset_check.check_data(doc))

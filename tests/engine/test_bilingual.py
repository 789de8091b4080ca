"""Ruleset v3 in Dutch and English: the checker holds every text to its Dutch twin, results carry the Dutch."""

import copy
import json

import pytest

from engine import ruleset as rs
from engine import ruleset_check
from engine.evaluate import Evaluator, to_json_line
from engine.vocabulary import BILINGUAL_SINCE_VERSION
from tests.helpers import DATA, RULESETS, SAMPLE, finding, record

V3 = json.loads((RULESETS / "v3.json").read_text("utf-8"))
V2 = json.loads((RULESETS / "v2.json").read_text("utf-8"))


def problems(data):
    """Every checker message for a document."""
    return [str(e) for e in ruleset_check.check_data(data)]


def rule_of(data, rule_id):
    return next(r for r in data["rules"] if r["id"] == rule_id)


@pytest.fixture(scope="module")
def v3() -> Evaluator:
    return Evaluator(RULESETS / "v3.json")


def test_v3_is_bilingual_and_passes_the_checker():
    assert V3["version"] >= BILINGUAL_SINCE_VERSION and V3["supersedes"] == 2
    assert problems(V3) == []
    assert rs.check_file(RULESETS / "v3.json") == []


def test_v2_without_dutch_still_passes():
    assert V2["version"] < BILINGUAL_SINCE_VERSION
    assert problems(V2) == []


def test_a_message_without_its_dutch_is_refused():
    data = copy.deepcopy(V3)
    del rule_of(data, "RENAL_MODERATE")["then"]["message_nl"]
    assert problems(data) == ["magnesium v3, rule RENAL_MODERATE, then.message_nl: message has no Dutch"]


def test_a_dutch_message_with_other_placeholders_is_refused():
    data = copy.deepcopy(V3)
    then = rule_of(data, "RENAL_MODERATE")["then"]
    then["message_nl"] = then["message_nl"].replace("{kdigo_category}", "{kdigo}")
    assert problems(data) == [
        "magnesium v3, rule RENAL_MODERATE, then.message_nl: message Dutch placeholders differ from the "
        "English ({egfr_ml_min_1_73m2}, {kdigo} in the Dutch)"
    ]


def test_a_dutch_message_with_another_number_is_refused():
    data = copy.deepcopy(V3)
    then = rule_of(data, "HYPOMAGNESEMIA")["then"]
    then["message_nl"] = then["message_nl"].replace("0,75 mmol/L", "0,7 mmol/L")
    assert problems(data) == [
        "magnesium v3, rule HYPOMAGNESEMIA, then.message_nl: message Dutch numbers differ from the "
        "English (0.7 in the Dutch)"
    ]


def test_a_monitoring_line_without_its_dutch_is_refused():
    data = copy.deepcopy(V3)
    then = rule_of(data, "FOLLOW_UP")["then"]
    key = "monitoring_nl" if "monitoring_nl" in then else "monitoring_on_magnesium_nl"
    then[key] = then[key][:-1]
    assert any(f"{key} must have one Dutch line for each line" in p for p in problems(data))


def test_a_title_without_its_dutch_is_refused():
    data = copy.deepcopy(V3)
    del data["findings"]["RENAL_MODERATE"]["title_nl"]
    assert problems(data) == ["magnesium v3: findings.RENAL_MODERATE.title_nl must be a non-empty text"]


def test_a_plan_text_without_its_dutch_is_refused():
    data = copy.deepcopy(V3)
    data["texts"]["plan.py:ceiling_used_up"]["nl"] = ""
    assert problems(data) == ["magnesium v3: texts.plan.py:ceiling_used_up has no Dutch"]


def test_a_source_without_a_known_kind_is_refused():
    data = copy.deepcopy(V3)
    data["sources"]["S1"]["kind"] = "tertiary"
    assert problems(data) == ["magnesium v3: sources.S1.kind must be one of primary, secondary, project"]


def test_english_under_v3_is_v2s():
    for old, new in zip(V2["rules"], V3["rules"], strict=True):
        assert (old["id"], old["then"].get("message"), old["then"].get("monitoring")) == (
            new["id"],
            new["then"].get("message"),
            new["then"].get("monitoring"),
        )
    assert rs.source_texts(V3["sources"]) == V2["sources"]


def test_a_sample_record_gets_dutch_messages_with_its_values(v3):
    p0008 = next(json.loads(line) for line in SAMPLE.read_text("utf-8").splitlines() if '"P0008"' in line)
    result = v3.evaluate(p0008).to_dict()
    renal = finding(result, "RENAL_MODERATE")
    assert renal["message"].startswith("Moderately reduced kidney function (eGFR 41.497, category G3b)")
    assert renal["message_nl"] == (
        "Matig verminderde nierfunctie (eGFR 41,497, categorie G3b): de arts moet hiervan op de hoogte zijn; "
        "begrens de dosis op de bovengrens en controleer het serummagnesium elke 3-6 maanden."
    )
    plan = result["plan"]
    assert len(plan["monitoring_nl"]) == len(plan["monitoring"])
    assert "serummagnesium en nierfunctie elke 3-6 maanden zolang magnesium wordt gebruikt" in " ".join(
        plan["monitoring_nl"]
    )


@pytest.mark.parametrize(
    "changes, fid, dutch",
    [
        (
            {"serum_magnesium": {"value": 0.71, "unit": "mmol/L"}},
            "HYPOMAGNESEMIA",
            "Serummagnesium 0,71 mmol/L ligt onder de referentiewaarde (0,75 mmol/L): suppletie is zinvol; "
            "zoek de oorzaak (geneesmiddelen, alcohol, verlies via de darm).",
        ),
        (
            {"supplement": {"form": "citrate", "dose_mg": 400, "dose_basis": "elemental"}},
            "DOSE_ABOVE_UL_US",
            "De gevraagde 400 mg/dag elementair magnesium ligt boven de VS-bovengrens van 350 mg/dag voor "
            "magnesium uit supplementen op deze leeftijd; het plan begrenst de dosis op de bovengrens min het "
            "magnesium dat al wordt ingenomen.",
        ),
        (
            {"supplement": {"form": "oxide", "dose_mg": 200, "dose_basis": "elemental"}},
            "FORM_LOW_SOLUBILITY",
            "Bij magnesiumoxide wordt het magnesium minder volledig opgenomen dan bij vormen die goed oplossen "
            "(citraat, lactaat, chloride, aspartaat); het plan stelt citraat voor.",
        ),
    ],
)
def test_dutch_messages_fill_the_patients_values(v3, changes, fid, dutch):
    assert finding(v3.evaluate(record(**changes)).to_dict(), fid)["message_nl"] == dutch


def test_a_healthy_record_has_no_low_magnesium_in_either_language(v3):
    result = v3.evaluate(record()).to_dict()
    assert finding(result, "HYPOMAGNESEMIA") is None
    assert all(f["message_nl"] for f in result["findings"])


def test_the_ceiling_reason_in_dutch_names_the_finding_by_its_dutch_title(v3):
    plan = v3.evaluate(record(egfr_ml_min_1_73m2=20)).to_dict()["plan"]
    assert plan["ceiling_reason"].startswith("A physician decides the dose (RENAL_SEVERE)")
    assert plan["ceiling_reason_nl"] == (
        "De arts bepaalt de dosis (Ernstige nierfunctiestoornis); als de arts akkoord gaat, staan de regels toe: "
        "bovengrens 350 mg/dag (UL_US_9_PLUS)."
    )
    assert plan["monitoring_nl"] == []


def test_a_plan_with_magnesium_has_no_dutch_ceiling_reason(v3):
    plan = v3.evaluate(record()).to_dict()["plan"]
    assert plan["ceiling_reason"] is None and plan["ceiling_reason_nl"] is None


RECORDED_V2 = [json.loads(line) for line in (DATA / "v2_results_before_v3.jsonl").read_text("utf-8").splitlines()]


@pytest.fixture(scope="module")
def v2() -> Evaluator:
    return Evaluator(RULESETS / "v2.json")


@pytest.mark.parametrize("case", RECORDED_V2, ids=[str(c["record"].get("id")) for c in RECORDED_V2])
def test_v2_evaluates_as_before_v3(v2, case):
    result = v2.evaluate(case["record"]).to_dict()
    assert to_json_line(result) == to_json_line(case["result"])
    assert "message_nl" not in json.dumps(result) and "monitoring_nl" not in result.get("plan", {})

"""Rejects for malformed records: every bad field named, with the reason; nothing evaluated half-way."""

import pytest

from tests.helpers import ids, record


def errors(result):
    assert result["status"] == "rejected", result.get("findings")
    return {e["field"]: e["reason"] for e in result["errors"]}


@pytest.mark.parametrize(
    "changes, field, reason",
    [
        ({"age_years": "forty"}, "age_years", "expected a number"),
        ({"age_years": None}, "age_years", "missing"),
        ({"age_years": -3}, "age_years", "must not be negative"),
        ({"age_years": 450}, "age_years", "outside the plausible range"),
        ({"age_years": float("nan")}, "age_years", "finite"),
        ({"sex": "f"}, "sex", "expected 'female' or 'male'"),
        ({"pregnant": "ja"}, "pregnant", "expected true or false"),
        ({"sex": "male", "pregnant": True}, "pregnant", "sex is 'male'"),
        ({"egfr_ml_min_1_73m2": "fifty-five"}, "egfr_ml_min_1_73m2", "expected a number"),
        ({"egfr_ml_min_1_73m2": "55 ml/min"}, "egfr_ml_min_1_73m2", "expected a number"),
        ({"age_years": ">45"}, "age_years", "only read for lab values"),
        ({"serum_magnesium": {"value": 0.8}}, "serum_magnesium.unit", "missing"),
        (
            {"serum_magnesium": {"value": "0.8 mmol", "unit": "mmol/L"}},
            "serum_magnesium.value",
            "expected a number",
        ),
        ({"serum_magnesium": {"value": -0.8, "unit": "mmol/L"}}, "serum_magnesium.value", "above zero"),
        ({"serum_magnesium": {"value": 40, "unit": "mmol/L"}}, "serum_magnesium.value", "plausible range"),
        ({"serum_magnesium": {"value": 0.8, "unit": 5}}, "serum_magnesium.unit", "missing"),
        ({"serum_magnesium": 0.8}, "serum_magnesium", "expected an object"),
        (
            {"serum_creatinine": {"value": 1.0, "unit": "mg/dL", "method": "x"}},
            "serum_creatinine",
            "unknown keys",
        ),
        ({"medications": "omeprazole"}, "medications", "expected a list"),
        ({"medications": ["omeprazole", 5]}, "medications[1]", "expected text"),
        ({"medications": [{"dose": "5 mg"}]}, "medications[0]", "needs a name, rxnorm or atc"),
        ({"conditions": [""]}, "conditions[0]", "non-empty text"),
        (
            {"supplement": {"form": "citrate", "dose_mg": -100, "dose_basis": "elemental"}},
            "supplement.dose_mg",
            "must not be negative",
        ),
        ({"supplement": {"form": "citrate", "dose_mg": 200}}, "supplement.dose_basis", "missing"),
        (
            {"supplement": {"form": "citrate", "dose_mg": 200, "dose_basis": "tablet"}},
            "supplement.dose_basis",
            "expected 'elemental' or 'salt'",
        ),
        ({"jurisdiction": "UK"}, "jurisdiction", "expected 'US' or 'EU'"),
        (
            {"serum_magnesum": {"value": 0.8, "unit": "mmol/L"}},
            "serum_magnesum",
            "did you mean 'serum_magnesium'",
        ),
        ({"id": ""}, "id", "missing"),
    ],
)
def test_malformed_record_is_rejected_with_field_and_reason(evaluator, changes, field, reason):
    rec = record()
    for key, value in changes.items():
        if value is None:
            rec.pop(key)
        else:
            rec[key] = value
    found = errors(evaluator.evaluate(rec).to_dict())
    assert field in found, found
    assert reason in found[field]


def test_every_problem_of_a_record_is_reported_at_once(evaluator):
    found = errors(evaluator.evaluate(record(age_years="forty", jurisdiction="UK", medications="x")).to_dict())
    assert set(found) == {"age_years", "jurisdiction", "medications"}


def test_empty_field_name_is_named_in_the_error(evaluator):  # found by fuzzing
    result = evaluator.evaluate({**record(), "": 0}).to_dict()
    assert errors(result)["''"] == "unknown field"


def test_not_an_object_is_rejected(evaluator):
    assert errors(evaluator.evaluate(["a"]).to_dict())["record"] == "expected a JSON object"


def test_rejected_record_keeps_its_id_and_ruleset(evaluator):
    result = evaluator.evaluate(record(id="X9", age_years="old")).to_dict()
    assert result["record_id"] == "X9"
    assert result["ruleset"]["id"] == "magnesium"


def test_unrecognised_lab_unit_is_a_finding_not_a_silent_pass(evaluator):
    result = evaluator.evaluate(record(serum_magnesium={"value": 20, "unit": "mg/L"})).to_dict()
    assert result["status"] == "ok"
    assert "UNIT_UNRECOGNIZED" in ids(result)
    assert result["facts"]["patient"]["serum_mg_known"] is False


def test_unrecognised_creatinine_unit_leaves_renal_data_missing(evaluator):
    result = evaluator.evaluate(
        record(egfr_ml_min_1_73m2=None, serum_creatinine={"value": 1.0, "unit": "mg/L"})
    ).to_dict()
    assert {"UNIT_UNRECOGNIZED", "RENAL_DATA_MISSING"} <= ids(result)


def test_missing_inputs_become_explicit_findings(evaluator):
    result = evaluator.evaluate(record(egfr_ml_min_1_73m2=None, serum_magnesium=None)).to_dict()
    assert {"RENAL_DATA_MISSING", "MG_LAB_MISSING"} <= ids(result)


def test_child_with_creatinine_only_gets_no_adult_equation(evaluator):
    result = evaluator.evaluate(
        record(age_years=12, egfr_ml_min_1_73m2=None, serum_creatinine={"value": 0.6, "unit": "mg/dL"})
    ).to_dict()
    assert "RENAL_DATA_MISSING" in ids(result)
    assert any("CKD-EPI 2021 is for adults" in n for n in result["facts"]["notes"])


def test_creatinine_in_micromoles_with_micro_sign(evaluator):
    result = evaluator.evaluate(
        record(age_years=55, egfr_ml_min_1_73m2=None, serum_creatinine={"value": 79.56, "unit": "µmol/L"})
    ).to_dict()
    # 79.56 µmol/L = 0.9 mg/dL -> 75.5 for a 55-year-old woman [S33c]
    assert result["facts"]["patient"]["egfr_ml_min_1_73m2"] == pytest.approx(75.5, abs=0.05)


def _intake(**changes):
    from engine.evaluate import Evaluator
    from engine.facts import parse

    ev = Evaluator()
    return parse(record(**changes), ev.ruleset, ev.medications, ev.concepts, ev.forms, ev.default_jurisdiction)


def test_a_drug_named_twice_is_listed_once_in_the_order_first_named():
    meds = ["Omeprazol 20 mg", "furosemide 40 mg", "Omeprazol 20 mg", {"name": "Omeprazol 20 mg"}]
    drugs = _intake(medications=meds).drugs
    assert [(d.ingredient, d.text) for d in drugs] == [
        ("omeprazole", "Omeprazol 20 mg"),
        ("furosemide", "furosemide 40 mg"),
    ]  # the object names the same drug, resolved the same way, as the text: equal, so listed once


def test_facts_summary_is_fresh_for_every_call_and_record():
    """The summary's lists and dicts may be changed by callers: never shared with the intake or its caches."""
    intake = _intake(medications=["Omeprazol 20 mg"], conditions=["hartfalen"])
    first = intake.facts_summary()
    first["patient"]["age_years"] = 99
    first["medications"][0]["classes"].append("changed")
    first["concepts"][0]["concepts"].append("changed")
    again = intake.facts_summary()
    assert again["patient"]["age_years"] == 45 and "t" not in again["patient"]
    assert "changed" not in again["medications"][0]["classes"] and "changed" not in again["concepts"][0]["concepts"]
    other = _intake(medications=["Omeprazol 20 mg"], conditions=["hartfalen"], age_years=70).facts_summary()
    assert other["patient"]["age_years"] == 70 and "changed" not in other["medications"][0]["classes"]


def test_phrase_matches_are_shared_immutable_and_find_is_a_fresh_list():
    from engine.evaluate import Evaluator

    forms = Evaluator().forms
    assert forms.matches("magnesium citraat") is forms.matches("magnesium citraat")  # remembered
    assert isinstance(forms.matches("magnesium citraat"), tuple)
    found = forms.find("magnesium citraat")
    found.clear()
    assert forms.find("magnesium citraat") and forms.matches("magnesium citraat")

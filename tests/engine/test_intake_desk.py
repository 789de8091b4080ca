"""JSON intake records as a pharmacy desk or an intake form types them (issues 10 and 11): numbers as
text, dose units and strengths, route, lab status and bounds, history. True positives beside false alarms;
old records read exactly as before."""

from __future__ import annotations

import json

import pytest

from tests.helpers import BASE_RECORD, finding, ids, record


def ok(evaluator, **changes):
    result = evaluator.evaluate(record(**changes)).to_dict()
    assert result["status"] == "ok", result.get("errors")
    return result


def rejected(evaluator, **changes):
    result = evaluator.evaluate(record(**changes)).to_dict()
    assert result["status"] == "rejected", result.get("findings")
    return {e["field"]: e["reason"] for e in result["errors"]}


# --- numbers as people write them --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, fact, value, note",
    [
        ({"age_years": "45"}, "age_years", 45, "number written as text"),
        ({"egfr_ml_min_1_73m2": "45"}, "egfr_ml_min_1_73m2", 45, "number written as text"),
        ({"egfr_ml_min_1_73m2": "44,5"}, "egfr_ml_min_1_73m2", 44.5, "decimal comma"),
        ({"egfr_ml_min_1_73m2": ">90"}, "egfr_ml_min_1_73m2", 90, "lower bound > 90"),
        ({"egfr_ml_min_1_73m2": "≥ 90"}, "egfr_ml_min_1_73m2", 90, "lower bound >= 90"),
        ({"serum_magnesium": {"value": "0,62", "unit": "mmol/L"}}, "serum_mg_mmol_l", 0.62, "decimal comma"),
        ({"weight_kg": "72,5"}, "weight_kg", 72.5, "decimal comma"),
    ],
)
def test_numbers_written_as_text_are_read_and_the_reading_is_noted(evaluator, changes, fact, value, note):
    result = ok(evaluator, **changes)
    assert result["facts"]["patient"][fact] == pytest.approx(value)
    assert any(note in n for n in result["facts"]["notes"]), result["facts"]["notes"]


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"age_years": "forty"}, "age_years"),
        ({"egfr_ml_min_1_73m2": "ninety"}, "egfr_ml_min_1_73m2"),
        ({"egfr_ml_min_1_73m2": "1.234,5"}, "egfr_ml_min_1_73m2"),
        ({"age_years": "١٢"}, "age_years"),  # digits that are not ASCII
        ({"serum_magnesium": {"value": "laag", "unit": "mmol/L"}}, "serum_magnesium.value"),
        ({"weight_kg": ">70"}, "weight_kg"),  # a bound is read only for lab values
        ({"supplement": {"form": "citrate", "dose": {"value": "twee", "unit": "tablet"}}}, "supplement.dose.value"),
    ],
)
def test_what_is_not_a_number_is_still_rejected_with_the_field_named(evaluator, changes, field):
    assert "expected a number" in rejected(evaluator, **changes)[field]


@pytest.mark.parametrize(
    "egfr, renal",
    [
        (">90", set()),  # a lower bound of 90: at least 90, no renal rule can fire
        ("≥ 60", set()),
        ("45", {"RENAL_MODERATE"}),  # the same number measured
        (">45", {"RENAL_MODERATE"}),  # at least 45: may be 45, so moderate
        ("<60", {"RENAL_SEVERE"}),  # below 60 may be anywhere below: the worst case
        ("25", {"RENAL_SEVERE"}),
    ],
)
def test_an_egfr_bound_is_read_safely_per_threshold(evaluator, egfr, renal):
    result = ok(evaluator, egfr_ml_min_1_73m2=egfr)
    assert ids(result) & {"RENAL_SEVERE", "RENAL_MODERATE"} == renal
    patient = result["facts"]["patient"]
    assert ("egfr_bound" in patient) is (egfr[0] in "<>≥")


@pytest.mark.parametrize(
    "value, expected",
    [
        ("<0,3", "HYPOMAGNESEMIA_SEVERE"),
        ("0.3", "HYPOMAGNESEMIA_SEVERE"),
        (">2.5", "HYPERMAGNESEMIA_TOXIC"),
        ("0.85", None),
    ],
)
def test_a_magnesium_bound_is_read_as_its_worst_case(evaluator, value, expected):
    result = ok(evaluator, serum_magnesium={"value": value, "unit": "mmol/L"})
    found = ids(result) & {"HYPOMAGNESEMIA_SEVERE", "HYPERMAGNESEMIA_TOXIC", "HYPOMAGNESEMIA", "MG_ABOVE_RANGE"}
    assert found == ({expected} if expected else set())


# --- dose units other than mg --------------------------------------------------------------------------------

UNITS = [
    # (supplement, elemental mg per day, or None: DOSE_UNREADABLE)
    ({"form": "citrate", "dose": {"value": 0.2, "unit": "g"}, "dose_basis": "elemental"}, 200),
    ({"form": "citrate", "dose": {"value": "0,2", "unit": "gram"}, "dose_basis": "elemental"}, 200),
    ({"form": "citrate", "dose": {"value": 200000, "unit": "µg"}, "dose_basis": "elemental"}, 200),
    ({"form": "citrate", "dose": {"value": 200000, "unit": "mcg"}, "dose_basis": "elemental"}, 200),
    ({"form": "glycerophosphate", "dose": {"value": 4, "unit": "mmol", "times_per_day": 2}}, 8 * 24.305),
    (
        {"form": "Magnesium Oxide 400 MG Oral Tablet", "dose": {"value": 2, "unit": "tabletten"}, "dose_basis": "salt"},
        800 * 0.603,
    ),
    (
        {"form": "oxide", "dose": {"value": 1, "unit": "tablet"}, "strength": "400 mg", "dose_basis": "salt"},
        400 * 0.603,
    ),
    ({"form": "citrate", "dose": {"value": 2, "unit": "capsules"}, "strength": "100 mg elemental"}, 200),
    (
        {"form": "hydroxide", "dose": {"value": 10, "unit": "mL"}, "strength": "400 mg/5 mL", "dose_basis": "salt"},
        800 * 0.417,
    ),
    (
        {
            "form": "citrate",
            "dose": {"value": 1, "unit": "sachet"},
            "strength": {"value": 300, "unit": "mg", "per_unit": "sachet", "elemental": True},
        },
        300,
    ),
    ({"form": "citrate", "dose": {"value": 2, "unit": "tablets"}}, None),  # no strength anywhere
    ({"form": "citrate", "dose": {"value": 10, "unit": "mL"}, "strength": "100 mg"}, None),  # per tablet, not per mL
    ({"form": "citrate", "dose": {"value": 3, "unit": "scoops"}}, None),
    ({"form": "citrate", "dose": {"text": "een schepje"}}, None),
]


@pytest.mark.parametrize(
    "supplement, elemental", UNITS, ids=[json.dumps(u[0]["dose"], ensure_ascii=False) for u in UNITS]
)
def test_dose_units_are_converted_or_flagged_never_silently_dropped(evaluator, supplement, elemental):
    result = ok(evaluator, supplement=supplement)
    if elemental is None:
        unreadable = finding(result, "DOSE_UNREADABLE")
        assert unreadable is not None and result["plan"]["requested_elemental_mg_per_day"] is None
        assert result["facts"]["patient"]["supplement_dose_text"] in unreadable["message"]
    else:
        assert "DOSE_UNREADABLE" not in ids(result)
        assert result["plan"]["requested_elemental_mg_per_day"] == pytest.approx(elemental, abs=0.01)


@pytest.mark.parametrize(
    "supplement, field, reason",
    [
        (
            {"form": "citrate", "dose_mg": 200, "dose": {"value": 1, "unit": "tablet"}, "dose_basis": "elemental"},
            "supplement.dose",
            "not both",
        ),
        ({"form": "citrate", "dose": {"value": 200}}, "supplement.dose.unit", "missing"),
        ({"form": "citrate", "dose": {"value": 200, "unit": "mg"}}, "supplement.dose_basis", "missing"),
        (
            {"form": "citrate", "dose": {"value": 4, "unit": "mmol"}, "dose_basis": "salt"},
            "supplement.dose_basis",
            "elemental",
        ),
        ({"form": "citrate", "dose": {"value": 1, "unit": "tablet", "freq": 2}}, "supplement.dose", "unknown keys"),
        (
            {"form": "citrate", "dose": {"value": 1, "unit": "tablet"}, "strength": "strong"},
            "supplement.strength",
            "expected an amount",
        ),
        (
            {"form": "citrate", "dose_mg": 200, "dose_basis": "elemental", "strenght": "400 mg"},
            "supplement",
            "unknown keys ['strenght']",
        ),
        (
            {"form": "citrate", "dose_mg": 200, "dose_basis": "elemental", "route": 5},
            "supplement.route",
            "expected text",
        ),
    ],
)
def test_malformed_supplement_amounts_are_rejected_with_the_field_named(evaluator, supplement, field, reason):
    found = rejected(evaluator, supplement=supplement)
    assert reason in found[field], found


def test_tablets_twice_a_day_of_magnesium_oxide_are_above_the_eu_limit(evaluator):
    supplement = {
        "form": "Magnesium Oxide 400 MG Oral Tablet",
        "dose": {"value": 1, "unit": "tablet", "times_per_day": 2},
        "dose_basis": "salt",
    }
    result = ok(evaluator, supplement=supplement, jurisdiction="EU")
    assert "DOSE_ABOVE_UL_EU" in ids(result)
    assert any("400 mg per tablet" in n for n in result["facts"]["notes"])
    once = ok(evaluator, supplement={**supplement, "dose": {"value": 1, "unit": "tablet"}}, jurisdiction="EU")
    assert "DOSE_ABOVE_UL_EU" not in ids(once)  # 241 mg: the false alarm stays quiet


# --- route ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, not_oral",
    [
        ("IV", True),
        ("i.v.", True),
        ("intraveneus", True),
        ("infuus", True),
        ("IM", True),
        ("rectaal", True),
        ("topical", True),
        ("transdermal patch", True),
        ("47625008", True),  # SNOMED CT Intravenous route
        ("via a tube", True),  # not a route we know: read as not oral (safe reading)
        ("oral", False),
        ("PO", False),
        ("p.o.", False),
        ("by mouth", False),
        ("oraal", False),
        ("26643006", False),  # SNOMED CT Oral route
    ],
)
def test_route_as_written(evaluator, route, not_oral):
    supplement = {"form": "sulfate", "dose_mg": 200, "dose_basis": "elemental", "route": route}
    result = ok(evaluator, supplement=supplement)
    assert ("ROUTE_NOT_ORAL" in ids(result)) is not_oral
    assert result["facts"]["patient"]["supplement_route"] == ("not_oral" if not_oral else "oral")
    assert result["plan"]["supplement"] == ("no" if not_oral else "yes")


# --- lab status, date and code beside the value ---------------------------------------------------------------


def test_a_preliminary_lab_is_named_in_the_finding_evidence(evaluator):
    result = ok(
        evaluator,
        egfr_ml_min_1_73m2=22,
        labs={"egfr": {"status": "preliminary", "date": "2024-05-30", "code": "98979-8"}},
    )
    evidence = json.dumps(finding(result, "RENAL_SEVERE")["evidence"])
    assert "preliminary" in evidence and "2024-05-30" in evidence and "98979-8" in evidence
    final = ok(evaluator, egfr_ml_min_1_73m2=22, labs={"egfr": {"status": "final", "date": "2024-05-30"}})
    assert "preliminary" not in json.dumps(finding(final, "RENAL_SEVERE")["evidence"])


def test_a_comparator_beside_a_number_is_a_bound(evaluator):
    result = ok(evaluator, egfr_ml_min_1_73m2=90, labs={"egfr": {"comparator": ">"}})
    assert (
        result["facts"]["patient"]["egfr_bound"] == "lower" and result["facts"]["patient"]["egfr_as_reported"] == ">90"
    )


@pytest.mark.parametrize(
    "labs, field, reason",
    [
        ({"egfr": {"status": "cancelled"}}, "labs.egfr.status", "not a value"),
        ({"egfr": {"status": "done"}}, "labs.egfr.status", "expected a FHIR observation status"),
        ({"egfr": {"date": "30-05-2024"}}, "labs.egfr.date", "expected a date"),
        ({"egfr": {"comparator": "~"}}, "labs.egfr.comparator", "expected <"),
        ({"egfr": {"units": "mL/min"}}, "labs.egfr", "unknown keys"),
        ({"potassium": {"status": "final"}}, "labs.potassium", "unknown lab"),
    ],
)
def test_malformed_lab_context_is_rejected_with_the_field_named(evaluator, labs, field, reason):
    assert reason in rejected(evaluator, labs=labs)[field]


def test_a_bound_written_twice_must_agree(evaluator):
    found = rejected(evaluator, egfr_ml_min_1_73m2=">90", labs={"egfr": {"comparator": "<"}})
    assert "disagrees" in found["labs.egfr.comparator"]


# --- history and notes --------------------------------------------------------------------------------------


def test_history_is_shown_but_never_a_finding(evaluator):
    past = [
        {"name": "Appendicitis", "snomed": "74400008", "onset": "1953-04-02", "reason": "acute episode"},
        "epileptic seizure 1978",
    ]
    result = ok(evaluator, history=past, notes=["from the GP letter"])
    assert result["facts"]["history"] == past and "from the GP letter" in result["facts"]["notes"]
    assert not ids(result) & {"GI_OBSTRUCTION", "RED_FLAG_SYMPTOMS"}
    current = ok(evaluator, conditions=["appendicitis"])  # the same word as a current condition
    assert "GI_OBSTRUCTION" in ids(current)


def test_conditions_may_carry_a_snomed_code(evaluator):
    result = ok(evaluator, conditions=[{"name": "Myasthenia gravis", "snomed": "91637004"}])
    assert "MYASTHENIA_GRAVIS" in ids(result)
    assert "unknown keys" in rejected(evaluator, conditions=[{"name": "x", "icd10": "G70"}])["conditions[0]"]


# --- old records: nothing new given, nothing new in the output -----------------------------------------------

OLD_PATIENT_FACTS = {
    "age_years", "sex", "pregnant", "lactating", "jurisdiction", "renal_data_known", "egfr_source", "kdigo_category",
    "serum_mg_known", "serum_mg_lab_upper_limit_known", "serum_mg_above_lab_upper_limit", "serum_mg_unit_unrecognized",
    "creatinine_unit_unrecognized", "supplement_requested", "supplement_form", "dose_basis", "supplement_route",
    "supplement_dose_unreadable", "supplement_form_text", "supplement_dose_mg_as_entered",
    "supplement_dose_elemental_mg", "egfr_ml_min_1_73m2", "serum_mg_mmol_l",
    # magnesium already taken (v2 on): always stated, so the plan can say the cap assumes none was taken
    "other_mg_amount_unknown", "other_mg_dose_unreadable", "total_supplemental_mg_per_day",
}  # fmt: skip


def test_an_old_record_gives_the_old_facts_and_evidence(evaluator):
    result = ok(evaluator)
    assert set(result["facts"]["patient"]) == OLD_PATIENT_FACTS
    assert result["facts"]["notes"] == [] and "history" not in result["facts"]
    moderate = ok(evaluator, egfr_ml_min_1_73m2=45)
    item = finding(moderate, "RENAL_MODERATE")["evidence"][0]["facts"][0]
    assert set(item) == {"fact", "value", "op", "threshold", "egfr_source"}
    assert BASE_RECORD["supplement"] == {"form": "citrate", "dose_mg": 200, "dose_basis": "elemental"}

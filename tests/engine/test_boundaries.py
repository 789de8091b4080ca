"""Boundary tables for every threshold: eGFR, serum magnesium in three units, upper limits by age."""

import pytest

from engine.derived import ckd_epi_2021
from tests.helpers import finding, ids, record

RENAL = {"RENAL_SEVERE", "RENAL_MODERATE"}


@pytest.mark.parametrize(
    "egfr, expected",
    [
        (5, "RENAL_SEVERE"),
        (14.99, "RENAL_SEVERE"),
        (15, "RENAL_SEVERE"),
        (29.96, "RENAL_SEVERE"),  # unrounded: 29.96 is below 30 [REFERENCE §5.2]
        (29.999, "RENAL_SEVERE"),
        (30, "RENAL_MODERATE"),  # inclusive lower bound: exactly 30 is G3b
        (45, "RENAL_MODERATE"),
        (59.99, "RENAL_MODERATE"),
        (60, None),  # exactly 60 is G2
        (90, None),
    ],
)
def test_egfr_thresholds(evaluator, egfr, expected):
    result = evaluator.evaluate(record(egfr_ml_min_1_73m2=egfr)).to_dict()
    assert ids(result) & RENAL == ({expected} if expected else set())


def _creatinine_for(target_egfr: float, age: float, sex: str) -> float:
    """Creatinine (mg/dL) whose CKD-EPI 2021 eGFR is target_egfr, by bisection."""
    low, high = 0.2, 20.0
    for _ in range(200):
        mid = (low + high) / 2
        if ckd_epi_2021(mid, age, sex) > target_egfr:
            low = mid
        else:
            high = mid
    return high


@pytest.mark.parametrize("target, expected", [(29.97, "RENAL_SEVERE"), (30.02, "RENAL_MODERATE"), (60.03, None)])
def test_computed_egfr_is_compared_unrounded(evaluator, target, expected):
    creatinine = round(_creatinine_for(target, 70, "male"), 6)
    computed = ckd_epi_2021(creatinine, 70, "male")
    assert round(computed) in (30, 60)  # rounding would put it on the other side
    result = evaluator.evaluate(
        record(
            sex="male",
            age_years=70,
            egfr_ml_min_1_73m2=None,
            serum_creatinine={"value": creatinine, "unit": "mg/dL"},
        )
    ).to_dict()
    assert ids(result) & RENAL == ({expected} if expected else set())
    assert result["facts"]["patient"]["egfr_source"] == "ckd_epi_2021"


def test_lab_egfr_takes_precedence_over_creatinine(evaluator):
    result = evaluator.evaluate(
        record(egfr_ml_min_1_73m2=75, serum_creatinine={"value": 4.0, "unit": "mg/dL"})
    ).to_dict()
    assert result["facts"]["patient"]["egfr_source"] == "lab"
    assert not ids(result) & RENAL


MG_CASES = [
    # (mmol/L, finding expected, findings that must be absent)
    (0.49, "HYPOMAGNESEMIA_SEVERE", {"HYPOMAGNESEMIA"}),
    (0.5, "HYPOMAGNESEMIA", {"HYPOMAGNESEMIA_SEVERE"}),
    (0.749, "HYPOMAGNESEMIA", set()),
    (0.75, None, {"HYPOMAGNESEMIA"}),
    (0.95, None, {"MG_ABOVE_RANGE"}),
    (0.951, "MG_ABOVE_RANGE", set()),
    (1.739, "MG_ABOVE_RANGE", {"HYPERMAGNESEMIA_TOXIC"}),
    (1.74, "HYPERMAGNESEMIA_TOXIC", {"MG_ABOVE_RANGE"}),
]
MG_LEVELS = {"HYPOMAGNESEMIA_SEVERE", "HYPOMAGNESEMIA", "MG_ABOVE_RANGE", "HYPERMAGNESEMIA_TOXIC"}


@pytest.mark.parametrize("unit, factor", [("mmol/L", 1.0), ("mg/dL", 2.4305), ("mEq/L", 2.0)])
@pytest.mark.parametrize("mmol_l, expected, absent", MG_CASES)
def test_serum_magnesium_thresholds_in_every_unit(evaluator, unit, factor, mmol_l, expected, absent):
    value = round(mmol_l * factor, 6)
    result = evaluator.evaluate(record(serum_magnesium={"value": value, "unit": unit})).to_dict()
    found = ids(result) & MG_LEVELS
    assert found == ({expected} if expected else set())
    assert not found & absent
    assert result["facts"]["patient"]["serum_mg_mmol_l"] == pytest.approx(mmol_l, abs=1e-6)


def test_lab_upper_limit_replaces_default(evaluator):
    within_lab = evaluator.evaluate(
        record(serum_magnesium={"value": 1.0, "unit": "mmol/L", "upper_limit": 1.05})
    ).to_dict()
    assert "MG_ABOVE_RANGE" not in ids(within_lab)
    above_lab = evaluator.evaluate(
        record(serum_magnesium={"value": 0.93, "unit": "mmol/L", "upper_limit": 0.9})
    ).to_dict()
    assert "MG_ABOVE_RANGE" in ids(above_lab)


@pytest.mark.parametrize(
    "jurisdiction, age, cap, age_finding",
    [
        ("US", 0.5, 0, "INFANT_NO_SUPPLEMENT"),
        ("US", 0.99, 0, "INFANT_NO_SUPPLEMENT"),
        ("US", 1, 65, None),
        ("US", 3.99, 65, None),
        ("US", 4, 110, None),
        ("US", 8.99, 110, None),
        ("US", 9, 350, None),
        ("US", 18, 350, None),
        ("US", 80, 350, None),
        ("EU", 0.5, 0, "INFANT_NO_SUPPLEMENT"),
        ("EU", 1, 0, "EU_NO_UL_UNDER_4"),
        ("EU", 3.99, 0, "EU_NO_UL_UNDER_4"),
        ("EU", 4, 250, None),
        ("EU", 12, 250, None),
        ("EU", 80, 250, None),
    ],
)
def test_upper_limit_by_age_band_and_jurisdiction(evaluator, jurisdiction, age, cap, age_finding):
    result = evaluator.evaluate(
        record(
            jurisdiction=jurisdiction,
            age_years=age,
            supplement={"form": "citrate", "dose_mg": 50, "dose_basis": "elemental"},
        )
    ).to_dict()
    assert result["plan"]["max_elemental_mg_per_day"] == cap
    if age_finding:
        assert age_finding in ids(result)
    assert ("PEDIATRIC" in ids(result)) == (age < 18)


@pytest.mark.parametrize(
    "jurisdiction, age, dose, exceeded",
    [
        ("US", 40, 350, None),
        ("US", 40, 350.5, "DOSE_ABOVE_UL_US"),
        ("US", 6, 110, None),
        ("US", 6, 111, "DOSE_ABOVE_UL_US"),
        ("US", 2, 66, "DOSE_ABOVE_UL_US"),
        ("EU", 40, 250, None),
        ("EU", 40, 251, "DOSE_ABOVE_UL_EU"),
        ("EU", 6, 200, None),  # EU allows 250 from 4 y where the US allows 110 [REFERENCE §11]
    ],
)
def test_dose_above_upper_limit(evaluator, jurisdiction, age, dose, exceeded):
    result = evaluator.evaluate(
        record(
            jurisdiction=jurisdiction,
            age_years=age,
            supplement={"form": "citrate", "dose_mg": dose, "dose_basis": "elemental"},
        )
    ).to_dict()
    found = ids(result) & {"DOSE_ABOVE_UL_US", "DOSE_ABOVE_UL_EU"}
    assert found == ({exceeded} if exceeded else set())
    if exceeded:
        assert finding(result, exceeded)["severity"] == "moderate"

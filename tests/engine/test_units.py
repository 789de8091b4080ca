import pytest

from engine import units
from engine.derived import ckd_epi_2021, kdigo_category


@pytest.mark.parametrize(
    "value, unit, mmol_l",
    [
        (0.75, "mmol/L", 0.75),
        (1.5, "mEq/L", 0.75),
        (2.4305, "mg/dL", 1.0),  # 1 mmol/L = 2.43 mg/dL [REFERENCE §6]
        (1.8, "mg/dL", 0.7406),
        (2.0, "mEq/L", 1.0),
    ],
)
def test_magnesium_to_mmol_l(value, unit, mmol_l):
    assert units.magnesium_to_mmol_l(value, unit) == pytest.approx(mmol_l, abs=1e-4)


@pytest.mark.parametrize(
    "value, unit, mg_dl",
    [(1.0, "mg/dL", 1.0), (88.4, "umol/L", 1.0), (0.0884, "mmol/L", 1.0), (176.8, "umol/L", 2.0)],
)
def test_creatinine_to_mg_dl(value, unit, mg_dl):
    assert units.creatinine_to_mg_dl(value, unit) == pytest.approx(mg_dl)


@pytest.mark.parametrize(
    "written, canonical",
    [
        ("mmol/L", "mmol/L"),
        ("MMOL/L", "mmol/L"),
        ("mg/dl", "mg/dL"),
        ("µmol/L", "umol/L"),
        ("μmol/l", "umol/L"),
        ("umol/L", "umol/L"),
        ("mEq/L", "mEq/L"),
        ("mg/L", None),
        ("g/L", None),
    ],
)
def test_canonical_unit(written, canonical):
    assert units.canonical_unit(written) == canonical


def test_ckd_epi_2021_published_worked_example():
    # woman 55 y, Scr 0.9 mg/dL -> 75.5 mL/min/1.73 m² [S33c]
    assert ckd_epi_2021(0.9, 55, "female") == pytest.approx(75.5, abs=0.05)


def test_ckd_epi_2021_male_above_kappa():
    # 142 × (1.2/0.9)^-1.200 × 0.9938^60, no female factor
    expected = 142 * (1.2 / 0.9) ** -1.200 * 0.9938**60
    assert ckd_epi_2021(1.2, 60, "male") == pytest.approx(expected)


def test_ckd_epi_2021_female_below_kappa_uses_alpha():
    expected = 142 * (0.5 / 0.7) ** -0.241 * 0.9938**30 * 1.012
    assert ckd_epi_2021(0.5, 30, "female") == pytest.approx(expected)


@pytest.mark.parametrize(
    "egfr, category",
    [
        (120, "G1"),
        (90, "G1"),
        (89.99, "G2"),
        (60, "G2"),
        (59.99, "G3a"),
        (45, "G3a"),
        (44.99, "G3b"),
        (30, "G3b"),
        (29.99, "G4"),
        (15, "G4"),
        (14.99, "G5"),
        (0, "G5"),
        (None, "unknown"),
    ],
)
def test_kdigo_category_inclusive_lower_bounds(egfr, category):
    assert kdigo_category(egfr) == category

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


@pytest.mark.parametrize("value", [47.23, 0.1234567, 1e-07, -0.0, 400.0, 123.4567895, 45, 2**60])
def test_round_fact_is_round_to_six_decimals(value):
    first, again = units.round_fact(value), units.round_fact(value)  # computed, then remembered
    assert first == again == round(value, 6)
    assert type(first) is type(again) is type(round(value, 6))  # an int stays an int


def test_round_fact_an_int_and_its_equal_float_keep_their_types():
    assert type(units.round_fact(400.0)) is float
    assert type(units.round_fact(400)) is int  # 400 == 400.0 as a dict key: ints are never remembered
    assert type(units.round_fact(400.0)) is float


def test_round_fact_memory_is_bounded(monkeypatch):
    monkeypatch.setattr(units, "_ROUNDED", {})
    for i in range(units.ROUNDED_LIMIT * 2 + 5):
        assert units.round_fact(i + 0.1234567) == round(i + 0.1234567, 6)
        assert len(units._ROUNDED) <= units.ROUNDED_LIMIT

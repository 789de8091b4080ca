"""Unit conversions for the labs the engine reads (REFERENCE §5.3, §6)."""

from __future__ import annotations

MG_MOLAR_MASS_G_MOL = 24.305  # Mg, divalent: 1 mmol/L = 2 mEq/L = 2.4305 mg/dL [REFERENCE §6]
CREATININE_UMOL_PER_MG_DL = 88.4  # 1 mg/dL = 88.4 µmol/L (MW 113.12) [S33]

FACT_DECIMALS = 6  # facts are rounded so no float ever serialises with an exponent (durable_rules rejects 1e-05)
ROUNDED_LIMIT = 4_096  # floats whose rounding is remembered; cleared when full so memory stays flat
_ROUNDED: dict[float, float] = {}

MAGNESIUM_UNITS = ("mmol/L", "mg/dL", "mEq/L")
CREATININE_UNITS = ("mg/dL", "umol/L", "mmol/L")

# Spellings seen in the wild for the same unit; keys are lower-cased with spaces removed.
_UNIT_ALIASES = {
    "mmol/l": "mmol/L",
    "mg/dl": "mg/dL",
    "meq/l": "mEq/L",
    "umol/l": "umol/L",
    "µmol/l": "umol/L",
    "μmol/l": "umol/L",  # Greek mu, not micro sign
}


def canonical_unit(unit: str) -> str | None:
    """The canonical spelling of a lab unit, or None when it is not one we know."""
    return _UNIT_ALIASES.get(unit.replace(" ", "").lower())


def round_fact(value: float) -> float:
    """round(value, FACT_DECIMALS); a float's answer is remembered (bounded): round() to decimals costs about a
    microsecond, is done several times for every record, and doses and lab values repeat across records."""
    if type(value) is not float:
        return round(value, FACT_DECIMALS)  # an int stays an int (an equal float would share its dict key)
    found = _ROUNDED.get(value)
    if found is None:
        if len(_ROUNDED) >= ROUNDED_LIMIT:
            _ROUNDED.clear()
        found = _ROUNDED[value] = round(value, FACT_DECIMALS)
    return found


def magnesium_to_mmol_l(value: float, unit: str) -> float:
    """Serum magnesium in mmol/L from mmol/L, mg/dL or mEq/L."""
    if unit == "mmol/L":
        return value
    if unit == "mg/dL":
        return value * 10.0 / MG_MOLAR_MASS_G_MOL
    if unit == "mEq/L":
        return value / 2.0
    raise ValueError(f"not a magnesium unit: {unit}")


def creatinine_to_mg_dl(value: float, unit: str) -> float:
    """Serum creatinine in mg/dL from mg/dL, µmol/L or mmol/L."""
    if unit == "mg/dL":
        return value
    if unit == "umol/L":
        return value / CREATININE_UMOL_PER_MG_DL
    if unit == "mmol/L":
        return value * 1000.0 / CREATININE_UMOL_PER_MG_DL
    raise ValueError(f"not a creatinine unit: {unit}")

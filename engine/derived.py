"""Facts computed before the rules run: eGFR by CKD-EPI 2021, KDIGO category."""

from __future__ import annotations

import math

ADULT_AGE_YEARS = 18  # CKD-EPI is validated in adults only [S33b]


def ckd_epi_2021(creatinine_mg_dl: float, age_years: float, sex: str) -> float:
    """eGFR (mL/min/1.73 m²) by the race-free CKD-EPI 2021 creatinine equation [S33], unrounded."""
    female = sex == "female"
    kappa = 0.7 if female else 0.9
    alpha = -0.241 if female else -0.302
    ratio = creatinine_mg_dl / kappa
    egfr = 142.0 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return float(egfr * 1.012 if female else egfr)


def kdigo_category(egfr: float | None) -> str:
    """KDIGO 2012 GFR category [S32]; bounds are inclusive below as KDIGO prints them (30 -> G3b)."""
    if egfr is None or math.isnan(egfr):
        return "unknown"
    for bound, category in ((90, "G1"), (60, "G2"), (45, "G3a"), (30, "G3b"), (15, "G4")):
        if egfr >= bound:
            return category
    return "G5"

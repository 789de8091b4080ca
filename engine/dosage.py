"""How much magnesium an order allows in one day: FHIR R4 Dosage, dose units and product strengths.

Pure functions (no I/O, no ruleset). `engine.fhir` reads MedicationRequest.dosageInstruction with
`read_order`; `engine.facts` converts a desk's `supplement.dose` with `canonical_unit` and `to_mg`.

The daily amount is the most the order allows in one day (the upper limit is per day):
- timing.code: the FHIR R4 value set http://hl7.org/fhir/ValueSet/timing-abbreviation (hl7.fhir.r4.core
  4.0.1, codes from http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation): QD, BID, TID, QID, AM, PM,
  BED, QOD, WK, MO, Q1H, Q2H, Q3H, Q4H, Q6H, Q8H; any other "Q<n>H" is read as every n hours.
- repeat: frequencyMax (else frequency, default 1) per period (periodUnit s, min, h, d, wk, mo, a); the
  shortest period (`period`, not `periodMax`) gives the most. Doses are spread over a period longer than a
  day, so one day holds at most ceil(frequency / days) of them (QOD: 1; 3 per week: 1).
- when: one administration per distinct EventTiming code (a generic meal code C, AC or PC: 3 meals);
  timeOfDay: one per distinct time; event: the most on one date. count/countMax bound the total.
- several dosageInstruction lines: lines with the same `sequence` (or none) are concurrent and add up.
  Different sequence numbers are consecutive phases (FHIR R4 Dosage.sequence) only when the timing bounds
  every phase before the last (repeat.boundsDuration / boundsPeriod / boundsRange, or count): then the
  largest phase counts.
  Without bounds "sequence 1 morning, sequence 2 evening" may well be meant together: the safe reading
  against the upper limit is that they add up, and a note says so.
- every timing.code coding is read (a local code first, then GTS BID: BID); code.text, dosageInstruction
  .text and patientInstruction are read for a frequency ("three times daily", "2dd1", "1-0-1", "bid") with
  engine.amounts' reader, passed in by engine.fhir. A Dosage with no timing at all is read from its text;
  when no text gives a frequency the amount a day is unreadable (DOSE_UNREADABLE), never "once".
- asNeeded: maxDosePerPeriod when given, else the most the timing allows; neither: unreadable.
- doseRange: the high end; no high end: unreadable. maxDosePerPeriod also caps a scheduled order; its
  denominator is read by code or unit ("d", "day", "days", "dag", "h", "hour", "wk", "week").
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engine import units

# A frequency read from a text: (administrations a day, how it was read), or None when the text gives none.
FrequencyReader = Callable[[str], "tuple[float, str] | None"]

MG_PER_MMOL = units.MG_MOLAR_MASS_G_MOL  # declared once in engine.units [REFERENCE §6]; mmol of Mg are elemental
MMOL_PER_MEQ = 0.5  # magnesium is divalent: 1 mmol = 2 mEq [REFERENCE §6]

# timing-abbreviation value set (FHIR R4 4.0.1): administrations in the busiest day.
TIMING_CODES: dict[str, int] = {
    "QD": 1,
    "AM": 1,
    "PM": 1,
    "BED": 1,
    "QOD": 1,
    "WK": 1,
    "MO": 1,
    "BID": 2,
    "TID": 3,
    "QID": 4,
    "Q1H": 24,
    "Q2H": 12,
    "Q3H": 8,
    "Q4H": 6,
    "Q6H": 4,
    "Q8H": 3,
}
_EVERY_N_HOURS = re.compile(r"^Q(\d{1,2})H$")
MEAL_CODES = frozenset({"C", "AC", "PC"})  # EventTiming "at / before / after meals": read as 3 meals a day
PERIOD_DAYS: dict[str, float] = {"s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "wk": 7, "mo": 30, "a": 365}
# Period units as senders write them in Quantity.unit without a UCUM code (English and Dutch).
PERIOD_WORDS: dict[str, str] = {
    "day": "d",
    "days": "d",
    "dag": "d",
    "dagen": "d",
    "hour": "h",
    "hours": "h",
    "hr": "h",
    "uur": "h",
    "week": "wk",
    "weeks": "wk",
    "weken": "wk",
    "month": "mo",
    "months": "mo",
    "maand": "mo",
}

# Dose units, lower-cased, braces and surrounding spaces removed -> (canonical unit, factor).
_MASS = {"mg": 1.0, "milligram": 1.0, "milligrams": 1.0, "g": 1000.0, "gram": 1000.0, "grams": 1000.0}
_MASS.update({k: 0.001 for k in ("mcg", "ug", "µg", "μg", "microgram", "micrograms")})
_SUBSTANCE = {"mmol": 1.0, "millimole": 1.0, "millimoles": 1.0, "meq": MMOL_PER_MEQ}
_VOLUME = {"ml": 1.0, "milliliter": 1.0, "millilitre": 1.0, "milliliters": 1.0, "millilitres": 1.0, "l": 1000.0}
_COUNT = frozenset(
    {
        "",
        "1",
        "tablet",
        "tablets",
        "tablet(s)",
        "tab",
        "tabs",
        "tbl",
        "capsule",
        "capsules",
        "capsule(s)",
        "cap",
        "caps",
        "sachet",
        "sachets",
        "packet",
        "packets",
        "softgel",
        "softgels",
        "lozenge",
        "lozenges",
        "each",
        "ea",
        "tablet(ten)",
        "tabletten",
        "bruistablet",
        "bruistabletten",
        "kauwtablet",
        "kauwtabletten",
        "zakje",
        "zakjes",
        "stuk",
        "stuks",
    }
)


def canonical_unit(unit: str | None) -> tuple[str, float] | None:
    """A dose unit as (mg | mmol | mL | tablet, factor to it); None when it is not a unit we read."""
    key = re.sub(r"\s+", " ", (unit or "").replace("{", "").replace("}", "")).strip().lower()
    for table, name in ((_MASS, "mg"), (_SUBSTANCE, "mmol"), (_VOLUME, "mL")):
        if key in table:
            return name, table[key]
    if key in _COUNT or key.rstrip("s") in _COUNT:
        return "tablet", 1.0
    return None


@dataclass(frozen=True)
class Strength:
    """Product strength: `amount` mg (or mmol) of magnesium salt or element per `per_amount` tablet(s) or mL."""

    amount: float
    unit: str  # mg or mmol
    per_amount: float
    per_unit: str  # tablet or mL
    elemental: bool
    text: str

    def describe(self) -> str:
        per = (
            "tablet"
            if self.per_unit == "tablet" and self.per_amount == 1
            else f"{_num(self.per_amount)} {self.per_unit}"
        )
        return f"{_num(self.amount)} {self.unit}{' elemental' if self.elemental else ''} per {per}"


_STRENGTH = re.compile(
    r"(?P<num>\d+(?:[.,]\d+)?)\s*(?P<unit>mg|g|mcg|ug|µg|mmol|meq)\b"
    r"(?:\s*(?:/|per)\s*(?P<pnum>\d+(?:[.,]\d+)?)?\s*(?P<punit>ml|l)\b)?",
    re.IGNORECASE,
)
_ELEMENTAL_PAREN = re.compile(r"\(\s*(?:as\s+)?(?:elemental\s+)?magnesium\s+(?P<rest>\d[^)]*)\)", re.IGNORECASE)
_ELEMENT_WORDS = re.compile(r"\belement(?:al|air|aire)\b", re.IGNORECASE)
_PLAIN_MAGNESIUM = re.compile(r"\bmagnesium\s+\d", re.IGNORECASE)  # "Magnesium 250 MG": the element itself


def parse_strength(text: str) -> Strength | None:
    """The magnesium strength written in a product name (RxNorm style), or None.

    "Magnesium Oxide 400 MG Oral Tablet" -> 400 mg salt per tablet; "Magnesium hydroxide 400 MG/5ML Oral
    Suspension" -> 400 mg per 5 mL; in a combination ("Aluminum Hydroxide 40 MG/ML / Magnesium Hydroxide
    40 MG/ML ...") the part naming magnesium; "(magnesium 200 MG)" or "elemental" -> elemental.
    """
    parts = [p for p in re.split(r"\s+/\s+", text) if p.strip()]
    if len(parts) > 1:
        parts = [p for p in parts if "magnes" in p.lower()]
        if len(parts) != 1:
            return None
    part = parts[0] if parts else text
    paren = _ELEMENTAL_PAREN.search(part)
    elemental = bool(_ELEMENT_WORDS.search(part) or _PLAIN_MAGNESIUM.search(part))
    match = _STRENGTH.search(paren.group("rest")) if paren else _STRENGTH.search(part)
    if match is None:
        return None
    unit, factor = canonical_unit(match.group("unit")) or ("", 1.0)
    if unit not in ("mg", "mmol"):
        return None
    amount = _decimal(match.group("num")) * factor
    per_unit = "tablet"
    per_amount = 1.0
    if match.group("punit"):
        per_unit = "mL"
        per_amount = (_decimal(match.group("pnum")) if match.group("pnum") else 1.0) * (
            1000.0 if match.group("punit").lower() == "l" else 1.0
        )
    return Strength(amount, unit, per_amount, per_unit, bool(paren) or elemental or unit == "mmol", text)


def strength_from_ratio(
    numerator: dict[str, Any], denominator: dict[str, Any] | None, text: str, elemental: bool
) -> Strength | None:
    """A FHIR Ratio (Medication.ingredient.strength) as a Strength, or None when its units are not read."""
    value = numerator.get("value")
    unit = canonical_unit(str(numerator.get("code") or numerator.get("unit") or ""))
    if not isinstance(value, int | float) or isinstance(value, bool) or unit is None or unit[0] not in ("mg", "mmol"):
        return None
    per_amount, per_unit = 1.0, "tablet"
    if denominator:
        per = canonical_unit(str(denominator.get("code") or denominator.get("unit") or ""))
        per_value = denominator.get("value", 1)
        if per is None or per[0] not in ("tablet", "mL") or not isinstance(per_value, int | float) or per_value <= 0:
            return None
        per_amount, per_unit = float(per_value) * per[1], per[0]
    return Strength(float(value) * unit[1], unit[0], per_amount, per_unit, elemental or unit[0] == "mmol", text)


def to_mg(value: float, unit: str, strength: Strength | None) -> tuple[float, bool | None, str] | None:
    """An amount in a canonical unit as mg: (mg, elemental (None: as stated elsewhere), how); None if unknown."""
    if unit == "mg":
        return value, None, f"{_num(value)} mg"
    if unit == "mmol":
        return value * MG_PER_MMOL, True, f"{_num(value)} mmol x {MG_PER_MMOL} mg/mmol"
    if strength is None or strength.per_unit != unit:
        return None
    amount = value / strength.per_amount * strength.amount
    mg = amount * MG_PER_MMOL if strength.unit == "mmol" else amount
    how = f"{_num(value)} {unit} x {strength.describe()}"
    return mg, strength.elemental, how + (f" x {MG_PER_MMOL} mg/mmol" if strength.unit == "mmol" else "")


@dataclass(frozen=True)
class DailyDose:
    """The most an order allows in one day, in one canonical unit, and how it was read."""

    value: float | None
    unit: str | None  # mg, mmol, mL or tablet
    how: str
    unreadable: str | None = None  # why the amount cannot be known
    elemental: bool | None = None  # set when converted through a strength or from mmol
    notes: tuple[str, ...] = field(default=())  # readings the clinician should know about (text, phases)


def _timing_code(code: str) -> int | None:
    n = TIMING_CODES.get(code)
    every = _EVERY_N_HOURS.match(code)
    if n is None and every and int(every.group(1)) > 0:
        n = math.ceil(24 / int(every.group(1)))
    return n


def _per_day_from_timing_code(
    code_concept: dict[str, Any], read_frequency: FrequencyReader | None
) -> tuple[int | None, str]:
    """Administrations a day from timing.code: the first coding we read, else its text; None when neither reads."""
    codes = _timing_codes(code_concept)
    known = [(c, _timing_code(c)) for c in codes if _timing_code(c) is not None]
    text = str(code_concept.get("text") or "").strip()
    from_text = read_frequency(text) if read_frequency and text and not known else None
    if known:
        code, n = known[0]
        return int(n or 0), f"timing.code {code}"
    if from_text:
        return math.ceil(from_text[0] - 1e-9), f"timing.code.text: {from_text[1]}"
    shown = ", ".join(codes) or text
    return None, f"timing code {shown!r} is not one we read"


def _per_day_from_repeat(repeat: dict[str, Any]) -> tuple[int | None, str]:
    """Administrations a day from timing.repeat's frequency per period (a short boundsDuration caps it)."""
    frequency = repeat.get("frequencyMax") or repeat.get("frequency") or 1
    period = repeat.get("period") or 1
    unit = repeat.get("periodUnit") or "d"
    if unit not in PERIOD_DAYS or not _positive(frequency) or not _positive(period):
        return None, f"repeat {frequency} per {period} {unit} is not a schedule we read"
    days = float(period) * PERIOD_DAYS[unit]
    word = "frequencyMax" if repeat.get("frequencyMax") else "frequency"
    n = math.ceil(float(frequency) / days - 1e-9)
    how = f"repeat {word} {_num(frequency)} per {_num(period)} {unit}"
    bounds = repeat.get("boundsDuration") or {}
    bounds_unit = str(bounds.get("code") or bounds.get("unit") or "")
    if _positive(bounds.get("value")) and bounds_unit in PERIOD_DAYS:
        span = float(bounds["value"]) * PERIOD_DAYS[bounds_unit]
        if span < 1:  # every hour for 3 hours: at most 4 administrations (both ends) in that day
            n = min(n, math.floor(float(frequency) * span / days + 1e-9) + 1)
            how += f" for {_num(bounds['value'])} {bounds_unit}"
    return n, how


def administrations_per_day(
    dosage: dict[str, Any], read_frequency: FrequencyReader | None = None
) -> tuple[int | None, str]:
    """The most administrations one day can hold under this Dosage's timing, and how that was read.

    timing.code: the first of its codings we read (a local code may come first); else its text, as a code
    ("BID") or through `read_frequency` ("twice daily"). No timing at all: the frequency in dosageInstruction
    .text or patientInstruction; none there: unreadable (None), never once.
    """
    timing = dosage.get("timing") or {}
    repeat = timing.get("repeat") or {}
    found: list[tuple[int, str]] = []
    code_concept = timing.get("code")
    if isinstance(code_concept, dict) and (code_concept.get("coding") or code_concept.get("text")):
        n_code, how_code = _per_day_from_timing_code(code_concept, read_frequency)
        if n_code is None:
            return None, how_code
        found.append((n_code, how_code))
    if any(k in repeat for k in ("frequency", "frequencyMax", "period", "periodUnit")):
        n_repeat, how_repeat = _per_day_from_repeat(repeat)
        if n_repeat is None:
            return None, how_repeat
        found.append((n_repeat, how_repeat))
    when = [str(w) for w in repeat.get("when") or []]
    if when:
        n = sum(3 if w in MEAL_CODES else 1 for w in set(when))
        found.append((n, f"repeat.when {', '.join(sorted(set(when)))}"))
    times = set(repeat.get("timeOfDay") or [])
    if times:
        found.append((len(times), f"{len(times)} timeOfDay"))
    events = [str(e)[:10] for e in timing.get("event") or []]
    if events:
        found.append((max(events.count(d) for d in set(events)), "timing.event"))
    if not found:
        for key in ("text", "patientInstruction"):
            text = str(dosage.get(key) or "").strip()
            read = read_frequency(text) if read_frequency and text else None
            if read:
                return math.ceil(read[0] - 1e-9), f"no structured timing; {key} '{text}': {read[1]}"
        return None, "no timing, and no frequency in the dosage text: the amount a day cannot be known"
    n, how = max(found)
    bound: Any = repeat.get("countMax") or repeat.get("count")
    if _positive(bound) and int(bound) < n:
        n, how = int(bound), f"{how}, bounded by count {int(bound)}"
    return n, how


def read_line(dosage: dict[str, Any], frequency: FrequencyReader | None = None) -> DailyDose:
    """One dosageInstruction line: its most per day, in the dose's own canonical unit."""
    quantity, how_dose = _dose_quantity(dosage)
    as_needed = bool(dosage.get("asNeededBoolean") or dosage.get("asNeededCodeableConcept"))
    maximum = _max_per_day(dosage.get("maxDosePerPeriod"))
    if as_needed and maximum is not None:
        return maximum
    if isinstance(quantity, str):
        return DailyDose(None, None, how_dose, quantity)
    has_timing = bool(dosage.get("timing"))
    n, how_n = administrations_per_day(dosage, frequency)
    if as_needed and not has_timing:
        return DailyDose(None, None, "as needed", "as needed, with no maximum dose per period")
    if n is None:
        return DailyDose(None, None, how_n, how_n)
    if quantity is None:
        return DailyDose(None, None, "no dose", "no dose quantity in the order")
    value, unit = quantity
    from_text = how_n.startswith(("no structured", "timing.code.text"))
    notes = (f"frequency read from the text ({how_n})",) if from_text else ()
    line = DailyDose(
        value * n, unit, f"{how_dose} x {n} per day ({how_n})" + (" as needed" if as_needed else ""), notes=notes
    )
    if maximum is not None and maximum.unit == unit and maximum.value is not None and maximum.value < line.value:  # type: ignore[operator]
        return maximum
    return line


def _bounded(dosage: dict[str, Any]) -> bool:
    """Whether a line's timing limits it in time (bounds or a count): what makes sequence numbers phases."""
    repeat = (dosage.get("timing") or {}).get("repeat") or {}
    return any(repeat.get(k) for k in ("boundsDuration", "boundsPeriod", "boundsRange", "count", "countMax"))


def read_order(
    dosages: list[dict[str, Any]], strength: Strength | None, frequency: FrequencyReader | None = None
) -> DailyDose:
    """Every dosageInstruction line of an order: concurrent lines added, bounded consecutive phases the largest."""
    if not dosages:
        return DailyDose(None, None, "no dosage", "no dosage instruction in the order")
    notes: list[str] = []
    sequenced = [d for d in dosages if d.get("sequence") is not None]
    last = max((d["sequence"] for d in sequenced if isinstance(d["sequence"], int)), default=None)
    earlier = [d for d in sequenced if d.get("sequence") != last]  # the last phase may run on without bounds
    if len({d.get("sequence") for d in sequenced}) > 1 and not all(_bounded(d) for d in earlier):
        notes.append(
            "dosage lines with different sequence numbers and no bounds that separate them are read as taken "
            "together (added up): the safe reading against the upper limit"
        )
        dosages = [{k: v for k, v in d.items() if k != "sequence"} for d in dosages]
    lines = [(d.get("sequence"), read_line(d, frequency)) for d in dosages]
    notes += [n for _, line in lines for n in line.notes]
    bad = [line for _, line in lines if line.unreadable]
    if bad:
        return DailyDose(None, None, "; ".join(b.how for b in bad), "; ".join(str(b.unreadable) for b in bad))
    units = {line.unit for _, line in lines}
    elemental: bool | None = None
    if len(units) > 1:  # e.g. mg on one line, tablets on another: all through the strength to mg
        converted = []
        for seq, line in lines:
            mg = to_mg(float(line.value or 0), str(line.unit), strength)
            if mg is None:
                return DailyDose(None, None, line.how, f"{line.how}: no strength to add it to the other lines")
            elemental = elemental or mg[1]
            converted.append((seq, DailyDose(mg[0], "mg", f"{line.how} = {_num(mg[0])} mg")))
        lines = converted
    sequences = {seq for seq, _ in lines if seq is not None}
    phases = sorted(sequences) or [None]
    best: DailyDose | None = None
    for phase in phases:
        members = [line for seq, line in lines if seq is None or seq == phase]
        total = sum(float(line.value or 0) for line in members)
        how = " + ".join(line.how for line in members)
        if best is None or total > float(best.value or 0):
            best = DailyDose(total, members[0].unit, how, None, elemental)
    assert best is not None
    if len(phases) > 1:
        best = DailyDose(
            best.value, best.unit, f"{best.how} (the largest of {len(phases)} consecutive phases)", None, elemental
        )
    return DailyDose(best.value, best.unit, best.how, best.unreadable, best.elemental, tuple(dict.fromkeys(notes)))


def _timing_codes(concept: Any) -> list[str]:
    if not isinstance(concept, dict):
        return []
    codes = [str(c.get("code")).strip().upper() for c in concept.get("coding") or [] if c.get("code")]
    if concept.get("text"):
        codes.append(str(concept["text"]).strip().upper())
    return codes  # every coding names the same pattern: the first one we read is used


def _dose_quantity(dosage: dict[str, Any]) -> tuple[tuple[float, str] | str | None, str]:
    """(value, canonical unit) of one administration; a text saying why it is unreadable; None if absent."""
    rates = dosage.get("doseAndRate") or []
    rates = [rates] if isinstance(rates, dict) else rates
    for rate in rates:
        if not isinstance(rate, dict):
            continue
        if rate.get("doseQuantity"):
            return _quantity(rate["doseQuantity"], "doseQuantity")
        if rate.get("doseRange"):
            high = (rate["doseRange"] or {}).get("high")
            if not high:
                return "doseRange without a high end", "doseRange"
            found, how = _quantity(high, "doseRange high")
            return found, how
    if dosage.get("maxDosePerAdministration"):
        return _quantity(dosage["maxDosePerAdministration"], "maxDosePerAdministration")
    return None, "no dose"


def _quantity(q: dict[str, Any], where: str) -> tuple[tuple[float, str] | str, str]:
    value: Any = q.get("value")
    written = (
        f"{_num(value) if isinstance(value, int | float) else value} {q.get('unit') or q.get('code') or ''}".strip()
    )
    if not _positive(value):
        return f"{where} '{written}' has no amount", written
    unit = canonical_unit(str(q.get("code") or q.get("unit") or ""))
    if unit is None:
        unit = canonical_unit(str(q.get("unit") or ""))
    if unit is None:
        return f"{where} '{written}': unit not read", written
    amount = float(value) * unit[1]
    return (amount, unit[0]), written if unit[1] == 1 else f"{written} = {_num(amount)} {unit[0]}"


def _max_per_day(ratio: Any) -> DailyDose | None:
    """maxDosePerPeriod as the most in one day (a period of a day or more: all of it could fall in one day)."""
    if not isinstance(ratio, dict) or not ratio.get("numerator"):
        return None
    found, how = _quantity(ratio["numerator"], "maxDosePerPeriod")
    if isinstance(found, str):
        return DailyDose(None, None, how, found)
    denominator = ratio.get("denominator") or {}
    per = str(denominator.get("code") or denominator.get("unit") or "d").strip()
    per = per if per in PERIOD_DAYS else PERIOD_WORDS.get(per.lower(), per)
    per_value = denominator.get("value", 1)
    if per not in PERIOD_DAYS or not _positive(per_value):
        return DailyDose(None, None, how, f"maxDosePerPeriod per '{per_value} {per}' not read")
    days = float(per_value) * PERIOD_DAYS[per]
    windows = 1 if days >= 1 else math.ceil(1 / days - 1e-9)
    value, unit = found
    return DailyDose(value * windows, unit, f"maxDosePerPeriod {how} per {_num(per_value)} {per}")


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _decimal(text: str) -> float:
    return float(text.replace(",", "."))


def _num(value: Any) -> str:
    return format(round(float(value), 3), "g") if isinstance(value, int | float) else str(value)

"""Parse and validate one intake record into normalised facts (units in the names).

Every problem is collected with the field it concerns; a record with any problem is
rejected as a whole with all of them, never half-evaluated.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from engine import amounts, dosage, units
from engine import vocabulary as vocab
from engine.conditions import ConceptReading, ConceptResolver
from engine.derived import ADULT_AGE_YEARS, ckd_epi_2021, kdigo_category
from engine.errors import FieldError, RecordError
from engine.lexicon import PhraseIndex
from engine.medications import MedicationResolver, ResolvedDrug
from engine.ruleset import Ruleset

FIELDS = (
    "id",
    "age_years",
    "sex",
    "pregnant",
    "lactating",
    "weight_kg",
    "egfr_ml_min_1_73m2",
    "serum_creatinine",
    "serum_magnesium",
    "medications",
    "conditions",
    "symptoms",
    "supplement",
    "jurisdiction",
    "labs",
    "history",
    "notes",
)
_FIELD_SET = frozenset(FIELDS)


@dataclass(frozen=True)
class Plausible:
    """A plausible range: a value outside it is a typing error, not a patient."""

    low: float
    high: float
    unit: str = ""

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high

    def reason(self, *, converted: bool = False) -> str:
        """The rejection reason naming the range; with its unit for a value converted from the unit written."""
        return f"outside the plausible range {self.low:g} to {self.high:g}" + (f" {self.unit}" if converted else "")


AGE_RANGE = Plausible(0.0, 130.0)
WEIGHT_RANGE_KG = Plausible(0.3, 400.0)
EGFR_RANGE = Plausible(0.0, 250.0)
CREATININE_RANGE_MG_DL = Plausible(0.05, 40.0, "mg/dL")
MAGNESIUM_RANGE_MMOL_L = Plausible(0.01, 20.0, "mmol/L")
LAB_UPPER_LIMIT_RANGE = Plausible(0.001, 100.0)  # in the unit of the lab value it bounds
DOSE_RANGE_MG = Plausible(0.001, 100_000.0, "mg")
AMOUNT_RANGE = Plausible(1e-6, 1e9)  # in any unit: the mg it gives is checked against DOSE_RANGE_MG
TIMES_PER_DAY_RANGE = Plausible(0.01, 48.0)
MAX_LIST_ITEMS = 5_000
DECIMALS = units.FACT_DECIMALS  # facts are rounded so no float ever serialises with an exponent
# A number as a desk types it: ASCII digits, one decimal point or comma, an optional bound for lab values.
NUMBER_TEXT = re.compile(r"^\s*(?P<cmp>>=|<=|≥|≤|>|<)?\s*(?P<num>[0-9]+(?:[.,][0-9]+)?)\s*$")
COMPARATORS = {">": ">", ">=": ">=", "≥": ">=", "<": "<", "<=": "<=", "≤": "<="}
LAB_FIELDS = {
    "egfr": "egfr_ml_min_1_73m2",
    "serum_creatinine": "serum_creatinine",
    "serum_magnesium": "serum_magnesium",
}
LAB_PREFIX = {"egfr": "egfr", "serum_creatinine": "creatinine", "serum_magnesium": "serum_mg"}
LAB_KEYS = ("status", "date", "code", "comparator")
# FHIR R4 ObservationStatus: cancelled and entered-in-error results are not values (never sent as one).
LAB_STATUSES = vocab.LAB_STATUSES
# Safe readings of a bound, project policy (REFERENCE is silent on bounds; how each is read is recorded in the
# facts and notes). The values are the worst-case category edges of REFERENCE: they repeat thresholds the
# ruleset's rules hold, and must move with them.
EGFR_UPPER_BOUND_READ_BELOW = 15.0  # "<60": may be anywhere below: read as below 15, KDIGO G5 [S32, §5.1]
MG_LOWER_BOUND_READ_AT_LEAST = 1.74  # ">1.2 mmol/L": may be higher: read in the toxic range [§6, HYPERMAGNESEMIA_TOXIC]
MG_UPPER_BOUND_READ_BELOW = 0.5  # "<0.6 mmol/L": may be lower: read as severe hypomagnesaemia [§6, S45]
# Project policy (no source): a lab eGFR and a same-day CKD-EPI eGFR from creatinine this far apart, and on
# different sides of 30 or 60, are shown together as a disagreement; the lab value is used [§5.2].
DISAGREE_RATIO = 1.5
HISTORY_KEYS = ("name", "snomed", "onset", "abatement", "reason")
SUPPLEMENT_KEYS = ("form", "dose_mg", "dose_basis", "dose", "strength", "route")
_SUPPLEMENT_KEY_SET = frozenset(SUPPLEMENT_KEYS)
DOSE_KEYS = ("value", "unit", "times_per_day", "text")
STRENGTH_KEYS = ("value", "unit", "per_value", "per_unit", "elemental")


@dataclass
class Intake:
    """One validated record: normalised patient facts plus resolved medications and concepts."""

    record_id: str
    patient: dict[str, Any]
    drugs: list[ResolvedDrug]
    readings: list[ConceptReading]
    notes: list[str] = field(default_factory=list)
    history: list[Any] = field(default_factory=list)  # past conditions: shown, never asserted as facts
    other_mg: amounts.OtherMagnesium | None = None  # magnesium already taken (from PLAN_CONTRACT_SINCE_VERSION)

    def facts_summary(self) -> dict[str, Any]:
        """Normalised facts for the output and the case page."""
        patient = dict(self.patient)  # a copy in the same key order, without the rules engine's fact type
        patient.pop("t", None)
        out: dict[str, Any] = {
            "patient": patient,
            "medications": [_drug_summary(d) for d in self.drugs],
            "concepts": [_reading_summary(r) for r in self.readings],
            "notes": list(self.notes),
        }
        if self.history:
            out["history"] = list(self.history)
        if self.other_mg is not None:
            out["other_magnesium"] = [r.summary() for r in self.other_mg.readings]
        return out


def _drug_summary(d: ResolvedDrug) -> dict[str, Any]:
    """One resolved drug as shown in the output facts (a fresh dict: callers may change it)."""
    out = {
        "text": d.text,
        "ingredient": d.ingredient,
        "classes": list(d.classes),
        "product": d.product,
        "matched_by": d.method,
        "score": d.score,
    }
    if d.local_route:
        out["local_route"] = d.local_route
    return out


def _reading_summary(r: ConceptReading) -> dict[str, Any]:
    """One condition or symptom entry as shown in the output facts (a fresh dict: callers may change it)."""
    out: dict[str, Any] = {
        "text": r.text,
        "kind": r.kind,
        "concepts": [c.concept for c in r.concepts],
        "matched_by": [c.method for c in r.concepts],
        "negated": list(r.negated),
    }
    if r.snomed:
        out["snomed"] = r.snomed
    if r.past:
        out["history"] = list(r.past)
    if r.family:
        out["family_history"] = list(r.family)
    if r.context:
        out["read_from_wording"] = r.context
    return out


class _Reader:
    """Collects field errors while reading one record."""

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self.errors: list[FieldError] = []
        self.notes: list[str] = []  # how values written as text were read
        self.bounds: dict[str, tuple[str, str]] = {}  # field -> (comparator, as reported)

    def fail(self, name: str, reason: str, value: Any = None, expected: list[str] | None = None) -> None:
        self.errors.append(FieldError(name, reason, value, expected or []))

    def number(self, name: str, value: Any, bounds: Plausible, *, comparator: bool = False) -> float | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = self.text_number(name, value, comparator=comparator)
            if value is None:
                return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):  # a tuple: cheaper than int | float
            self.fail(name, "expected a number", value)
            return None
        if not math.isfinite(value):
            self.fail(name, "expected a finite number", str(value))
            return None
        if value < 0:
            self.fail(name, "must not be negative", value)
            return None
        if not bounds.low <= value <= bounds.high:  # `value not in bounds`, without a Python call: a hot path
            self.fail(name, bounds.reason(), value)
            return None
        return float(value)

    def text_number(self, name: str, text: str, *, comparator: bool = False) -> float | None:
        """A number written as text ("45", "0,62", ">90", "≥ 90"); the reading is noted, a bound kept."""
        match = NUMBER_TEXT.match(text)
        if match is None:
            self.fail(name, "expected a number", text)
            return None
        sign = match.group("cmp")
        if sign and not comparator:
            self.fail(name, "expected a number (a bound such as '>' is only read for lab values)", text)
            return None
        digits = match.group("num")
        value = float(digits.replace(",", "."))
        how = "decimal comma" if "," in digits else "number written as text"
        if sign:
            op = COMPARATORS[sign]
            self.bounds[name] = (op, text.strip())
            how = f"{'lower' if op[0] == '>' else 'upper'} bound {op} {value:g}"
        self.notes.append(f"{name}: {text.strip()!r} read as {value:g} ({how})")
        return value

    def boolean(self, name: str, value: Any) -> bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(name, "expected true or false", value)
            return False
        return value

    def text_list(self, name: str, value: Any, *, objects: bool = False) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(name, "expected a list", value)
            return []
        if len(value) > MAX_LIST_ITEMS:
            self.fail(name, f"more than {MAX_LIST_ITEMS} entries", len(value))
            return []
        out: list[Any] = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            elif objects and isinstance(item, dict):
                if not any(isinstance(item.get(k), str) and item.get(k) for k in ("name", "rxnorm", "atc")):
                    self.fail(f"{name}[{i}]", "an object needs a name, rxnorm or atc text", item)
                    continue
                unknown = sorted(set(item) - {"name", "rxnorm", "atc"})
                if unknown:
                    self.fail(f"{name}[{i}]", f"unknown keys {unknown}", item, ["name", "rxnorm", "atc"])
                    continue
                out.append(item)
            else:
                kind = "text or {name, rxnorm, atc}" if objects else "non-empty text"
                self.fail(f"{name}[{i}]", f"expected {kind}", item)
        return out

    def coded_text_list(self, name: str, value: Any) -> list[str | dict[str, str]]:
        """Conditions or symptoms: text, or {name?, snomed?} (at least one, as text) as FHIR Conditions carry."""
        if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
            return list(self.text_list(name, value))
        out: list[str | dict[str, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, str) and item.strip():
                out.append(item.strip())
            elif isinstance(item, dict) and item and not set(item) - {"name", "snomed"}:
                entry = {k: v.strip() for k, v in item.items() if isinstance(v, str) and v.strip()}
                if len(entry) == len(item):
                    out.append(entry)
                else:
                    self.fail(f"{name}[{i}]", "name and snomed must be non-empty text", item)
            elif isinstance(item, dict) and item:
                unknown = sorted(set(item) - {"name", "snomed"})
                self.fail(f"{name}[{i}]", f"unknown keys {unknown}", item, ["name", "snomed"])
            else:
                self.fail(f"{name}[{i}]", "expected non-empty text or {name, snomed}", item)
        return out

    def lab(
        self, name: str, value: Any, known_units: tuple[str, ...], extra_keys: tuple[str, ...] = ()
    ) -> tuple[float | None, str | None, dict[str, Any]]:
        """A lab object {value, unit}: the number, its canonical unit (None if unrecognised), the raw object."""
        if value is None:
            return None, None, {}
        if not isinstance(value, dict):
            self.fail(name, "expected an object {value, unit}", value)
            return None, None, {}
        allowed = {"value", "unit", *extra_keys}
        if not value.keys() <= allowed:
            unknown = sorted(set(value) - allowed)
            self.fail(name, f"unknown keys {unknown}", value, ["value", "unit", *extra_keys])
        number = value.get("value")
        if number is None:
            self.fail(f"{name}.value", "missing")
            return None, None, value
        if isinstance(number, str):
            number = self.text_number(f"{name}.value", number, comparator=True)
            if number is None:
                return None, None, value
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            self.fail(
                f"{name}.value",
                "expected a finite number",
                number if not isinstance(number, float) else str(number),
            )
            return None, None, value
        if number <= 0:
            self.fail(f"{name}.value", "must be above zero", number)
            return None, None, value
        unit = value.get("unit")
        if not isinstance(unit, str) or not unit.strip():
            self.fail(f"{name}.unit", "missing: a lab value needs its unit", unit, list(known_units))
            return None, None, value
        canonical = units.canonical_unit(unit)
        return float(number), canonical if canonical in known_units else None, value


def _round(value: float | None) -> float | None:
    if value is None:
        return None
    rounded = units.round_fact(value)
    return 0.0 if abs(rounded) < 1e-4 else rounded  # below 0.0001 is zero for every fact we keep


def parse(
    record: Any,
    ruleset: Ruleset,
    medications: MedicationResolver,
    concepts: ConceptResolver,
    forms: PhraseIndex,
    default_jurisdiction: str,
) -> Intake:
    """Validate one intake record and normalise it; raise RecordError naming every bad field."""
    if not isinstance(record, dict):
        raise RecordError(None, [FieldError("record", "expected a JSON object", type(record).__name__)])
    r = _Reader(record)
    record_id = _record_id(r, record)
    _check_field_names(r, record)
    person = _person(r, record, default_jurisdiction)
    creat_value, creat_unit, _ = r.lab("serum_creatinine", record.get("serum_creatinine"), units.CREATININE_UNITS)
    mg_value, mg_unit, mg_raw = r.lab(
        "serum_magnesium", record.get("serum_magnesium"), units.MAGNESIUM_UNITS, ("upper_limit",)
    )
    meds_raw = r.text_list("medications", record.get("medications"), objects=True)
    conditions_raw = r.coded_text_list("conditions", record.get("conditions"))
    symptoms_raw = r.coded_text_list("symptoms", record.get("symptoms"))
    supplement = _supplement(r, record.get("supplement"), ruleset, forms)
    labs = _labs(r, record.get("labs"))
    history = _history(r, record.get("history"))
    notes = r.notes
    given_notes = r.text_list("notes", record.get("notes"))
    creatinine_mg_dl = _creatinine_mg_dl(r, creat_value, creat_unit)
    mg_mmol_l, mg_upper_mmol_l = _magnesium_mmol_l(r, mg_value, mg_unit, mg_raw)

    if r.errors:
        raise RecordError(record_id, r.errors)
    assert person.age is not None and isinstance(record_id, str)  # guaranteed by the checks above

    egfr, egfr_source, egfr_bound = _egfr(r, person, person.age, creatinine_mg_dl, notes)
    patient: dict[str, Any] = {
        "t": "patient",
        "age_years": _round(person.age),
        "sex": person.sex or "unknown",
        "pregnant": person.pregnant,
        "lactating": person.lactating,
        "jurisdiction": person.jurisdiction,
        "renal_data_known": egfr is not None,
        "egfr_source": egfr_source,
        "kdigo_category": kdigo_category(egfr),
        "serum_mg_known": mg_mmol_l is not None,
        "serum_mg_lab_upper_limit_known": mg_upper_mmol_l is not None,
        "serum_mg_above_lab_upper_limit": bool(
            mg_mmol_l is not None and mg_upper_mmol_l is not None and mg_mmol_l > mg_upper_mmol_l
        ),
        "serum_mg_unit_unrecognized": mg_value is not None and mg_unit is None,
        "creatinine_unit_unrecognized": creat_value is not None and creat_unit is None,
        **supplement,
    }
    for name, value in (
        ("egfr_ml_min_1_73m2", egfr),
        ("serum_mg_mmol_l", mg_mmol_l),
        ("serum_mg_lab_upper_limit_mmol_l", mg_upper_mmol_l),
        ("creatinine_mg_dl", creatinine_mg_dl),
        ("weight_kg", person.weight_kg),
    ):
        if value is not None:  # a value not given is left out, not asserted as null
            patient[name] = _round(value)
    _lab_context(r, patient, labs, egfr_bound, egfr_source, creatinine_mg_dl)
    notes += given_notes

    drugs, resolved = _resolve_medications(meds_raw, medications)
    readings = [
        concepts.read(t, kind) for kind, raw in (("condition", conditions_raw), ("symptom", symptoms_raw)) for t in raw
    ]
    _patient_facts_from_concepts(patient, readings, ruleset, notes)
    other_mg = _other_magnesium(patient, resolved, ruleset, forms)
    return Intake(record_id, patient, drugs, readings, notes, history=history, other_mg=other_mg)


def _record_id(r: _Reader, record: dict[str, Any]) -> str | None:
    """The record's id as text (a number is read as its digits), or None with the field named."""
    record_id = record.get("id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(record_id, str) or not record_id.strip():
        r.fail("id", "missing: every record needs an id", record_id)
        return None
    return record_id


def _check_field_names(r: _Reader, record: dict[str, Any]) -> None:
    """Name every field the intake format does not have, with the nearest one that it does."""
    if record.keys() <= _FIELD_SET:
        return  # the common case, in one set comparison
    for key in record:
        if key not in _FIELD_SET:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            r.fail(
                key if key.strip() else repr(key),  # an empty key still gets a readable name
                "unknown field" + (f" (did you mean {close[0]!r}?)" if close else ""),
                expected=list(FIELDS),
            )


@dataclass
class _Person:
    """Who the record is about, as read (None where not given or not readable)."""

    age: float | None
    sex: str | None
    pregnant: bool
    lactating: bool
    weight_kg: float | None
    lab_egfr: float | None
    jurisdiction: Any


def _person(r: _Reader, record: dict[str, Any], default_jurisdiction: str) -> _Person:
    """Age, sex, pregnancy, lactation, weight, a laboratory eGFR and the jurisdiction of a record."""
    age = r.number("age_years", record.get("age_years"), AGE_RANGE)
    if record.get("age_years") is None:
        r.fail("age_years", "missing: the upper limit and the eGFR equation depend on age")
    sex = record.get("sex")
    if sex is not None and sex not in ("female", "male"):
        r.fail("sex", "expected 'female' or 'male'", sex, ["female", "male"])
        sex = None
    pregnant = r.boolean("pregnant", record.get("pregnant"))
    lactating = r.boolean("lactating", record.get("lactating"))
    if pregnant and sex == "male":
        r.fail("pregnant", "is true but sex is 'male'", True)
    weight = r.number("weight_kg", record.get("weight_kg"), WEIGHT_RANGE_KG)
    lab_egfr = r.number("egfr_ml_min_1_73m2", record.get("egfr_ml_min_1_73m2"), EGFR_RANGE, comparator=True)
    jurisdiction = record.get("jurisdiction", default_jurisdiction)
    if jurisdiction is None:
        jurisdiction = default_jurisdiction
    if isinstance(jurisdiction, str) and jurisdiction.upper() in ("US", "EU"):
        jurisdiction = jurisdiction.upper()
    else:
        r.fail("jurisdiction", "expected 'US' or 'EU'", jurisdiction, ["US", "EU"])
    return _Person(age, sex, pregnant, lactating, weight, lab_egfr, jurisdiction)


def _creatinine_mg_dl(r: _Reader, value: float | None, unit: str | None) -> float | None:
    """Serum creatinine in mg/dL, range-checked after conversion."""
    if value is None or unit is None:
        return None
    creatinine_mg_dl = units.creatinine_to_mg_dl(value, unit)
    if creatinine_mg_dl not in CREATININE_RANGE_MG_DL:
        r.fail("serum_creatinine.value", CREATININE_RANGE_MG_DL.reason(converted=True), value)
    return creatinine_mg_dl


def _magnesium_mmol_l(
    r: _Reader, value: float | None, unit: str | None, raw: dict[str, Any]
) -> tuple[float | None, float | None]:
    """Serum magnesium and the laboratory's upper limit in mmol/L, range-checked after conversion."""
    if value is None or unit is None:
        return None, None
    mg_mmol_l = units.magnesium_to_mmol_l(value, unit)
    if mg_mmol_l not in MAGNESIUM_RANGE_MMOL_L:
        r.fail("serum_magnesium.value", MAGNESIUM_RANGE_MMOL_L.reason(converted=True), value)
    mg_mmol_l = _magnesium_bound(r, mg_mmol_l)
    upper = raw.get("upper_limit")
    if upper is None:
        return mg_mmol_l, None
    upper_value = r.number("serum_magnesium.upper_limit", upper, LAB_UPPER_LIMIT_RANGE)
    return mg_mmol_l, None if upper_value is None else units.magnesium_to_mmol_l(upper_value, unit)


def _egfr(
    r: _Reader, person: _Person, age: float, creatinine_mg_dl: float | None, notes: list[str]
) -> tuple[float | None, str, str | None]:
    """eGFR, where it came from (lab, ckd_epi_2021, none) and whether it is a bound; notes say why it is missing."""
    egfr, egfr_source = person.lab_egfr, "lab" if person.lab_egfr is not None else "none"
    egfr_bound = _egfr_bound(r, "egfr_ml_min_1_73m2")
    if egfr is not None and egfr_bound == "upper":
        egfr = _egfr_upper_bound(r, egfr, "egfr_ml_min_1_73m2")
    if egfr is not None or creatinine_mg_dl is None:
        return egfr, egfr_source, egfr_bound
    if age < ADULT_AGE_YEARS:
        notes.append("creatinine given for a child: CKD-EPI 2021 is for adults, eGFR not computed [S33b]")
        return egfr, egfr_source, egfr_bound
    if person.sex is None:
        notes.append("creatinine given without sex: CKD-EPI 2021 needs sex, eGFR not computed")
        return egfr, egfr_source, egfr_bound
    egfr, egfr_source = ckd_epi_2021(creatinine_mg_dl, age, person.sex), "ckd_epi_2021"
    if person.pregnant:
        notes.append("eGFR computed by CKD-EPI 2021, which is not validated in pregnancy [S33b]")
    # a creatinine bound flips: creatinine ">L" means eGFR below the one computed from L
    creat_bound = _egfr_bound(r, "serum_creatinine.value")
    if creat_bound == "lower":
        egfr_bound = "upper"
        egfr = _egfr_upper_bound(r, egfr, "serum_creatinine.value")
    elif creat_bound == "upper":
        egfr_bound = "lower"
        notes.append(f"serum_creatinine.value is an upper bound: eGFR {egfr:.1f} is a lower bound (at least)")
    return egfr, egfr_source, egfr_bound


def _resolve_medications(
    meds_raw: list[Any], medications: MedicationResolver
) -> tuple[list[ResolvedDrug], list[tuple[str | dict[str, Any], list[ResolvedDrug]]]]:
    """Each drug once, in the order first named, and each medication line with the drugs it names."""
    drugs: list[ResolvedDrug] = []
    texts: set[str] = set()  # equal drugs have equal text: a drug of a text not seen yet needs no comparison
    resolved: list[tuple[str | dict[str, Any], list[ResolvedDrug]]] = []
    for entry in meds_raw:
        found = medications.resolve(entry)
        resolved.append((entry, found))
        for drug in found:
            if drug.text not in texts or drug not in drugs:
                texts.add(drug.text)
                drugs.append(drug)
    return drugs, resolved


def _date_text(r: _Reader, name: str, value: Any) -> str | None:
    """An ISO date or date-time as text (kept as written), or None with the field named."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            (datetime.fromisoformat(value.replace("Z", "+00:00")) if "T" in value else date.fromisoformat(value))
            return value
        except ValueError:
            pass
    r.fail(name, "expected a date (YYYY-MM-DD) or date-time", value)
    return None


def _labs(r: _Reader, value: Any) -> dict[str, dict[str, str]]:
    """`labs`: per lab {status, date, code, comparator} of the value given beside it."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        r.fail("labs", "expected an object {egfr, serum_creatinine, serum_magnesium}", value)
        return {}
    out: dict[str, dict[str, str]] = {}
    for lab, meta in value.items():
        where = f"labs.{lab}"
        if lab not in LAB_FIELDS:
            r.fail(where, "unknown lab", lab, list(LAB_FIELDS))
            continue
        if not isinstance(meta, dict):
            r.fail(where, "expected an object {status, date, code, comparator}", meta)
            continue
        out[lab] = _lab_meta(r, lab, meta, where)
    return out


def _lab_meta(r: _Reader, lab: str, meta: dict[str, Any], where: str) -> dict[str, str]:
    """One lab's {status, date, code} as given; its comparator is kept as the bound of the value."""
    unknown = sorted(set(meta) - set(LAB_KEYS))
    if unknown:
        r.fail(where, f"unknown keys {unknown}", meta, list(LAB_KEYS))
    entry: dict[str, str] = {}
    status = meta.get("status")
    if status is not None:
        if status in ("cancelled", "entered-in-error"):
            r.fail(f"{where}.status", "a cancelled or entered-in-error result is not a value: leave it out", status)
        elif status not in LAB_STATUSES:
            r.fail(f"{where}.status", "expected a FHIR observation status", status, list(LAB_STATUSES))
        else:
            entry["status"] = status
    when = _date_text(r, f"{where}.date", meta.get("date"))
    if when:
        entry["date"] = when
    code = meta.get("code")
    if code is not None:
        if isinstance(code, str) and code.strip():
            entry["code"] = code.strip()
        else:
            r.fail(f"{where}.code", "expected text", code)
    op = meta.get("comparator")
    if op is not None:
        _lab_comparator(r, lab, op, where)
    return entry


def _lab_comparator(r: _Reader, lab: str, op: Any, where: str) -> None:
    """A comparator given beside a lab value: the value becomes a bound, unless the value written disagrees."""
    if op not in COMPARATORS:
        r.fail(f"{where}.comparator", "expected <, <=, > or >=", op, ["<", "<=", ">", ">="])
        return
    name = LAB_FIELDS[lab] + ("" if lab == "egfr" else ".value")
    written = r.bounds.get(name)
    if written and written[0] != COMPARATORS[op]:
        r.fail(f"{where}.comparator", f"disagrees with the value written {written[1]!r}", op)
    elif not written:
        raw = r.record.get(LAB_FIELDS[lab])
        number = raw.get("value") if isinstance(raw, dict) else raw
        shown = f"{number:g}" if isinstance(number, int | float) else str(number)
        r.bounds[name] = (COMPARATORS[op], f"{op}{shown}")
        r.notes.append(f"{name}: {shown} read as a bound {op} {shown} ({where}.comparator)")


# Patient fields whose evidence carries the lab's status, date, code and bound (engine.plan).
LAB_EVIDENCE = {
    "egfr_ml_min_1_73m2": "egfr",
    "serum_mg_mmol_l": "serum_mg",
    "serum_mg_above_lab_upper_limit": "serum_mg",
    "creatinine_mg_dl": "creatinine",
}


def lab_evidence(prefix: str, patient: dict[str, Any]) -> dict[str, Any]:
    """How the lab behind an evidence item was reported; empty when the record said nothing about it."""
    out: dict[str, Any] = {}
    for key in ("status", "date", "code", "bound", "as_reported"):
        value = patient.get(f"{prefix}_{key}")
        if value is not None:
            out[key] = value
    if out.get("status") == "preliminary":
        out["preliminary"] = "this finding rests on a preliminary result"
    if prefix == "egfr" and patient.get("egfr_creatinine_disagreement"):
        out["note"] = patient["egfr_creatinine_disagreement"]
    if prefix == "egfr" and patient.get("egfr_source") == "ckd_epi_2021":
        creatinine = lab_evidence(LAB_PREFIX["serum_creatinine"], patient)
        if creatinine:  # a computed eGFR is as current as the creatinine it was computed from
            out["computed_from_creatinine"] = creatinine
    return out


def _egfr_bound(r: _Reader, name: str) -> str | None:
    found = r.bounds.get(name)
    return None if found is None else ("lower" if found[0][0] == ">" else "upper")


def _egfr_upper_bound(r: _Reader, egfr: float, name: str) -> float:
    """An eGFR known only from above may be anywhere below: the worst case (below 15, KDIGO G5) is read."""
    read = min(egfr, EGFR_UPPER_BOUND_READ_BELOW) - 0.01
    r.notes.append(
        f"{name}: an upper bound on eGFR ({egfr:g} or less): the true value may be anywhere below it, "
        f"so every renal rule reads it as {read:g} (below {EGFR_UPPER_BOUND_READ_BELOW:g}, the worst case)"
    )
    return read


def _magnesium_bound(r: _Reader, mmol_l: float) -> float:
    """A serum magnesium bound read as the worst value it allows, for the low and the high thresholds."""
    found = r.bounds.get("serum_magnesium.value")
    if found is None:
        return mmol_l
    if found[0][0] == ">":
        read = max(mmol_l, MG_LOWER_BOUND_READ_AT_LEAST)
        why = f"may be any value above {mmol_l:g} mmol/L: read as {read:g} (the toxic range, the worst case)"
    else:
        read = min(mmol_l, MG_UPPER_BOUND_READ_BELOW) - 0.001
        why = f"may be any value below {mmol_l:g} mmol/L: read as {read:g} (severe hypomagnesaemia, the worst case)"
    r.notes.append(f"serum_magnesium.value {found[1]!r} is a bound: {why}")
    return read


def _lab_context(
    r: _Reader,
    patient: dict[str, Any],
    labs: dict[str, dict[str, str]],
    egfr_bound: str | None,
    egfr_source: str,
    creatinine_mg_dl: float | None,
) -> None:
    """Status, date, code and bound of each lab as patient facts (only what the record gave)."""
    if not labs and not r.bounds:
        return  # the common case: a plain number per lab, nothing to add
    present = {
        "egfr": patient.get("egfr_ml_min_1_73m2") is not None and egfr_source == "lab",
        "serum_creatinine": creatinine_mg_dl is not None,
        "serum_magnesium": patient["serum_mg_known"],
    }
    for lab, meta in labs.items():
        if not present[lab]:
            continue
        prefix = LAB_PREFIX[lab]
        for key in ("status", "date", "code"):
            if key in meta:
                patient[f"{prefix}_{key}"] = meta[key]
        if meta.get("status") == "preliminary":
            when = f" ({meta['date']})" if meta.get("date") else ""
            r.notes.append(f"{lab}{when} is a preliminary result: findings that rest on it are provisional")
    for lab, name in (
        ("egfr", "egfr_ml_min_1_73m2"),
        ("serum_creatinine", "serum_creatinine.value"),
        ("serum_magnesium", "serum_magnesium.value"),
    ):
        found = r.bounds.get(name)
        if found and present[lab]:
            patient[f"{LAB_PREFIX[lab]}_as_reported"] = found[1]
            patient[f"{LAB_PREFIX[lab]}_bound"] = "lower" if found[0][0] == ">" else "upper"
    if egfr_bound and "egfr_bound" not in patient and patient.get("egfr_ml_min_1_73m2") is not None:
        patient["egfr_bound"] = egfr_bound  # from a creatinine bound
    _egfr_disagreement(r, patient, labs, creatinine_mg_dl)


def _egfr_disagreement(
    r: _Reader, patient: dict[str, Any], labs: dict[str, dict[str, str]], creatinine_mg_dl: float | None
) -> None:
    """A lab eGFR far from the CKD-EPI 2021 value of a creatinine of the same day: both are shown."""
    lab_egfr = patient.get("egfr_ml_min_1_73m2")
    day = (labs.get("egfr") or {}).get("date", "")[:10]
    if patient.get("egfr_source") != "lab" or lab_egfr is None or creatinine_mg_dl is None or not day:
        return
    if day != (labs.get("serum_creatinine") or {}).get("date", "")[:10] or "egfr_bound" in patient:
        return
    if patient["sex"] not in ("female", "male") or patient["age_years"] < ADULT_AGE_YEARS:
        return
    computed = ckd_epi_2021(creatinine_mg_dl, patient["age_years"], patient["sex"])
    low, high = sorted((lab_egfr, computed))
    if low <= 0 or high / low < DISAGREE_RATIO or _renal_band(low) == _renal_band(high):
        return
    text = (
        f"lab eGFR {lab_egfr:.1f} ({day}) and CKD-EPI 2021 {computed:.1f} from creatinine {creatinine_mg_dl:.2f} mg/dL "
        "of the same day disagree grossly: the lab eGFR is used (REFERENCE §5.2); check both"
    )
    patient["egfr_creatinine_disagreement"] = text
    r.notes.append(text)


def _renal_band(egfr: float) -> int:
    """Which side of the renal rules' thresholds (30, 60) an eGFR lies."""
    return 0 if egfr < 30 else 1 if egfr < 60 else 2


def _history(r: _Reader, value: Any) -> list[Any]:
    """`history`: past conditions (text or {name, snomed, onset, abatement, reason}); shown, never a finding."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
        r.fail("history", "expected a list", value)
        return []
    out: list[Any] = []
    for i, item in enumerate(value):
        where = f"history[{i}]"
        if isinstance(item, str) and item.strip():
            out.append(item.strip())
        elif isinstance(item, dict) and (item.get("name") or item.get("snomed")):
            unknown = sorted(set(item) - set(HISTORY_KEYS))
            if unknown:
                r.fail(where, f"unknown keys {unknown}", item, list(HISTORY_KEYS))
            elif not all(isinstance(v, str) for v in item.values()):
                r.fail(where, "every value is text", item)
            else:
                for key in ("onset", "abatement"):
                    _date_text(r, f"{where}.{key}", item.get(key))
                out.append(dict(item))
        else:
            r.fail(where, "expected text or {name, snomed, onset, abatement, reason}", item)
    return out


def _patient_facts_from_concepts(
    patient: dict[str, Any], readings: list[ConceptReading], ruleset: Ruleset, notes: list[str]
) -> None:
    """A concept with a `patient_fact` ("zwanger", "Normal pregnancy", "geeft borstvoeding") makes that
    boolean patient fact true for the rules, so PREGNANCY / LACTATION fire from text or a SNOMED CT code too.
    Safe reading: a stated condition wins over a missing or false field (false means "not stated")."""
    known = ruleset.vocabulary.concepts
    for reading in readings:
        for concept in reading.concepts:
            fact = known.get(concept.concept, {}).get("patient_fact")
            if fact and not patient.get(fact):
                patient[fact] = True
                note = f"{fact}: true, read from {reading.kind} '{reading.text}'"
                if fact == "pregnant" and patient.get("sex") == "male":
                    note += " (the record says sex male: check the record)"
                notes.append(note)
                if fact == "pregnant" and patient.get("egfr_source") == "ckd_epi_2021":
                    notes.append("eGFR computed by CKD-EPI 2021, which is not validated in pregnancy [S33b]")


def _other_magnesium(
    patient: dict[str, Any],
    resolved: list[tuple[str | dict[str, Any], list[ResolvedDrug]]],
    ruleset: Ruleset,
    forms: PhraseIndex,
) -> amounts.OtherMagnesium | None:
    """Magnesium already taken, as patient facts (REFERENCE §1.5); None for rulesets before the plan contract."""
    reader = amounts.reader_for(ruleset, forms)
    if reader is None:
        return None
    other = amounts.other_magnesium(reader, resolved)
    patient.update(other.facts(patient.get("supplement_dose_elemental_mg")))
    return other


def _supplement(r: _Reader, value: Any, ruleset: Ruleset, forms: PhraseIndex) -> dict[str, Any]:
    """Supplement facts: canonical form, route, dose basis, elemental dose where it can be computed.

    The amount is `dose_mg` (mg per day) or `dose` {value, unit, times_per_day?, text?}: g, mg, mcg; mmol or
    mEq of magnesium (always elemental); tablets, capsules, sachets or mL through `strength` or the strength
    in the form text. An amount that cannot be read as mg is `supplement_dose_unreadable`, never dropped.
    """
    out: dict[str, Any] = {
        "supplement_requested": False,
        "supplement_form": "none",
        "dose_basis": "none",
        "supplement_route": "none",
        "supplement_dose_unreadable": False,
    }
    if value is None:
        return out
    if not isinstance(value, dict):
        r.fail("supplement", "expected an object {form, dose_mg, dose_basis}", value)
        return out
    if not value.keys() <= _SUPPLEMENT_KEY_SET:
        unknown = sorted(set(value) - _SUPPLEMENT_KEY_SET)
        r.fail("supplement", f"unknown keys {unknown}", value, list(SUPPLEMENT_KEYS))
    out["supplement_requested"] = True
    out["supplement_route"] = "oral"  # until the record says otherwise
    _route(r, value.get("route"), ruleset, out)
    form_text = _supplement_form(r, value.get("form"), forms, out)
    dose = value.get("dose_mg")
    basis = value.get("dose_basis")
    amount = value.get("dose")
    if amount is not None and dose is not None:
        r.fail("supplement.dose", "give dose_mg or dose, not both", amount)
        return out
    dose_mg: float | None = None
    if amount is not None:
        read = _dose_amount(r, amount, value, basis, form_text, out)
        if read is None:
            return out
        dose_mg, basis = read
    elif dose is None:
        if basis is not None and basis not in ("elemental", "salt"):
            r.fail("supplement.dose_basis", "expected 'elemental' or 'salt'", basis, ["elemental", "salt"])
        return out
    else:
        dose_mg = r.number("supplement.dose_mg", dose, DOSE_RANGE_MG)
    if basis not in ("elemental", "salt"):
        reason = (
            "missing: say whether dose_mg is elemental Mg or salt weight"
            if basis is None
            else ("expected 'elemental' or 'salt'")
        )
        r.fail("supplement.dose_basis", reason, basis, ["elemental", "salt"])
        return out
    out["dose_basis"] = basis
    if dose_mg is not None:
        _elemental_dose(dose_mg, basis, ruleset, out)
    return out


def _supplement_form(r: _Reader, given: Any, forms: PhraseIndex, out: dict[str, Any]) -> str | None:
    """The form named in `supplement.form` (unknown when none is recognised); the text as given."""
    if given is not None and not isinstance(given, str):
        r.fail("supplement.form", "expected text", given)
    form_text = given if isinstance(given, str) else None
    if form_text:
        out["supplement_form"] = "unknown"
        for match in forms.matches(form_text):
            if not match.negated:
                out["supplement_form"] = match.key
                break
        out["supplement_form_text"] = form_text
    else:
        out["supplement_form"] = "unknown"
    return form_text


def _elemental_dose(dose_mg: float, basis: str, ruleset: Ruleset, out: dict[str, Any]) -> None:
    """The dose as entered and as elemental magnesium (a salt weight through its form's elemental fraction)."""
    as_entered = out["supplement_dose_mg_as_entered"] = _round(dose_mg)
    forms = ruleset.vocabulary.forms
    if basis == "elemental":
        out["supplement_dose_elemental_mg"] = as_entered
    elif out["supplement_form"] in forms:
        fraction = float(forms[out["supplement_form"]]["elemental_fraction"])
        out["supplement_dose_elemental_mg"] = _round(dose_mg * fraction)
        out["elemental_fraction"] = fraction


def _unreadable(r: _Reader, out: dict[str, Any], text: str, why: str) -> None:
    out["supplement_dose_unreadable"] = True
    out["supplement_dose_text"] = text
    r.notes.append(f"supplement: the amount {text!r} cannot be read as mg of magnesium ({why})")


def _has_amount_value(r: _Reader, amount: Any, where: str, out: dict[str, Any]) -> bool:
    """Whether `supplement.dose` is an object with a value to read; a text without a value is unreadable."""
    if not isinstance(amount, dict):
        r.fail(where, "expected an object {value, unit, times_per_day, text}", amount)
        return False
    unknown = sorted(set(amount) - set(DOSE_KEYS))
    if unknown:
        r.fail(where, f"unknown keys {unknown}", amount, list(DOSE_KEYS))
        return False
    text = amount.get("text")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        r.fail(f"{where}.text", "expected text", text)
        return False
    if amount.get("value") is None:
        if text:
            _unreadable(r, out, text.strip(), "no number")
        else:
            r.fail(f"{where}.value", "missing: the amount, or a text when it cannot be given as a number")
        return False
    return True


def _dose_amount(
    r: _Reader, amount: Any, value: dict[str, Any], basis: Any, form_text: str | None, out: dict[str, Any]
) -> tuple[float, Any] | None:
    """`supplement.dose` as (mg per day, dose basis); None when rejected or unreadable (then flagged)."""
    where = "supplement.dose"
    if not _has_amount_value(r, amount, where, out):
        return None
    number = r.number(f"{where}.value", amount["value"], AMOUNT_RANGE)
    times = r.number(f"{where}.times_per_day", amount.get("times_per_day"), TIMES_PER_DAY_RANGE)
    unit = amount.get("unit")
    if not isinstance(unit, str) or not unit.strip():
        r.fail(f"{where}.unit", "missing: mg, g, mcg, mmol, tablet, capsule, sachet or mL", unit)
        return None
    found = _strength(r, value.get("strength"), form_text)
    if number is None or (amount.get("times_per_day") is not None and times is None) or found is False:
        return None
    strength = found if isinstance(found, dosage.Strength) else None
    per_day = times or 1.0
    written = f"{number:g} {unit.strip()}" + (f" x {per_day:g} per day" if per_day != 1 else "")
    canon = dosage.canonical_unit(unit)
    if canon is None:
        _unreadable(r, out, written, f"unit {unit.strip()!r} is not one we read")
        return None
    converted = dosage.to_mg(number * canon[1] * per_day, canon[0], strength)
    if converted is None:
        why = f"no strength per {canon[0]}" + (f" (strength given: {strength.describe()})" if strength else "")
        _unreadable(r, out, written, why)
        return None
    mg, elemental, how = converted
    if mg not in DOSE_RANGE_MG:
        r.fail(where, f"{written} is {mg:g} mg: {DOSE_RANGE_MG.reason(converted=True)}", amount)
        return None
    if elemental:
        if basis == "salt":
            r.fail("supplement.dose_basis", "mmol, or a strength stated as elemental, is elemental magnesium", basis)
            return None
        basis = "elemental"
    elif basis is None and value.get("strength") is None and strength and out["supplement_form"] != "unknown":
        # the strength is printed in a form naming the salt ("Magnesiumoxide 400 mg tablet"): salt weight, as
        # the FHIR reading does (engine/fhir.py: salt weight unless the text says elemental)
        basis = "salt"
        r.notes.append(f"supplement: the strength in {form_text!r} is read as salt weight (the form names the salt)")
    r.notes.append(f"supplement: {written} read as {how} = {mg:g} mg per day")
    return mg, basis


def _strength(r: _Reader, value: Any, form_text: str | None) -> dosage.Strength | None | bool:
    """The product strength: `supplement.strength` (text or object), else the one written in the form text.

    False when the record's strength is malformed (the error is recorded)."""
    where = "supplement.strength"
    if value is None:
        return dosage.parse_strength(form_text) if form_text else None
    if isinstance(value, str):
        found = dosage.parse_strength(value)
        if found is None:
            r.fail(where, "expected an amount such as '400 mg' or '400 mg/5 mL'", value)
            return False
        return found
    if not isinstance(value, dict):
        r.fail(where, "expected text or {value, unit, per_value, per_unit, elemental}", value)
        return False
    unknown = sorted(set(value) - set(STRENGTH_KEYS))
    if unknown:
        r.fail(where, f"unknown keys {unknown}", value, list(STRENGTH_KEYS))
        return False
    amount = r.number(f"{where}.value", value.get("value"), DOSE_RANGE_MG)
    per = r.number(f"{where}.per_value", value.get("per_value"), DOSE_RANGE_MG)
    elemental = value.get("elemental", False)
    if amount is None or not isinstance(elemental, bool):
        if amount is None and value.get("value") is None:
            r.fail(f"{where}.value", "missing")
        if not isinstance(elemental, bool):
            r.fail(f"{where}.elemental", "expected true or false", elemental)
        return False
    per_unit = value.get("per_unit")
    denominator = {"value": per or 1.0, "unit": str(per_unit)} if per_unit is not None else None
    found = dosage.strength_from_ratio(
        {"value": amount, "unit": str(value.get("unit") or "")}, denominator, str(value), elemental
    )
    if found is None:
        r.fail(where, "unit must be mg, g, mcg or mmol, per tablet/capsule/sachet or mL", value)
        return False
    return found


_ROUTE_INDEX: dict[str, tuple[PhraseIndex, dict[str, str]]] = {}


def route_index(ruleset: Ruleset) -> tuple[PhraseIndex, dict[str, str]]:
    """The ruleset's route words (vocabulary.routes) as a phrase index, and SNOMED CT route code -> route."""
    found = _ROUTE_INDEX.get(ruleset.sha256)
    if found is None:
        routes = (ruleset.raw.get("vocabulary") or {}).get("routes") or {}
        words = [(_route_words(n), key) for key, e in routes.items() for n in [key, *e.get("names", [])]]
        codes = {code: key for key, e in routes.items() for code in e.get("snomed", [])}
        found = _ROUTE_INDEX[ruleset.sha256] = (PhraseIndex(words), codes)
        if len(_ROUTE_INDEX) > 64:
            _ROUTE_INDEX.clear()
    return found


def _route_words(text: str) -> str:
    return text.replace(".", "")  # "p.o." and "i.v." read as "po" and "iv"


def read_route(ruleset: Ruleset, text: str) -> str | None:
    """'oral' or 'not_oral' for a route as written or coded (SNOMED CT code); None when no route word is known.

    A text naming both an oral and another route reads as not oral (the safe reading)."""
    index, codes = route_index(ruleset)
    routes = (ruleset.raw.get("vocabulary") or {}).get("routes") or {}
    keys = [codes[c] for c in re.findall(r"\d{6,18}", text) if c in codes]
    keys += [m.key for m in index.matches(_route_words(text)) if not m.negated]
    kinds = {routes[k]["route"] for k in keys if k in routes}
    if not kinds:
        return None
    return "not_oral" if "not_oral" in kinds else "oral"


def _route(r: _Reader, value: Any, ruleset: Ruleset, out: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip():
        r.fail("supplement.route", "expected text (oral, IV, ...)", value)
        return
    kind = read_route(ruleset, value)
    out["supplement_route"] = kind or "not_oral"
    out["supplement_route_text"] = value.strip() if kind else f"{value.strip()} (not recognised as oral)"
    if kind is None:
        r.notes.append(f"supplement.route {value.strip()!r} is not a route we know: read as not oral (safe reading)")

"""Parse and validate one intake record into normalised facts (units in the names).

Every problem is collected with the field it concerns; a record with any problem is
rejected as a whole with all of them, never half-evaluated.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from engine import amounts, units
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
)
_FIELD_SET = frozenset(FIELDS)
# Plausible ranges: values outside are typing errors, not patients.
AGE_RANGE = (0.0, 130.0)
WEIGHT_RANGE_KG = (0.3, 400.0)
EGFR_RANGE = (0.0, 250.0)
CREATININE_RANGE_MG_DL = (0.05, 40.0)
MAGNESIUM_RANGE_MMOL_L = (0.01, 20.0)
DOSE_RANGE_MG = (0.001, 100_000.0)
MAX_LIST_ITEMS = 5_000
DECIMALS = 6  # facts are rounded so no float ever serialises with an exponent (durable_rules rejects 1e-05)


@dataclass
class Intake:
    """One validated record: normalised patient facts plus resolved medications and concepts."""

    record_id: str
    patient: dict[str, Any]
    drugs: list[ResolvedDrug]
    readings: list[ConceptReading]
    notes: list[str] = field(default_factory=list)
    other_mg: amounts.OtherMagnesium | None = None  # magnesium already taken (from PLAN_CONTRACT_SINCE_VERSION)

    def facts_summary(self) -> dict[str, Any]:
        """Normalised facts for the output and the case page."""
        return {
            "patient": {k: v for k, v in self.patient.items() if k != "t"},
            "medications": [
                {
                    "text": d.text,
                    "ingredient": d.ingredient,
                    "classes": list(d.classes),
                    "product": d.product,
                    "matched_by": d.method,
                    "score": d.score,
                }
                for d in self.drugs
            ],
            "concepts": [
                {
                    "text": r.text,
                    "kind": r.kind,
                    "concepts": [c.concept for c in r.concepts],
                    "matched_by": [c.method for c in r.concepts],
                    "negated": list(r.negated),
                }
                for r in self.readings
            ],
            "notes": list(self.notes),
            **({"other_magnesium": [r.summary() for r in self.other_mg.readings]} if self.other_mg else {}),
        }


class _Reader:
    """Collects field errors while reading one record."""

    def __init__(self, record: dict[str, Any]):
        self.record = record
        self.errors: list[FieldError] = []

    def fail(self, name: str, reason: str, value: Any = None, expected: list[str] | None = None) -> None:
        self.errors.append(FieldError(name, reason, value, expected or []))

    def number(self, name: str, value: Any, bounds: tuple[float, float]) -> float | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, "expected a number", value)
            return None
        if math.isnan(value) or math.isinf(value):
            self.fail(name, "expected a finite number", str(value))
            return None
        low, high = bounds
        if value < 0:
            self.fail(name, "must not be negative", value)
            return None
        if not low <= value <= high:
            self.fail(name, f"outside the plausible range {low:g} to {high:g}", value)
            return None
        return float(value)

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

    def lab(
        self, name: str, value: Any, known_units: tuple[str, ...], extra_keys: tuple[str, ...] = ()
    ) -> tuple[float | None, str | None, dict[str, Any]]:
        """A lab object {value, unit}: the number, its canonical unit (None if unrecognised), the raw object."""
        if value is None:
            return None, None, {}
        if not isinstance(value, dict):
            self.fail(name, "expected an object {value, unit}", value)
            return None, None, {}
        unknown = sorted(set(value) - {"value", "unit", *extra_keys})
        if unknown:
            self.fail(name, f"unknown keys {unknown}", value, ["value", "unit", *extra_keys])
        number = value.get("value")
        if number is None:
            self.fail(f"{name}.value", "missing")
            return None, None, value
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
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
    rounded = round(value, DECIMALS)
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
    record_id = record.get("id")
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(record_id, str) or not record_id.strip():
        r.fail("id", "missing: every record needs an id", record_id)
        record_id = None
    for key in record:
        if key not in _FIELD_SET:
            close = difflib.get_close_matches(key, FIELDS, n=1)
            r.fail(
                key if key.strip() else repr(key),  # an empty key still gets a readable name
                "unknown field" + (f" (did you mean {close[0]!r}?)" if close else ""),
                expected=list(FIELDS),
            )

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
    lab_egfr = r.number("egfr_ml_min_1_73m2", record.get("egfr_ml_min_1_73m2"), EGFR_RANGE)

    jurisdiction = record.get("jurisdiction", default_jurisdiction)
    if jurisdiction is None:
        jurisdiction = default_jurisdiction
    if isinstance(jurisdiction, str) and jurisdiction.upper() in ("US", "EU"):
        jurisdiction = jurisdiction.upper()
    else:
        r.fail("jurisdiction", "expected 'US' or 'EU'", jurisdiction, ["US", "EU"])

    creat_value, creat_unit, _ = r.lab("serum_creatinine", record.get("serum_creatinine"), units.CREATININE_UNITS)
    mg_value, mg_unit, mg_raw = r.lab(
        "serum_magnesium", record.get("serum_magnesium"), units.MAGNESIUM_UNITS, ("upper_limit",)
    )
    meds_raw = r.text_list("medications", record.get("medications"), objects=True)
    conditions_raw = r.text_list("conditions", record.get("conditions"))
    symptoms_raw = r.text_list("symptoms", record.get("symptoms"))
    supplement = _supplement(r, record.get("supplement"), ruleset, forms)

    notes: list[str] = []
    creatinine_mg_dl = None
    if creat_value is not None and creat_unit is not None:
        creatinine_mg_dl = units.creatinine_to_mg_dl(creat_value, creat_unit)
        if not CREATININE_RANGE_MG_DL[0] <= creatinine_mg_dl <= CREATININE_RANGE_MG_DL[1]:
            r.fail("serum_creatinine.value", "outside the plausible range 0.05 to 40 mg/dL", creat_value)
    mg_mmol_l = None
    mg_upper_mmol_l = None
    if mg_value is not None and mg_unit is not None:
        mg_mmol_l = units.magnesium_to_mmol_l(mg_value, mg_unit)
        if not MAGNESIUM_RANGE_MMOL_L[0] <= mg_mmol_l <= MAGNESIUM_RANGE_MMOL_L[1]:
            r.fail("serum_magnesium.value", "outside the plausible range 0.01 to 20 mmol/L", mg_value)
        upper = mg_raw.get("upper_limit")
        if upper is not None:
            upper_value = r.number("serum_magnesium.upper_limit", upper, (0.001, 100.0))
            if upper_value is not None:
                mg_upper_mmol_l = units.magnesium_to_mmol_l(upper_value, mg_unit)

    if r.errors:
        raise RecordError(record_id, r.errors)
    assert age is not None and isinstance(record_id, str)  # guaranteed by the checks above

    egfr, egfr_source = lab_egfr, "lab" if lab_egfr is not None else "none"
    if egfr is None and creatinine_mg_dl is not None:
        if age < ADULT_AGE_YEARS:
            notes.append("creatinine given for a child: CKD-EPI 2021 is for adults, eGFR not computed [S33b]")
        elif sex is None:
            notes.append("creatinine given without sex: CKD-EPI 2021 needs sex, eGFR not computed")
        else:
            egfr, egfr_source = ckd_epi_2021(creatinine_mg_dl, age, sex), "ckd_epi_2021"
            if pregnant:
                notes.append("eGFR computed by CKD-EPI 2021, which is not validated in pregnancy [S33b]")

    patient: dict[str, Any] = {
        "t": "patient",
        "age_years": _round(age),
        "sex": sex or "unknown",
        "pregnant": pregnant,
        "lactating": lactating,
        "jurisdiction": jurisdiction,
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
    optional = {
        "egfr_ml_min_1_73m2": _round(egfr),
        "serum_mg_mmol_l": _round(mg_mmol_l),
        "serum_mg_lab_upper_limit_mmol_l": _round(mg_upper_mmol_l),
        "creatinine_mg_dl": _round(creatinine_mg_dl),
        "weight_kg": _round(weight),
    }
    patient.update({k: v for k, v in optional.items() if v is not None})

    drugs: list[ResolvedDrug] = []
    resolved: list[tuple[str | dict[str, Any], list[ResolvedDrug]]] = []
    for entry in meds_raw:
        found = medications.resolve(entry)
        resolved.append((entry, found))
        for drug in found:
            if drug not in drugs:
                drugs.append(drug)
    readings = [concepts.read(t, "condition") for t in conditions_raw]
    readings += [concepts.read(t, "symptom") for t in symptoms_raw]
    other_mg = _other_magnesium(patient, resolved, ruleset, forms)
    return Intake(record_id, patient, drugs, readings, notes, other_mg)


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
    """Supplement facts: canonical form, dose basis, elemental dose where it can be computed."""
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
    unknown = sorted(set(value) - {"form", "dose_mg", "dose_basis"})
    if unknown:
        r.fail("supplement", f"unknown keys {unknown}", value, ["form", "dose_mg", "dose_basis"])
    out["supplement_requested"] = True
    out["supplement_route"] = "oral"  # until the record says otherwise (read below)
    form_text = value.get("form")
    if form_text is not None and not isinstance(form_text, str):
        r.fail("supplement.form", "expected text", form_text)
        form_text = None
    if form_text:
        found = [m for m in forms.find(form_text) if not m.negated]
        out["supplement_form"] = found[0].key if found else "unknown"
        out["supplement_form_text"] = form_text
    else:
        out["supplement_form"] = "unknown"
    dose = value.get("dose_mg")
    basis = value.get("dose_basis")
    if dose is None:
        if basis is not None and basis not in ("elemental", "salt"):
            r.fail("supplement.dose_basis", "expected 'elemental' or 'salt'", basis, ["elemental", "salt"])
        return out
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
    if dose_mg is None:
        return out
    out["supplement_dose_mg_as_entered"] = _round(dose_mg)
    if basis == "elemental":
        out["supplement_dose_elemental_mg"] = _round(dose_mg)
    elif out["supplement_form"] in ruleset.vocabulary.forms:
        fraction = float(ruleset.vocabulary.forms[out["supplement_form"]]["elemental_fraction"])
        out["supplement_dose_elemental_mg"] = _round(dose_mg * fraction)
        out["elemental_fraction"] = fraction
    return out

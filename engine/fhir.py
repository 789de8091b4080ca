"""FHIR R4 Bundles in: Patient, lab Observations, medications and Conditions -> one intake record.

Bundles are parsed and validated with fhir.resources (its R4B models read R4 Patient, Observation,
Condition, MedicationRequest/Statement and Medication as they are); invalid resources are rejected
with the entry, resource and field named. Mapping choices are documented where they are made.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine.errors import FieldError, RecordError

# LOINC codes [REFERENCE §10.1]. 38483-4 (creatinine in blood, mass/volume) is what Synthea writes
# (external/SOURCES.md); it is read like 2160-0.
EGFR_LOINC = frozenset(
    {
        "98979-8",
        "62238-1",
        "88293-6",
        "88294-4",
        "33914-3",
        "48642-3",
        "48643-1",
        "77147-7",
        "76633-7",
        "50044-7",
        "98980-6",
    }
)
CREATININE_LOINC = frozenset({"2160-0", "14682-9", "38483-4"})
MAGNESIUM_LOINC = frozenset({"19123-9", "2601-3"})
PREGNANCY_STATUS_LOINC = "82810-3"  # Pregnancy status; the answer is read from its text or display
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
UCUM_UNITS = {"mg/dL": "mg/dL", "umol/L": "umol/L", "mmol/L": "mmol/L", "meq/L": "mEq/L", "mEq/L": "mEq/L"}
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
ACTIVE_MEDICATION = frozenset({"active", "intended", "on-hold"})
INACTIVE_CONDITION = frozenset({"inactive", "remission", "resolved"})


def is_bundle(record: Any) -> bool:
    """Whether a parsed JSON value is a FHIR Bundle."""
    return isinstance(record, dict) and record.get("resourceType") == "Bundle"


def bundle_to_record(
    data: dict[str, Any], *, jurisdiction: str | None = None, as_of: date | None = None
) -> dict[str, Any]:
    """Validate a Bundle and map it to an intake record; raise RecordError naming entry, resource and field."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(data)
    except ValidationError as e:
        raise RecordError(
            str(data.get("id") or "bundle"), [_field_error(data, err) for err in e.errors()[:20]]
        ) from None
    resources = [entry.get("resource") or {} for entry in data.get("entry") or []]
    by_reference = _references(data)
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise RecordError(
            str(data.get("id") or "bundle"),
            [FieldError("Bundle.entry", f"expected one Patient, found {len(patients)}")],
        )
    patient = patients[0]
    as_of = as_of or _as_of(patient, resources)
    record: dict[str, Any] = {"id": str(patient.get("id") or data.get("id") or "patient")}
    birth = patient.get("birthDate")
    if birth and as_of:
        record["age_years"] = round(_years(date.fromisoformat(birth[:10]), as_of), 2)
    if patient.get("gender") in ("female", "male"):
        record["sex"] = patient["gender"]
    if jurisdiction:
        record["jurisdiction"] = jurisdiction
    for key, value in _labs(resources).items():
        record[key] = value
    pregnant = _pregnant(resources)
    if pregnant is not None and record.get("sex") != "male":
        record["pregnant"] = pregnant
    record["medications"] = _medications(resources, by_reference)
    record["conditions"] = _conditions(resources)
    supplement = _supplement(resources, by_reference)
    if supplement:
        record["supplement"] = supplement
    return record


def _field_error(data: dict[str, Any], err: Any) -> FieldError:
    loc = list(err.get("loc", ()))
    where = "Bundle"
    if len(loc) >= 3 and loc[0] == "entry" and isinstance(loc[1], int):
        resource = ((data.get("entry") or [{}])[loc[1]] or {}).get("resource") or {}
        where = f"entry[{loc[1]}] {resource.get('resourceType', '?')}/{resource.get('id', '?')}"
        loc = loc[3:] if len(loc) > 3 and loc[2] == "resource" else loc[2:]
    path = ".".join(str(p) for p in loc if not str(p).startswith("function-"))
    return FieldError(f"{where}.{path}" if path else where, str(err.get("msg", "invalid")))


def _references(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in data.get("entry") or []:
        resource = entry.get("resource") or {}
        if entry.get("fullUrl"):
            out[entry["fullUrl"]] = resource
        if resource.get("id"):
            out[f"{resource.get('resourceType')}/{resource['id']}"] = resource
    return out


def _when(resource: dict[str, Any]) -> str:
    for key in ("effectiveDateTime", "issued", "authoredOn", "dateAsserted", "recordedDate", "onsetDateTime"):
        if resource.get(key):
            return str(resource[key])
    period = resource.get("effectivePeriod") or {}
    return str(period.get("end") or period.get("start") or "")


def _as_of(patient: dict[str, Any], resources: list[dict[str, Any]]) -> date | None:
    """The date ages are computed at: death, else the newest dated resource (never today, so output is stable)."""
    if patient.get("deceasedDateTime"):
        return parse_date(patient["deceasedDateTime"])
    dates = [_when(r) for r in resources if r.get("resourceType") != "Patient"]
    dates = [d for d in dates if d]
    return parse_date(max(dates)) if dates else None


def parse_date(text: str) -> date:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).date() if "T" in text else date.fromisoformat(text[:10])


def _years(birth: date, at: date) -> float:
    return (at - birth).days / 365.2425


def _codes(concept: dict[str, Any] | None, system: str) -> list[str]:
    return [
        str(c.get("code")) for c in (concept or {}).get("coding") or [] if c.get("system") == system and c.get("code")
    ]


def concept_text(concept: dict[str, Any] | None) -> str:
    concept = concept or {}
    text = concept.get("text") or next((c.get("display") for c in concept.get("coding") or [] if c.get("display")), "")
    return str(text).replace("\u200b", "").strip()


def _labs(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest final eGFR, creatinine and magnesium results."""
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for r in resources:
        if r.get("resourceType") != "Observation" or r.get("status") not in FINAL_OBSERVATION:
            continue
        quantity = r.get("valueQuantity") or {}
        if not isinstance(quantity.get("value"), int | float):
            continue
        for code in _codes(r.get("code"), LOINC):
            kind = (
                "egfr"
                if code in EGFR_LOINC
                else "creatinine"
                if code in CREATININE_LOINC
                else "magnesium"
                if code in MAGNESIUM_LOINC
                else None
            )
            if kind and (kind not in newest or _when(r) > newest[kind][0]):
                newest[kind] = (_when(r), quantity)
    out: dict[str, Any] = {}
    if "egfr" in newest:  # per 1.73 m² by the LOINC definition, whatever unit text the sender wrote
        out["egfr_ml_min_1_73m2"] = float(newest["egfr"][1]["value"])
    for kind, field in (("creatinine", "serum_creatinine"), ("magnesium", "serum_magnesium")):
        if kind in newest:
            quantity = newest[kind][1]
            unit = str(quantity.get("code") or quantity.get("unit") or "")
            out[field] = {"value": float(quantity["value"]), "unit": UCUM_UNITS.get(unit, unit)}
    return out


def _pregnant(resources: list[dict[str, Any]]) -> bool | None:
    """The newest final pregnancy-status Observation: pregnant, not pregnant, or unknown (None)."""
    newest: tuple[str, str] | None = None
    for r in resources:
        is_status = r.get("resourceType") == "Observation" and r.get("status") in FINAL_OBSERVATION
        if is_status and PREGNANCY_STATUS_LOINC in _codes(r.get("code"), LOINC):
            answer = concept_text(r.get("valueCodeableConcept")).lower()
            if newest is None or _when(r) > newest[0]:
                newest = (_when(r), answer)
    if newest is None or not newest[1]:
        return None
    answer = newest[1]
    if "not pregnant" in answer or answer.startswith("no"):
        return False
    return True if "pregnant" in answer else None


def _medication_concept(r: dict[str, Any], refs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if r.get("medicationCodeableConcept"):
        return dict(r["medicationCodeableConcept"])
    reference = (r.get("medicationReference") or {}).get("reference")
    return (refs.get(reference) or {}).get("code") if reference else None


def _medications(resources: list[dict[str, Any]], refs: dict[str, dict[str, Any]]) -> list[Any]:
    """Active MedicationRequests and MedicationStatements (not draft orders) as {name, rxnorm, atc}."""
    out: list[Any] = []
    for r in resources:
        if r.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
            continue
        if r.get("status") not in ACTIVE_MEDICATION:
            continue
        concept = _medication_concept(r, refs)
        entry: dict[str, str] = {"name": concept_text(concept)}
        for key, system in (("rxnorm", RXNORM), ("atc", ATC)):
            codes = _codes(concept, system)
            if codes:
                entry[key] = codes[0]
        entry = {k: v for k, v in entry.items() if v}
        if entry and entry not in out:
            out.append(entry)
    return out


def _conditions(resources: list[dict[str, Any]]) -> list[str]:
    """Conditions that are not resolved, inactive or refuted, as text."""
    out: list[str] = []
    for r in resources:
        if r.get("resourceType") != "Condition":
            continue
        clinical = set(_codes(r.get("clinicalStatus"), "http://terminology.hl7.org/CodeSystem/condition-clinical"))
        verification = set(
            _codes(r.get("verificationStatus"), "http://terminology.hl7.org/CodeSystem/condition-ver-status")
        )
        if (
            clinical & INACTIVE_CONDITION
            or r.get("abatementDateTime")
            or verification & {"refuted", "entered-in-error"}
        ):
            continue
        text = concept_text(r.get("code"))
        if text and text not in out:
            out.append(text)
    return out


def draft_magnesium_order(
    resources: list[dict[str, Any]], refs: dict[str, dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    """The order being placed for magnesium: a draft MedicationRequest whose medication names magnesium."""
    for r in resources:
        draft = r.get("resourceType") == "MedicationRequest" and r.get("status") == "draft"
        if draft and "magnesium" in concept_text(_medication_concept(r, refs or {})).lower():
            return r
    return None


def _supplement(resources: list[dict[str, Any]], refs: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The magnesium order being placed: a draft MedicationRequest naming magnesium.

    Product strengths name the salt ("Magnesium Oxide 400 MG"), so the dose is salt weight unless the
    text says elemental. The daily dose is the dose quantity times the timing's frequency per day.
    """
    r = draft_magnesium_order(resources, refs)
    if r is not None:
        text = concept_text(_medication_concept(r, refs))
        supplement: dict[str, Any] = {"form": text}
        dosage = (r.get("dosageInstruction") or [{}])[0]
        rates = dosage.get("doseAndRate") or []
        rate = rates[0] if isinstance(rates, list) and rates else rates if isinstance(rates, dict) else {}
        quantity = rate.get("doseQuantity") or {}
        if isinstance(quantity.get("value"), int | float) and str(quantity.get("code") or quantity.get("unit")) == "mg":
            repeat = (dosage.get("timing") or {}).get("repeat") or {}
            per_day = _per_day(repeat)
            supplement["dose_mg"] = float(quantity["value"]) * per_day
            supplement["dose_basis"] = "elemental" if "elemental" in text.lower() else "salt"
        return supplement
    return None


def _per_day(repeat: dict[str, Any]) -> float:
    frequency = float(repeat.get("frequency") or 1)
    period = float(repeat.get("period") or 1)
    unit = repeat.get("periodUnit") or "d"
    days = {"h": 1 / 24, "d": 1, "wk": 7, "mo": 30}.get(unit, 1)
    return frequency / (period * days)

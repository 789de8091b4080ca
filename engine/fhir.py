"""FHIR R4 Bundles in: Patient, lab Observations, medications and Conditions -> one intake record.

Bundles are parsed and validated with fhir.resources (its R4B models read R4 Patient, Observation,
Condition, MedicationRequest/Statement and Medication as they are); invalid resources are rejected
with the entry, resource and field named. Mapping choices are documented where they are made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine import dosage
from engine.errors import FieldError, RecordError

if TYPE_CHECKING:
    from engine.ruleset import Ruleset

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
# Magnesium in serum, plasma or blood. 19123-9 (mass/volume, S/P) and 2601-3 (moles/volume, S/P): REFERENCE
# §10.1. 21377-7 "Magnesium [Mass/volume] in Blood": Synthea module heart/cardiac_labs.json (Apache-2.0),
# also an HL7 FSH example. 2593-2 "Magnesium [Moles/volume] in Blood": two public LOINC mapping tables.
MAGNESIUM_LOINC = frozenset({"19123-9", "2601-3", "21377-7", "2593-2"})
# Red-cell magnesium is another test with its own range, never read as serum: 29900-7 "Magnesium
# [Mass/volume] in Red Blood Cells" (public LOINC lab list). It is only noted.
RED_CELL_MAGNESIUM_LOINC = frozenset({"29900-7"})
PREGNANCY_STATUS_LOINC = "82810-3"  # Pregnancy status; the answer is read from its text or display
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
ATC = "http://www.whocc.no/atc"
LOINC = "http://loinc.org"
UCUM_UNITS = {"mg/dL": "mg/dL", "umol/L": "umol/L", "mmol/L": "mmol/L", "meq/L": "mEq/L", "mEq/L": "mEq/L"}
FINAL_OBSERVATION = frozenset({"final", "amended", "corrected"})
# Lab results read: the newest that is not cancelled, entered-in-error, registered (no result) or unknown.
USABLE_OBSERVATION = FINAL_OBSERVATION | {"preliminary"}
SNOMED = "http://snomed.info/sct"
_VALUE_STRING = re.compile(r"^\s*(?P<cmp>>=|<=|≥|≤|>|<)?\s*(?P<num>[0-9]+(?:[.,][0-9]+)?)\s*$")
ACTIVE_MEDICATION = frozenset({"active", "intended", "on-hold"})
INACTIVE_CONDITION = frozenset({"inactive", "remission", "resolved"})


def is_bundle(record: Any) -> bool:
    """Whether a parsed JSON value is a FHIR Bundle."""
    return isinstance(record, dict) and record.get("resourceType") == "Bundle"


def bundle_to_record(
    data: dict[str, Any],
    *,
    jurisdiction: str | None = None,
    as_of: date | None = None,
    ruleset: Ruleset | None = None,
) -> dict[str, Any]:
    """Validate a Bundle and map it to an intake record; raise RecordError naming entry, resource and field.

    `ruleset` (default: the newest published) supplies the vocabulary: magnesium RxNorm codes, route words,
    which conditions are acute episodes (vocabulary.condition_history).
    """
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    try:
        Bundle.model_validate(data)
    except ValidationError as e:
        raise RecordError(
            str(data.get("id") or "bundle"), [_field_error(data, err) for err in e.errors()[:20]]
        ) from None
    ruleset = ruleset or _default_ruleset()
    resources = [entry.get("resource") or {} for entry in data.get("entry") or []]
    by_reference = _references(data)
    patients = [r for r in resources if r.get("resourceType") == "Patient"]
    if len(patients) != 1:
        raise RecordError(
            str(data.get("id") or "bundle"),
            [FieldError("Bundle.entry", f"expected one Patient, found {len(patients)}")],
        )
    patient = patients[0]
    record_id = str(patient.get("id") or data.get("id") or "patient")
    _refuse_deceased(record_id, patient)
    as_of = as_of or _as_of(patient, resources)
    record: dict[str, Any] = {"id": record_id}
    birth = patient.get("birthDate")
    if birth and as_of:
        record["age_years"] = round(_years(date.fromisoformat(birth[:10]), as_of), 2)
    if patient.get("gender") in ("female", "male"):
        record["sex"] = patient["gender"]
    if jurisdiction:
        record["jurisdiction"] = jurisdiction
    notes: list[str] = []
    for key, value in _labs(resources, notes).items():
        record[key] = value
    pregnant = _pregnant(resources)
    if pregnant is not None and record.get("sex") != "male":
        record["pregnant"] = pregnant
    record["medications"] = _medications(resources, by_reference, ruleset)
    current, history = _conditions(resources, ruleset, as_of)
    record["conditions"] = current
    if history:
        record["history"] = history
    supplement = _supplement(resources, by_reference, ruleset, notes)
    if supplement:
        record["supplement"] = supplement
    if notes:
        record["notes"] = notes
    return record


_DEFAULT: list[Ruleset] = []


def _default_ruleset() -> Ruleset:
    """The newest published ruleset, loaded once per process."""
    if not _DEFAULT:
        from engine import ruleset as rulesets

        _DEFAULT.append(rulesets.load())
    return _DEFAULT[0]


def _refuse_deceased(record_id: str, patient: dict[str, Any]) -> None:
    """A deceased patient gets no plan: a reject naming Patient.deceased."""
    if patient.get("deceasedDateTime"):
        field, why = "Patient.deceasedDateTime", f"the patient died on {str(patient['deceasedDateTime'])[:10]}"
    elif patient.get("deceasedBoolean") is True:
        field, why = "Patient.deceasedBoolean", "the patient is recorded as deceased"
    else:
        return
    raise RecordError(record_id, [FieldError(field, f"{why}: no supplement plan is made for a deceased patient")])


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


def _labs(resources: list[dict[str, Any]], notes: list[str]) -> dict[str, Any]:
    """The newest usable eGFR, creatinine and magnesium results, with status, date, code and comparator.

    Usable: final, amended, corrected or preliminary (never cancelled or entered-in-error). Of two results
    at the same time a final one wins over a preliminary one.
    """
    red_cell: list[str] = []
    newest = _newest_results(resources, red_cell)
    out: dict[str, Any] = {}
    labs: dict[str, dict[str, str]] = {}
    for kind, field, lab in (
        ("egfr", "egfr_ml_min_1_73m2", "egfr"),
        ("creatinine", "serum_creatinine", "serum_creatinine"),
        ("magnesium", "serum_magnesium", "serum_magnesium"),
    ):
        if kind not in newest:
            continue
        (when, _), quantity, code, resource = newest[kind]
        if kind == "egfr":  # per 1.73 m² by the LOINC definition, whatever unit text the sender wrote
            out[field] = float(quantity["value"])
        else:
            unit = str(quantity.get("code") or quantity.get("unit") or "")
            out[field] = {"value": float(quantity["value"]), "unit": UCUM_UNITS.get(unit, unit)}
        meta = {"status": str(resource["status"]), "code": code}
        if when:
            meta["date"] = when
        if quantity.get("comparator") in ("<", "<=", ">", ">="):
            meta["comparator"] = str(quantity["comparator"])
        labs[lab] = meta
        display = concept_text(resource.get("code"))
        notes.append(
            f"{lab}: LOINC {code}{f' ({display})' if display else ''}, {meta['status']}, {when[:10] or 'no date'}"
        )
    if red_cell:
        notes.append(
            f"red-cell magnesium {', '.join(sorted(set(red_cell)))} is another test: not read as serum magnesium"
        )
    if labs:
        out["labs"] = labs
    return out


_NewestResult = tuple[tuple[str, int], dict[str, Any], str, dict[str, Any]]  # (when, final), quantity, code, resource


def _newest_results(resources: list[dict[str, Any]], red_cell: list[str]) -> dict[str, _NewestResult]:
    """Per kind (egfr, creatinine, magnesium) the newest usable Observation; red-cell magnesium tests are listed."""
    newest: dict[str, _NewestResult] = {}
    for r in resources:
        if r.get("resourceType") != "Observation" or r.get("status") not in USABLE_OBSERVATION:
            continue
        quantity = _observation_quantity(r)
        if quantity is None:
            continue
        for code in _codes(r.get("code"), LOINC):
            if code in RED_CELL_MAGNESIUM_LOINC:
                red_cell.append(f"{code} ({_when(r)[:10]})")
            kind = _lab_kind(code)
            key = (_when(r), 1 if r.get("status") in FINAL_OBSERVATION else 0)
            if kind and (kind not in newest or key > newest[kind][0]):
                newest[kind] = (key, quantity, code, r)
    return newest


def _lab_kind(loinc: str) -> str | None:
    """egfr, creatinine or magnesium for a LOINC code we read as one; None for any other test."""
    if loinc in EGFR_LOINC:
        return "egfr"
    if loinc in CREATININE_LOINC:
        return "creatinine"
    if loinc in MAGNESIUM_LOINC:
        return "magnesium"
    return None


def _observation_quantity(r: dict[str, Any]) -> dict[str, Any] | None:
    """valueQuantity with a number, or a valueString that is a number with an optional comparator ('>90')."""
    quantity = r.get("valueQuantity") or {}
    if isinstance(quantity.get("value"), int | float) and not isinstance(quantity.get("value"), bool):
        return dict(quantity)
    text = r.get("valueString")
    match = _VALUE_STRING.match(text) if isinstance(text, str) else None
    if match:
        found: dict[str, Any] = {"value": float(match.group("num").replace(",", "."))}
        if match.group("cmp"):
            found["comparator"] = {"≥": ">=", "≤": "<="}.get(match.group("cmp"), match.group("cmp"))
        return found
    return None


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


def _medications(resources: list[dict[str, Any]], refs: dict[str, dict[str, Any]], ruleset: Ruleset) -> list[Any]:
    """Active MedicationRequests and MedicationStatements (not draft orders) as {name, rxnorm, atc}.

    Every RxNorm code is passed: the first one the vocabulary knows (an ingredient or product code) on
    the entry, each further known code as an entry of its own with the same name. A magnesium product's
    name carries its dosage (dosageInstruction.text, else the structured dose and timing as text) so that
    engine.amounts reads the amount a day, not once a day.
    """
    known = known_rxnorm(ruleset)
    magnesium = magnesium_rxnorm(ruleset)
    out: list[Any] = []
    for r in resources:
        if r.get("resourceType") not in ("MedicationRequest", "MedicationStatement"):
            continue
        if r.get("status") not in ACTIVE_MEDICATION:
            continue
        concept = _medication_concept(r, refs)
        rxnorm = _codes(concept, RXNORM)
        ranked = [c for c in rxnorm if c in known] + [c for c in rxnorm if c not in known]
        atc = _codes(concept, ATC)
        entry: dict[str, str] = {"name": concept_text(concept)}
        is_magnesium = (
            set(rxnorm) & magnesium
            or any(is_magnesium_atc(ruleset, c) for c in atc)
            or _names_magnesium(entry["name"], ruleset)
        )
        taken = _dosage_text(r) if is_magnesium else ""
        if taken:
            entry["name"] = f"{entry['name'] or _coded_name(concept or {}, ruleset)} {taken}".strip()
        if ranked:
            entry["rxnorm"] = ranked[0]
        if atc:
            entry["atc"] = atc[0]
        entries = [{k: v for k, v in entry.items() if v}]
        entries += [
            {k: v for k, v in {"name": entry["name"], "rxnorm": c}.items() if v} for c in ranked[1:] if c in known
        ]
        for item in entries:
            if item and item not in out:
                out.append(item)
    return out


def _dosage_text(r: dict[str, Any]) -> str:
    """A MedicationRequest's / Statement's dosage as text: its own text, else the structured dose and timing.

    The structured form is written the way engine.amounts reads desk lines: "1 tablet 2dd" (2 a day).
    """
    key = "dosageInstruction" if r.get("resourceType") == "MedicationRequest" else "dosage"
    lines = [d for d in r.get(key) or [] if isinstance(d, dict)]
    parts: list[str] = []
    for line in lines:
        written = " ".join(str(line.get(k) or "").strip() for k in ("text", "patientInstruction")).strip()
        if written:
            parts.append(written)
            continue
        n, _ = dosage.administrations_per_day(line) if line.get("timing") else (None, "")
        rates = line.get("doseAndRate") or []
        quantity = next((x.get("doseQuantity") for x in rates if isinstance(x, dict) and x.get("doseQuantity")), None)
        if quantity and isinstance(quantity.get("value"), int | float):
            amount = f"{quantity['value']:g} {quantity.get('unit') or quantity.get('code') or ''}".strip()
            parts.append(f"{amount} {n}dd" if n else amount)
        elif n:
            parts.append(f"{n}dd")
    return "; ".join(parts)


def known_rxnorm(ruleset: Ruleset) -> frozenset[str]:
    """Every RxNorm code the ruleset's drug and product vocabulary lists."""
    voc = ruleset.vocabulary
    codes = {str(c) for d in voc.drugs.values() for c in d.get("rxnorm", [])}
    codes |= {str(c) for p in voc.products.values() for c in p.get("rxnorm", [])}
    return frozenset(codes)


def magnesium_rxnorm(ruleset: Ruleset) -> frozenset[str]:
    """RxNorm codes of magnesium products: drugs of class magnesium_source, products with such an ingredient."""
    voc = ruleset.vocabulary
    magnesium = {key for key, d in voc.drugs.items() if "magnesium_source" in d.get("classes", [])}
    codes = {str(c) for key in magnesium for c in voc.drugs[key].get("rxnorm", [])}
    for product in voc.products.values():
        if magnesium & set(product.get("ingredients", [])):
            codes |= {str(c) for c in product.get("rxnorm", [])}
    return frozenset(codes)


def _conditions(
    resources: list[dict[str, Any]], ruleset: Ruleset, as_of: date | None
) -> tuple[list[Any], list[dict[str, str]]]:
    """Current conditions (text, or {name, snomed} when coded) and history (shown on the case, never a finding).

    History: resolved, inactive or in remission; abated; "History of ..." wording; an acute episode
    (vocabulary.condition_history.acute_concepts) whose onset lies more than acute_current_days before the
    record's date. Chronic conditions stay current however old, also a seizure disorder or epilepsy whose
    concept (seizure) holds single episodes too (condition_history.chronic_snomed / chronic_phrases).
    Refuted or entered-in-error: left out.
    """
    policy = _HistoryPolicy.of(ruleset)
    current: list[Any] = []
    history: list[dict[str, str]] = []
    for r in resources:
        if r.get("resourceType") != "Condition":
            continue
        clinical = set(_codes(r.get("clinicalStatus"), "http://terminology.hl7.org/CodeSystem/condition-clinical"))
        verification = set(
            _codes(r.get("verificationStatus"), "http://terminology.hl7.org/CodeSystem/condition-ver-status")
        )
        if verification & {"refuted", "entered-in-error"}:
            continue
        text = concept_text(r.get("code"))
        snomed = next(iter(_codes(r.get("code"), SNOMED)), "")
        if not text and not snomed:
            continue
        entry: dict[str, str] = {k: v for k, v in (("name", text), ("snomed", snomed)) if v}
        onset = _onset(r)
        reason = _history_reason(r, clinical, text, snomed, onset, policy, ruleset, as_of)
        if reason:
            item = _history_item(r, entry, reason, onset)
            if not any(h.get("name") == item.get("name") and h.get("snomed") == item.get("snomed") for h in history):
                history.append(item)
            continue
        value: Any = entry if snomed else text
        if value not in current:
            current.append(value)
    return current, history


@dataclass(frozen=True)
class _HistoryPolicy:
    """The ruleset's vocabulary.condition_history: what makes a coded condition history rather than current."""

    acute: set[str]
    chronic_codes: set[str]
    chronic_phrases: list[str]
    days: int
    phrases: list[str]
    resolver: Any

    @classmethod
    def of(cls, ruleset: Ruleset) -> _HistoryPolicy:
        """The policy a ruleset declares (defaults where it is silent)."""
        policy = (ruleset.raw.get("vocabulary") or {}).get("condition_history") or {}
        return cls(
            acute=set(policy.get("acute_concepts", [])),
            chronic_codes={str(c) for c in policy.get("chronic_snomed", [])},
            chronic_phrases=[str(p) for p in policy.get("chronic_phrases", [])],
            days=int(policy.get("acute_current_days", 365)),
            phrases=[str(p) for p in policy.get("history_phrases", [])],
            resolver=_concepts(ruleset),
        )


def _history_reason(
    r: dict[str, Any],
    clinical: set[str],
    text: str,
    snomed: str,
    onset: str,
    policy: _HistoryPolicy,
    ruleset: Ruleset,
    as_of: date | None,
) -> str:
    """Why a Condition is history (resolved, history wording, an old acute episode); empty when it is current."""
    if clinical & INACTIVE_CONDITION or r.get("abatementDateTime") or r.get("abatementPeriod"):
        return "resolved" if not clinical & INACTIVE_CONDITION else sorted(clinical & INACTIVE_CONDITION)[0]
    if any(p in text.lower() for p in policy.phrases):
        return "history wording"
    if (
        onset
        and not set(_codes(r.get("code"), SNOMED)) & policy.chronic_codes
        and not any(p in text.lower() for p in policy.chronic_phrases)
        and as_of
        and parse_date(onset) < as_of - timedelta(days=policy.days)
        and policy.acute & _concepts_of(policy.resolver, ruleset, text, snomed)
    ):
        return f"acute episode from {onset[:10]}, more than {policy.days} days before {as_of.isoformat()}"
    return ""


def _history_item(r: dict[str, Any], entry: dict[str, str], reason: str, onset: str) -> dict[str, str]:
    """A history entry as shown on the case: the condition, why it is history, onset and abatement dates."""
    item = {**entry, "reason": reason}
    if onset:
        item["onset"] = onset[:10]
    abated = str(r.get("abatementDateTime") or (r.get("abatementPeriod") or {}).get("end") or "")
    if abated:
        item["abatement"] = abated[:10]
    return item


def _onset(r: dict[str, Any]) -> str:
    period = r.get("onsetPeriod") or {}
    return str(r.get("onsetDateTime") or period.get("start") or r.get("recordedDate") or "")


_RESOLVERS: dict[str, Any] = {}


def _concepts(ruleset: Ruleset) -> Any:
    from engine.conditions import ConceptResolver

    found = _RESOLVERS.get(ruleset.sha256)
    if found is None:
        if len(_RESOLVERS) > 16:
            _RESOLVERS.clear()
        found = _RESOLVERS[ruleset.sha256] = ConceptResolver(ruleset.vocabulary)
    return found


def _concepts_of(resolver: Any, ruleset: Ruleset, text: str, snomed: str) -> set[str]:
    """Concept ids of a condition: from its text, and from a SNOMED CT code listed under a concept."""
    found = {c.concept for c in resolver.read(text, "condition").concepts} if text else set()
    if snomed:
        found |= {key for key, c in ruleset.vocabulary.concepts.items() if snomed in c.get("snomed", [])}
    return found


def draft_magnesium_order(
    resources: list[dict[str, Any]],
    refs: dict[str, dict[str, Any]] | None = None,
    ruleset: Ruleset | None = None,
) -> dict[str, Any] | None:
    """The order being placed for magnesium: a draft MedicationRequest whose medication is magnesium.

    Magnesium: an RxNorm code of a magnesium product in the ruleset vocabulary (so an order coded only by
    RxNorm is found), an ATC code of a magnesium drug or in a magnesium class (A12CC, A02AA; the A06AD
    magnesium laxatives by their own codes), or a text that names magnesium and is not another drug's salt
    ("esomeprazole magnesium"). An order with none of these readable is not taken for a magnesium order.
    """
    ruleset = ruleset or _default_ruleset()
    codes = magnesium_rxnorm(ruleset)
    for r in resources:
        if r.get("resourceType") != "MedicationRequest" or r.get("status") != "draft":
            continue
        concept = _medication_concept(r, refs or {})
        if (
            set(_codes(concept, RXNORM)) & codes
            or any(is_magnesium_atc(ruleset, c) for c in _codes(concept, ATC))
            or _names_magnesium(concept_text(concept), ruleset)
        ):
            return r
    return None


def is_magnesium_atc(ruleset: Ruleset, code: str) -> bool:
    """An ATC code of a magnesium drug in the vocabulary, or in a class prefix that atc_classes maps to magnesium."""
    code = code.strip().upper()
    voc = ruleset.vocabulary
    for drug in voc.drugs.values():
        if "magnesium_source" in drug.get("classes", []) and code in {str(c).upper() for c in drug.get("atc", [])}:
            return True
    classes = (ruleset.raw.get("vocabulary") or {}).get("atc_classes") or {}
    return any(code.startswith(prefix) and "magnesium_source" in found for prefix, found in classes.items())


def _names_magnesium(text: str, ruleset: Ruleset) -> bool:
    if "magnes" not in text.lower():
        return False
    from engine.medications import MedicationResolver

    found = _RESOLVERS.get("meds:" + ruleset.sha256)
    if found is None:
        found = _RESOLVERS["meds:" + ruleset.sha256] = MedicationResolver(ruleset.vocabulary)
    drugs = [d for d in found.resolve(text) if d.method != "unrecognized"]
    return not drugs or any("magnesium_source" in d.classes for d in drugs)


def _supplement(
    resources: list[dict[str, Any]], refs: dict[str, dict[str, Any]], ruleset: Ruleset, notes: list[str]
) -> dict[str, Any] | None:
    """The magnesium order being placed, as the record's supplement {form, dose..., strength, route}.

    Product strengths name the salt ("Magnesium Oxide 400 MG"), so a mass is salt weight unless the text
    says elemental (or names magnesium itself, "Magnesium 250 MG"); mmol are elemental. The amount is the
    most the order allows in one day (engine.dosage); what cannot be read is passed as dose.text.
    """
    r = draft_magnesium_order(resources, refs, ruleset)
    if r is None:
        return None
    concept = _medication_concept(r, refs) or {}
    text = concept_text(concept) or _coded_name(concept, ruleset)
    supplement: dict[str, Any] = {"form": text}
    strength = _medication_strength(r, refs) or dosage.parse_strength(text)
    lines = [d for d in r.get("dosageInstruction") or [] if isinstance(d, dict)]
    daily = dosage.read_order(lines, strength, text_frequency(ruleset))
    for note in daily.notes:
        notes.append(f"supplement: {note}")
    elemental_text = bool(
        re.search(r"\belement(al|air)", text, re.IGNORECASE) or re.search(r"\bmagnesium\s+\d", text, re.I)
    )
    if daily.unreadable or daily.value is None:
        supplement["dose"] = {"text": daily.unreadable or daily.how}
        notes.append(f"supplement: the order's amount cannot be read ({daily.unreadable})")
    elif daily.unit == "mg":
        supplement["dose_mg"] = round(daily.value, 6)
        supplement["dose_basis"] = "elemental" if daily.elemental or elemental_text else "salt"
        notes.append(f"supplement: {daily.how} = {daily.value:g} mg per day, the most the order allows")
    else:
        supplement["dose"] = {"value": round(daily.value, 6), "unit": str(daily.unit)}
        if strength is not None and daily.unit != "mmol":
            supplement["strength"] = {
                "value": strength.amount,
                "unit": strength.unit,
                "per_value": strength.per_amount,
                "per_unit": strength.per_unit,
                "elemental": strength.elemental or elemental_text,
            }
        if daily.unit != "mmol" and not (strength and (strength.elemental or elemental_text)):
            supplement["dose_basis"] = "salt"
        notes.append(f"supplement: {daily.how} = {daily.value:g} {daily.unit} per day, the most the order allows")
    route = _route_text(r, text, ruleset, refs)
    if route:
        supplement["route"] = route
    return supplement


def _coded_name(concept: dict[str, Any], ruleset: Ruleset) -> str:
    """A name for an order coded without text: the vocabulary's drug of its RxNorm or ATC code, with the code."""
    voc = ruleset.vocabulary
    for system, key, label in ((RXNORM, "rxnorm", "RxNorm"), (ATC, "atc", "ATC")):
        for code in _codes(concept, system):
            drug = next((name for name, d in voc.drugs.items() if code in [str(c) for c in d.get(key, [])]), None)
            if drug:
                return f"{drug} ({label} {code})"
    for system, label in ((RXNORM, "RxNorm"), (ATC, "ATC")):
        for code in _codes(concept, system):
            return f"magnesium ({label} {code})" if system == ATC else f"{label} {code}"
    return ""


_FREQUENCY_READERS: dict[str, Any] = {}


def text_frequency(ruleset: Ruleset) -> dosage.FrequencyReader | None:
    """engine.amounts' frequency reader ("three times daily", "2dd1", "1-0-1", "bid") for Dosage texts."""
    found = _FREQUENCY_READERS.get(ruleset.sha256)
    if found is None:
        from engine import amounts
        from engine.lexicon import PhraseIndex, fold

        forms = PhraseIndex((n, key) for key, f in ruleset.vocabulary.forms.items() for n in [key, *f.get("names", [])])
        reader = amounts.AmountReader(ruleset, forms)

        def read(text: str) -> tuple[float, str] | None:
            n, how, assumed = reader.frequency(fold(text))
            return None if n is None or not amounts.how_often_stated(assumed) else (n, how)

        if len(_FREQUENCY_READERS) > 16:
            _FREQUENCY_READERS.clear()
        found = _FREQUENCY_READERS[ruleset.sha256] = read
    return found


def _medication_strength(r: dict[str, Any], refs: dict[str, dict[str, Any]]) -> dosage.Strength | None:
    """Medication.ingredient.strength (a Ratio) of the magnesium ingredient of a referenced Medication."""
    reference = (r.get("medicationReference") or {}).get("reference")
    medication = refs.get(reference) if reference else None
    ingredients = (medication or {}).get("ingredient") or []
    named = [i for i in ingredients if "magnes" in concept_text(i.get("itemCodeableConcept")).lower()]
    for ingredient in named or (ingredients if len(ingredients) == 1 else []):
        ratio = ingredient.get("strength") or {}
        if ratio.get("numerator"):
            name = concept_text(ingredient.get("itemCodeableConcept"))
            elemental = name.strip().lower() in ("magnesium", "magnesium ion", "elemental magnesium")
            return dosage.strength_from_ratio(ratio["numerator"], ratio.get("denominator"), name, elemental)
    return None


V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
EDQM = "http://standardterms.edqm.eu"


def _route_text(
    r: dict[str, Any], text: str, ruleset: Ruleset, refs: dict[str, dict[str, Any]] | None = None
) -> str | None:
    """The route as the order states it (text, SNOMED CT or HL7 v3 RouteOfAdministration code, every coding),
    else the referenced Medication's form (Medication.form, doseForm) or the product name when they say it
    is not oral. Codes are named by the route they stand for (vocabulary.routes), so facts.read_route reads
    them; a route given only by a code we do not know is passed as written and read as not oral."""
    from engine.facts import read_route

    for line in r.get("dosageInstruction") or []:
        route = (line or {}).get("route") if isinstance(line, dict) else None
        if route:
            return _coded_route(route, ruleset) or None
    reference = (r.get("medicationReference") or {}).get("reference")
    medication = (refs or {}).get(reference) if reference else None
    for key in ("form", "doseForm"):
        form = (medication or {}).get(key)
        if isinstance(form, dict):
            written = _coded_route(form, ruleset, forms=True)
            if written and read_route(ruleset, written) == "not_oral":
                return f"{written} (Medication.{key})"
    if text and read_route(ruleset, text) == "not_oral":
        return f"{text} (product name)"
    return None


def _coded_route(concept: dict[str, Any], ruleset: Ruleset, forms: bool = False) -> str:
    """A route or dose-form CodeableConcept as text: its words, then each code with the route it names."""
    routes = (ruleset.raw.get("vocabulary") or {}).get("routes") or {}
    by_code: dict[tuple[str, str], str] = {}
    for key, entry in routes.items():
        for code in entry.get("snomed", []) if not forms else entry.get("dose_form_snomed", []):
            by_code[(SNOMED, str(code))] = key
        for code in entry.get("v3", []) if not forms else []:
            by_code[(V3_ROUTE, str(code))] = key
    parts = [str(concept.get("text") or "").strip()]
    for coding in concept.get("coding") or []:
        code = str(coding.get("code") or "").strip()
        display = str(coding.get("display") or "").strip()
        if display and display not in parts:
            parts.append(display)
        if code:
            named = by_code.get((str(coding.get("system") or ""), code))
            parts.append(f"{named} ({code})" if named else f"code {code}")
    return "; ".join(p for p in parts if p)

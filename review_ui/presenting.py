"""The case page's view model: what a clinician reads, computed from a stored result and its ruleset.

Pure functions (no database, no request beyond the page's translations): the patient summary with numbers as
clinicians read them and lab values in the unit entered, the bottom line in one sentence, findings with the
patient's value against the threshold and their evidence as a table, and the suggested plan, which carries no
advice for taking magnesium when it proposes none.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from flask import has_request_context
from flask_babel import get_locale, gettext, ngettext

from engine import fhir, units
from engine import ruleset as rulesets
from engine import vocabulary as vocab
from engine.errors import RecordError, RulesetError
from engine.ruleset import Ruleset
from review_ui.texts import N_


def _(text: str, **variables: Any) -> str:
    """The text in the page's language (flask_babel's gettext, typed)."""
    return str(gettext(text, **variables))


NUMERIC_OPS = ("<", "<=", ">", ">=")
# Upper-limit rules are generated per row: the row id, then one of these endings (engine.upper_limits).
UL_SUFFIXES = ("", "_EXCEEDED", "_EXCEEDED_WITH_OTHER", "_EXCEEDED_BY_OTHER")
SOURCE_TAGS = re.compile(r"\s*\[([A-Za-z0-9_]+)\]")
IDS = re.compile(r"\b[A-Z][A-Z0-9_]{2,}\b")
LEADING_TAGS = re.compile(r"^(\s*\[[A-Za-z0-9_]+\])+\s*")


# --- numbers and units as clinicians read them -------------------------------------------------------------------


def _sign(text: str) -> str:
    """A written number with the page language's decimal sign (Dutch 41,5); English outside a request."""
    return text.replace(".", ",") if has_request_context() and str(get_locale()) == "nl" else text


def decimals(value: Any, places: int) -> str:
    """A number with `places` decimals (41.497 -> '41.5'); text is returned as given."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    return _sign(f"{value:.{places}f}")


def mg(value: Any) -> str:
    """Milligrams as whole numbers (250.0 -> '250')."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    return str(int(round(value)))


def one_decimal(value: Any) -> str:
    """eGFR as clinicians read it: one decimal at most (41.497 -> '41.5', 52.0 -> '52')."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return str(value)
    return _sign(format(round(value, 1), "g"))


def plain(value: Any) -> str:
    """A number without trailing zeros (4.0 -> '4', 1.25 -> '1.25')."""
    if isinstance(value, float) and math.isfinite(value):
        return _sign(format(round(value, 2), "g"))
    return str(value)


def _field_words() -> dict[str, tuple[str, str, Any]]:
    """Patient fields a finding tests: (label, unit, formatter), in the page's language."""
    return {
        "egfr_ml_min_1_73m2": (_("eGFR"), "mL/min/1.73 m²", one_decimal),
        "serum_mg_mmol_l": (_("serum magnesium"), "mmol/L", lambda v: decimals(v, 2)),
        "serum_mg_lab_upper_limit_mmol_l": (_("the lab's upper limit"), "mmol/L", lambda v: decimals(v, 2)),
        "creatinine_mg_dl": (_("serum creatinine"), "mg/dL", lambda v: decimals(v, 2)),
        "age_years": (_("age"), _("years"), plain),
        "weight_kg": (_("weight"), "kg", plain),
        "supplement_dose_elemental_mg": (_("requested dose"), _("mg/day"), mg),
        "other_mg_elemental_mg_per_day": (_("magnesium already taken"), _("mg/day"), mg),
        "total_supplemental_mg_per_day": (_("requested plus already taken"), _("mg/day"), mg),
        "jurisdiction": (_("jurisdiction"), "", str),
        "supplement_form": (_("magnesium form"), "", str),
        "supplement_route": (_("route"), "", str),
        "renal_data_known": (_("eGFR known"), "", str),
        "serum_mg_known": (_("serum magnesium known"), "", str),
        "pregnant": (_("pregnant"), "", str),
        "lactating": (_("breastfeeding"), "", str),
    }


def field_words(fact: str) -> tuple[str, str, Any]:
    """How a fact (`patient.egfr_ml_min_1_73m2`, `medication.classes`) reads: label, unit and formatter."""
    kind, _dot, name = fact.partition(".")
    known = _field_words().get(name)
    if known:
        return known
    if kind == "medication":
        return (_("medication"), "", str)
    if kind == "concept":
        return (_("condition or symptom"), "", str)
    declared = vocab.FACT_TYPES.get(kind, {}).get(name)
    label = declared.description if declared else name.replace("_", " ")
    return (label, "", str)


def _op_words() -> dict[str, str]:
    return {
        ">=": _("is at or above"),
        ">": _("is above"),
        "<": _("is below"),
        "<=": _("is at or below"),
        "==": _("is"),
        "!=": _("is not"),
        "in": _("is one of"),
        "contains": _("includes"),
        "contains_any": _("includes one of"),
    }


# Vocabulary codes the page names (drug classes, condition and symptom concepts) in words; a code not listed
# reads as itself with spaces. Marked for the catalogue; translated where shown.
VOCABULARY_WORDS = {
    "bisphosphonate_oral": N_("oral bisphosphonate"),
    "chelation_other": N_("other chelating drug"),
    "digoxin": N_("digoxin"),
    "eltrombopag": N_("eltrombopag"),
    "fluoroquinolone": N_("fluoroquinolone"),
    "gabapentin": N_("gabapentin"),
    "integrase_inhibitor": N_("integrase inhibitor"),
    "k_sparing_diuretic": N_("potassium-sparing diuretic"),
    "loop_diuretic": N_("loop diuretic"),
    "magnesium_source": N_("magnesium source"),
    "mg_wasting_drug": N_("drug that lowers magnesium"),
    "mg_wasting_drug_unverified": N_("drug that may lower magnesium (unverified)"),
    "mycophenolate": N_("mycophenolate"),
    "nnrti_rilpivirine": N_("NNRTI (rilpivirine)"),
    "penicillamine": N_("penicillamine"),
    "possible_magnesium_source": N_("possible magnesium source"),
    "ppi": N_("proton pump inhibitor"),
    "tetracycline": N_("tetracycline"),
    "thiazide_diuretic": N_("thiazide diuretic"),
    "thyroid_hormone": N_("thyroid hormone"),
    "acute_gi_condition": N_("acute gastrointestinal condition"),
    "alcohol_use_disorder": N_("alcohol use disorder"),
    "bariatric_surgery": N_("bariatric surgery"),
    "cardiac_conduction_disorder": N_("cardiac conduction disorder"),
    "chronic_diarrhoea": N_("chronic diarrhoea"),
    "ckd": N_("chronic kidney disease"),
    "coeliac_disease": N_("coeliac disease"),
    "constipation": N_("constipation"),
    "crohns_disease": N_("Crohn's disease"),
    "diabetes": N_("diabetes"),
    "dialysis": N_("dialysis"),
    "diarrhoea": N_("diarrhoea"),
    "drowsiness": N_("drowsiness"),
    "fatigue": N_("fatigue"),
    "flushing": N_("flushing"),
    "gerd": N_("gastro-oesophageal reflux"),
    "gi_obstruction": N_("gastrointestinal obstruction"),
    "headache": N_("headache"),
    "heart_failure": N_("heart failure"),
    "hiv": N_("HIV"),
    "hyperphosphataemia": N_("hyperphosphataemia"),
    "hypertension": N_("hypertension"),
    "hypotension": N_("hypotension"),
    "hypothyroidism": N_("hypothyroidism"),
    "insomnia": N_("insomnia"),
    "irregular_heartbeat": N_("irregular heartbeat"),
    "kidney_failure": N_("kidney failure"),
    "kidney_transplant": N_("kidney transplant"),
    "lactation": N_("breastfeeding"),
    "lethargy": N_("lethargy"),
    "magnesium_already_taken": N_("magnesium already taken"),
    "migraine": N_("migraine"),
    "muscle_cramps": N_("muscle cramps"),
    "muscle_spasm": N_("muscle spasm"),
    "muscle_weakness": N_("muscle weakness"),
    "myasthenia_gravis": N_("myasthenia gravis"),
    "nausea": N_("nausea"),
    "neuropathy": N_("neuropathy"),
    "osteoporosis": N_("osteoporosis"),
    "palpitations": N_("palpitations"),
    "pregnancy": N_("pregnancy"),
    "reduced_reflexes": N_("reduced reflexes"),
    "seizure": N_("seizure"),
    "seizure_history": N_("history of seizures"),
    "short_bowel_syndrome": N_("short bowel syndrome"),
    "tetany": N_("tetany"),
    "tremor": N_("tremor"),
    "ulcerative_colitis": N_("ulcerative colitis"),
}


def words(value: Any) -> str:
    """A vocabulary value in words ('ppi' -> 'proton pump inhibitor', Dutch 'protonpompremmer'; a code not in
    VOCABULARY_WORDS with spaces for underscores; a list joined)."""
    if isinstance(value, list | tuple):
        return ", ".join(words(v) for v in value)
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, str) and value in VOCABULARY_WORDS:
        return _(VOCABULARY_WORDS[value])
    return str(value).replace("_", " ")


# --- the page's language -----------------------------------------------------------------------------------------


def localized(item: dict[str, Any], name: str, language: str) -> Any:
    """`item[name]` in the page's language: `<name>_nl` when the page is Dutch and the result has it, else `name`."""
    if language == "nl" and item.get(f"{name}_nl") is not None:
        return item[f"{name}_nl"]
    return item.get(name)


# --- ids in words ------------------------------------------------------------------------------------------------


@functools.cache
def _catalogue() -> Ruleset | None:
    """The newest published ruleset, for finding titles a version older than the catalogue lacks (v1)."""
    try:
        return rulesets.load()
    except RulesetError:
        return None


def title(ruleset: Ruleset, finding_id: str, language: str) -> str:
    """A finding's catalogue title: the case's version's, else the newest published one's (ids are stable)."""
    if finding_id in ruleset.raw.get("findings", {}):
        return ruleset.finding_title(finding_id, language)
    newest = _catalogue()
    return newest.finding_title(finding_id, language) if newest is not None else finding_id


def upper_limit_row(ruleset: Ruleset, rule_id: str) -> dict[str, Any] | None:
    """The upper-limit row behind an upper-limit rule id (UL_EU_4_PLUS, UL_EU_4_PLUS_EXCEEDED), or None."""
    rows = {r.get("id"): r for r in ruleset.raw.get("upper_limits", []) if isinstance(r, dict)}
    for suffix in sorted(UL_SUFFIXES, key=len, reverse=True):
        if rule_id.endswith(suffix) and rule_id[: len(rule_id) - len(suffix)] in rows:
            return rows[rule_id[: len(rule_id) - len(suffix)]]
    return None


def upper_limit_words(row: dict[str, Any]) -> str:
    """An upper-limit row in words: 'EU upper limit for age 4+: 250 mg/day'."""
    low, below = row.get("age_min_years"), row.get("age_below_years")
    if below is None:
        ages = _("age %(low)s+", low=plain(low))
    elif isinstance(below, int) and isinstance(low, int):
        ages = _("ages %(low)s-%(high)s", low=low, high=below - 1)
    else:
        ages = _("ages %(low)s to under %(high)s", low=plain(low), high=plain(below))
    return _(
        "%(where)s upper limit for %(ages)s: %(ul)s mg/day",
        where=row.get("jurisdiction"),
        ages=ages,
        ul=mg(row["ul_mg"]),
    )


def reason_words(ruleset: Ruleset, key: str, language: str) -> str:
    """A cap's or a physician's reason in words: a finding's title, an upper-limit row, or what URGENT means."""
    special = {
        "URGENT": _("urgent physician review"),
        "NO_UPPER_LIMIT": _("no upper limit applies at this age"),
    }
    if key in special:
        return special[key]
    row = upper_limit_row(ruleset, key)
    if row is not None:
        return upper_limit_words(row)
    rule = next((r for r in ruleset.rules if r.id == key), None)
    finding = str(rule.then["finding"]) if rule is not None and rule.then.get("finding") else key
    found = title(ruleset, finding, language)
    return found if found != finding else key.replace("_", " ").lower()


def ids_in_words(text: str, ruleset: Ruleset, language: str) -> str:
    """Engine text with finding, rule and upper-limit ids replaced by their words."""
    known = set(ruleset.raw.get("findings", {})) | {r.id for r in ruleset.rules} | {"URGENT", "NO_UPPER_LIMIT"}
    return IDS.sub(lambda m: reason_words(ruleset, m.group(0), language) if m.group(0) in known else m.group(0), text)


# --- the patient summary -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lab:
    """One lab value as the page shows it (None values read 'not given')."""

    value: str | None
    date: str | None = None
    status: str | None = None
    how: str | None = None
    category: str | None = None


@dataclass(frozen=True)
class Medication:
    """One medication line as recognised."""

    text: str
    ingredient: str | None  # None: not recognised
    classes: str


@dataclass(frozen=True)
class Summary:
    """Who the patient is and the values the rules read, in words."""

    age: str
    sex: str
    pregnancy: str
    jurisdiction: str
    egfr: Lab
    magnesium: Lab
    supplement: str
    medications: list[Medication]
    conditions: list[str]
    notes: list[str]


def intake_record(intake: Any, ruleset: Ruleset) -> dict[str, Any]:
    """The intake as a record (a FHIR Bundle mapped as the import mapped it); empty when it cannot be read."""
    if fhir.is_bundle(intake):
        try:
            return fhir.bundle_to_record(intake, ruleset=ruleset)
        except RecordError:
            return {}
    return intake if isinstance(intake, dict) else {}


def entered_magnesium(record: dict[str, Any]) -> tuple[float, str] | None:
    """The serum magnesium as entered: (value, canonical unit), or None when not a plain number with a known unit."""
    entry = record.get("serum_magnesium")
    if not isinstance(entry, dict):
        return None
    value, unit = entry.get("value"), entry.get("unit")
    if isinstance(value, str):
        value = _number_text(value)
    canonical = units.canonical_unit(unit) if isinstance(unit, str) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or canonical not in units.MAGNESIUM_UNITS:
        return None
    return float(value), str(canonical)


def _number_text(text: str) -> float | None:
    try:
        return float(text.strip().replace(",", "."))
    except ValueError:
        return None


def magnesium_text(mmol_l: float, entered: tuple[float, str] | None) -> str:
    """'4.6 mg/dL (1.89 mmol/L)' in the unit entered and in mmol/L; mmol/L alone when entered so."""
    in_mmol = f"{decimals(mmol_l, 2)} mmol/L"
    if entered is None or entered[1] == "mmol/L":
        return in_mmol
    value, unit = entered
    if abs(units.magnesium_to_mmol_l(value, unit) - mmol_l) > 0.001:  # read as a bound: the value used differs
        return in_mmol
    return f"{plain(value)} {unit} ({in_mmol})"


def creatinine_text(mg_dl: Any, record: dict[str, Any]) -> str:
    """'80 µmol/L (0.90 mg/dL)' in the unit entered and in mg/dL; mg/dL alone when entered so."""
    in_mg_dl = f"{plain(mg_dl)} mg/dL"
    entry = record.get("serum_creatinine")
    if not isinstance(entry, dict) or not isinstance(mg_dl, int | float):
        return in_mg_dl
    value, unit = entry.get("value"), entry.get("unit")
    canonical = units.canonical_unit(unit) if isinstance(unit, str) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or canonical in (None, "mg/dL"):
        return in_mg_dl
    if abs(units.creatinine_to_mg_dl(float(value), str(canonical)) - mg_dl) > 0.001:
        return in_mg_dl
    return f"{plain(value)} {unit} ({decimals(mg_dl, 2)} mg/dL)"


def _egfr(patient: dict[str, Any], record: dict[str, Any]) -> Lab:
    value = patient.get("egfr_ml_min_1_73m2")
    if value is None:
        return Lab(None)
    if patient.get("egfr_source") == "ckd_epi_2021":
        creatinine = creatinine_text(patient.get("creatinine_mg_dl"), record)
        how = _("CKD-EPI 2021 from creatinine %(value)s", value=creatinine)
        date, status = patient.get("creatinine_date"), patient.get("creatinine_status")
    else:
        how = _("reported by the lab")
        date, status = patient.get("egfr_date"), patient.get("egfr_status")
    shown = patient.get("egfr_as_reported") or one_decimal(value)
    return Lab(f"{shown} mL/min/1.73 m²", _day(date), status, how, patient.get("kdigo_category"))


def _magnesium(patient: dict[str, Any], record: dict[str, Any]) -> Lab:
    value = patient.get("serum_mg_mmol_l")
    if value is None:
        return Lab(None)
    text = magnesium_text(value, entered_magnesium(record))
    if patient.get("serum_mg_as_reported"):
        text = _("%(value)s as reported, read as %(read)s", value=patient["serum_mg_as_reported"], read=text)
    return Lab(text, _day(patient.get("serum_mg_date")), patient.get("serum_mg_status"))


def _day(date: Any) -> str | None:
    return str(date)[:10] if date else None


def _pregnancy(patient: dict[str, Any]) -> str:
    if patient.get("pregnant"):
        return _("pregnant")
    if patient.get("lactating"):
        return _("breastfeeding")
    if patient.get("sex") == "male":
        return "—"
    return _("not pregnant or breastfeeding (as given)")


def _supplement(patient: dict[str, Any]) -> str:
    if not patient.get("supplement_requested"):
        return _("none requested")
    form = patient.get("supplement_form_text") or patient.get("supplement_form") or _("form not given")
    dose = patient.get("supplement_dose_elemental_mg")
    if dose is None:
        return _("%(form)s, dose not given", form=form)
    return _("%(form)s, %(dose)s mg elemental magnesium a day", form=form, dose=mg(dose))


def _medications(facts: dict[str, Any]) -> list[Medication]:
    out = []
    for m in facts.get("medications", []):
        recognised = m.get("matched_by") != "unrecognized"
        classes = words([c for c in m.get("classes", []) if c != "unrecognized"])
        out.append(Medication(str(m.get("text", "")), m.get("ingredient") if recognised else None, classes))
    return out


def _conditions(facts: dict[str, Any]) -> list[str]:
    out = []
    for c in facts.get("concepts", []):
        concepts = words(c.get("concepts", [])) or _("not recognised")
        line = f"{c.get('text')} → {concepts}"
        if c.get("negated"):
            line += " " + _("(negated: %(what)s)", what=words(c["negated"]))
        out.append(line)
    return out


def summary(result: dict[str, Any], record: dict[str, Any]) -> Summary:
    """The patient summary of a stored result; `record` is the intake as a record (for the units entered)."""
    facts = result.get("facts", {})
    patient = facts.get("patient", {})
    sexes = {"female": _("female"), "male": _("male")}
    return Summary(
        age=_("%(age)s years", age=plain(patient.get("age_years"))),
        sex=sexes.get(patient.get("sex", ""), _("not given")),
        pregnancy=_pregnancy(patient),
        jurisdiction=str(patient.get("jurisdiction", "")),
        egfr=_egfr(patient, record),
        magnesium=_magnesium(patient, record),
        supplement=_supplement(patient),
        medications=_medications(facts),
        conditions=_conditions(facts),
        notes=list(facts.get("notes", [])),
    )


# --- findings ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRow:
    """One row of a finding's evidence table."""

    rule: str
    what: str
    value: str


@dataclass(frozen=True)
class FindingView:
    """One finding as a card: title, severity, message, the values against their thresholds, evidence, sources."""

    id: str
    title: str
    severity: str
    message: str
    unverified: bool
    against: list[str]
    evidence: list[EvidenceRow]
    sources: list[tuple[str, str]]  # (tag, short citation)


def value_text(fact: str, value: Any, record: dict[str, Any]) -> str:
    """A patient's value with its unit, serum magnesium in the unit entered as well."""
    label, unit, fmt = field_words(fact)
    if fact == "patient.serum_mg_mmol_l" and isinstance(value, int | float):
        return magnesium_text(value, entered_magnesium(record))
    if isinstance(value, list | tuple | bool) or not isinstance(value, int | float):
        return words(value)
    return f"{fmt(value)} {unit}".strip()


def _comparison(item: dict[str, Any]) -> str | None:
    """'is at or above 1.74 mmol/L' for a numeric condition on a patient value, else None."""
    fact, op, value, threshold = item.get("fact", ""), item.get("op"), item.get("value"), item.get("threshold")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (value, threshold))
    if not str(fact).startswith("patient.") or op not in NUMERIC_OPS or not numbers:
        return None
    _label, unit, fmt = field_words(str(fact))
    return f"{_op_words()[str(op)]} {_threshold(threshold, fmt)} {unit}".strip()


def against_thresholds(items: list[dict[str, Any]], record: dict[str, Any]) -> list[str]:
    """'Serum magnesium 4.6 mg/dL (1.89 mmol/L) is at or above 1.74 mmol/L': one sentence per patient value, the
    two ends of a range joined ('is at or above 0.50 mmol/L and is below 0.75 mmol/L')."""
    found: dict[tuple[str, Any], list[str]] = {}
    for item in items:
        comparison = _comparison(item)
        if comparison is not None:
            said = found.setdefault((str(item["fact"]), item["value"]), [])
            if comparison not in said:
                said.append(comparison)
    out = []
    for (fact, value), comparisons in found.items():
        label = field_words(fact)[0]
        out.append(_sentence(f"{label} {value_text(fact, value, record)} {_(' and ').join(comparisons)}"))
    return out


def _sentence(text: str) -> str:
    """A sentence starting with a capital (eGFR keeps its small e)."""
    return text if text.startswith("eGFR") else text[:1].upper() + text[1:]


def _threshold(value: Any, fmt: Any) -> str:
    """A ruleset threshold as written (30, not 30.0); fractional ones in the fact's format (1.74)."""
    return str(value) if isinstance(value, int) else str(fmt(value))


def _evidence_items(items: list[Any]) -> list[dict[str, Any]]:
    """Evidence facts, a derived fact's causes after it."""
    out = []
    for item in items:
        if isinstance(item, dict):
            out.append(item)
            out += _evidence_items(item.get("because", []))
    return out


def _evidence_row(rule: str, item: dict[str, Any], record: dict[str, Any]) -> EvidenceRow:
    if "fact" not in item:  # a note beside the facts (an unverified threshold, how an amount was read)
        return EvidenceRow(rule, _("note"), "; ".join(str(v) for v in item.values()))
    fact = str(item["fact"])
    if fact.startswith("derived."):
        by = item.get("derived_by")
        return EvidenceRow(rule, words(fact.partition(".")[2]), _("derived by %(rule)s", rule=by) if by else "")
    label, unit, fmt = field_words(fact)
    value = value_text(fact, item.get("value"), record)
    if item.get("as_written"):
        value = f"{item['as_written']} → {value}"
    if item.get("op") in (*NUMERIC_OPS, "in") and "threshold" in item:  # equality and list tests say nothing more
        threshold = item["threshold"]
        numeric = isinstance(threshold, int | float) and not isinstance(threshold, bool)
        limit = f"{_threshold(threshold, fmt)} {unit}".strip() if numeric else words(threshold)
        value += f" ({_op_words()[str(item['op'])]} {limit})"
    return EvidenceRow(rule, label, value)


def short_citation(text: str, limit: int = 120) -> str:
    """A source's citation without its tag and markdown, cut at a word near `limit` characters."""
    plain_text = LEADING_TAGS.sub("", text).replace("**", "").replace("*", "")
    if len(plain_text) <= limit:
        return plain_text
    return plain_text[:limit].rsplit(" ", 1)[0] + " …"


def finding_view(finding: dict[str, Any], ruleset: Ruleset, record: dict[str, Any], language: str) -> FindingView:
    """One finding of a stored result as the page shows it."""
    rows: list[EvidenceRow] = []
    items: list[dict[str, Any]] = []
    for entry in finding.get("evidence", []):
        for item in _evidence_items(entry.get("facts", [])):
            items.append(item)
            rows.append(_evidence_row(str(entry.get("rule", "")), item, record))
    against = against_thresholds(items, record)
    return FindingView(
        id=finding["id"],
        title=title(ruleset, finding["id"], language),
        severity=finding.get("severity", ""),
        message=str(localized(finding, "message", language) or ""),
        unverified=finding.get("confidence") == "U",
        against=against,
        evidence=rows,
        sources=[(s, short_citation(ruleset.sources.get(s, ""))) for s in finding.get("sources", [])],
    )


# --- the plan and its bottom line --------------------------------------------------------------------------------


def separation_words(s: dict[str, Any]) -> str:
    """'levothyroxine: at least 4 h before or 4 h after magnesium'."""
    before, after = s.get("drug_before_mg_h"), s.get("drug_after_mg_h")
    drug = s.get("drug", "")
    if before is not None and after is not None:
        return _(
            "%(drug)s: at least %(before)s h before or %(after)s h after magnesium",
            drug=drug,
            before=plain(before),
            after=plain(after),
        )
    if before is not None:
        return _("%(drug)s: at least %(before)s h before magnesium", drug=drug, before=plain(before))
    if after is not None:
        return _("%(drug)s: at least %(after)s h after magnesium", drug=drug, after=plain(after))
    return str(drug)


def _apart(s: dict[str, Any]) -> str:
    """A separation inside the bottom line: '4 h apart from levothyroxine'."""
    before, after = s.get("drug_before_mg_h"), s.get("drug_after_mg_h")
    if before is not None and before == after:
        return _("%(h)s h apart from %(drug)s", h=plain(before), drug=s.get("drug"))
    return _(
        "%(drug)s at least %(before)s h before or %(after)s h after magnesium",
        drug=s.get("drug"),
        before=plain(before if before is not None else 0),
        after=plain(after if after is not None else 0),
    )


def physician_reasons(plan: dict[str, Any], ruleset: Ruleset, language: str) -> list[str]:
    """Why a physician decides, in words (finding titles; URGENT excluded: it has its own sentence)."""
    keys = [k for k in plan.get("physician_decides_because") or [] if k != "URGENT"]
    if not keys and plan.get("cap_set_by") not in (None, "URGENT"):
        keys = [str(plan["cap_set_by"])]
    return list(dict.fromkeys(reason_words(ruleset, k, language) for k in keys))


def bottom_line(plan: dict[str, Any], ruleset: Ruleset, language: str) -> str:
    """The plan in one sentence: 'Do not start magnesium: urgent physician review.' / 'Up to 250 mg ... a day ...'."""
    if plan.get("supplement") != "yes" or not plan.get("max_elemental_mg_per_day"):
        if plan.get("urgent"):
            return _("Do not start magnesium: urgent physician review.")
        reasons = physician_reasons(plan, ruleset, language)
        if reasons:
            return _("Do not start magnesium: a physician decides (%(why)s).", why="; ".join(reasons))
        return _("Do not start magnesium.")
    doses = int(plan.get("doses_per_day") or 1)
    line: str = ngettext(
        "Up to %(cap)s mg elemental magnesium a day in %(num)d dose",
        "Up to %(cap)s mg elemental magnesium a day in %(num)d doses",
        doses,
        cap=mg(plan["max_elemental_mg_per_day"]),
    )
    apart = [_apart(s) for s in plan.get("separations", [])]
    if apart:
        line += ", " + "; ".join(apart)
    if plan.get("requires_physician"):
        line += "; " + _("a physician approves first")
    return line + "."


@dataclass(frozen=True)
class Monitoring:
    """One monitoring line and the source tags it cites."""

    text: str
    sources: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PlanView:
    """The suggested plan in words; no advice for taking magnesium when none is proposed."""

    proposed: bool
    form: str | None
    cap: str | None
    cap_reason: str | None
    doses_per_day: int
    separations: list[str]
    monitoring: list[Monitoring]
    physician: str
    urgent: bool
    ceiling: str | None  # no magnesium proposed: what a physician may allow
    ceiling_reason: str | None
    cap_arithmetic: str | None


def _monitoring(line: str) -> Monitoring:
    return Monitoring(SOURCE_TAGS.sub("", line).strip(), SOURCE_TAGS.findall(line))


def _physician(plan: dict[str, Any], ruleset: Ruleset, language: str) -> str:
    proposed = plan.get("supplement") == "yes" and bool(plan.get("max_elemental_mg_per_day"))
    default = "approves" if proposed and plan.get("requires_physician") else "none" if proposed else "decides"
    physician = plan.get("physician") or default  # results before the plan contract (v1) do not say
    if physician == "decides":
        reasons = physician_reasons(plan, ruleset, language)
        if plan.get("urgent"):
            reasons = [_("urgent"), *reasons]
        return _("a physician decides (%(why)s)", why="; ".join(reasons)) if reasons else _("a physician decides")
    if physician == "approves" or plan.get("requires_physician"):
        return _("a physician approves the plan")
    return _("not needed")


def _ceiling_reason(plan: dict[str, Any], ruleset: Ruleset, language: str) -> str | None:
    """What allows the ceiling once a physician agrees: the upper-limit row in words, else the engine's reason."""
    for token in IDS.findall(str(plan.get("ceiling_reason") or "")):
        row = upper_limit_row(ruleset, token)
        if row is not None:
            return upper_limit_words(row)
    reason = localized(plan, "ceiling_reason", language)
    return ids_in_words(str(reason), ruleset, language) if reason else None


def plan_view(plan: dict[str, Any], ruleset: Ruleset, language: str) -> PlanView:
    """The suggested plan of a stored result as the page shows it."""
    proposed = plan.get("supplement") == "yes" and bool(plan.get("max_elemental_mg_per_day"))
    ceiling = plan.get("ceiling_if_physician_agrees_mg_per_day")
    reason = _ceiling_reason(plan, ruleset, language) if not proposed and ceiling else None
    monitoring = localized(plan, "monitoring", language) or []
    cap_set_by = str(plan.get("cap_set_by") or "")
    return PlanView(
        proposed=proposed,
        form=plan.get("form") if proposed else None,
        cap=mg(plan["max_elemental_mg_per_day"]) if proposed else None,
        cap_reason=reason_words(ruleset, cap_set_by, language) if proposed and cap_set_by else None,
        doses_per_day=int(plan.get("doses_per_day") or 0) if proposed else 0,
        separations=[separation_words(s) for s in plan.get("separations", [])] if proposed or ceiling else [],
        monitoring=[_monitoring(m) for m in monitoring] if proposed else [],
        physician=_physician(plan, ruleset, language),
        urgent=bool(plan.get("urgent")),
        ceiling=mg(ceiling) if not proposed and ceiling else None,
        ceiling_reason=reason,
        cap_arithmetic=plan.get("cap_arithmetic"),
    )


# --- the whole page ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CasePage:
    """Everything the top of the case page shows, from the summary down to the suggested plan."""

    summary: Summary
    bottom_line: str
    findings: list[FindingView]
    plan: PlanView


def case_page(result: dict[str, Any], intake: Any, ruleset: Ruleset, language: str) -> CasePage | None:
    """The case page's view model of a stored evaluation (None for a result that is not an evaluation)."""
    if result.get("status") != "ok":
        return None
    record = intake_record(intake, ruleset)
    plan = result.get("plan", {})
    return CasePage(
        summary=summary(result, record),
        bottom_line=bottom_line(plan, ruleset, language),
        findings=[finding_view(f, ruleset, record, language) for f in result.get("findings", [])],
        plan=plan_view(plan, ruleset, language),
    )

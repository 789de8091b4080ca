"""What a clinician triages a case by, read from its stored result: patient, kidney function, serum magnesium,
the dose asked for and the cap proposed, and the most severe finding in words; in the page's language."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask_babel import format_decimal, get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from review_ui import decisions, reimport
from review_ui.intake import evaluator
from review_ui.models import Case

NONE = "—"

SEVERITY_LABELS = {
    "contraindicated": _l("contraindicated"),
    "major": _l("major"),
    "moderate": _l("moderate"),
    "minor": _l("minor"),
    "info": _l("info"),
    "none": _l("no findings"),
}
FACT_LABELS = {
    "age_years": _l("age (years)"),
    "sex": _l("sex"),
    "pregnant": _l("pregnant"),
    "lactating": _l("breastfeeding"),
    "egfr_ml_min_1_73m2": _l("eGFR (mL/min/1.73 m²)"),
    "serum_mg_mmol_l": _l("serum magnesium (mmol/L)"),
    "supplement_form": _l("magnesium form"),
    "supplement_dose_mg_as_entered": _l("dose as entered (mg)"),
    "supplement_dose_elemental_mg": _l("dose (mg elemental)"),
    "total_supplemental_mg_per_day": _l("total supplemental magnesium (mg/day)"),
    "jurisdiction": _l("jurisdiction"),
}
SEX_LABELS = {"female": _l("female"), "male": _l("male")}


def fact_label(fact: str) -> str:
    """A normalised fact's name in the page's language (the key itself, spaced, for facts without a label)."""
    return str(FACT_LABELS.get(fact, fact.replace("_", " ")))


def severity_label(severity: str) -> str:
    """A severity in the page's language."""
    return str(SEVERITY_LABELS.get(severity, severity))


def status_label(status: str) -> str:
    """A case status in the page's language (the words are declared with the decisions)."""
    return decisions.status_word(status)


def _number(value: Any, places: int) -> str:
    """A measured value to `places` decimals, with the page language's decimal sign (41.5; Dutch 41,5)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NONE
    return str(format_decimal(round(value, places), format="0." + "0" * places))


def _whole(value: Any) -> str:
    """An amount in mg: whole milligrams unless it has a fraction (12.5; Dutch 12,5)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return NONE
    return str(int(value)) if float(value).is_integer() else _number(value, 1)


def age_sex(patient: dict[str, Any]) -> str:
    """`42 y, female` (Dutch `42 jr, vrouw`); a dash for what the intake did not say."""
    age = patient.get("age_years")
    shown_age = _("%(age)s y", age=_whole(age)) if isinstance(age, int | float) else NONE
    sex = patient.get("sex")
    return f"{shown_age}, {SEX_LABELS.get(sex, sex) if sex else NONE}"


def proposed_cap(plan: dict[str, Any]) -> str:
    """The dose cap the engine proposes (mg elemental a day), or that it proposes no magnesium."""
    if plan.get("supplement") == "no":
        return str(_("no magnesium"))
    return _whole(plan.get("max_elemental_mg_per_day"))


@dataclass(frozen=True)
class Row:
    """One worklist line."""

    case: Case
    age_sex: str
    egfr: str
    serum_mg: str
    requested: str
    cap: str
    top_title: str
    top_severity: str
    more: int

    @property
    def severity_label(self) -> str:
        """The top finding's severity in words."""
        return severity_label(self.top_severity)

    @property
    def status_label(self) -> str:
        """The case's status in words."""
        return status_label(self.case.status)


def row(case: Case, title: Callable[[str], str]) -> Row:
    """A case as the worklist shows it; `title` names a finding id in the page's language."""
    result = case.result or {}
    patient = (result.get("facts") or {}).get("patient") or {}
    plan = result.get("plan") or {}
    findings = result.get("findings") or []  # most severe first, info-level findings included
    top = findings[0] if findings else None
    return Row(
        case=case,
        age_sex=age_sex(patient),
        egfr=_number(patient.get("egfr_ml_min_1_73m2"), 1),
        serum_mg=_number(patient.get("serum_mg_mmol_l"), 2),
        requested=_whole(plan.get("requested_elemental_mg_per_day")),
        cap=proposed_cap(plan) if result.get("status") == "ok" else NONE,
        top_title=title(top["id"]) if top else _("no findings"),
        top_severity=top["severity"] if top else "none",
        more=max(0, len(findings) - 1),
    )


def change_line(change: dict[str, Any]) -> str:
    """One stored change as a clinician reads it: findings by title, intake facts by name, else the engine's line."""
    if change.get("kind") == "finding" and change.get("finding"):
        title = evaluator().ruleset.finding_title(change["finding"], str(get_locale() or "en"))
        old, new = change.get("old"), change.get("new")
        if old is None or new is None:
            return f"{'+' if old is None else '-'} {title} ({severity_label(str(new or old))})"
        return f"~ {title}: {severity_label(old)} → {severity_label(new)}"
    if change.get("kind") == reimport.INTAKE and change.get("fact"):
        return f"~ {fact_label(change['fact'])}: {change['old']} → {change['new']}"
    return str(change.get("text", ""))

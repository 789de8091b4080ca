"""The printed patient plan: what a patient takes, when, what to keep apart, what to watch, who signed it.

Written from the final plan of the case's latest signed decision (never the engine's suggestion), in the language
of whoever calls it: the plan page renders it under `force_locale(the patient's language)`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import flask_babel
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from engine import schedule as schedules
from review_ui.db import db
from review_ui.models import Case, Decision, User

PRINTABLE_STATUSES = ("approved", "adjusted")

# The forms the rulesets know (vocabulary.forms), as a patient reads them on a pack.
FORM_NAMES = {
    "aspartate": _l("magnesium aspartate"),
    "carbonate": _l("magnesium carbonate"),
    "chloride": _l("magnesium chloride"),
    "citrate": _l("magnesium citrate"),
    "gluconate": _l("magnesium gluconate"),
    "glycerophosphate": _l("magnesium glycerophosphate"),
    "glycinate": _l("magnesium bisglycinate"),
    "hydroxide": _l("magnesium hydroxide"),
    "lactate": _l("magnesium lactate"),
    "malate": _l("magnesium malate"),
    "orotate": _l("magnesium orotate"),
    "oxide": _l("magnesium oxide"),
    "pidolate": _l("magnesium pidolate"),
    "sulfate": _l("magnesium sulfate"),
    "taurate": _l("magnesium taurate"),
    "threonate": _l("magnesium threonate"),
}
SOURCE_TAGS = re.compile(r"\s*\[S\w+\]")


def _(text: str, **variables: Any) -> str:
    """gettext in the current (forced) locale, typed: Flask-Babel ships no type hints."""
    return str(flask_babel.gettext(text, **variables))


def ngettext(singular: str, plural: str, num: float, **variables: Any) -> str:
    """ngettext in the current (forced) locale, typed."""
    # Plural rules take whole numbers; a fraction (1.5 hours) takes the plural form in English and Dutch.
    count = int(num) if float(num).is_integer() else 2
    return str(flask_babel.ngettext(singular, plural, count, **variables))


@dataclass(frozen=True)
class ScheduleLine:
    """One time of the patient's day and what to take then; `assumed` when the time is a usual one, not theirs."""

    time: str
    what: str
    assumed: bool = False


@dataclass(frozen=True)
class PatientSheet:
    """The sentences of a printed plan, in the language it was built in."""

    language: str
    patient_ref: str
    takes_magnesium: bool
    what: list[str]
    schedule: list[ScheduleLine] = field(default_factory=list)
    schedule_note: str = ""  # why there is no fixed schedule, when there is none
    apart: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)  # what the patient comes back for
    signed: str = ""


# --- which decision is printed -------------------------------------------------------------------


def printable_decision(case: Case) -> Decision | None:
    """The latest signed decision, when it approved or adjusted the plan (it then carries the final plan)."""
    if case.status not in PRINTABLE_STATUSES or not case.decisions:
        return None
    latest = max(case.decisions, key=lambda d: d.id)
    return latest if latest.final_plan is not None else None


def why_not_printable(case: Case) -> str:
    """Why a case has no plan to print, in the page's language."""
    if case.status == "pending":
        return _(
            "Case %(ref)s has no signed decision yet: a plan is printed only once a clinician has approved or "
            "adjusted it.",
            ref=case.patient_ref,
        )
    if case.status == "rejected":
        return _("The plan of case %(ref)s was rejected: there is no plan to give the patient.", ref=case.patient_ref)
    if case.status == "referred":
        return _(
            "Case %(ref)s was referred to a physician, who decides: there is no approved plan to print.",
            ref=case.patient_ref,
        )
    return _("Case %(ref)s has no approved or adjusted plan, so there is nothing to print.", ref=case.patient_ref)


# --- the sheet -----------------------------------------------------------------------------------


def sheet(case: Case, decision: Decision, language: str) -> PatientSheet:
    """The patient's plan from the decision's final plan, in the current (forced) locale."""
    plan, suggested = decision.final_plan or {}, decision.suggested_plan or {}
    cap = plan.get("max_elemental_mg_per_day")
    takes = plan.get("supplement") == "yes" and (cap is None or cap > 0)  # no cap: the doctor sets the amount
    drugs = _drug_labels(case.result)
    schedule, note = _schedule_lines(plan, suggested, drugs) if takes else ([], "")
    return PatientSheet(
        language=language,
        patient_ref=case.patient_ref,
        takes_magnesium=takes,
        what=_what_to_take(plan) if takes else _no_magnesium(plan),
        schedule=schedule,
        schedule_note=note,
        apart=[_separation(s, drugs) for s in plan.get("separations") or []] if takes else [],
        checks=_checks(plan, suggested, language),
        signed=_signed(decision),
    )


def _number(value: float) -> str:
    """A number as the patient's language writes it (250, 1,5 in Dutch)."""
    return str(flask_babel.format_decimal(value, format="#,##0.#"))


def hours(value: float) -> str:
    """`4 hours` / `4 uur`."""
    return ngettext("%(n)s hour", "%(n)s hours", value, n=_number(value))


def form_name(plan: dict[str, Any]) -> str:
    """The form to take as a patient reads it; a form typed in an adjustment is shown as typed."""
    form = str(plan.get("form") or "").strip()
    if not form:
        return _("a magnesium supplement")
    key = form.lower().removeprefix("magnesium").strip()
    return str(FORM_NAMES[key]) if key in FORM_NAMES else form


def per_dose_mg(plan: dict[str, Any]) -> float | None:
    """The most to take at one time: the daily cap shared over the doses, rounded down to a whole mg."""
    cap, doses = plan.get("max_elemental_mg_per_day"), plan.get("doses_per_day") or 1
    if not cap:
        return None
    share = float(cap) / int(doses)
    return share if share.is_integer() else float(math.floor(share))


def _what_to_take(plan: dict[str, Any]) -> list[str]:
    cap, doses = plan.get("max_elemental_mg_per_day"), int(plan.get("doses_per_day") or 1)
    form = form_name(plan)
    if not cap:
        return [_("Take %(form)s in the amount your doctor sets.", form=form)]
    amount = ngettext(
        "Take %(form)s: no more than %(mg)s mg of elemental magnesium a day, in one dose.",
        "Take %(form)s: no more than %(mg)s mg of elemental magnesium a day, split into %(num)s doses of at most "
        "%(dose)s mg each.",
        doses,
        form=form,
        mg=_number(float(cap)),
        dose=_number(per_dose_mg(plan) or 0),
    )
    return [
        amount,
        _(
            "Elemental magnesium is the amount of magnesium itself: the label says how much one tablet, capsule or "
            "sachet contains."
        ),
    ]


def _no_magnesium(plan: dict[str, Any]) -> list[str]:
    lines = [_("Do not take a magnesium supplement for now.")]
    if plan.get("requires_physician"):
        lines.append(_("Your doctor decides whether magnesium is right for you."))
    return lines


def _drug_labels(result: dict[str, Any]) -> dict[str, str]:
    """Each recognised medicine by its ingredient, with the name the patient gave when it is another (a brand)."""
    labels: dict[str, str] = {}
    for med in (result.get("facts") or {}).get("medications") or []:
        ingredient, text = str(med.get("ingredient") or ""), str(med.get("text") or "")
        if ingredient and ingredient not in labels:
            named = text.lower().startswith(ingredient.lower()) or not text
            labels[ingredient] = ingredient if named else f"{ingredient} ({text})"
    return labels


def _separation(separation: dict[str, Any], drugs: dict[str, str]) -> str:
    """One window in plain words: take the drug so long before or after magnesium."""
    drug = drugs.get(str(separation.get("drug")), str(separation.get("drug")))
    before, after = separation.get("drug_before_mg_h"), separation.get("drug_after_mg_h")
    if before is not None and after is not None:
        return _(
            "Take %(drug)s at least %(before)s before or %(after)s after magnesium.",
            drug=drug,
            before=hours(before),
            after=hours(after),
        )
    if before is not None:
        return _("Take %(drug)s at least %(hours)s before magnesium.", drug=drug, hours=hours(before))
    if after is not None:
        return _("Take %(drug)s at least %(hours)s after magnesium.", drug=drug, hours=hours(after))
    return _("Ask your pharmacist how much time to keep between %(drug)s and magnesium.", drug=drug)


def _final_schedule(plan: dict[str, Any], suggested: dict[str, Any]) -> dict[str, Any] | None:
    """The final plan's daily schedule: the engine's own when the decision kept its doses and windows, else one
    computed again for the final plan (the times given in the record kept)."""
    kept = all(plan.get(k) == suggested.get(k) for k in ("doses_per_day", "separations"))
    if kept and plan.get("schedule") is not None:
        return dict(plan["schedule"])
    given: dict[str, list[str]] = {}
    for entry in (plan.get("schedule") or suggested.get("schedule") or {}).get("entries") or []:
        if entry.get("kind") == "drug" and entry.get("time_given"):
            given.setdefault(str(entry["drug"]), []).append(str(entry["time"]))
    try:
        day = schedules.schedule_for_plan(plan, given)
    except schedules.ScheduleError:
        return {"status": "conflict", "drugs": [], "reason": "no_hours"}
    return day.to_dict() if day is not None else None


def _schedule_lines(
    plan: dict[str, Any], suggested: dict[str, Any], drugs: dict[str, str]
) -> tuple[list[ScheduleLine], str]:
    day = _final_schedule(plan, suggested)
    if day is None:
        return [], ""
    if day.get("status") != "ok":
        return [], _(
            "Your medicines cannot all be kept apart on one fixed schedule: your pharmacist sets the times with you."
        )
    dose = per_dose_mg(plan)
    form = form_name(plan)
    lines = []
    for entry in day.get("entries") or []:
        if entry.get("kind") == "magnesium":
            what = _("%(form)s, at most %(mg)s mg", form=form, mg=_number(dose)) if dose else form
            lines.append(ScheduleLine(str(entry["time"]), what))
            continue
        drug = drugs.get(str(entry.get("drug")), str(entry.get("drug")))
        if entry.get("note") == schedules.FASTING:
            drug = _("%(drug)s, on waking, on an empty stomach", drug=drug)
        lines.append(ScheduleLine(str(entry["time"]), drug, assumed=not entry.get("time_given")))
    return lines, ""


def in_language(plan: dict[str, Any], suggested: dict[str, Any], name: str, language: str) -> Any:
    """A plan field in the patient's language: `<name>_nl` for Dutch when the ruleset gave one and the decision
    kept the engine's text (a clinician's own text is printed as written), else the field itself."""
    translated = f"{name}_{language}"
    if language != "en" and translated in plan and plan.get(name) == suggested.get(name):
        return plan[translated]
    return plan.get(name)


def _checks(plan: dict[str, Any], suggested: dict[str, Any], language: str) -> list[str]:
    """The plan's monitoring as the patient reads it: without source tags, each a sentence."""
    checks = [SOURCE_TAGS.sub("", str(m)).strip() for m in in_language(plan, suggested, "monitoring", language) or []]
    return [c[:1].upper() + c[1:] for c in checks if c]


def reviewer_name(username: str) -> str:
    """The signing clinician's full name, else the username."""
    full = db.session.execute(select(User.full_name).where(User.username == username)).scalar_one_or_none()
    return full or username


def _signed(decision: Decision) -> str:
    return _(
        "Reviewed and signed by %(name)s on %(date)s.",
        name=reviewer_name(decision.actor),
        date=flask_babel.format_date(decision.signed_at, format="long"),
    )

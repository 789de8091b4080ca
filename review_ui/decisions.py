"""What the decision part of a case page says: why an override is needed (the findings and rules behind it), what a
signed decision changed against the suggestion field by field, and which decision superseded which.

`plan_changes` is pure (no request, no database): it reads two plans through engine/impact.py's plan comparison,
the one comparison of two plans, and words each difference. Text is English outside a request (the CLI, tests
calling the workflow) and in the reader's language inside one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import has_request_context
from flask_babel import get_locale, gettext

from engine import impact
from engine import ruleset as rulesets
from engine.errors import MgReviewError
from engine.ruleset import Ruleset
from review_ui import ruleset_versions
from review_ui.models import SEVERITY_RANK, WITHDRAW, Case, Decision
from review_ui.texts import N_
from review_ui.writes import WorkflowError


def _(text: str, **values: Any) -> str:
    """Page text in the request's language; outside a request, English."""
    if has_request_context():
        return str(gettext(text, **values))
    return text % values if values else text


def language() -> str:
    """The reader's language code (`en` outside a request)."""
    locale = get_locale() if has_request_context() else None
    return locale.language if locale is not None else "en"


NONE = "—"

# How each value of a plan reads as a row of the comparison.
PLAN_LABELS = {
    "supplement": N_("Magnesium supplement"),
    "form": N_("Form"),
    "max_elemental_mg_per_day": N_("Daily elemental magnesium"),
    "doses_per_day": N_("Doses per day"),
    "requires_physician": N_("Physician must decide"),
    "physician": N_("Physician"),
    "physician_decides_because": N_("Physician decides because of"),
    "ceiling_if_physician_agrees_mg_per_day": N_("Ceiling if a physician agrees"),
    "urgent": N_("Urgent"),
}
SEVERITY_WORDS = {
    "contraindicated": N_("contraindicated"),
    "major": N_("major"),
    "moderate": N_("moderate"),
    "minor": N_("minor"),
    "info": N_("info"),
}
KIND_WORDS = {
    "approve": N_("Approved"),
    "adjust": N_("Adjusted"),
    "reject": N_("Rejected"),
    "refer": N_("Referred to a physician"),
    WITHDRAW: N_("Withdrawn"),
}
STATUS_WORDS = {
    "pending": N_("pending"),
    "approved": N_("approved"),
    "adjusted": N_("adjusted"),
    "rejected": N_("rejected"),
    "referred": N_("referred"),
}
# What a signature means, by kind, as the page shows it (the stored meaning stays in English, as signed).
MEANINGS = {
    "approve": N_("I reviewed the findings and approve the suggested plan as the responsible clinician."),
    "adjust": N_("I reviewed the findings and approve the plan as adjusted by me, for the reason given."),
    "reject": N_("I reviewed the findings and reject the suggested plan: no supplement is to be given on it."),
    "refer": N_("I reviewed the findings and refer this case to a physician, who decides."),
    WITHDRAW: N_(
        "I withdraw the signed decision: its plan is no longer to be followed, and the case is to be decided again."
    ),
}


# --- what changed against the suggestion -------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    """One field of the plan that the final plan changed: its label and both values in words."""

    field: str
    suggested: str
    final: str


def _number(value: Any) -> str:
    return impact.show(value)


def _value(key: str, value: Any) -> str:
    """A plan value as a clinician reads it."""
    if value is None or value == []:
        return NONE
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if key == "supplement":
        return {"yes": _("yes"), "no": _("no")}.get(str(value), str(value))
    if key in ("max_elemental_mg_per_day", "ceiling_if_physician_agrees_mg_per_day"):
        return _("%(mg)s mg a day", mg=_number(value))
    return impact.show(value)


def _window(hours: impact.Hours | None) -> str:
    """A separation window in words: the drug before magnesium, after it, or either."""
    if hours is None:
        return NONE
    before, after = hours
    if before is not None and after is not None:
        return _("%(before)s h before or %(after)s h after magnesium", before=_number(before), after=_number(after))
    if before is not None:
        return _("%(before)s h before magnesium", before=_number(before))
    if after is not None:
        return _("%(after)s h after magnesium", after=_number(after))
    return _("apart, hours not given")


def _day(schedule: Any) -> str:
    """A daily schedule in one line."""
    if not isinstance(schedule, dict):
        return NONE
    if schedule.get("status") != "ok":
        return _("no single day keeps every window: a pharmacist sets the times")
    magnesium = _("magnesium")
    return ", ".join(f"{e['time']} {e['drug'] or magnesium}" for e in schedule.get("entries", []))


def _row(change: impact.Change) -> FieldChange:
    if isinstance(change, impact.PlanChange):
        label = _(PLAN_LABELS.get(change.key, change.key))
        return FieldChange(label, _value(change.key, change.old), _value(change.key, change.new))
    if isinstance(change, impact.SeparationChange):
        return FieldChange(_("Keep apart from %(drug)s", drug=change.drug), _window(change.old), _window(change.new))
    if isinstance(change, impact.MonitoringChange):
        item = change.item
        return FieldChange(_("Monitoring"), NONE if change.added else item, item if change.added else NONE)
    if isinstance(change, impact.ScheduleChange):
        return FieldChange(_("Daily schedule"), _day(change.old), _day(change.new))
    raise TypeError(f"not a plan change: {change!r}")  # pragma: no cover - PLAN_PARTS yields only these


def plan_changes(suggested: dict[str, Any], final: dict[str, Any]) -> list[FieldChange]:
    """Each field the final plan changed against the suggested one, in reading order; empty: as suggested."""
    return [_row(change) for part in impact.PLAN_PARTS for change in part(suggested, final)]


# --- why an override is needed ------------------------------------------------------------------------


@dataclass(frozen=True)
class OverrideTrigger:
    """A finding that makes any change need a coded override: its title, the rules behind it, its severity."""

    finding: str
    title: str
    rules: tuple[str, ...]
    severity: str

    def text(self) -> str:
        """`Severe kidney impairment (rule RENAL_SEVERE_BY_EGFR, contraindicated)`."""
        return _(
            "%(title)s (rule %(rules)s, %(severity)s)",
            title=self.title,
            rules=", ".join(self.rules),
            severity=_(SEVERITY_WORDS.get(self.severity, self.severity)),
        )


def _rules_behind(found: dict[str, Any]) -> tuple[str, ...]:
    """The rules that made a finding: the rule that derived its fact when there is one (it says why), else the
    rule that fired."""
    derived = [
        str(fact["derived_by"])
        for evidence in found.get("evidence", [])
        for fact in evidence.get("facts", [])
        if isinstance(fact, dict) and fact.get("derived_by")
    ]
    names = derived or [str(r) for r in found.get("rules") or [e.get("rule") for e in found.get("evidence", [])]]
    return tuple(dict.fromkeys(n for n in names if n and n != "None"))


def override_triggers(findings: Iterable[dict[str, Any]], ruleset: Ruleset | None) -> list[OverrideTrigger]:
    """The major or contraindicated findings of a result: each makes any change to the plan need an override."""
    lang = language()
    return [
        OverrideTrigger(
            f["id"],
            ruleset.finding_title(f["id"], lang) if ruleset is not None else f["id"],
            _rules_behind(f),
            f["severity"],
        )
        for f in findings
        if SEVERITY_RANK.get(f["severity"], len(SEVERITY_RANK)) <= SEVERITY_RANK["major"]
    ]


def case_ruleset(case: Case) -> Ruleset | None:
    """The ruleset version that evaluated the case (for its finding titles): the published version stored in the
    database, else the shipped file with the case's sha256; None when neither is there."""
    try:
        version = ruleset_versions.get_version(case.ruleset_id, case.ruleset_version)
    except WorkflowError:
        return _shipped(case.ruleset_id, case.ruleset_version, case.ruleset_sha256)
    return ruleset_versions.version_evaluator(version).ruleset


@functools.lru_cache(maxsize=8)
def _shipped(name: str, version: int, sha256: str) -> Ruleset | None:
    """A shipped ruleset file, when it is exactly the version named (a published file never changes)."""
    try:
        found = rulesets.load(rulesets.RULESETS_DIR / name / f"v{version}.json")
    except MgReviewError:
        return None
    return found if found.sha256 == sha256 else None


def override_needed(case: Case, final_plan: dict[str, Any] | None = None) -> str:
    """`Override needed: <title> (rule R, contraindicated); the dose ...`: what makes this change need an override
    ("" when nothing does)."""
    reasons = [t.text() for t in override_triggers(case.result.get("findings", []), case_ruleset(case))]
    cap = case.plan.get("max_elemental_mg_per_day") or 0
    dose = (final_plan or {}).get("max_elemental_mg_per_day") or 0
    if dose > cap:
        reasons.append(
            _(
                "%(dose)s mg a day is above the suggested cap of %(cap)s mg (set by %(rule)s)",
                dose=_number(dose),
                cap=_number(cap),
                rule=case.plan.get("cap_set_by") or NONE,
            )
        )
    return _("Override needed: %(reasons)s", reasons="; ".join(reasons)) if reasons else ""


# --- the decisions of a case, as the page lists them ------------------------------------------------------


@dataclass(frozen=True)
class DecisionView:
    """A signed decision as the page shows it: what it did in words, what changed, and what superseded it."""

    decision: Decision
    title: str
    meaning: str
    changes: list[FieldChange] | None  # None: the decision carries no plan (reject, refer, withdraw)
    in_force: bool


def in_force(case: Case) -> Decision | None:
    """The case's signed decision now (the one an amendment or withdrawal supersedes), or None."""
    return next((d for d in reversed(case.decisions) if d.in_force), None)


def decision_views(case: Case) -> list[DecisionView]:
    """Every decision of the case, oldest first, in words."""
    out = []
    for d in case.decisions:
        changes = plan_changes(d.suggested_plan, d.final_plan) if d.final_plan is not None else None
        out.append(DecisionView(d, _(KIND_WORDS.get(d.kind, d.kind)), _meaning(d), changes, d.in_force))
    return out


def _meaning(d: Decision) -> str:
    """What the signature meant, in the reader's language when it is one of ours; else as signed."""
    known = MEANINGS.get(d.kind)
    if known is None or not d.signature_meaning.startswith(known):
        return d.signature_meaning
    if d.supersedes_id is not None and d.kind != WITHDRAW:
        return _("%(meaning)s It supersedes decision #%(number)s.", meaning=_(known), number=d.supersedes_id)
    return _(known)


def status_word(status: str) -> str:
    """A case status in the reader's language."""
    return _(STATUS_WORDS.get(status, status))

"""The case page's "why, and what would change it", in words a clinician reads (from engine/explain.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import explain
from engine.evaluate import Evaluator
from engine.ruleset import Ruleset
from review_ui import presenting
from review_ui.presenting import _

SYMBOLS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥"}


def _op(op: str) -> str:
    """An operator as a reader reads it: a symbol for numbers, words otherwise."""
    named = {"==": _("is"), "!=": _("is not"), "in": _("is one of"), "not in": _("is not one of")}
    return SYMBOLS.get(op) or named.get(op, op)


@dataclass(frozen=True)
class CaseExplanation:
    """Per finding id, the changes after which it would not apply; and the missing values that would decide."""

    would_not_apply: dict[str, list[str]]
    would_decide: list[str]


def _number(value: Any, fact: str = "") -> str:
    """A value as clinicians read it (eGFR 47.3, serum magnesium 0.78, mg whole), a list joined."""
    if isinstance(value, list | tuple):
        return ", ".join(presenting.words(v) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(_label(fact)[2](value)) if fact else presenting.plain(value)
    return presenting.words(value)


def _label(fact: str) -> tuple[str, str, Any]:
    """Label, unit (with its leading space) and number format of a fact."""
    label, unit, fmt = presenting.field_words(fact if "." in fact else f"patient.{fact}")
    return label, f" {unit}" if unit else "", fmt


def _change(change: explain.Change) -> str:
    if change.op == explain.WITHOUT and change.fact.startswith("medication."):
        return _("%(what)s is stopped", what=change.value)
    if change.op == explain.WITHOUT:
        return _("%(what)s is not present", what=presenting.words(change.value))
    label, unit, _fmt = _label(change.fact)
    if isinstance(change.value, bool):
        return _("not %(what)s", what=label) if (change.op == "!=") == change.value else label
    return f"{label} {_op(change.op)} {_number(change.value, change.fact)}{unit}"


def _now(finding: explain.FindingExplained) -> str:
    """The patient's values the finding rests on ("now eGFR 52 mL/min/1.73 m² (reported by the lab)")."""
    seen: dict[str, str] = {}
    sources = {"lab": _("reported by the lab"), "ckd_epi_2021": _("CKD-EPI 2021 from creatinine")}
    for rule in finding.rules:
        for c in rule.conditions:
            if c.fact.startswith("patient.") and not isinstance(c.value, bool) and c.value is not None:
                label, unit, _fmt = _label(c.fact)
                source = c.context.get("source")
                where = f" ({sources.get(source, source)})" if source else ""
                seen[label] = f"{label} {_number(c.value, c.fact)}{unit}{where}"
    return "; " + _("now %(values)s", values=", ".join(seen.values())) if seen else ""


def _range(interval: explain.Interval, fact: str, unit: str) -> str:
    low, high = _number(interval.low, fact), _number(interval.high, fact)
    if interval.low is None:
        return f"< {high}{unit}" if not interval.high_inclusive else f"≤ {high}{unit}"
    if interval.high is None:
        return f"≥ {low}{unit}" if interval.low_inclusive else f"> {low}{unit}"
    return f"{low}-{high}{unit}"


def _outcome(outcome: explain.Outcome) -> str:
    if not outcome.supplement:
        return _("no magnesium (a physician decides)") if outcome.physician == "decides" else _("no magnesium")
    return _("up to %(mg)s mg a day", mg=presenting.mg(outcome.cap_mg_per_day))


def _deciding(missing: explain.MissingInput, ruleset: Ruleset, language: str) -> str:
    label, unit, _fmt = _label(missing.fact)
    choices = "; ".join(f"{_range(i, missing.fact, unit)}: {_outcome(i.outcome)}" for i in missing.intervals)
    titles = ", ".join(presenting.title(ruleset, f, language) for f in missing.findings)
    return _(
        "%(findings)s: a value for %(what)s would decide (%(choices)s).", findings=titles, what=label, choices=choices
    )


def for_case(evaluator: Evaluator, result: dict[str, Any], intake: Any, language: str = "en") -> CaseExplanation:
    """Why each finding of a stored result applies and what would change it, under the ruleset that made it."""
    ruleset = evaluator.ruleset
    would_not_apply = {}
    for finding in explain.explain_findings(ruleset, result):
        changes = [_(" and ").join(_change(c) for c in w.all_of) for w in finding.would_not_apply_if]
        if changes:
            line = _("Would not apply if %(changes)s", changes=_(" or ").join(changes))
            would_not_apply[finding.finding] = [line + _now(finding)]
    missing_ids = {fid for ids in explain.missing_data_findings(ruleset).values() for fid in ids}
    deciding: list[str] = []
    if isinstance(intake, dict) and any(f.get("id") in missing_ids for f in result.get("findings", [])):
        deciding = [_deciding(m, ruleset, language) for m in explain.settle_missing(evaluator, ruleset, intake)]
    return CaseExplanation(would_not_apply, deciding)

"""The case page's "why, and what would change it", in words a clinician reads (from engine/explain.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine import explain
from engine.evaluate import Evaluator

# How a fact reads on the page; a field not listed reads as its name with spaces.
FACT_LABELS = {
    "patient.egfr_ml_min_1_73m2": ("eGFR", " mL/min/1.73 m²"),
    "egfr_ml_min_1_73m2": ("eGFR", " mL/min/1.73 m²"),
    "patient.serum_mg_mmol_l": ("serum Mg", " mmol/L"),
    "serum_mg_mmol_l": ("serum Mg", " mmol/L"),
    "patient.age_years": ("age", " y"),
}
OPS = {"<": "<", "<=": "≤", ">": ">", ">=": "≥", "==": "is", "!=": "is not"}


@dataclass(frozen=True)
class CaseExplanation:
    """Per finding id, the changes after which it would not apply; and the missing values that would decide."""

    would_not_apply: dict[str, list[str]]
    would_decide: list[str]


def _number(value: Any) -> str:
    if isinstance(value, float):
        return format(round(value, 1), "g")
    return str(value)


def _label(fact: str) -> tuple[str, str]:
    return FACT_LABELS.get(fact, (fact.split(".")[-1].replace("_", " "), ""))


def _change(change: explain.Change) -> str:
    if change.op == "without":
        return f"without {change.value}"
    label, unit = _label(change.fact)
    if isinstance(change.value, bool):
        return f"not {label}" if (change.op == "!=") == change.value else label
    return f"{label} {OPS.get(change.op, change.op)} {_number(change.value)}{unit}"


def _now(finding: explain.FindingExplained) -> str:
    """The patient's values the finding rests on ("now eGFR 52 mL/min/1.73 m² (lab)")."""
    seen: dict[str, str] = {}
    for rule in finding.rules:
        for c in rule.conditions:
            if c.fact.startswith("patient.") and not isinstance(c.value, bool) and c.value is not None:
                label, unit = _label(c.fact)
                source = c.context.get("source")
                seen[label] = f"{label} {_number(c.value)}{unit}" + (f" ({source})" if source else "")
    return "; now " + ", ".join(seen.values()) if seen else ""


def _range(interval: explain.Interval, unit: str) -> str:
    if interval.low is None:
        return (
            f"< {_number(interval.high)}{unit}" if not interval.high_inclusive else f"≤ {_number(interval.high)}{unit}"
        )
    if interval.high is None:
        return f"≥ {_number(interval.low)}{unit}" if interval.low_inclusive else f"> {_number(interval.low)}{unit}"
    return f"{_number(interval.low)}-{_number(interval.high)}{unit}"


def _outcome(outcome: explain.Outcome) -> str:
    if not outcome.supplement:
        return "no magnesium (a physician decides)" if outcome.physician == "decides" else "no magnesium"
    return f"up to {_number(outcome.cap_mg_per_day)} mg a day"


def _deciding(missing: explain.MissingInput) -> str:
    label, unit = _label(missing.fact)
    choices = "; ".join(f"{_range(i, unit)}: {_outcome(i.outcome)}" for i in missing.intervals)
    return f"{', '.join(missing.findings)}: an {label} would decide ({choices})."


def for_case(evaluator: Evaluator, result: dict[str, Any], intake: Any) -> CaseExplanation:
    """Why each finding of a stored result applies and what would change it, under the ruleset that made it."""
    ruleset = evaluator.ruleset
    would_not_apply = {}
    for finding in explain.explain_findings(ruleset, result):
        changes = [" and ".join(_change(c) for c in w.all_of) for w in finding.would_not_apply_if]
        if changes:
            would_not_apply[finding.finding] = ["Would not apply if " + " or ".join(changes) + _now(finding)]
    missing_ids = {fid for ids in explain.missing_data_findings(ruleset).values() for fid in ids}
    deciding: list[str] = []
    if isinstance(intake, dict) and any(f.get("id") in missing_ids for f in result.get("findings", [])):
        deciding = [_deciding(m) for m in explain.settle_missing(evaluator, ruleset, intake)]
    return CaseExplanation(would_not_apply, deciding)

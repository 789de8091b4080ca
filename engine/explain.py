"""Why each finding applies, and what would change it, computed from the ruleset's own conditions.

Two questions, both answered from the rules (thresholds and patterns), never from hand-written text, so a new
rule is explained for free:

- For a finding: the conditions of the rules that reported it, with the patient's value and how it was obtained,
  and the single changes that would make a rule not apply (the negation of each condition).
- For a missing-data finding (a rule that tests that a value is absent): which value would settle it, found by
  evaluating the same record again with one value in each interval between the thresholds the ruleset uses on
  that fact. This runs the engine several times, so it is computed on demand (one case), never in a batch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Protocol

from engine.facts import LAB_EVIDENCE, lab_evidence
from engine.ruleset import Condition, Pattern, Rule, Ruleset

# The negation of each operator: `fact op value` fails exactly when `fact NEGATION[op] value` holds (for a fact
# that is present; a missing field fails every condition, see engine.interpreter.holds).
NEGATION = {
    "<": ">=",
    "<=": ">",
    ">": "<=",
    ">=": "<",
    "==": "!=",
    "!=": "==",
    "in": "not in",
    "contains": "not contains",
    "contains_any": "contains none of",
}
NUMERIC_OPS = ("<", "<=", ">", ">=")
# Several rules (or several firings) behind one finding with no change in common: their changes are combined,
# one of each, while that stays a short list a reader can take in; beyond it, each rule's own list stands.
MAX_COMBINED = 16
WITHOUT = "without"  # the negation of a medication or concept pattern: the record without the fact it matched


@dataclass(frozen=True)
class Settles:
    """A patient flag that says a value is absent, the fact that value becomes, and how a record gives it."""

    flag: str  # the boolean patient fact a missing-data rule tests `== false`
    fact: str  # the numeric patient fact the ruleset's thresholds are on
    record_field: str  # the intake field that carries the value
    unit: str | None  # the unit a lab value is written in (None: a bare number)


# Which value settles each absence flag. The thresholds themselves are read from the ruleset.
SETTLES = {
    "renal_data_known": Settles("renal_data_known", "egfr_ml_min_1_73m2", "egfr_ml_min_1_73m2", None),
    "serum_mg_known": Settles("serum_mg_known", "serum_mg_mmol_l", "serum_magnesium", "mmol/L"),
}


class _Evaluates(Protocol):
    """What the counterfactuals need of an evaluator (engine.evaluate.Evaluator)."""

    def evaluate(self, record: Any) -> Any: ...


@dataclass(frozen=True)
class ConditionExplained:
    """One condition a rule rests on, with the patient's value when the matched fact carries one."""

    fact: str  # "patient.egfr_ml_min_1_73m2", "medication.ingredient", "derived.renal_severe"
    op: str
    threshold: Any
    value: Any  # the patient's value; for a medication or concept, the matched ingredient or concept
    as_written: str | None = None  # the medication or concept text the fact was read from
    alternative: bool = False  # one of a rule's `where_any` alternatives
    context: dict[str, Any] = field(default_factory=dict, hash=False)  # eGFR source, lab date and status
    derived_by: tuple[str, ...] = ()  # for a derived fact: the rules that derived it

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        out: dict[str, Any] = {"fact": self.fact, "op": self.op, "threshold": self.threshold, "value": self.value}
        if self.as_written is not None:
            out["as_written"] = self.as_written
        if self.alternative:
            out["alternative"] = True
        if self.context:
            out["context"] = copy.deepcopy(self.context)
        if self.derived_by:
            out["derived_by"] = list(self.derived_by)
        return out


@dataclass(frozen=True)
class Change:
    """One test `fact op value`; a change is a tuple of them that must all hold."""

    fact: str
    op: str
    value: Any

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"fact": self.fact, "op": self.op, "value": _plain(self.value)}


@dataclass(frozen=True)
class WouldNotApply:
    """A change of the record after which a rule no longer applies (all tests together)."""

    all_of: tuple[Change, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"all_of": [c.to_dict() for c in self.all_of]}


@dataclass(frozen=True)
class RuleExplained:
    """One firing of one rule: the conditions it rests on and each change that alone would stop it."""

    rule: str
    conditions: tuple[ConditionExplained, ...]
    would_not_apply_if: tuple[WouldNotApply, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "rule": self.rule,
            "conditions": [c.to_dict() for c in self.conditions],
            "would_not_apply_if": [w.to_dict() for w in self.would_not_apply_if],
        }


@dataclass(frozen=True)
class FindingExplained:
    """Why one finding applies: its rules, and the changes that would stop every one of them."""

    finding: str
    rules: tuple[RuleExplained, ...]
    would_not_apply_if: tuple[WouldNotApply, ...]  # changes that stop every rule that reported the finding

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "finding": self.finding,
            "rules": [r.to_dict() for r in self.rules],
            "would_not_apply_if": [w.to_dict() for w in self.would_not_apply_if],
        }


@dataclass(frozen=True)
class Outcome:
    """What an evaluation decides, as far as the plan and the findings go."""

    cap_mg_per_day: float | None
    supplement: bool
    physician: str  # "decides", "approves" or "none"
    findings: tuple[str, ...]
    monitoring: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "cap_mg_per_day": self.cap_mg_per_day,
            "supplement": self.supplement,
            "physician": self.physician,
            "findings": list(self.findings),
            "monitoring": list(self.monitoring),
        }


@dataclass(frozen=True)
class Interval:
    """Values of one fact between two ruleset thresholds (None: unbounded), and the outcome inside it."""

    low: float | None
    low_inclusive: bool
    high: float | None
    high_inclusive: bool
    tried: float  # the value the record was evaluated with
    outcome: Outcome

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "low": self.low,
            "low_inclusive": self.low_inclusive,
            "high": self.high,
            "high_inclusive": self.high_inclusive,
            "tried": self.tried,
            "outcome": self.outcome.to_dict(),
        }


@dataclass(frozen=True)
class MissingInput:
    """The one value that would settle a missing-data finding, and what each range of it would decide."""

    findings: tuple[str, ...]  # the missing-data findings this value settles
    fact: str
    record_field: str
    unit: str | None
    thresholds: tuple[float, ...]
    intervals: tuple[Interval, ...]  # adjacent intervals with the same outcome merged

    @property
    def caps(self) -> tuple[float | None, ...]:
        """The distinct caps the value would decide between, in interval order."""
        return tuple(dict.fromkeys(i.outcome.cap_mg_per_day for i in self.intervals))

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {
            "findings": list(self.findings),
            "fact": self.fact,
            "record_field": self.record_field,
            "unit": self.unit,
            "thresholds": list(self.thresholds),
            "caps": list(self.caps),
            "intervals": [i.to_dict() for i in self.intervals],
        }


def evaluation_dict(result: Any) -> dict[str, Any]:
    """An evaluation as plain data, whether the evaluator returns a dict or a typed Evaluation."""
    if isinstance(result, Mapping):
        return dict(result)
    to_dict = getattr(result, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        if isinstance(data, Mapping):
            return dict(data)
    raise TypeError(f"cannot read an evaluation of type {type(result).__name__}")


# --- why a finding applies --------------------------------------------------------------------------------------


def explain_findings(ruleset: Ruleset, evaluation: Any) -> tuple[FindingExplained, ...]:
    """For every finding of an evaluation: the conditions it rests on and what would make it not apply."""
    data = evaluation_dict(evaluation)
    if data.get("status") != "ok":
        return ()
    rules = {rule.id: rule for rule in ruleset.rules}
    trace: list[dict[str, Any]] = data.get("trace", [])
    patient: dict[str, Any] = data.get("facts", {}).get("patient", {})
    out = []
    for finding in data.get("findings", []):
        explained: list[RuleExplained] = []
        for rule_id in dict.fromkeys(finding.get("rules", [])):
            rule = rules.get(rule_id)
            if rule is None:
                continue
            for entry in trace:
                if entry.get("rule") == rule_id:
                    explained.append(_explain_firing(rule, entry.get("matched", []), patient, trace, rules))
        out.append(
            FindingExplained(finding["id"], tuple(explained), _common([r.would_not_apply_if for r in explained]))
        )
    return tuple(out)


def _explain_firing(
    rule: Rule,
    matched: list[dict[str, Any]],
    patient: dict[str, Any],
    trace: list[dict[str, Any]],
    rules: dict[str, Rule],
    seen: frozenset[str] = frozenset(),
) -> RuleExplained:
    conditions: list[ConditionExplained] = []
    negations: list[WouldNotApply] = []
    for pattern, fact in zip(rule.when, matched, strict=False):
        if pattern.on == "derived":
            name = str(pattern.where[0].value)
            causes = _derivations(name, trace, rules, patient, seen | {rule.id})
            conditions.append(
                ConditionExplained(
                    f"derived.{name}", "==", True, True, derived_by=tuple(dict.fromkeys(c.rule for c in causes))
                )
            )
            # The derived fact goes away only when every rule that derived it stops.
            negations += _common([c.would_not_apply_if for c in causes])
            continue
        if pattern.on == "patient":
            conditions += [_patient_condition(c, patient, c in pattern.where_any) for c in pattern.conditions()]
            negations += _patient_negations(pattern)
            continue
        key = "ingredient" if pattern.on == "medication" else "concept"
        text = fact.get("text")
        for c in pattern.conditions():
            conditions.append(
                ConditionExplained(
                    f"{pattern.on}.{c.field}",
                    c.op,
                    _plain(c.value),
                    fact.get(key),
                    as_written=text if isinstance(text, str) else None,
                    alternative=c in pattern.where_any,
                )
            )
        negations.append(WouldNotApply((Change(f"{pattern.on}.{key}", WITHOUT, fact.get(key)),)))
    return RuleExplained(rule.id, tuple(conditions), tuple(dict.fromkeys(negations)))


def _derivations(
    name: str,
    trace: list[dict[str, Any]],
    rules: dict[str, Rule],
    patient: dict[str, Any],
    seen: frozenset[str],
) -> list[RuleExplained]:
    """The firings that derived `name`, explained in turn (a rule already on the path is not followed again)."""
    out = []
    for entry in trace:
        rule = rules.get(str(entry.get("rule")))
        if rule is None or rule.then.get("derive") != name or rule.id in seen:
            continue
        out.append(_explain_firing(rule, entry.get("matched", []), patient, trace, rules, seen))
    return out


def _patient_condition(c: Condition, patient: dict[str, Any], alternative: bool) -> ConditionExplained:
    context: dict[str, Any] = {}
    if c.field == "egfr_ml_min_1_73m2" and patient.get("egfr_source") is not None:
        context["source"] = patient["egfr_source"]
    if c.field in LAB_EVIDENCE:
        context.update(lab_evidence(LAB_EVIDENCE[c.field], patient))
    return ConditionExplained(
        f"patient.{c.field}", c.op, _plain(c.value), patient.get(c.field), alternative=alternative, context=context
    )


def _patient_negations(pattern: Pattern) -> list[WouldNotApply]:
    """Each `where` condition negated alone; the `where_any` alternatives negated together."""
    out = [WouldNotApply((_negated(c),)) for c in pattern.where]
    if pattern.where_any:
        out.append(WouldNotApply(tuple(_negated(c) for c in pattern.where_any)))
    return out


def _negated(c: Condition) -> Change:
    # the value stays a tuple (`in` lists): a change is hashed to keep each one once; to_dict writes a list
    return Change(f"patient.{c.field}", NEGATION[c.op], tuple(c.value) if isinstance(c.value, list) else c.value)


def _common(groups: list[tuple[WouldNotApply, ...]]) -> tuple[WouldNotApply, ...]:
    """Changes that stop every group's rule at once: those in every group, else one of each group taken together."""
    if not groups or any(not g for g in groups):
        return ()
    rest = [set(g) for g in groups[1:]]
    shared = tuple(w for w in dict.fromkeys(groups[0]) if all(w in g for g in rest))
    if shared or math.prod(len(g) for g in groups) > MAX_COMBINED:
        return shared
    combined = (WouldNotApply(tuple(dict.fromkeys(c for w in pick for c in w.all_of))) for pick in product(*groups))
    return tuple(dict.fromkeys(combined))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


# --- what value would settle a missing-data finding -------------------------------------------------------------


def missing_data_findings(ruleset: Ruleset) -> dict[str, tuple[str, ...]]:
    """Finding ids whose rules test that a value is absent, per absence flag (read from the rules)."""
    out: dict[str, list[str]] = {}
    for rule in ruleset.rules:
        finding = rule.then.get("finding")
        if not finding:
            continue
        for pattern in rule.when:
            if pattern.on != "patient":
                continue
            for c in pattern.where:
                if c.field in SETTLES and c.op == "==" and c.value is False:
                    found = out.setdefault(c.field, [])
                    if finding not in found:
                        found.append(finding)
    return {flag: tuple(found) for flag, found in out.items()}


def thresholds(ruleset: Ruleset, fact: str) -> dict[float, set[str]]:
    """Every number the ruleset compares patient fact `fact` with, and the operators it uses there."""
    out: dict[float, set[str]] = {}
    for rule in ruleset.rules:
        for pattern in rule.when:
            if pattern.on != "patient":
                continue
            for c in pattern.conditions():
                if c.field == fact and c.op in NUMERIC_OPS and not isinstance(c.value, bool):
                    out.setdefault(float(c.value), set()).add(c.op)
    return out


def settle_missing(evaluator: _Evaluates, ruleset: Ruleset, record: Mapping[str, Any]) -> tuple[MissingInput, ...]:
    """For each missing-data finding of `record`: the intervals of the missing value and what each would decide.

    Evaluates the record once per interval; call it for one case on demand, never in a batch.
    """
    base = evaluation_dict(evaluator.evaluate(record))
    if base.get("status") != "ok":
        return ()
    present = {f["id"] for f in base.get("findings", [])}
    out = []
    for flag, findings in missing_data_findings(ruleset).items():
        found = tuple(f for f in findings if f in present)
        if not found:
            continue
        settles = SETTLES[flag]
        cuts = thresholds(ruleset, settles.fact)
        intervals = [
            Interval(low, low_in, high, high_in, tried, _outcome(evaluator, _with_value(record, settles, tried)))
            for low, low_in, high, high_in, tried in _intervals(cuts)
        ]
        out.append(
            MissingInput(
                found,
                settles.fact,
                settles.record_field,
                settles.unit,
                tuple(sorted(cuts)),
                tuple(_merged(intervals)),
            )
        )
    return tuple(out)


def _intervals(cuts: Mapping[float, Iterable[str]]) -> list[tuple[float | None, bool, float | None, bool, float]]:
    """Intervals between sorted thresholds with a value inside each; a threshold belongs where its operators put it."""
    points = sorted(cuts)
    if not points:
        return []
    # `< t` and `>= t` put t itself in the interval above; `> t` and `<= t` in the interval below.
    upper = {t: bool(set(cuts[t]) & {"<", ">="}) or not (set(cuts[t]) & {">", "<="}) for t in points}
    out: list[tuple[float | None, bool, float | None, bool, float]] = []
    first = points[0]
    out.append((None, False, first, not upper[first], first / 2 if first > 0 else first - 1))
    for low, high in zip(points, points[1:], strict=False):
        out.append((low, upper[low], high, not upper[high], _round((low + high) / 2)))
    last = points[-1]
    out.append((last, upper[last], None, False, _round(last * 1.5) if last > 0 else last + 1))
    return out


def _round(value: float) -> float:
    return float(round(value, 6))


def _with_value(record: Mapping[str, Any], settles: Settles, value: float) -> dict[str, Any]:
    changed = copy.deepcopy(dict(record))
    changed[settles.record_field] = value if settles.unit is None else {"value": value, "unit": settles.unit}
    return changed


def _outcome(evaluator: _Evaluates, record: dict[str, Any]) -> Outcome:
    data = evaluation_dict(evaluator.evaluate(record))
    plan: dict[str, Any] = data.get("plan", {})
    cap = plan.get("max_elemental_mg_per_day")
    physician = plan.get("physician") or ("approves" if plan.get("requires_physician") else "none")
    return Outcome(
        cap_mg_per_day=float(cap) if isinstance(cap, int | float) and math.isfinite(cap) else None,
        supplement=plan.get("supplement") == "yes",
        physician=str(physician),
        findings=tuple(sorted(f["id"] for f in data.get("findings", []))),
        monitoring=tuple(plan.get("monitoring", [])),
    )


def _merged(intervals: list[Interval]) -> list[Interval]:
    """Adjacent intervals with the same outcome as one."""
    out: list[Interval] = []
    for i in intervals:
        if out and out[-1].outcome == i.outcome:
            prev = out[-1]
            out[-1] = Interval(prev.low, prev.low_inclusive, i.high, i.high_inclusive, prev.tried, prev.outcome)
        else:
            out.append(i)
    return out

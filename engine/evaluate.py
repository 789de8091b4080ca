"""Evaluate one intake record against a ruleset: findings, plan, trace. Synchronous and thread-safe."""

from __future__ import annotations

import operator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import ENGINE_VERSION, interpreter
from engine import plan as planner
from engine import ruleset as rulesets
from engine.conditions import ConceptResolver
from engine.errors import EngineError, RecordError
from engine.facts import parse
from engine.lexicon import PhraseIndex
from engine.medications import MedicationResolver
from engine.results import Evaluation, Firing, Rejected, Result, fact_identity, to_json_line

if TYPE_CHECKING:
    from engine.compiler import CompiledRuleset

__all__ = ["Evaluation", "Evaluator", "Rejected", "Result", "to_json_line"]


class Evaluator:
    """A ruleset compiled once, ready to evaluate many records (one process or thread pool)."""

    def __init__(
        self,
        ruleset: rulesets.Ruleset | str | Path | None = None,
        jurisdiction: str | None = None,
        *,
        backend: str = "durable",
    ):
        self.ruleset = ruleset if isinstance(ruleset, rulesets.Ruleset) else rulesets.load(ruleset)
        self.default_jurisdiction = jurisdiction or self.ruleset.settings["default_jurisdiction"]
        voc = self.ruleset.vocabulary
        self.medications = MedicationResolver(voc)
        self.concepts = ConceptResolver(voc)
        self.forms = PhraseIndex((n, key) for key, f in voc.forms.items() for n in [key, *f.get("names", [])])
        if backend not in ("durable", "python"):
            raise ValueError(f"backend must be 'durable' or 'python', not {backend!r}")
        self.backend = backend
        # The plain-Python backend compiles nothing into durable_rules (whose rulesets are never freed)
        # and never imports it.
        self.compiled: CompiledRuleset | None = None
        if backend == "durable":
            from engine.compiler import CompiledRuleset

            self.compiled = CompiledRuleset(self.ruleset)
        self.planner = planner.Planner(self.ruleset)

    def evaluate(self, record: Any) -> Result:
        """One record in, one result out: status ok with findings and plan, or rejected with errors."""
        try:
            intake = parse(record, self.ruleset, self.medications, self.concepts, self.forms, self.default_jurisdiction)
        except RecordError as e:
            return self.rejected(e.record_id, [err.to_dict() for err in e.errors])
        facts: list[dict[str, Any]] = [intake.patient]
        facts += [d.fact() for d in intake.drugs]
        for reading in intake.readings:
            facts += [c.fact() for c in reading.concepts]
        try:
            if self.compiled is None:
                fired = interpreter.run(self.ruleset, _unique(facts))
            else:
                fired = self.compiled.evaluate(_unique(facts), intake.record_id)
        except EngineError as e:
            return self.rejected(intake.record_id, [{"field": "engine", "reason": str(e)}])
        # Findings and plan are built in ruleset order, so they never depend on the engine's firing order.
        ordered = _in_ruleset_order(fired)
        findings = self.planner.findings(ordered, intake)
        return Evaluation(
            record_id=intake.record_id,
            findings=findings,
            plan=self.planner.plan(ordered, findings, intake),
            facts=intake.facts_summary(),
            trace=_trace(fired, self.planner.outputs),
            ruleset=self.ruleset.ref,
            engine_version=ENGINE_VERSION,
        )

    def rejected(self, record_id: str | None, errors: list[dict[str, Any]]) -> Rejected:
        """The result of a record that could not be evaluated."""
        return Rejected(record_id, errors, self.ruleset.ref, ENGINE_VERSION)

    def close(self) -> None:
        """Free the compiled ruleset."""
        if self.compiled is not None:
            self.compiled.close()


def _in_ruleset_order(fired: list[Firing]) -> list[Firing]:
    """Firings by rule order; several firings of one rule by the facts they matched."""
    ordered = sorted(fired, key=_RULE_INDEX)  # stable: one rule's firings stay in firing order
    if len(set(map(_RULE_INDEX, ordered))) == len(ordered):
        return ordered  # each rule fired once (most records): nothing to order within a rule
    start = 0
    while start < len(ordered):
        index = ordered[start].rule.index
        end = start + 1
        while end < len(ordered) and ordered[end].rule.index == index:
            end += 1
        if end - start > 1:
            ordered[start:end] = sorted(ordered[start:end], key=_matched_identity)
        start = end
    return ordered


_RULE_INDEX = operator.attrgetter("rule.index")  # a firing's rule's place in the ruleset


def _matched_identity(firing: Firing) -> list[tuple[str, str, str]]:
    return [fact_identity(fact) for fact in firing.matched.values()]


def _unique(facts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str, str]] = set()
    out = []
    for fact in facts:
        key = fact_identity(fact) if fact.get("t") != "patient" else ("patient", "", "")
        if key not in seen:
            seen.add(key)
            out.append(fact)
    return out


def _trace(fired: list[Firing], outputs: tuple[planner.RuleOutput, ...]) -> list[dict[str, Any]]:
    """Rules in firing order with the facts each pattern matched.

    A fact matched by several rules (the patient, by most) is shown by one entry the firings share: the
    trace is written out, never changed.
    """
    shown: dict[int, dict[str, Any]] = {}  # id(fact) -> its entry
    trace = []
    for f in fired:
        matched = f.matched
        facts = []
        for name in outputs[f.rule.index].patterns:
            fact = matched[name]
            entry = shown.get(id(fact))
            if entry is None:
                entry = shown[id(fact)] = _trace_fact(fact)
            facts.append(entry)
        trace.append({"rule": f.rule.id, "matched": facts})
    return trace


def _trace_fact(fact: dict[str, Any]) -> dict[str, Any]:
    kind = fact.get("t")
    if kind == "patient":
        return {"fact": "patient"}
    if kind == "medication":
        return {"fact": "medication", "ingredient": fact.get("ingredient"), "text": fact.get("text")}
    if kind == "concept":
        return {"fact": "concept", "concept": fact.get("concept"), "text": fact.get("text")}
    return {"fact": "derived", "name": fact.get("name"), "by": fact.get("by")}

"""Compile a checked ruleset into durable_rules and run one patient through it.

The only module that imports durable. It designs around the traps recorded in
DURABLE_RULES.md: facts not events; no timer threads; one fresh sid per evaluation, deleted
in `finally`; exceptions inside actions recorded and raised, never swallowed; a derived fact
asserted once per name; unmatched facts are not errors; calls serialised by a lock.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import durable_rules_engine
from durable import engine as durable

from engine.errors import EngineError
from engine.ruleset import Condition, Pattern, Rule, Ruleset

_names = itertools.count(1)


class _QuietHost(durable.Host):  # type: ignore[misc]
    """A durable Host without its timer threads, which steal actions from synchronous callers."""

    def _run(self) -> None:
        return None


@dataclass
class Firing:
    """One rule that fired, with the facts its patterns matched (pattern name -> fact)."""

    rule: Rule
    matched: dict[str, dict[str, Any]]


def fact_identity(fact: dict[str, Any]) -> tuple[str, str, str]:
    """What makes a fact distinct: its type, what it names, and the text it came from."""
    name = fact.get("ingredient") or fact.get("concept") or fact.get("name") or ""
    return str(fact.get("t")), str(name), str(fact.get("text", ""))


@dataclass
class _Run:
    sid: str
    fired: list[Firing] = field(default_factory=list)
    activations: set[tuple[Any, ...]] = field(default_factory=set)
    derived: dict[str, str] = field(default_factory=dict)  # derived name -> rule that derived it
    errors: list[str] = field(default_factory=list)


def _condition(c: Condition) -> dict[str, Any]:
    f, v = c.field, c.value
    if c.op == "==":
        return {f: v}
    if c.op == "!=":
        return {"$neq": {f: v}}
    if c.op in ("<", "<=", ">", ">="):
        op = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}[c.op]
        return {op: {f: v}}
    if c.op == "in":
        return {"$or": [{f: x} for x in v]}
    if c.op == "contains":
        return {"$iany": {f: {"$i": v}}}
    if c.op == "contains_any":
        return {"$iany": {f: {"$or": [{"$i": x} for x in v]}}}
    raise ValueError(f"operator {c.op!r}")  # unreachable: the checker allows only the above


def _pattern(p: Pattern) -> dict[str, Any]:
    terms: list[dict[str, Any]] = [{"t": p.on}, *(_condition(c) for c in p.where)]
    if p.where_any:
        terms.append({"$or": [_condition(c) for c in p.where_any]})
    return {"$and": terms}


def pattern_name(i: int) -> str:
    """Name of the i-th pattern of a rule in durable's definition."""
    return f"m{i}"


class CompiledRuleset:
    """A ruleset registered in its own timer-less durable Host, ready to evaluate patients."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._closed = False
        self._sids = itertools.count(1)
        self._name = f"{ruleset.name}_v{ruleset.version}_{ruleset.sha256[:12]}_{next(_names)}"
        definition = {
            rule.id: {
                "all": [{pattern_name(i): _pattern(p)} for i, p in enumerate(rule.when)],
                "run": self._action(rule),
            }
            for rule in ruleset.rules
        }
        self._host = _QuietHost()
        try:
            self._host.set_rulesets({self._name: copy.deepcopy(definition)})
        except Exception as e:  # durable_rules_engine.error carries a numeric code
            raise EngineError(None, f"durable_rules refused the compiled ruleset: {e}") from e

    def definition(self) -> dict[str, Any]:
        """The durable JSON definition (without actions), for inspection and tests."""
        return {
            rule.id: {"all": [{pattern_name(i): _pattern(p)} for i, p in enumerate(rule.when)]}
            for rule in self.ruleset.rules
        }

    def _action(self, rule: Rule) -> Callable[[Any], None]:
        derive = rule.then.get("derive")
        # durable activates a rule once per true branch of an $or (where_any): only such rules can repeat
        may_repeat = any(p.where_any for p in rule.when)

        def action(c: Any) -> None:
            run = self._run
            if run is None:  # only reachable if durable ran an action outside evaluate()
                raise RuntimeError(f"rule {rule.id} fired outside an evaluation")
            try:
                matched = {name: dict(fact) for name, fact in c._m.items()}
                if may_repeat:
                    key = (rule.id, *(fact_identity(matched[n]) for n in sorted(matched)))
                    if key in run.activations:
                        return
                    run.activations.add(key)
                run.fired.append(Firing(rule, matched))
                if derive and derive not in run.derived:
                    run.derived[derive] = rule.id
                    self._assert(c, {"t": "derived", "name": derive, "by": rule.id, "sid": run.sid})
            except Exception as e:  # durable would swallow it into the state: record it instead
                run.errors.append(f"rule {rule.id}: {type(e).__name__}: {e}")

        return action

    @staticmethod
    def _assert(c: Any, fact: dict[str, Any]) -> None:
        # MessageNotHandled: no rule matches this fact; the checker makes sure derived facts have consumers
        with contextlib.suppress(durable.MessageNotHandledException):
            c.assert_fact(fact)

    def evaluate(self, facts: list[dict[str, Any]], record_id: str | None = None) -> list[Firing]:
        """Assert one patient's facts in a fresh session; return the rules that fired, in order."""
        if self._closed:
            raise EngineError(record_id, "the compiled ruleset was closed")
        with self._lock:
            run = _Run(sid=str(next(self._sids)))
            self._run = run
            try:
                for fact in facts:
                    self._assert_one({**fact, "sid": run.sid}, run)
            except EngineError:
                raise
            except Exception as e:
                raise EngineError(record_id, f"durable_rules: {type(e).__name__}: {e}") from e
            finally:
                self._run = None
                self._delete(run)
        if run.errors:
            raise EngineError(record_id, "; ".join(run.errors))
        return run.fired

    def _delete(self, run: _Run) -> None:
        """Free the session; error 309 means no state was ever created for it (the first assert failed)."""
        try:
            self._host.delete_state(self._name, run.sid)
        except durable_rules_engine.error as e:
            if "309" not in str(e):
                raise EngineError(None, f"durable_rules could not delete session {run.sid}: {e}") from e

    def _assert_one(self, fact: dict[str, Any], run: _Run) -> None:
        try:
            state = self._host.assert_fact(self._name, fact)
        except durable.MessageNotHandledException:
            return  # a fact no rule tests (e.g. a drug without interactions) is not an error
        except durable.MessageObservedException:
            return  # the same fact twice (identical medication lines) adds nothing
        if isinstance(state, dict) and state.get("exception"):
            run.errors.append(str(state["exception"]))

    def close(self) -> None:
        """Mark the compiled ruleset closed; later evaluations raise instead of touching the C core.

        The C ruleset is deliberately not freed: durable's private delete_ruleset left the core in a
        state where a later create_ruleset failed now and then with error 102 (unexpected type) in
        our test suite. A process compiles one ruleset per version it uses (about 0.5 MB each).
        """
        self._closed = True

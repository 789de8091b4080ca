"""A second, plain-Python interpreter of the same ruleset file, for differential testing.

It shares nothing with durable_rules: a naive fixpoint loop that tries every rule against every
combination of facts until nothing new fires. Slow, obvious, and a check that the compiled
durable_rules ruleset fires exactly the rules it should (DURABLE_RULES.md lists silent failures).
"""

from __future__ import annotations

import itertools
from typing import Any

from engine.results import Firing, pattern_name
from engine.ruleset import Condition, Pattern, Ruleset

_MISSING = object()


def holds(c: Condition, fact: dict[str, Any]) -> bool:
    """Whether one condition holds on one fact; a missing field never satisfies a condition."""
    value = fact.get(c.field, _MISSING)
    if value is _MISSING:
        return False
    if c.op == "==":
        return bool(value == c.value and type(value) is type(c.value))
    if c.op == "!=":
        return bool(value != c.value)
    if c.op in ("<", "<=", ">", ">="):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return bool({"<": value < c.value, "<=": value <= c.value, ">": value > c.value, ">=": value >= c.value}[c.op])
    if c.op == "in":
        return any(value == v and type(value) is type(v) for v in c.value)
    if c.op == "contains":
        return isinstance(value, list) and c.value in value
    if c.op == "contains_any":
        return isinstance(value, list) and any(v in value for v in c.value)
    raise ValueError(c.op)


def matches(pattern: Pattern, fact: dict[str, Any]) -> bool:
    """Whether a fact satisfies a pattern: its type, all `where`, and one of `where_any`."""
    if fact.get("t") != pattern.on:
        return False
    if not all(holds(c, fact) for c in pattern.where):
        return False
    return not pattern.where_any or any(holds(c, fact) for c in pattern.where_any)


def run(ruleset: Ruleset, facts: list[dict[str, Any]]) -> list[Firing]:
    """Fire every rule on every matching combination of facts until a fixpoint; derived facts once per name."""
    facts = list(facts)
    fired: list[Firing] = []
    seen: set[tuple[str, tuple[int, ...]]] = set()
    derived: set[str] = set()
    changed = True
    while changed:
        changed = False
        for rule in ruleset.rules:
            candidates = [[i for i, f in enumerate(facts) if matches(p, f)] for p in rule.when]
            for combo in itertools.product(*candidates):
                key = (rule.id, combo)
                if key in seen:
                    continue
                seen.add(key)
                changed = True
                fired.append(Firing(rule, {pattern_name(i): dict(facts[j]) for i, j in enumerate(combo)}))
                name = rule.then.get("derive")
                if name and name not in derived:
                    derived.add(name)
                    facts.append({"t": "derived", "name": name, "by": rule.id})
    return fired

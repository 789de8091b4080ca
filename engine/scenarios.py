"""Test scenarios that live beside a ruleset (given an intake record, the expected findings and plan).

`mgreview rulesets test` runs them; a failing scenario blocks publishing a draft.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.evaluate import Evaluator
from engine.results import Rejected, Result


@dataclass(frozen=True)
class Failure:
    """One scenario that did not give what it expects, and why."""

    scenario: str
    problem: str

    def __str__(self) -> str:
        return f"{self.scenario}: {self.problem}"


def path_for(ruleset_file: Path) -> Path:
    """The scenarios of a ruleset version file: `v<N>.scenarios.json` beside `v<N>.json`."""
    return ruleset_file.with_name(f"{ruleset_file.stem}.scenarios.json")


def load(path: Path) -> list[dict[str, Any]]:
    """Scenarios from a file."""
    return parse(path.read_text("utf-8"), str(path))


def parse(text: str, origin: str = "scenarios") -> list[dict[str, Any]]:
    """Scenarios from their JSON text: a list of {name, record, expect} objects."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{origin}: not valid JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    if not isinstance(data, list) or not all(isinstance(s, dict) and "name" in s and "record" in s for s in data):
        raise ValueError(f"{origin}: expected a list of {{name, record, expect}} objects")
    return data


def check(scenario: dict[str, Any], result: Result) -> list[str]:
    """Every way a result differs from what the scenario expects."""
    expect = scenario.get("expect", {})
    if isinstance(result, Rejected):
        return [f"rejected: {result.errors}"]
    found = {f.id: f for f in result.findings}
    problems = []
    for fid, severity in expect.get("findings", {}).items():
        if fid not in found:
            problems.append(f"expected finding {fid} ({severity}), not reported")
        elif found[fid].severity != severity:
            problems.append(f"{fid}: expected severity {severity}, got {found[fid].severity}")
        elif not (found[fid].sources and found[fid].message and found[fid].evidence):
            problems.append(f"{fid}: reported without sources, message or evidence")
    for fid, text in expect.get("messages_nl", {}).items():
        got = found[fid].message_nl if fid in found else None
        if got != text:
            problems.append(f"{fid}: expected the Dutch message {text!r}, got {got!r}")
    problems += [f"finding {fid} reported but expected absent" for fid in expect.get("absent", []) if fid in found]
    plan = result.plan.to_dict()  # expectations name the plan's keys as written in the output
    for key, value in expect.get("plan", {}).items():
        if plan.get(key) != value:
            problems.append(f"plan.{key}: expected {value!r}, got {plan.get(key)!r}")
    windows = {s.drug: [s.drug_before_mg_h, s.drug_after_mg_h] for s in result.plan.separations}
    for drug, window in expect.get("separations", {}).items():
        if windows.get(drug) != window:
            problems.append(f"separation {drug}: expected {window}, got {windows.get(drug)}")
    return problems


def run(evaluator: Evaluator, scenarios: list[dict[str, Any]]) -> list[Failure]:
    """Evaluate every scenario; return the failures (empty when all pass)."""
    failures = []
    for scenario in scenarios:
        for problem in check(scenario, evaluator.evaluate(scenario["record"])):
            failures.append(Failure(scenario["name"], problem))
    return failures

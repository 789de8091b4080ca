"""What a ruleset change does to real cases: replay records through two versions and compare.

Used before publishing (draft against the published version) and when a case is re-evaluated under a
newer version. Compares what a clinician acts on: findings and their severities, the dose cap, whether a
physician must decide, whether a supplement is advised at all, and rejects.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import lines
from engine.evaluate import Evaluator

PLAN_KEYS = ("supplement", "max_elemental_mg_per_day", "requires_physician", "doses_per_day")


@dataclass(frozen=True)
class CaseChange:
    """How one record's result differs between the old and the new ruleset."""

    record_id: str
    added: tuple[tuple[str, str], ...] = ()  # (finding id, severity)
    removed: tuple[tuple[str, str], ...] = ()
    severity: tuple[tuple[str, str, str], ...] = ()  # (finding id, old, new)
    plan: tuple[tuple[str, Any, Any], ...] = ()  # (plan key, old, new)
    status: tuple[str, str] | None = None  # (old, new) when one side rejected the record

    @property
    def changed(self) -> bool:
        """Anything a clinician would see differently."""
        return bool(self.added or self.removed or self.severity or self.plan or self.status)

    def lines(self) -> list[str]:
        """Readable lines, one per change."""
        out = [f"status {self.status[0]} -> {self.status[1]}"] if self.status else []
        out += [f"+ {fid} ({sev})" for fid, sev in self.added]
        out += [f"- {fid} ({sev})" for fid, sev in self.removed]
        out += [f"~ {fid}: {old} -> {new}" for fid, old, new in self.severity]
        out += [f"~ plan.{key}: {_show(old)} -> {_show(new)}" for key, old, new in self.plan]
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (stored with a re-evaluation, shown on pages)."""
        return {"record_id": self.record_id, "changed": self.changed, "lines": self.lines()}


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def compare(old: dict[str, Any], new: dict[str, Any]) -> CaseChange:
    """The differences between two results of the same record."""
    record_id = str(new.get("record_id") or old.get("record_id") or "?")
    if old["status"] != "ok" or new["status"] != "ok":
        status = (old["status"], new["status"]) if old["status"] != new["status"] else None
        return CaseChange(record_id, status=status)
    before = {f["id"]: f["severity"] for f in old["findings"]}
    after = {f["id"]: f["severity"] for f in new["findings"]}
    return CaseChange(
        record_id,
        added=tuple((fid, after[fid]) for fid in after if fid not in before),
        removed=tuple((fid, before[fid]) for fid in before if fid not in after),
        severity=tuple((fid, before[fid], after[fid]) for fid in after if fid in before and before[fid] != after[fid]),
        plan=tuple(
            (key, old["plan"].get(key), new["plan"].get(key))
            for key in PLAN_KEYS
            if old["plan"].get(key) != new["plan"].get(key)
        ),
    )


@dataclass
class Impact:
    """Totals over a replay, and the records that changed."""

    records: int = 0
    changed: list[CaseChange] = field(default_factory=list)
    added: Counter[str] = field(default_factory=Counter)
    removed: Counter[str] = field(default_factory=Counter)
    severity: Counter[str] = field(default_factory=Counter)  # "ID: old -> new"
    plan: Counter[str] = field(default_factory=Counter)  # plan key
    status: Counter[str] = field(default_factory=Counter)  # "ok -> rejected"

    def add(self, change: CaseChange) -> None:
        """Count one record."""
        self.records += 1
        if not change.changed:
            return
        self.changed.append(change)
        self.added.update(fid for fid, _ in change.added)
        self.removed.update(fid for fid, _ in change.removed)
        self.severity.update(f"{fid}: {old} -> {new}" for fid, old, new in change.severity)
        self.plan.update(key for key, _, _ in change.plan)
        if change.status:
            self.status[f"{change.status[0]} -> {change.status[1]}"] += 1

    def summary(self) -> list[str]:
        """Readable totals."""
        lines = [f"{self.records} records replayed, {len(self.changed)} would change"]
        lines += [f"finding {fid} added in {n}" for fid, n in sorted(self.added.items())]
        lines += [f"finding {fid} removed in {n}" for fid, n in sorted(self.removed.items())]
        lines += [f"severity {what} in {n}" for what, n in sorted(self.severity.items())]
        lines += [f"plan.{key} changed in {n}" for key, n in sorted(self.plan.items())]
        lines += [f"status {what} in {n}" for what, n in sorted(self.status.items())]
        return lines


def result_of(evaluator: Evaluator, item: tuple[int, Any]) -> dict[str, Any]:
    """The result of one (line, record) item as a plain dict, the way a batch evaluates it (FHIR Bundles included)."""
    return lines.result_of(evaluator, item).to_dict()


def replay(items: Iterable[tuple[int, Any]], old: Evaluator, new: Evaluator) -> Impact:
    """Evaluate every (line, record) item under both evaluators and total the differences."""
    impact = Impact()
    for item in items:
        impact.add(compare(result_of(old, item), result_of(new, item)))
    return impact

"""What a ruleset change does to real cases: replay records through two versions and compare whole results.

Used before publishing (a draft against the published version, `draft_impact` in the review UI), by
`mgreview rulesets impact`, and when a case is re-evaluated under a newer version; this is the one comparison
of two results. It compares what a clinician acts on: findings and their severities, the dose cap, doses per
day, whether a supplement is advised and in which form, every separation window (drug, before, after),
monitoring, physician involvement and urgency, and rejects. Each difference is a typed `Change` with a one-line
English rendering (`text()`) and a plain dict (`to_dict()`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine import lines
from engine.evaluate import Evaluator

# The plan's values a clinician acts on, compared one by one; the contract's keys (physician, ceiling) only when
# both results carry them (a ruleset from before the plan contract does not).
PLAN_KEYS = (
    "supplement",
    "form",
    "max_elemental_mg_per_day",
    "doses_per_day",
    "requires_physician",
    "physician",
    "physician_decides_because",
    "ceiling_if_physician_agrees_mg_per_day",
    "urgent",
)

Hours = tuple[float | None, float | None]  # a separation window: (drug before magnesium, drug after magnesium)


def show(value: Any) -> str:
    """A value as a line shows it: none, yes/no, a list joined, a whole number without its .0."""
    if value is None or value == []:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ", ".join(show(v) for v in value)
    return str(value)


def _hours(value: float | None) -> str:
    return "none" if value is None else f"{show(value)} h"


def _sign(old: Any, new: Any) -> str:
    return "+" if old is None else "-" if new is None else "~"


class Change(ABC):
    """One difference between two results of the same record, as a clinician would see it."""

    kind: ClassVar[str]

    @abstractmethod
    def text(self) -> str:
        """One English line: `+` added, `-` removed, `~` changed."""

    @abstractmethod
    def tally(self) -> tuple[str, str]:
        """What the totals count this change under: (what happened, to what; "" when the first says it all)."""

    @abstractmethod
    def fields(self) -> dict[str, Any]:
        """The change's own values, for `to_dict`."""

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON (stored with a re-evaluation): kind, values and the line."""
        return {"kind": self.kind, **self.fields(), "text": self.text()}


@dataclass(frozen=True)
class StatusChange(Change):
    """One side evaluated the record and the other rejected it."""

    kind: ClassVar[str] = "status"
    old: str
    new: str

    def text(self) -> str:
        """`status ok -> rejected`."""
        return f"status {self.old} -> {self.new}"

    def tally(self) -> tuple[str, str]:
        """Counted by the two statuses."""
        return f"status {self.old} -> {self.new}", ""

    def fields(self) -> dict[str, Any]:
        """The two statuses."""
        return {"old": self.old, "new": self.new}


@dataclass(frozen=True)
class FindingChange(Change):
    """A finding added (old None), removed (new None) or with another severity."""

    kind: ClassVar[str] = "finding"
    finding: str
    old: str | None  # the severity under the old ruleset; None: not found then
    new: str | None

    def text(self) -> str:
        """`+ ID (severity)`, `- ID (severity)` or `~ ID: old -> new`."""
        if self.old is None or self.new is None:
            return f"{_sign(self.old, self.new)} {self.finding} ({self.new or self.old})"
        return f"~ {self.finding}: {self.old} -> {self.new}"

    def tally(self) -> tuple[str, str]:
        """Counted by finding, and by the two severities when it changed."""
        if self.old is None:
            return f"finding {self.finding} added", ""
        if self.new is None:
            return f"finding {self.finding} removed", ""
        return f"severity {self.finding}: {self.old} -> {self.new}", ""

    def fields(self) -> dict[str, Any]:
        """The finding and its two severities."""
        return {"finding": self.finding, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class PlanChange(Change):
    """One value of the plan (cap, doses per day, physician, urgency, ...) changed."""

    kind: ClassVar[str] = "plan"
    key: str
    old: Any
    new: Any

    def text(self) -> str:
        """`~ plan.key: old -> new`."""
        return f"~ plan.{self.key}: {show(self.old)} -> {show(self.new)}"

    def tally(self) -> tuple[str, str]:
        """Counted by plan key."""
        return f"plan.{self.key} changed", ""

    def fields(self) -> dict[str, Any]:
        """The key and its two values."""
        return {"key": self.key, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class SeparationChange(Change):
    """The window between one drug and magnesium added (old None), removed (new None) or changed on a side."""

    kind: ClassVar[str] = "separation"
    drug: str
    old: Hours | None
    new: Hours | None

    def text(self) -> str:
        """`~ separation mycophenolate: before 2 h -> 3 h` (only the sides that changed), or the window added."""
        if self.old is None or self.new is None:
            window = self.new or self.old or (None, None)
            sides = [f"{side} {_hours(h)}" for side, h in zip(("before", "after"), window, strict=True)]
        else:
            sides = [
                f"{side} {_hours(a)} -> {_hours(b)}"
                for side, a, b in zip(("before", "after"), self.old, self.new, strict=True)
                if a != b
            ]
        return f"{_sign(self.old, self.new)} separation {self.drug}: {', '.join(sides)}"

    def tally(self) -> tuple[str, str]:
        """Counted by what happened to the window, naming the drug."""
        what = "added" if self.old is None else "removed" if self.new is None else "changed"
        return f"separation window {what}", self.drug

    def fields(self) -> dict[str, Any]:
        """The drug and both windows, each side in hours (None: no window on that side, or no window)."""
        return {
            "drug": self.drug,
            "old": None if self.old is None else {"drug_before_mg_h": self.old[0], "drug_after_mg_h": self.old[1]},
            "new": None if self.new is None else {"drug_before_mg_h": self.new[0], "drug_after_mg_h": self.new[1]},
        }


@dataclass(frozen=True)
class MonitoringChange(Change):
    """A monitoring item added or removed."""

    kind: ClassVar[str] = "monitoring"
    item: str
    added: bool

    def text(self) -> str:
        """`+ monitoring: item` or `- monitoring: item`."""
        return f"{'+' if self.added else '-'} monitoring: {self.item}"

    def tally(self) -> tuple[str, str]:
        """Counted by item."""
        return f"monitoring {'added' if self.added else 'removed'}", self.item

    def fields(self) -> dict[str, Any]:
        """The item and whether it was added."""
        return {"item": self.item, "added": self.added}


@dataclass(frozen=True)
class ScheduleChange(Change):
    """The daily schedule changed (plans carry one from ruleset v2 on)."""

    kind: ClassVar[str] = "schedule"
    old: Any
    new: Any

    def text(self) -> str:
        """`~ schedule: levothyroxine 07:00, Mg 12:00, Mg 22:00 -> ...`."""
        return f"~ schedule: {_day(self.old)} -> {_day(self.new)}"

    def tally(self) -> tuple[str, str]:
        """Counted once."""
        return "schedule changed", ""

    def fields(self) -> dict[str, Any]:
        """Both schedules as the plans carry them."""
        return {"old": self.old, "new": self.new}


# --- comparing two results, part by part --------------------------------------------------------


def _findings(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    before = {f["id"]: f["severity"] for f in old["findings"]}
    after = {f["id"]: f["severity"] for f in new["findings"]}
    yield from (FindingChange(fid, None, sev) for fid, sev in after.items() if fid not in before)
    yield from (FindingChange(fid, sev, None) for fid, sev in before.items() if fid not in after)
    yield from (
        FindingChange(fid, before[fid], sev) for fid, sev in after.items() if fid in before and before[fid] != sev
    )


def _plan_values(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    for key in PLAN_KEYS:
        if key in old and key in new and old[key] != new[key]:
            yield PlanChange(key, old[key], new[key])


def _windows(plan: dict[str, Any]) -> dict[str, Hours]:
    return {str(s["drug"]): (s.get("drug_before_mg_h"), s.get("drug_after_mg_h")) for s in plan.get("separations", [])}


def _separations(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    before, after = _windows(old), _windows(new)
    for drug in sorted(before.keys() | after.keys()):
        if before.get(drug) != after.get(drug):
            yield SeparationChange(drug, before.get(drug), after.get(drug))


def _monitoring(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    before, after = old.get("monitoring", []), new.get("monitoring", [])
    yield from (MonitoringChange(item, True) for item in after if item not in before)
    yield from (MonitoringChange(item, False) for item in before if item not in after)


def _day(schedule: Any) -> str:
    """A daily schedule in one line: the times in order, or why there is none."""
    if not isinstance(schedule, dict):
        return "none"
    if schedule.get("status") != "ok":
        return f"no single day fits ({', '.join(schedule.get('drugs', []))})"
    return ", ".join(f"{e['drug'] or 'Mg'} {e['time']}" for e in schedule.get("entries", []))


def _schedule(old: dict[str, Any], new: dict[str, Any]) -> Iterator[Change]:
    """The daily schedule, when both plans carry one (v1 plans do not)."""
    if "schedule" in old and "schedule" in new and old["schedule"] != new["schedule"]:
        yield ScheduleChange(old["schedule"], new["schedule"])


PLAN_PARTS: tuple[Callable[[dict[str, Any], dict[str, Any]], Iterator[Change]], ...] = (
    _plan_values,
    _separations,
    _monitoring,
    _schedule,
)


@dataclass(frozen=True)
class CaseChange:
    """How one record's result differs between the old and the new ruleset: every change, in reading order."""

    record_id: str
    changes: tuple[Change, ...] = ()

    @property
    def changed(self) -> bool:
        """Anything a clinician would see differently."""
        return bool(self.changes)

    def lines(self) -> list[str]:
        """Readable lines, one per change."""
        return [c.text() for c in self.changes]

    def text(self) -> str:
        """One line for the record: `P0007: - FOLLOW_UP (info); ~ separation mycophenolate: before 2 h -> 3 h`."""
        return f"{self.record_id}: " + ("; ".join(self.lines()) or "no change")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON: the record, and each change with its line."""
        return {"record_id": self.record_id, "changed": self.changed, "changes": [c.to_dict() for c in self.changes]}


def compare(old: dict[str, Any], new: dict[str, Any]) -> CaseChange:
    """The differences between two results (plain dicts, as stored or written) of the same record."""
    record_id = str(new.get("record_id") or old.get("record_id") or "?")
    if old["status"] != "ok" or new["status"] != "ok":
        status = (StatusChange(old["status"], new["status"]),) if old["status"] != new["status"] else ()
        return CaseChange(record_id, status)
    changes = [*_findings(old, new)]
    for part in PLAN_PARTS:
        changes += part(old["plan"], new["plan"])
    return CaseChange(record_id, tuple(changes))


# --- totals over many records ---------------------------------------------------------------------

_TALLY_ORDER = ("finding", "plan", "separation", "monitoring", "schedule", "status")


@dataclass
class Impact:
    """Totals over a replay, and the records that changed."""

    records: int = 0
    changed: list[CaseChange] = field(default_factory=list)
    tallies: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (kind, what, to what) -> records

    def add(self, change: CaseChange) -> None:
        """Count one record; a record counts once under each tally however many of its changes fall there."""
        self.records += 1
        if change.changed:
            self.changed.append(change)
            self.tallies.update({(c.kind, *c.tally()) for c in change.changes})

    def summary(self) -> list[str]:
        """Readable totals: `finding X added in 2`, `separation window changed in 1: mycophenolate`."""
        lines = [f"{self.records} records replayed, {len(self.changed)} would change"]
        ordered = sorted(self.tallies.items(), key=lambda kv: (_TALLY_ORDER.index(kv[0][0]), _finding_order(kv[0])))
        for (_, what, subject), n in ordered:
            lines.append(f"{what} in {n}: {subject}" if subject else f"{what} in {n}")
        return lines


def _finding_order(key: tuple[str, str, str]) -> tuple[int, str, str]:
    """Added before removed before severity changes (as the totals always read), then by name."""
    _, what, subject = key
    rank = 2 if what.startswith("severity") else 1 if what.endswith("removed") else 0
    return rank, what, subject


def result_of(evaluator: Evaluator, item: tuple[int, Any]) -> dict[str, Any]:
    """The result of one (line, record) item as a plain dict, the way a batch evaluates it (FHIR Bundles included)."""
    return lines.result_of(evaluator, item).to_dict()


def replay(items: Iterable[tuple[int, Any]], old: Evaluator, new: Evaluator) -> Impact:
    """Evaluate every (line, record) item under both evaluators and total the differences."""
    impact = Impact()
    for item in items:
        impact.add(compare(result_of(old, item), result_of(new, item)))
    return impact

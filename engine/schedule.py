"""A daily schedule that meets every separation window of a plan at once, or the drugs that make it impossible.

Window reading (REFERENCE §3, and the plan's `separations`): `drug_before_mg_h` = take the drug at least this
many hours before a magnesium dose; `drug_after_mg_h` = after a magnesium dose, wait at least this many hours
before the drug. Within one day (waking to bed) every pair of a drug dose and a magnesium dose must meet the
window on one side. A side the plan leaves empty (None) is not a way to meet it: gabapentin "– / 2" is met only by
taking gabapentin at least 2 h after each magnesium dose of that day, as its label says ("take gabapentin >= 2 h
after Mg" [S28]); the label gives no hours for gabapentin first, so the schedule does not offer that order. A
drug with neither side given has no hours to schedule by: a pharmacist sets its times. Across the night (a dose
late today, the other early tomorrow) the side of that order applies, or the other side where it is empty, so a
one-sided window is still kept across midnight.

The day runs from the middle of the night to the middle of the next night: a drug taken at 23:00 is late today,
one at 06:00 early today. Magnesium doses go in the waking day on a grid, at least a minimum gap apart. Among the
schedules that meet every window the best has the largest smallest margin to any window (counted up to a cushion),
then the magnesium doses furthest apart, then the earliest times.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.errors import MgReviewError

MINUTES_PER_DAY = 24 * 60

FASTING = "fasting"
"""Note code: taken on an empty stomach on waking, before food and other medicines."""

# Project policy, not from a source, except the rows that cite one: the time of day a drug is assumed to be taken
# when the record gives none, and whether it is taken fasting. Keys are ingredients as the plan names them.
DEFAULT_DRUG_TIMES: Mapping[str, tuple[tuple[str, ...], str | None]] = {
    # policy: thyroid hormone on waking, fasting
    "levothyroxine": (("07:00",), FASTING),
    "liothyronine": (("07:00",), FASTING),
    # oral bisphosphonates: fasting on waking, >= 30 min (ibandronate 60 min) before anything else [S20][S21];
    # every separation window the plan carries for them is longer than that wait
    "alendronate": (("07:00",), FASTING),
    "risedronate": (("07:00",), FASTING),
    "ibandronate": (("07:00",), FASTING),
    # policy: gabapentin's window has one side (after magnesium only), so at bedtime it follows every dose of the day
    "gabapentin": (("22:00",), None),
}
DEFAULT_DRUG_TIME = "08:00"  # policy: any other drug once a day with breakfast


@dataclass(frozen=True)
class Policy:
    """Project policy for placing magnesium doses (not from a source)."""

    wake_min: int = 7 * 60  # waking day 07:00-22:00
    bed_min: int = 22 * 60
    grid_min: int = 30  # magnesium doses on a 30-minute grid
    mg_gap_min: int = 4 * 60  # at least 4 h between two magnesium doses
    # a margin beyond 1 h buys nothing more: counting it further would crowd the doses against the windows'
    # far side instead of spreading them; 1 h still keeps every window when a dose is taken up to an hour late
    cushion_min: int = 60


DEFAULT_POLICY = Policy()


class ScheduleError(MgReviewError):
    """A window or a time that cannot be read; names the drug and the field."""

    def __init__(self, drug: str | None, field: str, value: Any, reason: str):
        self.drug = drug
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{drug or 'schedule'}: {field}: {reason} (got {value!r})")


@dataclass(frozen=True)
class Window:
    """The separation window between one drug and magnesium, in hours (None: the plan gives no hours that side)."""

    drug: str
    drug_before_mg_h: float | None
    drug_after_mg_h: float | None


@dataclass(frozen=True)
class Entry:
    """One line of the daily schedule."""

    time: str  # "HH:MM"
    kind: Literal["drug", "magnesium"]
    drug: str | None  # the ingredient; None for magnesium
    note: str | None  # FASTING or None
    time_given: bool  # the record gave this drug's time (False: a default of DEFAULT_DRUG_TIMES, or placed)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return {
            "time": self.time,
            "kind": self.kind,
            "drug": self.drug,
            "note": self.note,
            "time_given": self.time_given,
        }


@dataclass(frozen=True)
class Schedule:
    """A day in time order that meets every window; margin_min is the smallest margin to any window."""

    entries: tuple[Entry, ...]
    margin_min: int | None  # None: no drug to keep apart
    # the entries' output, written once: the planner shares a schedule between plans, so it is written for many
    _entries_written: tuple[dict[str, Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_entries_written", tuple(e.to_dict() for e in self.entries))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output: new lists and dicts (copies of the entries written once)."""
        return {"status": "ok", "entries": [e.copy() for e in self._entries_written], "margin_min": self.margin_min}


@dataclass(frozen=True)
class Conflict:
    """No single schedule meets every window: a pharmacist sets the times."""

    drugs: tuple[str, ...]  # a smallest set of drugs whose windows cannot all be met with these doses
    reason: Literal["no_hours", "windows_conflict", "doses_do_not_fit"]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output: no schedule, and why (a pharmacist sets the times)."""
        return {"status": "conflict", "drugs": list(self.drugs), "reason": self.reason}


def schedule_for_plan(
    plan: Mapping[str, Any],
    times: Mapping[str, Sequence[str]] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Schedule | Conflict | None:
    """The daily schedule for a plan's magnesium doses and separations; None when it proposes no magnesium."""
    if plan.get("supplement") != "yes" or not plan.get("doses_per_day"):
        return None
    windows = [
        Window(str(s["drug"]), s.get("drug_before_mg_h"), s.get("drug_after_mg_h"))
        for s in plan.get("separations") or []
    ]
    return build_schedule(windows, int(plan["doses_per_day"]), times, policy)


def build_schedule(
    windows: Sequence[Window],
    doses_per_day: int,
    times: Mapping[str, Sequence[str]] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Schedule | Conflict | None:
    """The best schedule of doses_per_day magnesium doses around the drugs' times; None for no doses."""
    if isinstance(doses_per_day, bool) or not isinstance(doses_per_day, int) or doses_per_day < 0:
        raise ScheduleError(None, "doses_per_day", doses_per_day, "must be a whole number >= 0")
    if doses_per_day == 0:
        return None
    times = times or {}
    keyed: dict[str, _Drug] = {}
    for window in windows:
        drug = _drug(window, times.get(window.drug))
        old = keyed.get(drug.name)
        keyed[drug.name] = drug if old is None else old.stricter(drug)
    drugs = tuple(sorted(keyed.values(), key=lambda d: d.name))
    no_hours = tuple(d.name for d in drugs if d.before_min is None and d.after_min is None)
    if no_hours:
        return Conflict(no_hours, "no_hours")
    best = _solve(drugs, doses_per_day, policy)
    if best is None:
        return _conflict(drugs, doses_per_day, policy)
    mg_times, margin = best
    entries = [Entry(_hhmm(t), "drug", d.name, d.note, d.given) for d in drugs for t in d.times_min] + [
        Entry(_hhmm(t), "magnesium", None, None, False) for t in mg_times
    ]
    day_start = _day_start(policy)
    entries.sort(key=lambda e: (_position(_minutes(e.time), day_start), e.kind != "drug", e.drug or ""))
    return Schedule(tuple(entries), margin)


def window_margin_min(
    drug_min: int, mg_min: int, before_min: int | None, after_min: int | None, policy: Policy = DEFAULT_POLICY
) -> int:
    """Smallest margin (minutes, < 0: violated) between one drug dose and one daily magnesium dose, both ways."""
    day_start = _day_start(policy)
    drug_at, mg_at = _position(drug_min, day_start), _position(mg_min, day_start)
    same_day = _side_margin(mg_at - drug_at, before_min, after_min)
    # across the night: drug today, magnesium tomorrow; magnesium today, drug tomorrow
    drug_first = _night_margin(mg_at + MINUTES_PER_DAY - drug_at, before_min, after_min)
    mg_first = _night_margin(drug_at + MINUTES_PER_DAY - mg_at, after_min, before_min)
    return min(same_day, drug_first, mg_first)


@dataclass(frozen=True)
class _Drug:
    name: str
    times_min: tuple[int, ...]
    before_min: int | None
    after_min: int | None
    note: str | None
    given: bool

    def stricter(self, other: _Drug) -> _Drug:
        """One drug named twice: the longer window each side (a side given once counts)."""
        return _Drug(
            self.name,
            self.times_min,
            _longer(self.before_min, other.before_min),
            _longer(self.after_min, other.after_min),
            self.note,
            self.given,
        )


def _longer(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _drug(window: Window, given: Sequence[str] | None) -> _Drug:
    default_times, note = DEFAULT_DRUG_TIMES.get(window.drug, ((DEFAULT_DRUG_TIME,), None))
    if given is not None and (isinstance(given, str) or not given):
        raise ScheduleError(window.drug, "times", given, "must be a non-empty list of HH:MM")
    chosen = tuple(given) if given is not None else default_times
    return _Drug(
        window.drug,
        tuple(sorted({_minutes(t, window.drug) for t in chosen})),
        _hours_min(window.drug_before_mg_h, window.drug, "drug_before_mg_h"),
        _hours_min(window.drug_after_mg_h, window.drug, "drug_after_mg_h"),
        note,
        given is not None,
    )


def _hours_min(hours: Any, drug: str, field: str) -> int | None:
    if hours is None:
        return None
    if isinstance(hours, bool) or not isinstance(hours, int | float) or not 0 <= hours < 24:
        raise ScheduleError(drug, field, hours, "must be a number of hours from 0 to under 24, or null")
    return round(hours * 60)


def _minutes(text: str, drug: str | None = None) -> int:
    """Minutes after midnight of "HH:MM" (or FHIR "HH:MM:SS")."""
    parts = text.split(":") if isinstance(text, str) else []
    if len(parts) not in (2, 3) or not all(p.isdigit() and len(p) == 2 for p in parts):
        raise ScheduleError(drug, "time", text, "must be HH:MM")
    hours, minutes = int(parts[0]), int(parts[1])
    if hours > 23 or minutes > 59 or (len(parts) == 3 and int(parts[2]) > 59):
        raise ScheduleError(drug, "time", text, "must be HH:MM")
    return hours * 60 + minutes


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day_start(policy: Policy) -> int:
    """The middle of the night: where one schedule day ends and the next begins."""
    night = (policy.wake_min - policy.bed_min) % MINUTES_PER_DAY
    return (policy.bed_min + night // 2) % MINUTES_PER_DAY


def _position(minutes: int, day_start: int) -> int:
    return (minutes - day_start) % MINUTES_PER_DAY


def _side_margin(gap: int, before_min: int | None, after_min: int | None) -> int:
    """Margin of the same-day order: gap > 0 drug first, < 0 magnesium first, 0 together (either side)."""
    sides = []
    if gap >= 0 and before_min is not None:
        sides.append(gap - before_min)
    if gap <= 0 and after_min is not None:
        sides.append(-gap - after_min)
    # the order used has no hours: violated by the whole gap (and by a day when taken together without hours)
    return max(sides) if sides else -abs(gap) - MINUTES_PER_DAY


def _night_margin(gap: int, side_min: int | None, other_min: int | None) -> int:
    hours = side_min if side_min is not None else other_min
    return gap - (hours or 0)


@functools.lru_cache(maxsize=4096)
def _solve(drugs: tuple[_Drug, ...], doses: int, policy: Policy) -> tuple[tuple[int, ...], int | None] | None:
    """The best magnesium times and the smallest margin, or None when no placement meets every window."""
    slots: list[tuple[int, int | None]] = []  # (minutes, smallest margin to any drug dose)
    for t in range(policy.wake_min, policy.bed_min + 1, policy.grid_min):
        margins = [window_margin_min(at, t, d.before_min, d.after_min, policy) for d in drugs for at in d.times_min]
        margin = min(margins) if margins else None
        if margin is None or margin >= 0:
            slots.append((t, margin))
    best_key: tuple[int, int, tuple[int, ...]] | None = None
    best: tuple[tuple[int, ...], int | None] | None = None
    for chosen in _placements(slots, doses, policy.mg_gap_min):
        margins = [m for _, m in chosen if m is not None]
        margin = min(margins) if margins else None
        at = tuple(t for t, _ in chosen)
        spread = min((b - a for a, b in zip(at, at[1:], strict=False)), default=0)
        counted = policy.cushion_min if margin is None else min(margin, policy.cushion_min)
        key = (-counted, -spread, at)
        if best_key is None or key < best_key:
            best_key, best = key, (at, margin)
    return best


def _placements(
    slots: Sequence[tuple[int, int | None]], doses: int, gap_min: int, start: int = 0
) -> Iterator[tuple[tuple[int, int | None], ...]]:
    """Every choice of `doses` slots in time order, each at least gap_min after the one before."""
    if doses == 0:
        yield ()
        return
    for i in range(start, len(slots)):
        first = slots[i]
        rest = i + 1
        while rest < len(slots) and slots[rest][0] - first[0] < gap_min:
            rest += 1
        for tail in _placements(slots, doses - 1, gap_min, rest):
            yield (first, *tail)


def _conflict(drugs: tuple[_Drug, ...], doses: int, policy: Policy) -> Conflict:
    """A smallest set of drugs that still leaves no schedule: drop each drug that is not needed for the conflict."""
    if _solve((), doses, policy) is None:
        return Conflict((), "doses_do_not_fit")
    needed = list(drugs)
    for drug in drugs:
        without = tuple(d for d in needed if d is not drug)
        if _solve(without, doses, policy) is None:
            needed = list(without)
    return Conflict(tuple(d.name for d in needed), "windows_conflict")

"""The daily schedule meets every separation window at once, or says which drugs make that impossible."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.schedule import (
    DEFAULT_DRUG_TIME,
    DEFAULT_DRUG_TIMES,
    FASTING,
    Conflict,
    Entry,
    Schedule,
    ScheduleError,
    Window,
    build_schedule,
    schedule_for_plan,
    window_margin_min,
)

# The checker below is written apart from the solver: it reads the windows as REFERENCE §3 states them, on a
# timeline of three days, and knows only the policy numbers (waking day 07:00-22:00, 30-minute grid, 4 h apart).
WAKE, BED, GRID, MG_GAP = 7 * 60, 22 * 60, 30, 4 * 60
NIGHT_MIDDLE = 2 * 60 + 30  # 02:30, halfway through 22:00-07:00
DAY = 24 * 60


def minutes(hhmm: str) -> int:
    hours, mins = hhmm.split(":")
    return int(hours) * 60 + int(mins)


def day_minute(hhmm: str) -> int:
    """Minutes since the schedule day began (the middle of the night before)."""
    return (minutes(hhmm) - NIGHT_MIDDLE) % DAY


def pair_problems(drug: str, drug_at: str, mg_at: str, before_h: float | None, after_h: float | None) -> list[str]:
    """Every way one drug dose and one daily magnesium dose break the window, over yesterday, today and tomorrow."""
    problems = []
    d = day_minute(drug_at)
    for day in (-1, 0, 1):
        m = day_minute(mg_at) + day * DAY
        if day == 0:  # the same day: only a side with hours is a way to keep the window
            if d < m and (before_h is None or m - d < before_h * 60):
                problems.append(f"{drug} {drug_at} then magnesium {mg_at}")
            if d > m and (after_h is None or d - m < after_h * 60):
                problems.append(f"magnesium {mg_at} then {drug} {drug_at}")
            if d == m and before_h != 0 and after_h != 0:
                problems.append(f"{drug} together with magnesium {mg_at}")
        else:  # across the night: that order's hours, or the other side's where that order has none
            hours = (
                (before_h if before_h is not None else after_h)
                if m > d
                else (after_h if after_h is not None else before_h)
            )
            if abs(m - d) < (hours or 0) * 60:
                problems.append(f"{drug} {drug_at} and magnesium {mg_at} across the night")
    return problems


def schedule_problems(
    entries: tuple[Entry, ...],
    windows: list[Window],
    doses: int,
    times: dict[str, list[str]] | None = None,
) -> list[str]:
    """Every window, dose count, grid, gap and drug time the schedule breaks."""
    times = times or {}
    mg = [e.time for e in entries if e.kind == "magnesium"]
    problems = [] if len(mg) == doses else [f"{len(mg)} magnesium doses, not {doses}"]
    for at in mg:
        if not WAKE <= minutes(at) <= BED or minutes(at) % GRID:
            problems.append(f"magnesium {at} off the waking-day grid")
    for a, b in zip(sorted(mg), sorted(mg)[1:], strict=False):
        if minutes(b) - minutes(a) < MG_GAP:
            problems.append(f"magnesium {a} and {b} under 4 h apart")
    for w in windows:
        drug_times = sorted(e.time for e in entries if e.drug == w.drug)
        expected = times.get(w.drug) or list(DEFAULT_DRUG_TIMES.get(w.drug, ((DEFAULT_DRUG_TIME,), None))[0])
        if drug_times != sorted(expected):
            problems.append(f"{w.drug} at {drug_times}, not {expected}")
        for drug_at in drug_times:
            for mg_at in mg:
                problems += pair_problems(w.drug, drug_at, mg_at, w.drug_before_mg_h, w.drug_after_mg_h)
    return problems


def entries(*rows: tuple[str, str | None]) -> tuple[Entry, ...]:
    """Entries from (time, drug or None for magnesium)."""
    return tuple(Entry(t, "magnesium" if d is None else "drug", d, None, False) for t, d in rows)


def brute_force_exists(windows: list[Window], doses: int, times: dict[str, list[str]]) -> bool:
    """Whether any placement on the grid keeps every window (every combination of the slots each drug allows)."""
    drugs = [
        (w, t)
        for w in windows
        for t in times.get(w.drug) or DEFAULT_DRUG_TIMES.get(w.drug, ((DEFAULT_DRUG_TIME,), None))[0]
    ]
    grid = [f"{m // 60:02d}:{m % 60:02d}" for m in range(WAKE, BED + 1, GRID)]
    # windows are pairwise, so a slot that breaks one with any drug dose is in no valid placement
    allowed = [
        mg
        for mg in grid
        if not any(pair_problems(w.drug, t, mg, w.drug_before_mg_h, w.drug_after_mg_h) for w, t in drugs)
    ]
    for mg in itertools.combinations(allowed, doses):
        rows = tuple((t, None) for t in mg) + tuple((t, w.drug) for w, t in drugs)
        if not schedule_problems(entries(*rows), windows, doses, times):
            return True
    return False


LEVO = Window("levothyroxine", 4, 4)
DOXY = Window("doxycycline", 2, 4)
GABA = Window("gabapentin", None, 2)


# --- the checker: each true positive beside its false alarm -----------------------------------------------------

CHECKER_CASES = [
    # (what, schedule rows, windows, doses, breaks a window?)
    (
        "levothyroxine 07:00, magnesium 11:00 and 19:00: 4 h kept",
        [("07:00", "levothyroxine"), ("11:00", None), ("19:00", None)],
        [LEVO],
        2,
        False,
    ),
    (
        "levothyroxine 07:00, magnesium 10:30: 3.5 h, too close",
        [("07:00", "levothyroxine"), ("10:30", None), ("19:00", None)],
        [LEVO],
        2,
        True,
    ),
    (
        "doxycycline 08:00, magnesium 10:00: 2 h before kept",
        [("08:00", "doxycycline"), ("10:00", None), ("22:00", None)],
        [DOXY],
        2,
        False,
    ),
    (
        "doxycycline 13:00 after magnesium 10:00: 3 h, needs 4",
        [("13:00", "doxycycline"), ("10:00", None)],
        [DOXY],
        1,
        True,
    ),
    ("gabapentin 22:00, 2 h after magnesium 20:00", [("22:00", "gabapentin"), ("20:00", None)], [GABA], 1, False),
    (
        "gabapentin 08:00 before magnesium 20:00: that order has no hours",
        [("08:00", "gabapentin"), ("20:00", None)],
        [GABA],
        1,
        True,
    ),
    (
        "moxifloxacin 21:00 then magnesium 07:00 next morning: 10 h, needs 4",
        [("21:00", "moxifloxacin"), ("07:00", None)],
        [Window("moxifloxacin", 4, 8)],
        1,
        False,
    ),
    (
        "magnesium 22:00 then moxifloxacin 05:00 next morning: 7 h, needs 8",
        [("05:00", "moxifloxacin"), ("22:00", None)],
        [Window("moxifloxacin", 4, 8)],
        1,
        True,
    ),
]


@pytest.mark.parametrize(
    ("what", "rows", "windows", "doses", "breaks"), CHECKER_CASES, ids=[c[0] for c in CHECKER_CASES]
)
def test_checker_and_engine_margin_agree(what: str, rows, windows: list[Window], doses: int, breaks: bool) -> None:
    times = {w.drug: [t for t, d in rows if d == w.drug] for w in windows}
    assert bool(schedule_problems(entries(*rows), windows, doses, times)) is breaks
    margins = [
        window_margin_min(
            minutes(drug_at),
            minutes(mg_at),
            None if w.drug_before_mg_h is None else round(w.drug_before_mg_h * 60),
            None if w.drug_after_mg_h is None else round(w.drug_after_mg_h * 60),
        )
        for w in windows
        for drug_at in times[w.drug]
        for mg_at, d in rows
        if d is None
    ]
    assert (min(margins) < 0) is breaks


def test_checker_rejects_doses_too_close_off_grid_or_outside_the_waking_day() -> None:
    assert schedule_problems(entries(("12:00", None), ("22:00", None)), [], 2) == []
    assert schedule_problems(entries(("12:00", None), ("15:30", None)), [], 2) == [
        "magnesium 12:00 and 15:30 under 4 h apart"
    ]
    assert schedule_problems(entries(("12:15", None)), [], 1) == ["magnesium 12:15 off the waking-day grid"]
    assert schedule_problems(entries(("22:30", None)), [], 1) == ["magnesium 22:30 off the waking-day grid"]
    assert schedule_problems(entries(("12:00", None)), [], 2) == ["1 magnesium doses, not 2"]


# --- the solver ---------------------------------------------------------------------------------------------------


def test_levothyroxine_and_doxycycline_with_two_doses() -> None:
    result = build_schedule([LEVO, DOXY], 2)
    assert isinstance(result, Schedule)
    assert [(e.time, e.kind, e.drug, e.note) for e in result.entries] == [
        ("07:00", "drug", "levothyroxine", FASTING),
        ("08:00", "drug", "doxycycline", None),
        ("12:00", "magnesium", None, None),
        ("22:00", "magnesium", None, None),
    ]
    assert schedule_problems(result.entries, [LEVO, DOXY], 2) == []
    assert result.margin_min == 60


def test_the_schedule_keeps_a_margin_up_to_the_cushion_before_spreading() -> None:
    # 11:00 would keep levothyroxine's 4 h exactly; 12:00 keeps an hour to spare and then spreads to 22:00
    result = build_schedule([LEVO], 2)
    assert isinstance(result, Schedule)
    assert [e.time for e in result.entries if e.kind == "magnesium"] == ["12:00", "22:00"]


def test_gabapentin_one_sided_window_puts_every_dose_before_it() -> None:
    result = build_schedule([GABA], 2)
    assert isinstance(result, Schedule)
    assert [(e.time, e.drug) for e in result.entries] == [("07:00", None), ("19:00", None), ("22:00", "gabapentin")]
    assert schedule_problems(result.entries, [GABA], 2) == []
    # gabapentin in the morning would have to come before magnesium, an order its window gives no hours for
    assert build_schedule([GABA], 1, {"gabapentin": ["08:00"]}) == Conflict(("gabapentin",), "windows_conflict")


def test_given_times_are_kept() -> None:
    result = build_schedule([DOXY], 2, {"doxycycline": ["08:00", "20:00"]})
    assert isinstance(result, Schedule)
    assert [(e.time, e.drug, e.time_given) for e in result.entries if e.kind == "drug"] == [
        ("08:00", "doxycycline", True),
        ("20:00", "doxycycline", True),
    ]
    assert schedule_problems(result.entries, [DOXY], 2, {"doxycycline": ["08:00", "20:00"]}) == []


CONFLICTS = [
    # (what, windows, doses, times, expected)
    (
        "wide windows around midday leave no room for 3 doses",
        [LEVO, Window("moxifloxacin", 4, 8), Window("ciprofloxacin", 2, 6), Window("eltrombopag", 4, 4)],
        3,
        {"moxifloxacin": ["12:00"], "ciprofloxacin": ["17:00"]},
        Conflict(("moxifloxacin",), "windows_conflict"),
    ),
    (
        "two drugs that are each fine alone but not together",
        [Window("moxifloxacin", 4, 8), Window("ciprofloxacin", 2, 6)],
        2,
        {"moxifloxacin": ["12:00"], "ciprofloxacin": ["18:00"]},
        Conflict(("ciprofloxacin", "moxifloxacin"), "windows_conflict"),
    ),
    (
        "a drug the plan gives no hours for",
        [Window("digoxin", None, None), LEVO],
        2,
        {},
        Conflict(("digoxin",), "no_hours"),
    ),
    ("five doses 4 h apart do not fit in 07:00-22:00", [], 5, {}, Conflict((), "doses_do_not_fit")),
]


@pytest.mark.parametrize(("what", "windows", "doses", "times", "expected"), CONFLICTS, ids=[c[0] for c in CONFLICTS])
def test_no_schedule_is_reported_with_the_drugs_that_conflict(what, windows, doses, times, expected) -> None:
    assert build_schedule(windows, doses, times) == expected
    if expected.reason == "windows_conflict":
        assert not brute_force_exists(windows, doses, times)
        kept = [w for w in windows if w.drug in expected.drugs]
        assert not brute_force_exists(kept, doses, times)
        for drug in expected.drugs:  # each named drug is needed for the conflict
            assert isinstance(build_schedule([w for w in kept if w.drug != drug], doses, times), Schedule)


def test_each_conflicting_drug_alone_has_a_schedule() -> None:
    times = {"moxifloxacin": ["12:00"], "ciprofloxacin": ["18:00"]}
    assert isinstance(build_schedule([Window("moxifloxacin", 4, 8)], 2, times), Schedule)
    assert isinstance(build_schedule([Window("ciprofloxacin", 2, 6)], 2, times), Schedule)


def test_same_input_same_schedule() -> None:
    first = build_schedule([DOXY, LEVO, GABA], 2)
    assert first == build_schedule([GABA, LEVO, DOXY], 2) == build_schedule([LEVO, DOXY, GABA], 2)


# --- the plan -----------------------------------------------------------------------------------------------------

PLAN_YES = {
    "supplement": "yes",
    "doses_per_day": 2,
    "separations": [
        {"drug": "doxycycline", "finding": "TETRACYCLINE_SEPARATION", "drug_before_mg_h": 2, "drug_after_mg_h": 4},
        {"drug": "levothyroxine", "finding": "THYROID_SEPARATION", "drug_before_mg_h": 4, "drug_after_mg_h": 4},
    ],
}


def test_a_plan_with_magnesium_gets_its_schedule() -> None:
    assert schedule_for_plan(PLAN_YES) == build_schedule([DOXY, LEVO], 2)


@pytest.mark.parametrize(
    "plan",
    [
        {**PLAN_YES, "supplement": "no", "doses_per_day": 0},
        {"supplement": "no", "doses_per_day": 0, "max_elemental_mg_per_day": 0, "separations": []},
    ],
    ids=["cap 0 with separations", "cap 0"],
)
def test_a_plan_without_magnesium_gets_no_schedule(plan) -> None:
    assert schedule_for_plan(plan) is None


@pytest.mark.parametrize(
    ("windows", "doses", "times", "field"),
    [
        ([Window("doxycycline", -1, 4)], 2, {}, "drug_before_mg_h"),
        ([Window("doxycycline", 2, "4")], 2, {}, "drug_after_mg_h"),
        ([DOXY], 2, {"doxycycline": ["8am"]}, "time"),
        ([DOXY], 2, {"doxycycline": ["24:00"]}, "time"),
        ([DOXY], 2, {"doxycycline": "08:00"}, "times"),
        ([DOXY], -1, {}, "doses_per_day"),
    ],
)
def test_unreadable_input_raises_an_error_with_fields(windows, doses, times, field) -> None:
    with pytest.raises(ScheduleError) as raised:
        build_schedule(windows, doses, times)
    assert raised.value.field == field


# --- every returned schedule keeps every window ----------------------------------------------------------------------

HOURS = st.one_of(st.none(), st.integers(0, 16).map(lambda halves: halves / 2))
DRUGS = ["levothyroxine", "doxycycline", "ciprofloxacin", "gabapentin", "alendronate", "digoxin"]
TIMES = st.lists(
    st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 15, 30, 45])),
    min_size=1,
    max_size=3,
    unique=True,
)


@st.composite
def window_sets(draw: st.DrawFn) -> tuple[list[Window], int, dict[str, list[str]]]:
    names = draw(st.lists(st.sampled_from(DRUGS), max_size=4, unique=True))
    windows = []
    for name in names:
        before, after = draw(HOURS), draw(HOURS)
        if before is None and after is None:
            after = draw(st.integers(0, 16)) / 2
        windows.append(Window(name, before, after))
    times = {name: draw(TIMES) for name in names if draw(st.booleans())}
    return windows, draw(st.integers(1, 3)), times


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(window_sets())
def test_every_returned_schedule_keeps_every_window(case: tuple[list[Window], int, dict[str, list[str]]]) -> None:
    windows, doses, times = case
    result = build_schedule(windows, doses, times)
    if isinstance(result, Schedule):
        assert schedule_problems(result.entries, windows, doses, times) == []
    else:
        assert isinstance(result, Conflict)
        assert result.reason == "windows_conflict"
        assert not brute_force_exists(windows, doses, times)

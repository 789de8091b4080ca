"""engine.impact: two ruleset versions compared on whole results, as the impact preview and re-evaluation read them.

Each variant is v2 with one edit an editor might make (the mycophenolate window 2 -> 3 h, a threshold, a cap, the
doses, monitoring, a physician, urgency); a record it touches is listed with the exact change, a record beside it
that the edit does not touch is not.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import CliRunner

from engine import cli, impact
from engine import ruleset as rulesets
from engine.evaluate import Evaluator
from tests.helpers import RULESETS, record

V2 = json.loads((RULESETS / "v2.json").read_text("utf-8"))

CELLCEPT = record(id="CELLCEPT", medications=[{"name": "CellCept 500 mg"}])
NO_MYCOPHENOLATE = record(id="LEVO", medications=[{"name": "levothyroxine 50 mcg"}])
MG_072 = record(id="MG072", serum_magnesium={"value": 0.72, "unit": "mmol/L"})
MG_060 = record(id="MG060", serum_magnesium={"value": 0.60, "unit": "mmol/L"})
EGFR_45 = record(id="EGFR45", egfr_ml_min_1_73m2=45)
HEALTHY = record(id="HEALTHY")
PEOPLE = [CELLCEPT, NO_MYCOPHENOLATE, MG_072, MG_060, EGFR_45, HEALTHY]

FOLLOW_UP_OLD = "re-check symptoms and serum magnesium after starting [S10][S11]"
FOLLOW_UP_NEW = "re-check symptoms and serum magnesium 1-2 weeks after starting [S10][S11]"


def rule(data: dict[str, Any], rule_id: str) -> dict[str, Any]:
    """The rule with this id in a ruleset's data."""
    return next(r for r in data["rules"] if r["id"] == rule_id)


def mycophenolate_3h(data: dict[str, Any], sides: tuple[str, ...] = ("before_h", "after_h")) -> None:
    """The rule whose `then` carries the mycophenolate separation: the window 2 h -> 3 h, its wording with it."""
    found = next(r for r in data["rules"] if r["then"].get("separation") and "mycophenol" in r["id"].lower())
    then = found["then"]
    for side in sides:
        then["separation"][side] = 3
    then["message"] = then["message"].replace("2 h", "3 h")
    if len(sides) == 2:  # no side keeps 2 h: the description says 3 h too (the checker refuses stale wording)
        found["description"] = found["description"].replace("2 h", "3 h")


def hypomagnesemia_070(data: dict[str, Any]) -> None:
    """HYPOMAGNESEMIA from below 0.75 to below 0.70 mmol/L."""
    hypo = rule(data, "HYPOMAGNESEMIA")
    hypo["when"][0]["where"][1][2] = 0.70
    hypo["description"] = hypo["description"].replace("0.75", "0.70")
    hypo["then"]["message"] = hypo["then"]["message"].replace("0.75", "0.70")


def us_limit_300(data: dict[str, Any]) -> None:
    """The US upper limit from 9 years: 350 -> 300 mg/day."""
    next(u for u in data["upper_limits"] if u["id"] == "UL_US_9_PLUS")["ul_mg"] = 300


def three_doses(data: dict[str, Any]) -> None:
    """At least three doses a day instead of two."""
    rule(data, "SPLIT_DOSE")["then"]["doses_per_day_min"] = 3
    rule(data, "SPLIT_DOSE")["description"] = "any plan: at least three intakes a day"
    rule(data, "SPLIT_DOSE")["then"]["message"] = "Take supplemental magnesium in at least three doses a day."


def follow_up_wording(data: dict[str, Any]) -> None:
    """The follow-up monitoring item reworded."""
    rule(data, "FOLLOW_UP")["then"]["monitoring_on_magnesium"] = [FOLLOW_UP_NEW]


def renal_moderate_physician(data: dict[str, Any]) -> None:
    """Moderately reduced kidney function: a physician approves the plan."""
    rule(data, "RENAL_MODERATE")["then"]["requires_physician"] = True


def renal_moderate_urgent(data: dict[str, Any]) -> None:
    """Moderately reduced kidney function made urgent (an editor's mistake the preview must show in full)."""
    rule(data, "RENAL_MODERATE")["then"]["urgent"] = True


def evaluator_of(data: dict[str, Any]) -> Evaluator:
    """An evaluator for ruleset data held in memory (the plain-Python backend, as the UI previews drafts)."""
    return Evaluator(rulesets.load_text(rulesets.dump(data), "v2-edited"), backend="python")


def edited(*edits: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """v2 with the edits applied, as a draft would be."""
    data = copy.deepcopy(V2)
    for edit in edits:
        edit(data)
    return data


@pytest.fixture(scope="module")
def v2() -> Evaluator:
    return evaluator_of(V2)


def replay(v2: Evaluator, *edits: Callable[[dict[str, Any]], None]) -> impact.Impact:
    return impact.replay(enumerate(PEOPLE, 1), v2, evaluator_of(edited(*edits)))


def listed(result: impact.Impact) -> dict[str, list[str]]:
    """Each changed record's lines, less the daily schedule's (it follows the windows and doses: tested apart)."""
    return {c.record_id: [line for line in c.lines() if not line.startswith("~ schedule")] for c in result.changed}


def without_schedule(lines: list[str]) -> list[str]:
    """Output lines with the schedule's part of each record line and its summary line taken out."""
    out = []
    for line in lines:
        if line.startswith("schedule changed in"):
            continue
        out.append(
            "; ".join(
                part
                for part in line.split("; ")
                if not part.split(": ", 1)[-1].startswith("~ schedule") and not part.startswith("~ schedule")
            )
        )
    return out


WINDOW_BOTH = "~ separation mycophenolate: before 2 h -> 3 h, after 2 h -> 3 h"


@pytest.mark.parametrize(
    "edits, expected",
    [
        # the issue: the window change and the threshold change, previewed together
        (
            (mycophenolate_3h, hypomagnesemia_070),
            {
                "CELLCEPT": [WINDOW_BOTH],
                "MG072": ["- HYPOMAGNESEMIA (moderate)", "- monitoring: repeat serum magnesium after starting"],
            },
        ),
        (
            (lambda d: mycophenolate_3h(d, ("before_h",)),),
            {"CELLCEPT": ["~ separation mycophenolate: before 2 h -> 3 h"]},
        ),
        (
            (us_limit_300,),
            {
                ref: ["~ plan.max_elemental_mg_per_day: 350 -> 300"]
                for ref in ("CELLCEPT", "LEVO", "MG072", "MG060", "EGFR45", "HEALTHY")
            },
        ),
        (
            (three_doses,),
            {
                ref: ["~ plan.doses_per_day: 2 -> 3"]
                for ref in ("CELLCEPT", "LEVO", "MG072", "MG060", "EGFR45", "HEALTHY")
            },
        ),
        (
            (follow_up_wording,),
            {
                ref: [f"+ monitoring: {FOLLOW_UP_NEW}", f"- monitoring: {FOLLOW_UP_OLD}"]
                for ref in ("CELLCEPT", "LEVO", "MG072", "MG060", "EGFR45", "HEALTHY")
            },
        ),
        (
            (renal_moderate_physician,),
            {"EGFR45": ["~ plan.requires_physician: no -> yes", "~ plan.physician: none -> approves"]},
        ),
    ],
    ids=["window-and-threshold", "window-before-only", "cap", "doses", "monitoring", "physician"],
)
def test_each_change_lists_the_records_it_touches_and_no_other(v2, edits, expected):
    result = replay(v2, *edits)
    assert listed(result) == expected
    assert result.summary()[0] == f"{len(PEOPLE)} records replayed, {len(expected)} would change"


def test_a_window_change_moves_the_daily_schedule_so_the_new_window_is_kept(v2):
    change = next(c for c in replay(v2, mycophenolate_3h).changed if c.record_id == "CELLCEPT")
    (moved,) = [x for x in change.changes if isinstance(x, impact.ScheduleChange)]
    times = {
        e["drug"] or f"mg{i}": int(e["time"][:2]) * 60 + int(e["time"][3:]) for i, e in enumerate(moved.new["entries"])
    }
    drug = times.pop("mycophenolate")
    assert all(mg - drug >= 3 * 60 or drug - mg >= 3 * 60 for mg in times.values())
    assert moved.old != moved.new


def test_the_cellcept_patient_reads_the_window_change_and_the_patient_beside_is_not_listed(v2):
    result = replay(v2, mycophenolate_3h, hypomagnesemia_070)
    assert without_schedule([c.text() for c in result.changed]) == [
        f"CELLCEPT: {WINDOW_BOTH}",
        "MG072: - HYPOMAGNESEMIA (moderate); - monitoring: repeat serum magnesium after starting",
    ]
    assert "LEVO" not in {c.record_id for c in result.changed}
    assert without_schedule(result.summary()) == [
        "6 records replayed, 2 would change",
        "finding HYPOMAGNESEMIA removed in 1",
        "separation window changed in 1: mycophenolate",
        "monitoring removed in 1: repeat serum magnesium after starting",
    ]
    window = [x for x in result.changed[0].to_dict()["changes"] if x["kind"] != "schedule"]
    assert window == [
        {
            "kind": "separation",
            "drug": "mycophenolate",
            "old": {"drug_before_mg_h": 2, "drug_after_mg_h": 2},
            "new": {"drug_before_mg_h": 3, "drug_after_mg_h": 3},
            "text": WINDOW_BOTH,
        }
    ]


def test_urgency_is_a_change_of_its_own(v2):
    change = listed(replay(v2, renal_moderate_urgent))
    assert list(change) == ["EGFR45"]
    assert "~ plan.urgent: no -> yes" in change["EGFR45"]
    assert "~ plan.max_elemental_mg_per_day: 350 -> 0" in change["EGFR45"]


def test_identical_results_give_no_change(v2):
    result = replay(v2)
    assert result.changed == [] and result.summary() == ["6 records replayed, 0 would change"]
    for person in PEOPLE:
        same = impact.result_of(v2, (1, person))
        assert impact.compare(same, copy.deepcopy(same)).lines() == []


def plan_with(**changes: Any) -> dict[str, Any]:
    """A result whose plan has the changes (a healthy record's v2 result otherwise)."""
    result = impact.result_of(evaluator_of(V2), (1, CELLCEPT))
    result["plan"].update(changes)
    return result


GABAPENTIN = {"drug": "gabapentin", "finding": "GABAPENTIN_SEPARATION", "drug_before_mg_h": None, "drug_after_mg_h": 2}
MYCO = {"drug": "mycophenolate", "finding": "MYCOPHENOLATE_SEPARATION", "drug_before_mg_h": 2, "drug_after_mg_h": 2}


@pytest.mark.parametrize(
    "old, new, lines",
    [
        (
            {"separations": [MYCO]},
            {"separations": [MYCO, GABAPENTIN]},
            ["+ separation gabapentin: before none, after 2 h"],
        ),
        (
            {"separations": [MYCO, GABAPENTIN]},
            {"separations": [MYCO]},
            ["- separation gabapentin: before none, after 2 h"],
        ),
        (
            {"separations": [GABAPENTIN]},
            {"separations": [{**GABAPENTIN, "drug_before_mg_h": 1.5}]},
            ["~ separation gabapentin: before none -> 1.5 h"],
        ),
        # which findings ask for a window is not the window: no change
        ({"separations": [MYCO]}, {"separations": [{**MYCO, "finding": "OTHER"}]}, []),
        (
            {"physician": "none", "physician_decides_because": [], "ceiling_if_physician_agrees_mg_per_day": None},
            {
                "physician": "decides",
                "physician_decides_because": ["RENAL_SEVERE"],
                "ceiling_if_physician_agrees_mg_per_day": 350,
            },
            [
                "~ plan.physician: none -> decides",
                "~ plan.physician_decides_because: none -> RENAL_SEVERE",
                "~ plan.ceiling_if_physician_agrees_mg_per_day: none -> 350",
            ],
        ),
        (
            {"supplement": "yes", "form": "citrate"},
            {"supplement": "no", "form": None},
            ["~ plan.supplement: yes -> no", "~ plan.form: citrate -> none"],
        ),
        # the daily schedule: compared when both plans carry one (v1 plans do not)
        (
            {"schedule": {"status": "ok", "entries": [{"drug": None, "time": "08:00"}]}},
            {"schedule": {"status": "conflict", "drugs": ["doxycycline"], "reason": "windows_conflict"}},
            ["~ schedule: Mg 08:00 -> no single day fits (doxycycline)"],
        ),
        ({"schedule": None}, {"schedule": None}, []),
    ],
)
def test_plan_parts(old, new, lines):
    assert impact.compare(plan_with(**old), plan_with(**new)).lines() == lines


def test_a_ruleset_before_the_plan_contract_is_not_read_as_a_physician_change():
    old = plan_with()
    for key in ("physician", "physician_decides_because", "ceiling_if_physician_agrees_mg_per_day"):
        del old["plan"][key]
    assert impact.compare(old, plan_with(physician="decides")).lines() == []


def test_a_rejected_record_is_one_status_change():
    ok = plan_with()
    rejected = {"record_id": "CELLCEPT", "status": "rejected", "errors": []}
    assert impact.compare(ok, rejected).text() == "CELLCEPT: status ok -> rejected"
    assert impact.compare(rejected, rejected).lines() == []


def test_cli_impact_lists_the_window_change(tmp_path):
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(rulesets.dump(V2), "utf-8")
    new.write_text(rulesets.dump(edited(mycophenolate_3h, hypomagnesemia_070)), "utf-8")
    records = tmp_path / "intake.jsonl"
    records.write_text("".join(json.dumps(p) + "\n" for p in PEOPLE), "utf-8")
    out = CliRunner().invoke(cli.main, ["rulesets", "impact", str(old), str(new), str(records)])
    assert out.exit_code == 0, out.output
    assert without_schedule(out.output.splitlines()) == [
        "6 records replayed, 2 would change",
        "finding HYPOMAGNESEMIA removed in 1",
        "separation window changed in 1: mycophenolate",
        "monitoring removed in 1: repeat serum magnesium after starting",
        f"CELLCEPT: {WINDOW_BOTH}",
        "MG072: - HYPOMAGNESEMIA (moderate); - monitoring: repeat serum magnesium after starting",
    ]

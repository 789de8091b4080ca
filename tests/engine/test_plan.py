"""The planner (engine/plan.py): the cap and its arithmetic, who sets it, separation windows, the plan contract."""

import copy

import pytest

from engine import plan as plan_module
from engine import ruleset as rs
from engine.evaluate import Evaluator
from engine.plan import _CAPS, _LINES, _SEPARATES, _Shaping
from engine.results import Plan
from engine.vocabulary import PLAN_EFFECTS
from tests.helpers import RULESETS, record

MULTIVITAMIN = "multivitamine (100 mg magnesium) 1dd"
V1 = rs.RULESETS_DIR / "magnesium" / "v1.json"

# (record changes, cap mg/day, cap set by, physician, requires_physician): each true positive beside its false alarm
CAPS = [
    ({}, 350, "UL_US_9_PLUS", "none", False),  # healthy adult, US: the UL stands
    ({"jurisdiction": "EU"}, 250, "UL_EU_4_PLUS", "none", False),  # EU: its own UL
    # magnesium already taken is subtracted from the UL; a physician need not decide
    ({"jurisdiction": "EU", "medications": [MULTIVITAMIN]}, 150, "UL_EU_4_PLUS", "none", False),
    ({"egfr_ml_min_1_73m2": 20}, 0, "RENAL_SEVERE", "decides", True),  # severe CKD: no amount, a physician decides
    ({"egfr_ml_min_1_73m2": 30}, 350, "UL_US_9_PLUS", "none", False),  # ... but not at eGFR 30
]


@pytest.mark.parametrize("changes, cap, cap_set_by, physician, requires_physician", CAPS)
def test_the_cap_is_the_strictest_upper_limit_minus_magnesium_already_taken(
    evaluator, changes, cap, cap_set_by, physician, requires_physician
):
    plan = evaluator.evaluate(record(**changes)).plan
    assert isinstance(plan, Plan)
    assert (plan.max_elemental_mg_per_day, plan.cap_set_by) == (cap, cap_set_by)
    assert plan.supplement is (cap > 0)
    assert plan.doses_per_day == (2 if cap else 0)
    assert plan.requires_physician is requires_physician
    assert plan.contract is not None and plan.contract.physician == physician


def test_the_cap_arithmetic_names_the_source_of_the_magnesium_already_taken(evaluator):
    taken = evaluator.evaluate(record(jurisdiction="EU", medications=["multivitamine (100 mg magnesium) 1dd"]))
    assert taken.plan.contract.cap_arithmetic == (
        "UL 250 − 100 mg from 'multivitamine (100 mg magnesium) 1dd' = 150 mg/day"
    )
    assert evaluator.evaluate(record(jurisdiction="EU")).plan.contract.cap_arithmetic is None


def test_the_cap_is_written_as_an_int_when_whole(evaluator):
    written = evaluator.evaluate(record()).to_dict()["plan"]["max_elemental_mg_per_day"]
    assert written == 350 and type(written) is int


# (medications, separations as (drug, finding, hours before, hours after)), sorted by drug
SEPARATIONS = [
    (["ciprofloxacin"], [("ciprofloxacin", "FLUOROQUINOLONE_SEPARATION", 2, 6)]),
    (["levothyroxine"], [("levothyroxine", "LEVOTHYROXINE_SEPARATION", 4, 4)]),
    (
        ["ciprofloxacin", "alendronate"],
        [("alendronate", "BISPHOSPHONATE_SEPARATION", 2, 2), ("ciprofloxacin", "FLUOROQUINOLONE_SEPARATION", 2, 6)],
    ),
    (["omeprazole 20 mg"], []),  # no window for a drug magnesium does not bind
]


@pytest.mark.parametrize("medications, expected", SEPARATIONS)
def test_separation_windows_per_drug(evaluator, medications, expected):
    plan = evaluator.evaluate(record(medications=medications)).plan
    got = [(s.drug, s.finding, s.drug_before_mg_h, s.drug_after_mg_h) for s in plan.separations]
    assert got == expected


def test_two_rules_on_one_drug_keep_the_longest_window_on_each_side_and_name_both_findings():
    shaping = _Shaping()
    shaping._separate("ciprofloxacin", "A", (2, None))
    shaping._separate("ciprofloxacin", "B", (1, 6))
    shaping._separate("ciprofloxacin", "A", (None, 4))
    (window,) = shaping.separation_list()
    assert (window.finding, window.drug_before_mg_h, window.drug_after_mg_h) == ("A, B", 2, 6)


@pytest.mark.parametrize(
    "best, urgent, expected",
    [
        ((250.0, "UL_EU_4_PLUS"), False, (250.0, "UL_EU_4_PLUS", False)),
        (None, False, (0.0, "NO_UPPER_LIMIT", True)),  # no upper limit covers the patient: fail safe
        ((250.0, "UL_EU_4_PLUS"), True, (0.0, "URGENT", False)),  # urgent overrides any cap
    ],
)
def test_cap_before_the_contract(best, urgent, expected):
    assert _Shaping(best=best, urgent=urgent).cap() == expected


def test_a_ruleset_before_the_plan_contract_writes_no_contract_keys():
    v1 = Evaluator(V1, backend="python")
    plan = v1.evaluate(record()).plan
    assert plan.contract is None
    written = plan.to_dict()
    assert "physician" not in written and "cap_arithmetic" not in written
    assert written["supplement"] == "yes"


def test_a_plan_carries_one_daily_schedule_that_keeps_every_window(evaluator):
    plan = evaluator.evaluate(record(medications=["levothyroxine 100 mcg", "doxycycline 100 mg"])).plan
    schedule = plan.to_dict()["schedule"]
    assert schedule["status"] == "ok"
    times = {e["drug"] or f"mg{i}": e["time"] for i, e in enumerate(schedule["entries"])}
    assert [e["kind"] for e in schedule["entries"]].count("magnesium") == plan.doses_per_day
    minutes = {k: int(v[:2]) * 60 + int(v[3:]) for k, v in times.items()}
    # each drug dose at least drug_before_mg_h before, or drug_after_mg_h after, each magnesium dose
    for sep in plan.separations:
        for key, mg in minutes.items():
            if key.startswith("mg"):
                gap_h = (mg - minutes[sep.drug]) / 60
                assert gap_h >= sep.drug_before_mg_h or -gap_h >= sep.drug_after_mg_h


def test_a_plan_that_proposes_no_magnesium_has_no_schedule(evaluator):
    plan = evaluator.evaluate(record(egfr_ml_min_1_73m2=20, medications=["levothyroxine 100 mcg"])).plan
    assert plan.max_elemental_mg_per_day == 0
    assert plan.to_dict()["schedule"] is None


def test_v1_plans_stay_as_published_without_a_schedule():
    v1 = Evaluator(RULESETS / "v1.json")
    assert "schedule" not in v1.evaluate(record(medications=["levothyroxine 100 mcg"])).plan.to_dict()


# --- the parts of a plan kept per ruleset (_PlanRules, _Contract._terms): shared, bounded, never changed through a plan

# (record changes): separations and a schedule; a physician decides (RENAL_SEVERE); magnesium already taken
KEPT = [
    {"medications": ["levothyroxine 100 mcg", "doxycycline 100 mg"]},
    {"egfr_ml_min_1_73m2": 20, "medications": ["ciprofloxacin"]},
    {"jurisdiction": "EU", "medications": [MULTIVITAMIN, "alendronate"]},
]


@pytest.mark.parametrize("changes", KEPT)
def test_a_kept_part_cannot_be_changed_through_a_plan_or_its_dict(evaluator, changes):
    plan = evaluator.evaluate(record(**changes)).plan
    before = copy.deepcopy(plan.to_dict())
    written = plan.to_dict()
    for separation in written["separations"]:
        separation["drug_before_mg_h"] = 99
    for key in ("separations", "monitoring", "monitoring_nl", "physician_decides_because"):
        written[key].append("changed")
    for part in (*plan.separations, plan.contract, plan.schedule):  # each writes a new dict every time
        if part is not None:
            part.to_dict().clear()
    if written["schedule"] is not None:
        written["schedule"]["entries"][0]["time"] = "00:00"
        written["schedule"]["entries"].clear()
    plan.separations.clear()
    plan.monitoring.append("changed")
    assert evaluator.evaluate(record(**changes)).plan.to_dict() == before


def test_each_record_gets_its_own_plan_whatever_was_kept_before(evaluator):
    for changes in KEPT:  # the shared evaluator has kept parts of these and of other tests' records
        evaluator.evaluate(record(**changes))
    for changes in KEPT:
        assert evaluator.evaluate(record(**changes)).plan == Evaluator().evaluate(record(**changes)).plan
    plans = [evaluator.evaluate(record(**changes)).plan for changes in KEPT]
    assert len({(p.max_elemental_mg_per_day, tuple(p.separations), p.contract) for p in plans}) == len(KEPT)


def test_the_kept_parts_are_bounded(monkeypatch):
    monkeypatch.setattr(plan_module, "SHAPES_CACHE_SIZE", 2)
    monkeypatch.setattr(plan_module, "TERMS_CACHE_SIZE", 2)
    small, fresh = Evaluator(), Evaluator()
    records = [record(**changes) for changes in KEPT] + [record(age_years=age) for age in (20, 60, 80)]
    for rec in records * 2:
        assert small.evaluate(rec).plan == fresh.evaluate(rec).plan
        shapes, contract = small.planner.shapes, small.planner.contract
        assert contract is not None
        for kept in (shapes._caps, shapes._lines, shapes._separations, contract._kept_terms):
            assert 0 < len(kept) <= 2


def test_every_plan_effect_belongs_to_a_kept_part():
    # _role sorts a rule's plan effects into the kept parts (cap, monitoring, separations): a new plan effect must be
    # given a part there, or plans would reuse a part worked out for other records
    parts = {
        _CAPS: {"ul_mg", "cap_mg", "requires_physician", "urgent", "doses_per_day_min", "suggest_form"},
        _LINES: {"monitoring"},
        _SEPARATES: {"separation"},
    }
    assert set(PLAN_EFFECTS) == set().union(*parts.values())

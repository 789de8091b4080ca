"""Plan contract (REFERENCE §8): a physician decides (cap 0, ceiling stated apart) or approves (the cap stands)."""

import copy
import json

import pytest

from engine import ruleset as rs
from engine import ruleset_check
from engine.evaluate import Evaluator
from tests.helpers import finding, ids, record

V2 = rs.RULESETS_DIR / "magnesium" / "v2.json"
EU = {"jurisdiction": "EU"}

# (what the record adds, the finding, its severity, physician, cap, ceiling once a physician agrees)
DECIDES = [
    ({"medications": ["spironolacton 25 mg 1dd"], "egfr_ml_min_1_73m2": 45}, "K_SPARING_DIURETIC", "major", 250),
    ({"medications": ["Aldactone 50mg"], "egfr_ml_min_1_73m2": 59.9}, "K_SPARING_DIURETIC", "major", 250),
    ({"medications": ["amiloride"], "egfr_ml_min_1_73m2": None}, "RENAL_DATA_MISSING", "major", 250),
    ({"conditions": ["chronic kidney disease"], "egfr_ml_min_1_73m2": None}, "RENAL_DATA_MISSING", "major", 250),
    ({"medications": ["Isentress 400 mg 2dd"]}, "RALTEGRAVIR_AVOID", "major", 250),
    ({"conditions": ["myasthenia gravis"]}, "MYASTHENIA_GRAVIS", "major", 250),
    ({"conditions": ["bradycardia"]}, "CARDIAC_CONDUCTION_DISORDER", "contraindicated", 250),
    ({"egfr_ml_min_1_73m2": 20}, "RENAL_SEVERE", "contraindicated", 250),
    ({"serum_magnesium": {"value": 0.4, "unit": "mmol/L"}}, "HYPOMAGNESEMIA_SEVERE", "major", 250),
    (
        {"medications": ["spironolacton 25 mg 1dd", "multivitamine (100 mg magnesium) 1dd"], "egfr_ml_min_1_73m2": 45},
        "K_SPARING_DIURETIC",
        "major",
        150,  # the ceiling is the upper limit minus magnesium already taken
    ),
    ({"age_years": 2}, "EU_NO_UL_UNDER_4", "major", None),  # no upper limit: no ceiling either
    ({"age_years": 0.5}, "INFANT_NO_SUPPLEMENT", "contraindicated", None),
]
APPROVES = [
    ({"medications": ["spironolacton 25 mg 1dd"], "egfr_ml_min_1_73m2": 95}, "K_SPARING_DIURETIC", "moderate", 250),
    ({"medications": ["spironolacton 25 mg 1dd"], "egfr_ml_min_1_73m2": 60}, "K_SPARING_DIURETIC", "moderate", 250),
    ({"medications": ["gentamicine"]}, "MG_WASTING_DRUG", "moderate", 250),
    ({"age_years": 10}, "PEDIATRIC", "info", 250),
    ({"age_years": 10, "jurisdiction": "US"}, "PEDIATRIC", "info", 350),
    ({"age_years": 6, "jurisdiction": "US"}, "PEDIATRIC", "info", 110),  # the age-band UL for a child stands
]


@pytest.mark.parametrize("changes, fid, severity, ceiling", DECIDES)
def test_where_a_physician_decides_the_plan_proposes_no_amount_and_states_the_ceiling(
    evaluator, changes, fid, severity, ceiling
):
    result = evaluator.evaluate(record(**{**EU, **changes})).to_dict()
    assert finding(result, fid)["severity"] == severity
    plan = result["plan"]
    assert plan["max_elemental_mg_per_day"] == 0
    assert plan["supplement"] == "no" and plan["doses_per_day"] == 0
    assert plan["physician"] == "decides" and plan["requires_physician"] is True
    assert fid in plan["physician_decides_because"]
    assert plan["ceiling_if_physician_agrees_mg_per_day"] == ceiling
    assert plan["ceiling_reason"]


@pytest.mark.parametrize("changes, fid, severity, cap", APPROVES)
def test_where_a_physician_approves_the_cap_stands(evaluator, changes, fid, severity, cap):
    result = evaluator.evaluate(record(**{**EU, **changes})).to_dict()
    assert finding(result, fid)["severity"] == severity
    plan = result["plan"]
    assert plan["max_elemental_mg_per_day"] == cap
    assert plan["physician"] == "approves" and plan["requires_physician"] is True
    assert plan["ceiling_if_physician_agrees_mg_per_day"] is None


def test_no_physician_for_a_healthy_adult(evaluator):
    plan = evaluator.evaluate(record(**EU)).to_dict()["plan"]
    assert (plan["physician"], plan["requires_physician"], plan["max_elemental_mg_per_day"]) == ("none", False, 250)


def test_the_ceiling_reason_names_the_decision_and_the_limit(evaluator):
    result = evaluator.evaluate(
        record(jurisdiction="EU", medications=["spironolacton"], egfr_ml_min_1_73m2=45)
    ).to_dict()
    assert result["plan"]["ceiling_reason"] == (
        "A physician decides the dose (K_SPARING_DIURETIC); once a physician agrees the rules allow "
        "UL 250 mg/day (UL_EU_4_PLUS)."
    )


ADVICE_FOR_TAKING = ("after starting", "while on magnesium", "every 3-6 months")


@pytest.mark.parametrize(
    "changes, proposes",
    [
        ({"egfr_ml_min_1_73m2": 45}, True),  # RENAL_MODERATE: monitor while on magnesium
        ({"egfr_ml_min_1_73m2": 45, "medications": ["spironolacton"]}, False),  # the same, but a physician decides
        ({"serum_magnesium": {"value": 0.6, "unit": "mmol/L"}}, True),  # HYPOMAGNESEMIA: repeat after starting
        ({"serum_magnesium": {"value": 0.6, "unit": "mmol/L"}, "conditions": ["myasthenia gravis"]}, False),
        ({"age_years": 10}, True),  # children: every 3-6 months under supervision
        ({"age_years": 2}, False),
        ({"medications": ["Milk of magnesia 15 ml 1dd"]}, False),  # the upper limit is used up already
    ],
)
def test_advice_for_taking_magnesium_only_when_some_is_proposed(evaluator, changes, proposes):
    result = evaluator.evaluate(record(**{**EU, **changes})).to_dict()
    plan = result["plan"]
    advice = [m for m in plan["monitoring"] if any(a in m for a in ADVICE_FOR_TAKING)]
    assert (plan["max_elemental_mg_per_day"] > 0) is proposes
    assert bool(advice) is proposes
    assert ({"SPLIT_DOSE", "FOLLOW_UP"} <= ids(result)) is proposes
    assert ({"SPLIT_DOSE", "FOLLOW_UP"} & ids(result) == set()) is not proposes
    assert (plan["doses_per_day"] >= 2) is proposes


# --- the checker refuses a rule whose message and cap disagree ----------------------------------------


def _draft() -> dict:
    doc = json.loads(V2.read_text("utf-8"))
    doc["status"] = "draft"
    return doc


def _errors(doc: dict, rule_id: str) -> list[str]:
    return [f"{e.field}: {e}" for e in ruleset_check.check_data(doc) if e.rule_id == rule_id]


@pytest.mark.parametrize(
    "message, cap, refused",
    [
        ("Magnesium may accumulate; a physician decides.", None, True),
        ("Magnesium may accumulate; physician only.", None, True),
        ("Magnesium kan ophopen; de arts beslist over de dosis.", None, True),
        ("Magnesium kan ophopen; hierover beslist een arts.", None, True),
        ("Magnesium may accumulate; a physician decides.", 0, False),
        ("Magnesium may accumulate; monitor serum magnesium; physician approval.", None, False),
        ("Magnesium may accumulate; monitor serum magnesium; physician approval.", 250, False),
    ],
)
def test_checker_refuses_a_physician_decides_message_without_cap_0(message, cap, refused):
    doc = _draft()
    rule = next(r for r in doc["rules"] if r["id"] == "K_SPARING")
    rule["then"]["message"] = message
    if cap is not None:
        rule["then"]["cap_mg"] = cap
    errors = _errors(doc, "K_SPARING")
    assert bool(errors) is refused
    if refused:
        assert errors[0].startswith("then.cap_mg: ") and "plan contract" in errors[0]


@pytest.mark.parametrize(
    "change, field",
    [
        ({"cap_mg": 100}, "then.cap_mg"),  # a contraindication that proposes 100 mg
        ({"requires_physician": False}, "then.requires_physician"),  # cap 0 without a physician
    ],
)
def test_checker_holds_contraindications_to_cap_0_with_a_physician(change, field):
    doc = _draft()
    rule = next(r for r in doc["rules"] if r["id"] == "CARDIAC_CONDUCTION_DISORDER")
    rule["then"].update(change)
    assert {e.field for e in ruleset_check.check_data(doc) if e.rule_id == "CARDIAC_CONDUCTION_DISORDER"} == {field}


def test_published_v1_keeps_its_old_messages_unchecked_by_the_contract():
    v1 = json.loads((rs.RULESETS_DIR / "magnesium" / "v1.json").read_text("utf-8"))
    rule = next(r for r in v1["rules"] if r["id"] == "K_SPARING_REDUCED_EGFR")
    assert "a physician decides" in rule["then"]["message"] and "cap_mg" not in rule["then"]
    assert list(ruleset_check.check_data(v1)) == []


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c["rennie"]["per_unit"]["tablet"].update(form="citraat"), "a known form"),
        (lambda c: c["rennie"]["per_unit"].update(flesje={"elemental_mg": 5}), "unknown unit 'flesje'"),
        (lambda c: c["rennie"].update(sources=["S99"]), "known source tags"),
        (lambda c: c["mylanta"].pop("note"), "U with a note"),
        (lambda c: c["maalox"]["per_unit"]["ml"].update(salt_mg=-1), "salt_mg > 0"),
    ],
)
def test_checker_refuses_bad_magnesium_content(mutate, message):
    doc = _draft()
    mutate(doc["vocabulary"]["magnesium_content"])
    assert any(message in str(e) for e in ruleset_check.check_data(doc))


def test_a_draft_with_a_checked_content_table_evaluates(tmp_path):
    doc = _draft()
    content = copy.deepcopy(doc["vocabulary"]["magnesium_content"])
    content["rennie"]["per_unit"]["tablet"] = {"elemental_mg": 20}  # a label that states elemental magnesium
    doc["vocabulary"]["magnesium_content"] = content
    path = tmp_path / "v2.json"
    path.write_text(rs.dump(doc), "utf-8")
    evaluator = Evaluator(path, backend="python")
    result = evaluator.evaluate(record(jurisdiction="EU", medications=["Rennie 3dd2"])).to_dict()
    assert result["facts"]["patient"]["other_mg_elemental_mg_per_day"] == 120
    assert result["plan"]["max_elemental_mg_per_day"] == 130


def test_route_not_oral_is_a_physician_decision():
    """ROUTE_NOT_ORAL (the route fact comes from FHIR orders): no oral amount, the oral ceiling stated apart."""
    from engine import interpreter
    from engine.facts import parse

    ev = Evaluator(backend="python")
    intake = parse(record(jurisdiction="EU"), ev.ruleset, ev.medications, ev.concepts, ev.forms, "EU")
    intake.patient.update(supplement_route="not_oral", supplement_route_text="intravenous")
    fired = sorted(interpreter.run(ev.ruleset, [intake.patient]), key=lambda f: f.rule.index)
    findings = ev.planner.findings(fired, intake)
    plan = ev.planner.plan(fired, findings, intake).to_dict()
    assert {f.id: f.severity for f in findings}["ROUTE_NOT_ORAL"] == "major"
    assert "SPLIT_DOSE" not in {f.id for f in findings}
    assert (plan["max_elemental_mg_per_day"], plan["physician"]) == (0, "decides")
    assert plan["physician_decides_because"] == ["ROUTE_NOT_ORAL"]
    assert plan["ceiling_if_physician_agrees_mg_per_day"] == 250


@pytest.mark.parametrize(
    "rule_id, effect", [("FOLLOW_UP", "only_when_supplemented"), ("RENAL_MODERATE", "monitoring_on_magnesium")]
)
def test_the_rule_form_keeps_the_plan_contract_effects(app, rule_id, effect):
    from review_ui import workflow
    from tests.review_ui.test_ruleset_views import PASSWORD, draft_data, form_of, login, post

    with app.app_context():
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
    client = app.test_client()
    login(client, "ed")
    assert client.post("/rulesets/magnesium/drafts", follow_redirects=True).status_code == 200
    before = next(r for r in draft_data(app)["rules"] if r["id"] == rule_id)
    assert effect in before["then"]
    url = f"/rulesets/drafts/1/rules/{rule_id}"
    assert post(client, url, form_of(client.get(url), "rule-form")).status_code == 302
    assert next(r for r in draft_data(app)["rules"] if r["id"] == rule_id) == before

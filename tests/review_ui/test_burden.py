"""The alert-burden page and CSV on decisions and CDS Hooks feedback seeded through the real workflow."""

import csv
import io
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import cards as cardmaker
from review_ui import ruleset_drafts, workflow
from review_ui.db import db
from review_ui.models import Case, User, utcnow
from tests.helpers import record

PASSWORD = "correct horse battery"
PPI = ["omeprazole 20 mg daily"]


def imported(evaluator, *records, filename="t.jsonl"):
    items = [(i + 1, json.dumps(r)) for i, r in enumerate(records)]
    return workflow.import_records(items, filename=filename, actor="alice", evaluator=evaluator)


def decide(case, kind, *, code=None, above_cap=False):
    plan = dict(case.plan)
    if above_cap:
        plan["max_elemental_mg_per_day"] = (plan.get("max_elemental_mg_per_day") or 0) + 50
    alice = db.session.query(User).filter_by(username="alice").one()
    workflow.decide(
        case.id,
        expected_version=case.version,
        kind=kind,
        actor=alice,
        password=PASSWORD,
        reason="seen" if kind != "approve" else "",
        final_plan=plan if kind == "adjust" else None,
        override_code=code,
        override_text="documented" if code else "",
    )


@pytest.fixture
def seeded(app, evaluator):
    """P1 twice with a PPI alert (approved, then overridden); P2 with RENAL_SEVERE overridden on the worklist;
    P3's RENAL_SEVERE card overridden in the EHR 90 s after it was shown; one feedback item on an unknown card."""
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
        imported(evaluator, record(id="P1", medications=PPI), record(id="P2", egfr_ml_min_1_73m2=25))
        decide(db.session.query(Case).filter_by(patient_ref="P1").one(), "approve")
        # P1's changed intake after that decision is a second case (a pending one would have been superseded)
        later = record(
            id="P1", medications=PPI, supplement={"form": "citrate", "dose_mg": 100, "dose_basis": "elemental"}
        )
        imported(evaluator, later)
        two_hours_ago = utcnow() - timedelta(hours=2)
        db.session.execute(update(Case).values(created_at=two_hours_ago))
        db.session.commit()
        first, second = db.session.query(Case).filter_by(patient_ref="P1").order_by(Case.id).all()
        assert first.status == "approved" and second.follows_case_id == first.id
        decide(second, "adjust", code="PHYSICIAN_ORDER", above_cap=True)
        decide(db.session.query(Case).filter_by(patient_ref="P2").one(), "adjust", code="NEWER_LAB_RESULT")
        imported(evaluator, record(id="P3", egfr_ml_min_1_73m2=25), filename="cds-hooks mgreview-order-sign HOOK-1")
        p3 = db.session.query(Case).filter_by(patient_ref="P3").one()
        shown = cardmaker.cards(
            p3.result, hook_instance="HOOK-1", draft_order=None, sources_url="/sources", override_reasons={}
        )
        card = next(c for c in shown if c["source"]["topic"]["code"] == "RENAL_SEVERE")
        at = p3.created_at + timedelta(seconds=90)
        workflow.record_cds_feedback(
            "mgreview-order-sign",
            [
                {
                    "card": card["uuid"],
                    "outcome": "overridden",
                    "outcomeTimestamp": at.isoformat(),
                    "overrideReason": {"reason": {"code": "SPECIALIST_ADVICE"}, "userComment": "nephrologist"},
                },
                {"card": "not-a-card-we-know", "outcome": "accepted"},
            ],
            actor="ehr",
        )
    return app


def login(client, username):
    return client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=True)


def cells(page, rule_id):
    """The texts of one rule's row of the burden table, as a person reads them."""
    found = re.search(rf'<tr data-rule="{rule_id}">(.*?)</tr>', page, re.S)
    assert found, f"no row for {rule_id}"
    return [
        re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td>(.*?)</td>", found[1], re.S)
    ]


def test_burden_page_shows_what_clinicians_override(seeded):
    client = seeded.test_client()
    login(client, "ed")
    assert 'id="burden-link"' in client.get("/rulesets/").get_data(as_text=True)
    page = client.get("/rulesets/burden").get_data(as_text=True)
    # rule, finding, fired, answered, overridden, top reasons, patients, repeat rate, median time to decision
    assert cells(page, "PPI") == [
        "PPI",
        "Long-term proton pump inhibitor PPI_LONG_TERM · moderate",
        "2",
        "2",
        "1 (50%)",
        "PHYSICIAN_ORDER (1)",
        "1",
        "50%",
        "2.0 h",
    ]
    renal = cells(page, "RENAL_SEVERE")
    assert renal[2:] == [
        "3 (1 card)",
        "2",
        "2 (100%)",
        "NEWER_LAB_RESULT (1), SPECIALIST_ADVICE (1)",
        "2",
        "33%",
        "1.0 h",
    ]
    assert "1 CDS Hooks feedback item(s) name a card" in page
    assert 'href="/rulesets/burden.csv"' in page
    assert cells(page, "FOLLOW_UP")[4] == "1 (50%)"  # every finding of an overridden case counts the override


def test_burden_csv(seeded):
    client = seeded.test_client()
    login(client, "ed")
    response = client.get("/rulesets/burden.csv")
    assert response.mimetype == "text/csv"
    rows = {r["rule"]: r for r in csv.DictReader(io.StringIO(response.get_data(as_text=True)))}
    assert rows["PPI"]["override_rate"] == "0.5" and rows["PPI"]["repeat_rate"] == "0.5"
    assert rows["RENAL_SEVERE"]["override_reasons"] == "NEWER_LAB_RESULT 1; SPECIALIST_ADVICE 1"
    assert rows["RENAL_SEVERE"]["fired"] == "3" and rows["RENAL_SEVERE"]["cards"] == "1"
    assert rows["RENAL_SEVERE"]["answers"] == "adjust 1; card overridden 1"
    never = next(r for r in rows.values() if r["fired"] == "0")  # rules that never fired are listed too
    assert never["override_rate"] == "" and never["median_seconds_to_decision"] == ""


def test_clinician_is_refused(seeded):
    client = seeded.test_client()
    login(client, "alice")
    assert 'id="burden-link"' not in client.get("/rulesets/").get_data(as_text=True)
    assert client.get("/rulesets/burden").status_code == 403
    assert client.get("/rulesets/burden.csv").status_code == 403


def test_draft_page_shows_the_burden_of_the_rules_it_changes(seeded):
    with seeded.app_context():
        ed = db.session.query(User).filter_by(username="ed").one()
        draft = ruleset_drafts.create_draft("magnesium", actor=ed)
        data = ruleset_drafts.draft_data(draft)
        next(r for r in data["rules"] if r["id"] == "PPI")["description"] += " (reworded)"
        ruleset_drafts.save_draft(draft.id, actor=ed, expected_lock=draft.lock, data=data)
        draft_id = draft.id
    client = seeded.test_client()
    login(client, "ed")
    page = client.get(f"/rulesets/drafts/{draft_id}").get_data(as_text=True)
    section = page[page.index('id="draft-burden"') :]
    assert cells(section, "PPI")[4] == "1 (50%)"
    assert 'data-rule="RENAL_SEVERE"' not in section  # unchanged rules are not listed


def test_csv_neutralises_formula_like_reason_codes(seeded):
    with seeded.app_context():
        p3 = db.session.query(Case).filter_by(patient_ref="P3").one()
        shown = cardmaker.cards(
            p3.result, hook_instance="HOOK-1", draft_order=None, sources_url="/sources", override_reasons={}
        )
        card = next(c for c in shown if c["source"]["topic"]["code"] == "RENAL_SEVERE")
        feedback = [{"card": card["uuid"], "outcome": "overridden", "overrideReason": {"reason": {"code": "=1+1"}}}]
        workflow.record_cds_feedback("mgreview-order-sign", feedback, actor="ehr")
    client = seeded.test_client()
    login(client, "ed")
    rows = {
        r["rule"]: r for r in csv.DictReader(io.StringIO(client.get("/rulesets/burden.csv").get_data(as_text=True)))
    }
    assert rows["RENAL_SEVERE"]["override_reasons"] == "'=1+1 1; NEWER_LAB_RESULT 1; SPECIALIST_ADVICE 1"

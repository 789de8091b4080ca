"""Workflow functions: users, sign-in with lockout, idempotent import, every decision path, conflicts, audit."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from audit import log as audit
from engine.batch import read_records
from review_ui import workflow
from review_ui.db import db
from review_ui.models import Case, Decision, User
from tests.helpers import SAMPLE, record

PASSWORD = "correct horse battery"


@pytest.fixture
def clinician(ctx):
    return workflow.add_user("alice", PASSWORD, "clinician", actor="test")


def imported(evaluator, *records):
    items = [(i + 1, json.dumps(r)) for i, r in enumerate(records)]
    return workflow.import_records(items, filename="t.jsonl", actor="alice", evaluator=evaluator)


def actions():
    return [e.action for e in audit.read(db.session, newest_first=False)]


def test_add_user_hashes_password_and_audits(ctx):
    user = workflow.add_user("bob", PASSWORD, "rule_editor", actor="admin")
    assert user.password_hash != PASSWORD and user.password_hash.startswith(("scrypt", "pbkdf2"))
    assert actions() == ["user.add"]


@pytest.mark.parametrize(
    "username, password, role, field",
    [
        ("", PASSWORD, "clinician", "username"),
        ("x", "short", "clinician", "password"),
        ("x", PASSWORD, "nurse", "role"),
    ],
)
def test_add_user_validation(ctx, username, password, role, field):
    with pytest.raises(workflow.WorkflowError) as e:
        workflow.add_user(username, password, role, actor="admin")
    assert e.value.field == field


def test_login_lockout_after_repeated_failures(clinician):
    for _ in range(workflow.MAX_FAILED_LOGINS):
        with pytest.raises(workflow.WorkflowError, match="wrong password"):
            workflow.authenticate("alice", "nope")
    with pytest.raises(workflow.WorkflowError, match="locked"):
        workflow.authenticate("alice", PASSWORD)
    later = datetime.now(UTC) + workflow.LOCKOUT + timedelta(seconds=1)
    assert workflow.authenticate("alice", PASSWORD, now=later).username == "alice"
    assert actions().count("login.failed") == workflow.MAX_FAILED_LOGINS + 1
    assert actions()[-1] == "login"


def test_import_sample_file_and_reimport_is_idempotent(ctx, evaluator):
    first = workflow.import_records(read_records(SAMPLE), filename="intake.jsonl", actor="alice", evaluator=evaluator)
    assert first.records == 64 and len(first.accepted) == 60 and len(first.rejected) == 4
    assert first.rejected[0]["errors"][0]["field"] == "age_years"
    second = workflow.import_records(read_records(SAMPLE), filename="intake.jsonl", actor="alice", evaluator=evaluator)
    assert len(second.accepted) == 0 and len(second.duplicates) == 60
    assert db.session.query(Case).count() == 60
    assert actions() == ["import", "import"]


def test_case_keeps_findings_and_ruleset(ctx, evaluator):
    imported(evaluator, record(id="R1", egfr_ml_min_1_73m2=20))
    case = db.session.query(Case).one()
    assert case.highest_severity == "contraindicated" and case.severity_rank == 0
    assert "RENAL_SEVERE" in {f.finding_id for f in case.findings}
    assert case.ruleset_sha256 == evaluator.ruleset.sha256


def one_case(evaluator, **changes):
    imported(evaluator, record(id="A1", **changes))
    return db.session.query(Case).one()


def sign(case, actor, kind, **changes):
    """workflow.decide with the usual arguments: version 1, the right password."""
    return workflow.decide(case.id, kind=kind, actor=actor, **{"expected_version": 1, "password": PASSWORD, **changes})


def test_approve_signs_and_audits(clinician, evaluator):
    case = one_case(evaluator)
    decision = sign(case, clinician, "approve")
    assert decision.final_plan == decision.suggested_plan
    assert decision.signature_meaning.startswith("I reviewed the findings and approve")
    db.session.refresh(case)
    assert case.status == "approved" and case.reviewer == "alice"
    entry = audit.read(db.session, action="decision.approve")[0]
    assert entry.target_id == str(case.id) and entry.seq == decision.audit_seq


def test_signature_needs_the_password(clinician, evaluator):
    case = one_case(evaluator)
    with pytest.raises(workflow.WorkflowError, match="password does not match") as e:
        sign(case, clinician, "approve", password="wrong")
    assert e.value.field == "password"
    assert db.session.get(Case, case.id).status == "pending"
    assert "decision.approve" not in actions()


@pytest.mark.parametrize("kind", ["adjust", "reject", "refer"])
def test_reason_required(clinician, evaluator, kind):
    case = one_case(evaluator)
    with pytest.raises(workflow.WorkflowError, match="A reason is required"):
        sign(case, clinician, kind, final_plan=dict(case.plan))


def test_adjust_keeps_suggested_and_final_plan(clinician, evaluator):
    case = one_case(evaluator)
    final = dict(case.plan, max_elemental_mg_per_day=200, doses_per_day=3)
    decision = sign(case, clinician, "adjust", reason="start lower, titrate", final_plan=final)
    assert decision.suggested_plan["max_elemental_mg_per_day"] == 350
    assert decision.final_plan["max_elemental_mg_per_day"] == 200
    entry = audit.read(db.session, action="decision.adjust")[0]
    assert json.loads(entry.before)["plan"]["max_elemental_mg_per_day"] == 350
    assert json.loads(entry.after)["plan"]["max_elemental_mg_per_day"] == 200


def test_dose_above_cap_needs_coded_override(clinician, evaluator):
    case = one_case(evaluator)
    adjust = {"reason": "deficiency", "final_plan": dict(case.plan, max_elemental_mg_per_day=500)}
    with pytest.raises(workflow.WorkflowError, match="coded override reason") as e:
        sign(case, clinician, "adjust", **adjust)
    assert e.value.field == "override_code"
    with pytest.raises(workflow.WorkflowError, match="free text"):
        sign(case, clinician, "adjust", **adjust, override_code="DIAGNOSED_DEFICIENCY")
    decision = sign(
        case,
        clinician,
        "adjust",
        **adjust,
        override_code="DIAGNOSED_DEFICIENCY",
        override_text="Mg 0.55 mmol/L, supervised by Dr X",
    )
    assert decision.override_code == "DIAGNOSED_DEFICIENCY"


def test_any_change_on_major_case_needs_override(clinician, evaluator):
    case = one_case(evaluator, medications=["Isentress 400 mg"])  # RALTEGRAVIR_AVOID, major
    with pytest.raises(workflow.WorkflowError, match="coded override reason"):
        sign(case, clinician, "adjust", reason="x", final_plan=dict(case.plan, monitoring=["weekly"]))


def test_concurrent_decisions_conflict_and_nothing_is_overwritten(clinician, evaluator):
    bob = workflow.add_user("bob", PASSWORD, "clinician", actor="test")
    case = one_case(evaluator)  # both clinicians opened the case at version 1
    sign(case, clinician, "approve")
    with pytest.raises(workflow.ConflictError, match="decided by alice while you were working"):
        sign(case, bob, "reject", reason="no")
    assert db.session.get(Case, case.id).status == "approved"
    assert [d.actor for d in db.session.query(Decision).all()] == ["alice"]
    assert actions().count("decision.reject") == 0
    assert audit.verify(db.session).ok


def test_every_action_leaves_an_intact_chain(clinician, evaluator):
    imported(evaluator, record(id="A1"), record(id="A2", age_years=50))
    first, second = db.session.query(Case).order_by(Case.id).all()
    sign(first, clinician, "refer", reason="renal question")
    sign(second, clinician, "reject", reason="patient declined")
    assert actions() == ["user.add", "import", "decision.refer", "decision.reject"]
    assert audit.verify(db.session).checked == 4
    assert {u.username for u in db.session.query(User)} == {"alice"}


def test_truly_concurrent_decisions_let_exactly_one_win(app, evaluator):
    """Two threads with their own sessions sign the same case at the same moment."""
    import threading

    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("bob", PASSWORD, "clinician", actor="test")
        imported(evaluator, record(id="A1"))
        case_id = db.session.query(Case).one().id
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def sign(username: str, kind: str) -> None:
        with app.app_context():
            user = db.session.query(User).filter_by(username=username).one()
            barrier.wait()
            try:
                workflow.decide(case_id, expected_version=1, kind=kind, actor=user, password=PASSWORD, reason="r")
                outcomes[username] = "signed"
            except workflow.ConflictError:
                outcomes[username] = "conflict"
            except Exception as e:  # SQLite may report its write lock instead: still nothing overwritten
                db.session.rollback()
                outcomes[username] = f"refused: {type(e).__name__}"

    threads = [threading.Thread(target=sign, args=a) for a in (("alice", "approve"), ("bob", "reject"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()).count("signed") == 1, outcomes
    with app.app_context():
        assert db.session.query(Decision).count() == 1
        winner = next(u for u, o in outcomes.items() if o == "signed")
        assert db.session.get(Case, case_id).reviewer == winner
        assert audit.verify(db.session).ok

"""The review UI through the Flask test client: auth and roles, worklist, case page, decisions, import, audit."""

import io
import json
import re

import pytest

from engine import ruleset as rs
from review_ui import create_app, workflow
from review_ui.db import db
from review_ui.models import Case
from tests.helpers import record

PASSWORD = "correct horse battery"


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("bob", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
    return app.test_client()


def login(client, username="alice"):
    return client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=True)


def upload(client, *records, name="in.jsonl"):
    body = "\n".join(json.dumps(r) for r in records).encode()
    return client.post(
        "/import", data={"file": (io.BytesIO(body), name)}, content_type="multipart/form-data", follow_redirects=True
    )


def case_id(app, ref):
    with app.app_context():
        return db.session.query(Case).filter_by(patient_ref=ref).one().id


@pytest.mark.parametrize(
    "username, lands_on, heading", [("alice", "/cases", "Worklist"), ("ed", "/rulesets/", "Rulesets")]
)
def test_each_role_lands_on_its_own_home(client, username, lands_on, heading):
    response = login(client, username)
    assert response.status_code == 200
    assert response.request.path == lands_on
    assert heading in response.get_data(as_text=True)
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200 and home.request.path == lands_on  # never a 403 page


def test_times_carry_their_zone(client):
    login(client)
    upload(client, record(id="TZ1"))
    page = client.get("/cases").get_data(as_text=True)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    audit = client.get("/audit").get_data(as_text=True)
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", audit)
    assert not re.search(r"\d\d:\d\d:\d\d\.\d+", audit)  # never the raw stored ISO text


@pytest.mark.parametrize(
    "asked, shown", [("1", "page 1 of 1"), ("999999", "page 1 of 1"), ("-3", "page 1 of 1"), ("x", "page 1 of 1")]
)
def test_page_numbers_are_bounded(client, asked, shown):
    login(client)
    upload(client, record(id="PG1"))
    page = client.get(f"/cases?page={asked}").get_data(as_text=True)
    assert "page 1 of 1" in page
    assert "PG1" in page  # the last page is shown, never an empty list past the end


def test_case_page_shows_the_daily_schedule(app, client):
    login(client)
    upload(client, record(id="S1", medications=["levothyroxine 100 mcg"]), record(id="S2", egfr_ml_min_1_73m2=20))
    page = client.get(f"/cases/{case_id(app, 'S1')}").get_data(as_text=True)
    assert "Daily schedule" in page
    assert re.search(r"<strong>07:00</strong> levothyroxine \(fasting\)", page)
    assert page.count("</strong> magnesium") == 2
    no_magnesium = client.get(f"/cases/{case_id(app, 'S2')}").get_data(as_text=True)
    assert "No magnesium proposed." in no_magnesium
    assert "</strong> magnesium" not in no_magnesium and "Daily schedule" not in no_magnesium


def test_case_page_says_what_would_change_each_finding(app, client):
    login(client)
    upload(client, record(id="W1", egfr_ml_min_1_73m2=52), record(id="W2", egfr_ml_min_1_73m2=None), record(id="W3"))
    page = client.get(f"/cases/{case_id(app, 'W1')}").get_data(as_text=True)
    assert "Would not apply if eGFR &lt; 30 mL/min/1.73 m² or eGFR ≥ 60 mL/min/1.73 m²; now eGFR 52" in page
    missing = client.get(f"/cases/{case_id(app, 'W2')}").get_data(as_text=True)
    assert (
        "Kidney function unknown: a value for eGFR would decide (&lt; 30 mL/min/1.73 m²: no magnesium (a physician"
        " decides)" in missing
    )
    healthy = client.get(f"/cases/{case_id(app, 'W3')}").get_data(as_text=True)
    assert "Would not apply if eGFR" not in healthy and "would decide" not in healthy


def test_every_page_requires_login(client):
    for path in ("/cases", "/import", "/audit", "/audit.csv", "/cases/1"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_login_failure_message_and_success(client):
    bad = client.post("/login", data={"username": "alice", "password": "nope"})
    assert b"Unknown username or wrong password." in bad.data
    ok = login(client)
    assert b"Worklist" in ok.data and b"alice (clinician)" in ok.data


def test_rule_editor_cannot_open_the_worklist(client):
    login(client, "ed")
    response = client.get("/cases")
    assert response.status_code == 403
    assert b"Your role does not give access to this page." in response.data
    assert client.get("/audit").status_code == 200


def test_session_expires_after_inactivity(client, monkeypatch):
    import itsdangerous.timed

    login(client)
    assert client.get("/cases").status_code == 200
    real_time = itsdangerous.timed.time.time
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: real_time() + 31 * 60)  # 31 minutes later
    response = client.get("/cases")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_import_page_shows_accepted_and_rejected(client):
    login(client)
    page = upload(client, record(id="OK1"), record(id="BAD1", age_years="forty"))
    assert b"1 new cases" in page.data and b"1 rejected" in page.data
    assert b"age_years" in page.data and b"expected a number" in page.data
    again = upload(client, record(id="OK1"))
    assert b"0 new cases, 1 already imported" in again.data


def test_worklist_sorted_by_severity_then_age_and_filtered(app, client):
    login(client)
    upload(
        client,
        record(id="LOW"),
        record(id="SEVERE", egfr_ml_min_1_73m2=20),
        record(id="MAJOR", medications=["Isentress"]),
    )
    page = client.get("/cases").get_data(as_text=True)
    order = [m for m in re.findall(r">(LOW|SEVERE|MAJOR)<", page)]
    assert order == ["SEVERE", "MAJOR", "LOW"]
    only = client.get("/cases?finding=RALTEGRAVIR_AVOID").get_data(as_text=True)
    assert ">MAJOR</a>" in only and ">SEVERE</a>" not in only  # patient links (finding ids are option values)
    assert ">SEVERE</a>" in client.get("/cases?severity=contraindicated").get_data(as_text=True)
    assert ">LOW</a>" in client.get("/cases?q=LO").get_data(as_text=True)


def test_case_page_escapes_patient_text_and_explains(app, client):
    login(client)
    upload(client, record(id="X1", conditions=["<script>alert(1)</script>"], egfr_ml_min_1_73m2=25))
    page = client.get(f"/cases/{case_id(app, 'X1')}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "RENAL_SEVERE" in page and "egfr_ml_min_1_73m2" in page and "S10" in page
    assert f"ruleset magnesium v{rs.load().version}" in page


def test_adjust_with_reason_and_signature(app, client):
    login(client)
    upload(client, record(id="A1"))
    cid = case_id(app, "A1")
    form = {
        "kind": "adjust",
        "expected_version": "1",
        "max_elemental_mg_per_day": "200",
        "doses_per_day": "2",
        "separations": "",
        "monitoring": "serum Mg in 3 months",
        "reason": "start low",
        "password": PASSWORD,
    }
    page = client.post(f"/cases/{cid}/decide", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Decision signed: case A1 adjusted." in page
    assert "I reviewed the findings and approve the plan as adjusted by me" in page
    assert "decision.adjust" in page


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"password": "wrong"}, "The password does not match"),
        ({"reason": ""}, "A reason is required for this decision."),
        ({"max_elemental_mg_per_day": "900"}, "needs a coded override reason"),
        ({"separations": "doxycycline 2 4"}, "Separation line 1 must read"),
        ({"password": ""}, "Sign with your password."),
    ],
)
def test_decision_validation_messages(app, client, changes, message):
    login(client)
    upload(client, record(id="A1"))
    cid = case_id(app, "A1")
    form = {
        "kind": "adjust",
        "expected_version": "1",
        "max_elemental_mg_per_day": "200",
        "reason": "r",
        "password": PASSWORD,
        **changes,
    }
    response = client.post(f"/cases/{cid}/decide", data=form)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_decision_on_a_case_removed_meanwhile_is_a_404_not_a_500(app, client, monkeypatch):
    from sqlalchemy import delete

    from review_ui.models import CaseFinding

    login(client)
    upload(client, record(id="A1"))
    cid = case_id(app, "A1")

    def removed_while_deciding(case_id, **_):
        db.session.execute(delete(CaseFinding).where(CaseFinding.case_id == case_id))
        db.session.execute(delete(Case).where(Case.id == case_id))
        db.session.commit()
        raise workflow.WorkflowError("No such case.")

    monkeypatch.setattr(workflow, "decide", removed_while_deciding)
    response = client.post(f"/cases/{cid}/decide", data={"kind": "approve", "expected_version": "1", "password": "x"})
    assert response.status_code == 404
    assert "There is nothing at this address." in response.get_data(as_text=True)


def test_second_clinician_gets_a_conflict_message(app, client):
    login(client)
    upload(client, record(id="A1"))
    cid = case_id(app, "A1")
    other = app.test_client()
    login(other, "bob")
    client.post(f"/cases/{cid}/decide", data={"kind": "approve", "expected_version": "1", "password": PASSWORD})
    page = other.post(
        f"/cases/{cid}/decide",
        data={"kind": "reject", "expected_version": "1", "reason": "no", "password": PASSWORD},
        follow_redirects=True,
    )
    text = page.get_data(as_text=True)
    assert "was decided by alice while you were working on it" in text
    assert 'id="case-status">approved<' in text


def test_audit_page_filter_and_csv(client):
    login(client)
    upload(client, record(id="A1"))
    page = client.get("/audit?action=import").get_data(as_text=True)
    assert "audit log intact" in page and "import" in page
    csv_text = client.get("/audit.csv?action=login").get_data(as_text=True)
    lines = csv_text.strip().splitlines()
    assert lines[0].startswith("seq,at,actor,action")
    assert all(",login," in line for line in lines[1:]) and len(lines) == 2


def test_csrf_is_enforced(app):
    strict = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "x"})
    response = strict.test_client().post("/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 400
    assert b"The request could not be understood." in response.data


def test_error_pages_show_messages_not_tracebacks(app, client):
    login(client)
    missing = client.get("/cases/99999")
    assert missing.status_code == 404 and b"There is nothing at this address." in missing.data
    fresh = create_app({"SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"], "SECRET_KEY": "x"})

    @fresh.route("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = fresh.test_client().get("/boom")
    assert response.status_code == 500
    assert b"Something went wrong on our side" in response.data and b"secret internals" not in response.data

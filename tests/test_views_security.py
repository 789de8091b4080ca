"""The review UI under hostile input and hostile users: uploads read like the CLI, sessions, headers, roles."""

import io
import json

import pytest

from engine import batch
from review_ui import workflow
from review_ui.db import db
from review_ui.models import Batch
from tests.conftest import record

PASSWORD = "correct horse battery"


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
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

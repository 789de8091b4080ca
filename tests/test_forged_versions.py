"""A ruleset version written into the database behind mgreview's back is never evaluated with, and is reported."""

import json

import pytest
from sqlalchemy import text

from engine import ruleset as rs
from review_ui import governance, workflow
from review_ui.db import db
from review_ui.models import RulesetVersion
from tests.test_governance import lowered_draft, people, publish  # noqa: F401  (people is a fixture)

COLUMNS = ("name", "version", "sha256", "content", "scenarios", "supersedes", "change_note", "origin", "authors")
COLUMNS += ("approver", "published_at", "audit_seq")


def tenfold(content):
    """The ruleset with every upper limit ten times higher."""
    data = json.loads(content)
    for row in data["upper_limits"]:
        row["ul_mg"] *= 10
    return rs.dump(data)


def insert_forged_v3(base):
    """What someone with INSERT rights does: a plausible v3 row, triggers untouched."""
    content = tenfold(base.content).replace('"version": 1', '"version": 3')
    row = {
        "name": "magnesium",
        "version": 3,
        "sha256": rs.sha256_text(content),
        "content": content,
        "scenarios": base.scenarios,
        "supersedes": 2,
        "change_note": "routine update",
        "origin": "published",
        "authors": '["rita"]',
        "approver": "peter",
        "published_at": base.published_at,
        "audit_seq": base.audit_seq,  # points at a real, authentic entry: the registration of v1
    }
    db.session.execute(
        text(f"INSERT INTO ruleset_version ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"), row
    )
    db.session.commit()


def test_a_forged_version_inserted_in_the_database_is_not_used_and_is_reported(people, caplog):  # noqa: F811
    v1 = governance.latest_version("magnesium")
    insert_forged_v3(v1)
    assert governance.latest_version("magnesium").version == 1
    assert governance.active_evaluator().ruleset.ref["version"] == 1
    assert "magnesium v3 (id" in caplog.text and "does not record the publication" in caplog.text
    with pytest.raises(workflow.WorkflowError, match="magnesium v3 is refused"):
        governance.get_version("magnesium", 3)
    problems = {v.label: p for v, p in governance.check_versions()}
    assert problems["magnesium v1"] is None
    assert "does not record the publication of this version and hash" in problems["magnesium v3"]


def test_an_edited_version_keeping_its_old_sha256_is_refused(people, app):  # noqa: F811
    v2 = publish(lowered_draft(people), people)
    original, sha = v2.content, v2.sha256
    assert governance.latest_version("magnesium").version == 2
    if app.config["DB_KIND"] == "postgresql":
        db.session.execute(text("DROP TRIGGER ruleset_version_no_update_delete ON ruleset_version"))
    else:
        db.session.execute(text("DROP TRIGGER ruleset_version_no_update"))
    db.session.execute(text("UPDATE ruleset_version SET content = :c WHERE version = 2"), {"c": tenfold(original)})
    db.session.commit()
    db.session.expire_all()
    assert governance.latest_version("magnesium").version == 1
    with pytest.raises(workflow.WorkflowError, match="does not match its sha256"):
        governance.get_version("magnesium", 2)
    stored = db.session.get(RulesetVersion, v2.id)
    assert stored.sha256 == sha and stored.content != original


def test_the_rulesets_page_reports_a_refused_version(people, app):  # noqa: F811
    insert_forged_v3(governance.latest_version("magnesium"))
    client = app.test_client()
    client.post("/login", data={"username": "rita", "password": "correct horse battery"})
    page = client.get("/rulesets/").get_data(as_text=True)
    assert "1 stored version(s) are refused and never used" in page and "magnesium v3: audit entry" in page

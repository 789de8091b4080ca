"""A ruleset version written into the database behind mgreview's back is never evaluated with, and is reported."""

import json

import pytest
from sqlalchemy import text

from engine import ruleset as rs
from review_ui import ruleset_versions, workflow
from review_ui.db import db
from review_ui.models import RulesetVersion
from tests.review_ui.test_governance import lowered_draft, people, publish  # noqa: F401  (people is a fixture)

NEWEST = rs.load().version  # the newest shipped version; the forged one claims to be the next
FORGED = NEWEST + 1
COLUMNS = ("name", "version", "sha256", "content", "scenarios", "supersedes", "change_note", "origin", "authors")
COLUMNS += ("approver", "published_at", "audit_seq")


def tenfold(content):
    """The ruleset with every upper limit ten times higher."""
    data = json.loads(content)
    for row in data["upper_limits"]:
        row["ul_mg"] *= 10
    return rs.dump(data)


def insert_forged_v3(base):
    """What someone with INSERT rights does: a plausible next-version row, triggers untouched."""
    content = tenfold(base.content).replace(f'"version": {NEWEST}', f'"version": {FORGED}')
    row = {
        "name": "magnesium",
        "version": FORGED,
        "sha256": rs.sha256_text(content),
        "content": content,
        "scenarios": base.scenarios,
        "supersedes": NEWEST,
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
    newest = ruleset_versions.latest_version("magnesium")
    insert_forged_v3(newest)
    assert ruleset_versions.latest_version("magnesium").version == NEWEST
    assert ruleset_versions.active_evaluator().ruleset.ref["version"] == NEWEST
    assert f"magnesium v{FORGED} (id" in caplog.text and "does not record the publication" in caplog.text
    with pytest.raises(workflow.WorkflowError, match=f"magnesium v{FORGED} is refused"):
        ruleset_versions.get_version("magnesium", FORGED)
    problems = {v.label: p for v, p in ruleset_versions.check_versions()}
    assert problems[f"magnesium v{NEWEST}"] is None
    assert "does not record the publication of this version and hash" in problems[f"magnesium v{FORGED}"]


def test_an_edited_version_keeping_its_old_sha256_is_refused(people, app):  # noqa: F811
    published = publish(lowered_draft(people), people)
    original, sha = published.content, published.sha256
    assert ruleset_versions.latest_version("magnesium").version == FORGED
    if app.config["DB_KIND"] == "postgresql":
        db.session.execute(text("DROP TRIGGER ruleset_version_no_update_delete ON ruleset_version"))
    else:
        db.session.execute(text("DROP TRIGGER ruleset_version_no_update"))
    db.session.execute(
        text("UPDATE ruleset_version SET content = :c WHERE version = :v"), {"c": tenfold(original), "v": FORGED}
    )
    db.session.commit()
    db.session.expire_all()
    assert ruleset_versions.latest_version("magnesium").version == NEWEST
    with pytest.raises(workflow.WorkflowError, match="does not match its sha256"):
        ruleset_versions.get_version("magnesium", FORGED)
    stored = db.session.get(RulesetVersion, published.id)
    assert stored.sha256 == sha and stored.content != original


def test_the_rulesets_page_reports_a_refused_version(people, app):  # noqa: F811
    insert_forged_v3(ruleset_versions.latest_version("magnesium"))
    client = app.test_client()
    client.post("/login", data={"username": "rita", "password": "correct horse battery"})
    page = client.get("/rulesets/").get_data(as_text=True)
    assert "1 stored version(s) are refused and never used" in page and f"magnesium v{FORGED}: audit entry" in page

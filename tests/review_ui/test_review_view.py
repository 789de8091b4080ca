"""The approver's view of a submitted draft: read-only to everyone (no edit controls, every edit POST refused),
changed rules marked, the diff as JSON, scenario changes listed; and every refused approval or publish is an
audit entry with the message the user read. On SQLite and PostgreSQL."""

import html
import json

import pytest
from sqlalchemy import select

from audit import log as audit
from engine import ruleset as rs
from review_ui import ruleset_drafts, ruleset_versions, workflow
from review_ui.db import db
from review_ui.models import User

PASSWORD = "correct horse battery"
NEWEST = rs.load().version


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("rita", PASSWORD, "rule_editor", actor="test")  # the author
        workflow.add_user("peter", PASSWORD, "rule_editor", actor="test")  # the approver
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
    return app.test_client()


def login(client, username):
    client.post("/logout")
    client.post("/login", data={"username": username, "password": PASSWORD})


def text(response):
    return html.unescape(response.get_data(as_text=True))


def user(username):
    return db.session.execute(select(User).where(User.username == username)).scalar_one()


def make_draft(app, *, window_h=3, submit=True, note="mycophenolate window 2 h -> 3 h"):
    """A draft by rita that widens the mycophenolate window (its scenario expects 3 h), optionally submitted."""
    with app.app_context():
        rita = user("rita")
        draft = ruleset_drafts.create_draft("magnesium", actor=rita)
        data = ruleset_drafts.draft_data(draft)
        rule = next(r for r in data["rules"] if r["id"] == "MYCOPHENOLATE")
        rule["then"]["separation"] = {"before_h": window_h, "after_h": window_h}
        rule["description"] = rule["description"].replace("2 h", f"{window_h} h")  # the wording follows the window
        rule["then"]["message"] = rule["then"]["message"].replace("2 h", f"{window_h} h")
        rule["description_nl"] = rule["description_nl"].replace("2 uur", f"{window_h} uur")  # the Dutch follows
        rule["then"]["message_nl"] = rule["then"]["message_nl"].replace("2 uur", f"{window_h} uur")
        data["change_note"] = note
        cases = json.loads(draft.scenarios)
        next(c for c in cases if c["name"] == "mycophenolate")["expect"]["separations"]["mycophenolate"] = [3, 3]
        draft = ruleset_drafts.save_draft(
            draft.id, actor=rita, expected_lock=draft.lock, data=data, scenarios_text=json.dumps(cases)
        )
        if submit:
            draft = ruleset_drafts.submit_draft(draft.id, actor=rita, expected_lock=draft.lock)
        return draft.id, draft.lock


def last_refusal(app):
    with app.app_context():
        entries = audit.read(db.session, action="ruleset.publish.refused", limit=1)
        if not entries:
            return None
        entry = entries[0]
        return entry.actor, json.loads(entry.details)["kind"], entry.reason


def published(app):
    with app.app_context():
        return ruleset_versions.latest_version("magnesium").version


# --- the review view ----------------------------------------------------------------------------------------


def test_a_submitted_draft_shows_no_edit_controls_to_anyone(app, client):
    draft_id, _ = make_draft(app)
    for who in ("peter", "rita"):
        login(client, who)
        page = text(client.get(f"/rulesets/drafts/{draft_id}"))
        assert "This draft is submitted for approval and read-only: nobody can change it." in page
        assert "Save change note" not in page and "Add a rule" not in page
        assert "mycophenolate window 2 h -> 3 h" in page  # the change note, as text
        rule = text(client.get(f"/rulesets/drafts/{draft_id}/rules/MYCOPHENOLATE"))
        assert "Save rule" not in rule and "Remove this rule" not in rule
        for editor in ("limits", "sources", "raw", "drugs/doxycycline"):
            assert 'type="submit"' not in text(client.get(f"/rulesets/drafts/{draft_id}/{editor}")).split("<form")[-1]
    login(client, "peter")
    page = text(client.get(f"/rulesets/drafts/{draft_id}"))
    assert "Approve and publish" in page  # the approver still signs
    draft_id, _ = make_draft(app, submit=False)  # beside it: a draft being edited keeps its controls
    login(client, "rita")
    page = text(client.get(f"/rulesets/drafts/{draft_id}"))
    assert "Save change note" in page and "Add a rule" in page and "read-only" not in page


EDIT_POSTS = [
    ("note", {"change_note": "quietly changed"}),
    ("rules/MYCOPHENOLATE", {"rule_id": "MYCOPHENOLATE", "separation_before_h": "9"}),
    ("rules/new", {"rule_id": "NEW_RULE"}),
    ("rules/MYCOPHENOLATE/delete", {}),
    ("limits", {}),
    ("drugs/doxycycline", {"key": "doxycycline"}),
    ("drugs/new", {"key": "newdrug"}),
    ("sources", {}),
    ("raw", {"content": "{}", "scenarios": "[]"}),
]


@pytest.mark.parametrize("path, form", EDIT_POSTS)
def test_every_edit_post_on_a_submitted_draft_is_refused(app, client, path, form):
    draft_id, lock = make_draft(app)
    with app.app_context():
        before = ruleset_drafts.get_draft(draft_id).content
    for who in ("peter", "rita"):
        login(client, who)
        response = client.post(f"/rulesets/drafts/{draft_id}/{path}", data={"expected_lock": lock, **form})
        assert response.status_code == 302 and response.location.endswith(f"/rulesets/drafts/{draft_id}")
        page = text(client.get(response.location))
        assert "This draft is submitted for approval and read-only; nothing was saved." in page
    with app.app_context():
        draft = ruleset_drafts.get_draft(draft_id)
        assert (draft.status, draft.content, draft.lock) == ("submitted", before, lock)


def test_the_workflow_refuses_to_save_a_submitted_draft(app, client):
    draft_id, lock = make_draft(app)
    with app.app_context(), pytest.raises(workflow.WorkflowError, match="submitted for approval and read-only"):
        ruleset_drafts.save_draft(draft_id, actor=user("rita"), expected_lock=lock)


def test_changed_rules_are_marked_and_the_diff_is_json(app, client):
    draft_id, _ = make_draft(app)
    login(client, "peter")
    page = text(client.get(f"/rulesets/drafts/{draft_id}"))
    assert f"1 changed against v{NEWEST}" in page
    assert '<tr class="marked mark-changed"><td class="mark">changed</td>' in page
    row = page.split('class="marked mark-changed"')[1].split("</tr>")[0]
    assert "MYCOPHENOLATE" in row
    shown = page.split('<pre class="json" data-rule="MYCOPHENOLATE">')[1].split("</pre>")[0]
    diff = json.loads(shown)
    assert diff["then.separation"] == {"from": {"after_h": 2, "before_h": 2}, "to": {"after_h": 3, "before_h": 3}}
    assert diff["description"] == {"from": "mycophenolate: 2 h", "to": "mycophenolate: 3 h"}
    assert diff["description_nl"] == {"from": "mycofenolaat: 2 uur", "to": "mycofenolaat: 3 uur"}
    assert sorted(diff) == [  # nothing else changed
        "description",
        "description_nl",
        "then.message",
        "then.message_nl",
        "then.separation",
    ]
    assert '"from": {\n      "after_h": 2,' in shown  # indented, sorted keys
    summary = page.split('id="diff-summary"')[1].split("</div>\n")[0]
    assert '~ rule MYCOPHENOLATE: description: "mycophenolate: 2 h" -> "mycophenolate: 3 h"' in summary
    assert 'then.separation: {"after_h": 2, "before_h": 2} -> {"after_h": 3, "before_h": 3}' in summary
    assert "None" not in summary and "{'" not in summary  # JSON, never a Python repr
    scenarios = page.split('id="scenario-changes"')[1].split("</div>")[0]
    assert "~ scenario mycophenolate: expect.separations:" in scenarios
    assert "No scenario changed." not in scenarios


def test_added_and_removed_rules_and_scenarios_are_listed(app, client):
    with app.app_context():
        rita = user("rita")
        draft = ruleset_drafts.create_draft("magnesium", actor=rita)
        data = ruleset_drafts.draft_data(draft)
        cases = json.loads(draft.scenarios)
        split = next(r for r in data["rules"] if r["id"] == "SPLIT_DOSE")
        data["rules"].append({**split, "id": "SPLIT_TWO"})
        data["rules"] = [r for r in data["rules"] if r["id"] != "SPLIT_DOSE"]
        added = {**cases[0], "name": "a new scenario"}
        removed = cases.pop(1)["name"]
        cases.append(added)
        ruleset_drafts.save_draft(
            draft.id, actor=rita, expected_lock=draft.lock, data=data, scenarios_text=json.dumps(cases)
        )
    login(client, "peter")
    page = text(client.get(f"/rulesets/diff?a=v{NEWEST}&b=draft-{draft.id}"))
    assert "+ rule SPLIT_TWO" in page and "- rule SPLIT_DOSE" in page
    assert "+ scenario a new scenario" in page and f"- scenario {removed}" in page
    page = text(client.get(f"/rulesets/drafts/{draft.id}"))
    assert '<td class="mark">added</td>' in page and '<td class="mark">removed</td><td><del>SPLIT_DOSE</del>' in page
    unchanged = text(client.get(f"/rulesets/diff?a=v{NEWEST}&b=v{NEWEST}"))
    assert "No scenario changed." in unchanged and "No rule, limit, source or vocabulary entry changed." in unchanged


# --- refused approvals are audited --------------------------------------------------------------------------


def publish_post(client, draft_id, lock, password=PASSWORD):
    return client.post(
        f"/rulesets/drafts/{draft_id}/publish",
        data={"expected_lock": lock, "password": password},
        follow_redirects=True,
    )


@pytest.mark.parametrize("submitted", [True, False])
def test_a_hand_made_publish_post_by_the_author_is_refused_and_audited(app, client, submitted):
    draft_id, lock = make_draft(app, submit=submitted)
    login(client, "rita")
    page = text(publish_post(client, draft_id, lock))
    message = "You edited this draft, so you cannot approve it: another rule editor must review and sign."
    assert message in page
    assert last_refusal(app) == ("rita", "self-approval", message)
    assert published(app) == NEWEST


@pytest.mark.parametrize(
    "setup, password, kind, message",
    [
        ("submitted", "wrong", "signature", "The password does not match: the approval was not signed."),
        ("submitted", "", "unsigned", "Sign with your password to approve."),
        ("editing", PASSWORD, "not-submitted", "This draft is editing; only a submitted draft can be approved."),
        ("stale lock", PASSWORD, "stale", "The draft changed since you opened it; nothing was published."),
        ("newer base", PASSWORD, "stale", f"magnesium v{NEWEST + 1} was published after this draft was made"),
        ("failing scenario", PASSWORD, "blocked", "Publishing is blocked: scenario mycophenolate: separation"),
    ],
)
def test_every_refused_approval_is_audited_with_the_message_the_user_read(app, client, setup, password, kind, message):
    draft_id, lock = make_draft(app, window_h=4 if setup == "failing scenario" else 3, submit=setup != "editing")
    if setup == "stale lock":
        lock -= 1
    if setup == "newer base":
        other_id, other_lock = make_draft(app, note="another change of the same version")
        login(client, "peter")
        assert "Published magnesium" in text(publish_post(client, other_id, other_lock))
    login(client, "peter")
    page = text(publish_post(client, draft_id, lock, password))
    assert message in page
    actor, audited_kind, reason = last_refusal(app)
    assert (actor, audited_kind) == ("peter", kind)
    assert reason.startswith(message) and reason in page  # the audit keeps exactly what the user read
    with app.app_context():
        assert ruleset_drafts.get_draft(draft_id).status in ("submitted", "editing")
    assert published(app) == (NEWEST + 1 if setup == "newer base" else NEWEST)


def test_a_good_approval_publishes_and_records_no_refusal(app, client):
    draft_id, lock = make_draft(app)
    login(client, "peter")
    page = text(publish_post(client, draft_id, lock))
    assert f"Published magnesium v{NEWEST + 1}" in page
    assert last_refusal(app) is None

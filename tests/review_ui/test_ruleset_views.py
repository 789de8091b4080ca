"""The ruleset editor through the Flask test client: roles, structured forms (round trip and field-level
errors), raw view, blocked and two-person publishing, diff, impact preview, and case re-evaluation."""

import io
import json
import re
from html.parser import HTMLParser

import pytest

from engine import ruleset as rs
from engine import scenarios
from review_ui import ruleset_drafts, ruleset_publishing, ruleset_versions, workflow
from review_ui.db import db
from review_ui.models import Case
from tests.helpers import record

PASSWORD = "correct horse battery"
NEWEST = rs.load().version  # the newest version shipped in rulesets/; a draft becomes NEWEST + 1
NEXT = NEWEST + 1


class FormFields(HTMLParser):
    """The values a browser would submit for one form of a page (by its id)."""

    def __init__(self, form_id):
        super().__init__()
        self.form_id, self.inside, self.pairs = form_id, False, []
        self._select = self._textarea = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "button"):
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.pairs.append((a["name"], a.get("value", "y")))
            else:
                self.pairs.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self._select = a["name"]
        elif tag == "option" and self._select and "selected" in a:
            self.pairs.append((self._select, a.get("value", "")))
        elif tag == "textarea":
            self._textarea = [a["name"], ""]

    def handle_data(self, data):
        if self._textarea is not None:
            self._textarea[1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            name, text = self._textarea
            self.pairs.append((name, text.removeprefix("\r\n").removeprefix("\n")))  # as browsers do
            self._textarea = None


def form_of(response, form_id):
    parser = FormFields(form_id)
    parser.feed(response.get_data(as_text=True))
    assert parser.pairs, f"no form {form_id!r} on the page"
    return parser.pairs


def replace(pairs, name, value):
    assert any(k == name for k, _ in pairs), name
    return [(k, value if k == name else v) for k, v in pairs]


def post(client, url, pairs, **kw):
    from werkzeug.datastructures import MultiDict

    return client.post(url, data=MultiDict(pairs), **kw)


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
        workflow.add_user("rita", PASSWORD, "rule_editor", actor="test")
    return app.test_client()


def login(client, username):
    client.post("/logout")
    return client.post("/login", data={"username": username, "password": PASSWORD}, follow_redirects=True)


def new_draft(client):
    response = client.post("/rulesets/magnesium/drafts", follow_redirects=True)
    assert response.status_code == 200 and f"Draft 1 started from magnesium v{NEWEST}".encode() in response.data
    return 1


def draft_data(app, draft_id=1):
    with app.app_context():
        return ruleset_drafts.draft_data(ruleset_drafts.get_draft(draft_id))


def test_roles(client):
    login(client, "alice")
    assert client.get("/rulesets/").status_code == 200
    assert client.get(f"/rulesets/magnesium/v{NEWEST}").status_code == 200
    assert client.post("/rulesets/magnesium/drafts").status_code == 403
    login(client, "ed")
    new_draft(client)
    login(client, "alice")
    assert client.get("/rulesets/drafts/1").status_code == 403


def test_every_rule_survives_its_form_unchanged(app, client):
    """Submitting each rule's structured form as shown changes nothing: forms and data map both ways."""
    login(client, "ed")
    new_draft(client)
    before = draft_data(app)
    for rule in before["rules"]:
        url = f"/rulesets/drafts/1/rules/{rule['id']}"
        response = post(client, url, form_of(client.get(url), "rule-form"))
        assert response.status_code == 302, (rule["id"], response.get_data(as_text=True)[-3000:])
        after = next(r for r in draft_data(app)["rules"] if r["id"] == rule["id"])
        assert after == rule
    assert draft_data(app) == before
    limits = post(client, "/rulesets/drafts/1/limits", form_of(client.get("/rulesets/drafts/1/limits"), "limits-form"))
    sources = post(
        client, "/rulesets/drafts/1/sources", form_of(client.get("/rulesets/drafts/1/sources"), "sources-form")
    )
    drug = post(
        client,
        "/rulesets/drafts/1/drugs/doxycycline",
        form_of(client.get("/rulesets/drafts/1/drugs/doxycycline"), "drug-form"),
    )
    assert (limits.status_code, sources.status_code, drug.status_code) == (302, 302, 302)
    assert draft_data(app) == before
    with app.app_context():
        assert ruleset_drafts.get_draft(1).lock == 1  # nothing was written


def test_rule_form_saves_a_window_and_the_scenarios_then_fail(app, client):
    login(client, "ed")
    new_draft(client)
    url = "/rulesets/drafts/1/rules/FLUOROQUINOLONE_MOXIFLOXACIN"
    pairs = form_of(client.get(url), "rule-form")
    assert ("separation_before_h", "4") in pairs, [p for p in pairs if "separation" in p[0]]
    pairs = replace(pairs, "separation_before_h", "2")
    for name in ("description", "message"):  # the wording follows the window (the checker compares them)
        pairs = replace(pairs, name, dict(pairs)[name].replace("4 h before", "2 h before"))
    for name in ("description_nl", "message_nl"):  # and the Dutch follows the English (the checker compares them)
        pairs = replace(pairs, name, dict(pairs)[name].replace("4 uur vóór", "2 uur vóór"))
    response = post(client, url, pairs, follow_redirects=True)
    assert b"Rule FLUOROQUINOLONE_MOXIFLOXACIN saved" in response.data
    rule = next(r for r in draft_data(app)["rules"] if r["id"] == "FLUOROQUINOLONE_MOXIFLOXACIN")
    assert rule["then"]["separation"] == {"before_h": 2, "after_h": 8}
    page = client.get("/rulesets/drafts/1").get_data(as_text=True)
    assert "expected [4, 8], got [2, 8]" in page and "Publishing is blocked" in page


def test_rule_form_shows_checker_errors_beside_the_field(app, client):
    login(client, "ed")
    new_draft(client)
    url = "/rulesets/drafts/1/rules/FLUOROQUINOLONE_MOXIFLOXACIN"
    pairs = form_of(client.get(url), "rule-form")
    fact = next(k for k, v in pairs if k.endswith("-field") and v)
    pairs = replace(pairs, fact, "medication.ingredients")
    pairs = [(k, v) for k, v in pairs if k != "sources"]
    response = post(client, url, pairs)
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    value_id = fact.replace("-field", "-value")
    assert re.search(rf'data-field="{value_id}">[^<]*did you mean &#39;ingredient&#39;', page), page[-4000:]
    assert re.search(r'data-field="sources">every rule must cite at least one source tag', page)
    assert draft_data(app)["rules"] == json.loads(rs.latest_published().read_text("utf-8"))["rules"]


def test_rule_form_shows_stale_wording_beside_the_description_and_message(app, client):
    """0.75 -> 0.70 through the structured form while the text still says 0.75: refused, the error beside each."""
    login(client, "ed")
    new_draft(client)
    url = "/rulesets/drafts/1/rules/HYPOMAGNESEMIA"
    pairs = form_of(client.get(url), "rule-form")
    threshold = next(k.replace("-value", "") for k, v in pairs if k.endswith("-value") and v == "0.75")
    response = post(client, url, replace(pairs, f"{threshold}-value", "0.70"))
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    stale = "says 0.75 mmol/L but the rule tests serum_mg_mmol_l &gt;= 0.5 and &lt; 0.7"
    assert re.search(rf'data-field="description">{stale}', page), page[-4000:]
    assert re.search(rf'data-field="message">{stale}', page)
    assert draft_data(app)["rules"] == json.loads(rs.latest_published().read_text("utf-8"))["rules"]
    pairs = replace(pairs, f"{threshold}-value", "0.70")
    pairs = replace(
        pairs, "message", dict(pairs)["message"].replace("(0.75 mmol/L)", "({threshold:serum_mg_mmol_l:upper} mmol/L)")
    )
    pairs = replace(pairs, "description", "0.5 <= Mg < 0.70 mmol/L")
    pairs = replace(
        pairs,
        "message_nl",
        dict(pairs)["message_nl"].replace("(0,75 mmol/L)", "({threshold:serum_mg_mmol_l:upper} mmol/L)"),
    )
    pairs = replace(pairs, "description_nl", "0,5 <= Mg < 0,70 mmol/L")
    saved = post(client, url, pairs, follow_redirects=True)
    assert b"Rule HYPOMAGNESEMIA saved" in saved.data
    rule = next(r for r in draft_data(app)["rules"] if r["id"] == "HYPOMAGNESEMIA")
    assert "({threshold:serum_mg_mmol_l:upper} mmol/L)" in rule["then"]["message"]


def test_raw_view_refuses_bad_json_and_fixed_fields(app, client):
    login(client, "ed")
    new_draft(client)
    pairs = form_of(client.get("/rulesets/drafts/1/raw"), "raw-form")
    bad = post(client, "/rulesets/drafts/1/raw", replace(pairs, "content", '{"ruleset": '))
    assert bad.status_code == 400 and b"not valid JSON: line 1 column 13" in bad.data
    content = dict(pairs)["content"].replace(f'"version": {NEXT}', '"version": 99')
    fixed = post(client, "/rulesets/drafts/1/raw", replace(pairs, "content", content))
    assert (
        fixed.status_code == 400
        and f"a draft&#39;s &#39;version&#39; is {NEXT}; it cannot be changed".encode() in fixed.data
    )


def lower_us_limit(app, client):
    """As ed: lower the US adult limit to 300 in the table form, fix the scenarios in the raw view, note it."""
    pairs = form_of(client.get("/rulesets/drafts/1/limits"), "limits-form")
    row = next(k for k, v in pairs if v == "UL_US_9_PLUS").rsplit("-", 1)[0]
    response = post(client, "/rulesets/drafts/1/limits", replace(pairs, f"{row}-ul_mg", "300"), follow_redirects=True)
    assert b"Upper-limit table saved" in response.data
    raw = form_of(client.get("/rulesets/drafts/1/raw"), "raw-form")
    cases = json.loads(dict(raw)["scenarios"])
    for case in cases:
        plan = case.get("expect", {}).get("plan", {})
        cap = plan.get("max_elemental_mg_per_day")
        adult_us = case["record"].get("jurisdiction") == "US" and case["record"].get("age_years", 0) >= 9
        if adult_us and isinstance(cap, int | float) and 0 < cap <= 350:  # the limit, or the limit minus Mg taken
            plan["max_elemental_mg_per_day"] = cap - 50
    response = post(client, "/rulesets/drafts/1/raw", replace(raw, "scenarios", json.dumps(cases)))
    assert response.status_code == 302
    with app.app_context():
        lock = ruleset_drafts.get_draft(1).lock
    client.post("/rulesets/drafts/1/note", data={"expected_lock": lock, "change_note": "US adult limit 300 (test)"})


def test_two_person_publish_through_the_pages(app, client):
    login(client, "ed")
    new_draft(client)
    lower_us_limit(app, client)
    page = client.get("/rulesets/drafts/1").get_data(as_text=True)
    count = len(scenarios.load(scenarios.path_for(rs.latest_published())))
    assert f"{count} of {count} pass" in page and "Publishing is blocked" not in page
    with app.app_context():
        lock = ruleset_drafts.get_draft(1).lock
    client.post("/rulesets/drafts/1/submit", data={"expected_lock": lock})
    page = client.get("/rulesets/drafts/1").get_data(as_text=True)
    assert "another rule editor must approve it" in page and 'id="publish-form"' not in page
    refused = client.post(
        "/rulesets/drafts/1/publish", data={"expected_lock": lock + 1, "password": PASSWORD}, follow_redirects=True
    )
    assert b"you cannot approve it" in refused.data

    login(client, "rita")
    pairs = form_of(client.get("/rulesets/drafts/1"), "publish-form")
    wrong = post(client, "/rulesets/drafts/1/publish", replace(pairs, "password", "nope"), follow_redirects=True)
    assert b"the approval was not signed" in wrong.data
    done = post(client, "/rulesets/drafts/1/publish", replace(pairs, "password", PASSWORD), follow_redirects=True)
    assert f"Published magnesium v{NEXT}".encode() in done.data
    with app.app_context():
        sha = ruleset_versions.latest_version("magnesium").sha256
    assert sha.encode() in done.data
    index = client.get("/rulesets/").get_data(as_text=True)
    assert f"magnesium v{NEXT}" in index and "rita" in index and "US adult limit 300 (test)" in index
    diff = client.get(f"/rulesets/diff?a=v{NEWEST}&b=v{NEXT}").get_data(as_text=True)
    assert "~ upper limit UL_US_9_PLUS: ul_mg: 350 -&gt; 300" in diff and 'class="diff_chg"' in diff


def test_impact_preview_and_reevaluation_pages(app, client):
    with app.app_context():
        items = [
            (
                1,
                json.dumps(
                    record(id="US320", supplement={"form": "citrate", "dose_mg": 320, "dose_basis": "elemental"})
                ),
            )
        ]
        report = workflow.import_records(
            items, filename="t.jsonl", actor="alice", evaluator=ruleset_versions.active_evaluator()
        )
        assert report.accepted == ["US320"]
    login(client, "ed")
    new_draft(client)
    lower_us_limit(app, client)
    preview = client.post("/rulesets/drafts/1/impact", data={"source": "cases", "limit": 100})
    text = preview.get_data(as_text=True)
    assert "1 records replayed, 1 would change" in text and "+ DOSE_ABOVE_UL_US (moderate)" in text
    upload = "\n".join(
        json.dumps(record(id=f"F{dose}", supplement={"form": "oxide", "dose_mg": dose, "dose_basis": "elemental"}))
        for dose in (200, 320, 400)
    )
    from_file = client.post(
        "/rulesets/drafts/1/impact",
        data={"source": "file", "file": (io.BytesIO(upload.encode()), "intake.jsonl")},
        content_type="multipart/form-data",
    ).get_data(as_text=True)
    assert "3 records replayed, 3 would change" in from_file and "finding DOSE_ABOVE_UL_US added in 1" in from_file
    assert "plan.max_elemental_mg_per_day changed in 3" in from_file
    with app.app_context():
        submitted = ruleset_drafts.submit_draft(
            1, actor=draft_user("ed"), expected_lock=ruleset_drafts.get_draft(1).lock
        )
        ruleset_publishing.publish_draft(1, actor=draft_user("rita"), password=PASSWORD, expected_lock=submitted.lock)
    login(client, "alice")
    case = case_id(app, "US320")
    pairs = form_of(client.get(f"/cases/{case}"), "reevaluate-form")
    done = post(client, f"/cases/{case}/reevaluate", pairs, follow_redirects=True).get_data(as_text=True)
    assert f"Re-evaluated under v{NEXT}: + DOSE_ABOVE_UL_US (moderate)" in done and 'id="reevaluate-form"' not in done


def draft_user(name):
    from sqlalchemy import select

    from review_ui.models import User

    return db.session.execute(select(User).where(User.username == name)).scalar_one()


def case_id(app, ref):
    with app.app_context():
        return db.session.query(Case).filter_by(patient_ref=ref).one().id

"""Decisions as a clinician meets them: nothing preselected where it matters, the adjusted plan only for Adjust,
the override requirement naming its findings and rules, what a signed decision changed in words, and amending or
withdrawing a signed decision by a new signed one (both kept, both audited, the lock kept)."""

import io
import json
import re
import threading

import pytest

from audit import log as audit
from review_ui import workflow
from review_ui.db import db
from review_ui.decisions import FieldChange, plan_changes
from review_ui.models import Case, Decision
from tests.helpers import ROOT, record

PASSWORD = "correct horse battery"
SEVERE_RENAL = record(id="R1", egfr_ml_min_1_73m2=20)  # RENAL_SEVERE, contraindicated
RALTEGRAVIR = record(id="M1", medications=["Isentress 400 mg"])  # RALTEGRAVIR_AVOID, major
HEALTHY = record(id="H1")  # info findings only: cap 350 mg (UL_US_9_PLUS)
RENAL_OVERRIDE = "Override needed: Severe kidney impairment (rule RENAL_SEVERE_BY_EGFR, contraindicated)"


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("bob", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
    return app.test_client()


def login(client, username="alice"):
    client.post("/login", data={"username": username, "password": PASSWORD})


def upload(client, *records):
    body = "\n".join(json.dumps(r) for r in records).encode()
    client.post("/import", data={"file": (io.BytesIO(body), "in.jsonl")}, content_type="multipart/form-data")


def case_id(app, ref):
    with app.app_context():
        return db.session.query(Case).filter_by(patient_ref=ref).one().id


def opened(app, client, rec, language="en"):
    """Sign in, import one record and open its case page: (case id, page text)."""
    login(client)
    upload(client, rec)
    cid = case_id(app, rec["id"])
    return cid, client.get(f"/cases/{cid}", headers={"Accept-Language": language}).get_data(as_text=True)


def checked_kinds(page):
    """The decision kinds whose radio button is checked."""
    radios = re.findall(r'<input[^>]*name="kind"[^>]*>', page)
    assert radios, "no decision radio buttons"
    return [re.search(r'value="(\w+)"', r).group(1) for r in radios if " checked" in r]


def section(page, start, end="<h2>Audit log"):
    return page[page.index(start) : page.index(end)]


def decisions_listed(page):
    """The Decisions section: the signed decisions, without the forms that amend or withdraw them."""
    return section(page, "<h2>Decisions</h2>", '<details class="card" id="amend"')


# --- nothing preselected where it matters ---------------------------------------------------------


@pytest.mark.parametrize(
    "rec, checked",
    [(SEVERE_RENAL, []), (RALTEGRAVIR, []), (HEALTHY, ["approve"])],
    ids=["contraindicated", "major", "info-only"],
)
def test_nothing_is_preselected_on_a_major_or_contraindicated_case(app, client, rec, checked):
    _, page = opened(app, client, rec)
    assert checked_kinds(page) == checked
    choose = "Nothing is preselected on a case with a major or contraindicated finding: choose a decision."
    assert (choose in page) is (not checked)


def test_signing_without_choosing_says_so(app, client):
    cid, _ = opened(app, client, SEVERE_RENAL)
    response = client.post(f"/cases/{cid}/decide", data={"expected_version": "1", "password": PASSWORD})
    assert response.status_code == 400
    assert '<div class="errors">Choose a decision.</div>' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Case, cid).status == "pending"


# --- the adjusted plan's fields: only for Adjust, filled in from the suggestion -------------------------------


def test_adjusted_plan_fields_sit_in_a_fieldset_shown_only_for_adjust(app, client):
    _, page = opened(app, client, record(id="L1", medications=["levothyroxine 100 mcg"]))
    adjust_only = re.search(r'<fieldset class="adjust-only">(.*?)</fieldset>', page, re.S).group(1)
    assert 'name="max_elemental_mg_per_day"' in adjust_only and 'value="350.0"' in adjust_only
    assert 'name="doses_per_day"' in adjust_only and 'value="2"' in adjust_only
    assert "levothyroxine: 4 / 4" in adjust_only  # the suggested separation window, ready to change
    assert 'name="override_code"' in adjust_only
    assert 'name="reason"' not in adjust_only and 'name="password"' not in adjust_only  # always shown
    css = (ROOT / "review_ui" / "static" / "style.css").read_text()
    assert ".decision-form .adjust-only { display: none; }" in css
    assert '.decision-form:has(input[name="kind"][value="adjust"]:checked) .adjust-only { display: block; }' in css


# --- the override requirement names what triggered it ---------------------------------------------------


def test_the_override_requirement_names_the_finding_and_its_rule(app, client):
    cid, page = opened(app, client, SEVERE_RENAL)
    assert RENAL_OVERRIDE in page
    dutch = client.get(f"/cases/{cid}", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert "Ernstige nierfunctiestoornis (regel RENAL_SEVERE_BY_EGFR, gecontra-indiceerd)" in dutch


def test_a_case_without_a_major_finding_names_only_the_cap(app, client):
    _, page = opened(app, client, HEALTHY)
    assert "Override needed" not in page
    assert "A daily dose above the suggested 350 mg needs a coded override reason and an explanation." in page


def adjust_form(**changes):
    return {
        "kind": "adjust",
        "expected_version": "1",
        "max_elemental_mg_per_day": "100",
        "doses_per_day": "1",
        "reason": "nephrologist agrees to a low dose",
        "password": PASSWORD,
        **changes,
    }


@pytest.mark.parametrize(
    "rec, dose, message",
    [
        (
            SEVERE_RENAL,
            "100",
            f"{RENAL_OVERRIDE}; 100 mg a day is above the suggested cap of 0 mg (set by RENAL_SEVERE)",
        ),
        (RALTEGRAVIR, "0", "Override needed: Avoid magnesium with raltegravir (rule RALTEGRAVIR, major)"),
        (HEALTHY, "500", "Override needed: 500 mg a day is above the suggested cap of 350 mg (set by UL_US_9_PLUS)"),
    ],
)
def test_the_refusal_names_what_needs_the_override(app, client, rec, dose, message):
    cid, _ = opened(app, client, rec)
    response = client.post(f"/cases/{cid}/decide", data=adjust_form(max_elemental_mg_per_day=dose))
    assert response.status_code == 400
    assert f"This change needs a coded override reason. {message}." in response.get_data(as_text=True)


def test_a_dose_within_the_cap_on_a_minor_case_needs_no_override(app, client):
    cid, _ = opened(app, client, HEALTHY)
    page = client.post(f"/cases/{cid}/decide", data=adjust_form(max_elemental_mg_per_day="200"), follow_redirects=True)
    assert "Decision signed: case H1 adjusted." in page.get_data(as_text=True)


# --- what a signed decision changed, in words -----------------------------------------------------------

SUGGESTED = {
    "supplement": "yes",
    "form": "citrate",
    "max_elemental_mg_per_day": 350,
    "doses_per_day": 2,
    "separations": [{"drug": "levothyroxine", "drug_before_mg_h": 4, "drug_after_mg_h": 4}],
    "monitoring": ["serum Mg after starting"],
    "urgent": False,
}


APART, BOTH_SIDES = "Keep apart from levothyroxine", "4 h before or 4 h after magnesium"


@pytest.mark.parametrize(
    "final, rows",
    [
        (SUGGESTED, []),
        (dict(SUGGESTED, max_elemental_mg_per_day=200.0),
         [FieldChange("Daily elemental magnesium", "350 mg a day", "200 mg a day")]),
        (dict(SUGGESTED, form=None, doses_per_day=3),
         [FieldChange("Form", "citrate", "—"), FieldChange("Doses per day", "2", "3")]),
        (dict(SUGGESTED, separations=[{"drug": "levothyroxine", "drug_before_mg_h": 6, "drug_after_mg_h": None}]),
         [FieldChange(APART, BOTH_SIDES, "6 h before magnesium")]),
        (dict(SUGGESTED, separations=[]), [FieldChange(APART, BOTH_SIDES, "—")]),
        (dict(SUGGESTED, monitoring=["weekly serum Mg"]),
         [FieldChange("Monitoring", "—", "weekly serum Mg"),
          FieldChange("Monitoring", "serum Mg after starting", "—")]),
        (dict(SUGGESTED, supplement="no", urgent=True),
         [FieldChange("Magnesium supplement", "yes", "no"), FieldChange("Urgent", "no", "yes")]),
    ],
    ids=["as-suggested", "dose", "form-and-doses", "window-side", "window-removed", "monitoring", "yes-no"],
)  # fmt: skip
def test_plan_changes_are_words_field_by_field(final, rows):
    assert plan_changes(SUGGESTED, final) == rows


def test_plan_changes_word_the_daily_schedule():
    day = {"status": "ok", "entries": [{"time": "07:00", "drug": "levothyroxine"}, {"time": "12:00", "drug": None}]}
    conflict = {"status": "conflict", "drugs": ["x"], "reason": "windows_conflict"}
    [row] = plan_changes(dict(SUGGESTED, schedule=day), dict(SUGGESTED, schedule=conflict))
    assert row == FieldChange(
        "Daily schedule",
        "07:00 levothyroxine, 12:00 magnesium",
        "no single day keeps every window: a pharmacist sets the times",
    )


def test_an_adjusted_decision_shows_each_changed_field_and_an_approval_says_as_suggested(app, client):
    login(client)
    upload(client, record(id="A1"), record(id="A2", age_years=50))
    adjusted, approved = case_id(app, "A1"), case_id(app, "A2")
    form = adjust_form(form="citrate", max_elemental_mg_per_day="200", doses_per_day="2", monitoring="weekly serum Mg")
    client.post(f"/cases/{adjusted}/decide", data=form)
    client.post(f"/cases/{approved}/decide", data={"kind": "approve", "expected_version": "1", "password": PASSWORD})
    shown = decisions_listed(client.get(f"/cases/{adjusted}").get_data(as_text=True))
    assert "<caption>What changed against the suggested plan</caption>" in shown
    row = r'<tr><th scope="row">{}</th><td>{}</td><td>{}</td></tr>'
    assert row.format("Daily elemental magnesium", "350 mg a day", "200 mg a day") in shown
    assert row.format("Monitoring", "—", "weekly serum Mg") in shown
    assert row.format("Doses per day", "2", "2") not in shown  # only what changed
    assert "max_elemental_mg_per_day" not in shown and "<pre>" not in shown  # never two JSON blobs
    assert "as suggested" not in shown
    shown = decisions_listed(client.get(f"/cases/{approved}").get_data(as_text=True))
    assert "Final plan as suggested: no field changed." in shown and "<table" not in shown
    dutch = client.get(f"/cases/{adjusted}", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    assert row.format("Elementair magnesium per dag", "350 mg per dag", "200 mg per dag") in dutch


# --- amend and withdraw ---------------------------------------------------------------------------------


@pytest.fixture
def clinician(ctx):
    return workflow.add_user("alice", PASSWORD, "clinician", actor="test")


def one_case(evaluator, rec=HEALTHY):
    workflow.import_records([(1, json.dumps(rec))], filename="t.jsonl", actor="alice", evaluator=evaluator)
    return db.session.query(Case).one()


def actions():
    return [e.action for e in audit.read(db.session, newest_first=False)]


def test_amend_then_withdraw_keeps_every_decision_and_audits_each(clinician, evaluator):
    case = one_case(evaluator)
    first = workflow.decide(case.id, expected_version=1, kind="approve", actor=clinician, password=PASSWORD)
    final = dict(case.plan, max_elemental_mg_per_day=200)
    second = workflow.amend_decision(
        case.id, expected_version=2, kind="adjust", actor=clinician, password=PASSWORD, reason="GI upset at 350",
        final_plan=final,
    )  # fmt: skip
    assert db.session.get(Case, case.id).status == "adjusted"
    third = workflow.withdraw_decision(
        case.id, expected_version=3, actor=clinician, password=PASSWORD, reason="patient stopped taking it"
    )
    decisions = db.session.query(Decision).order_by(Decision.id).all()
    assert [(d.kind, d.supersedes_id) for d in decisions] == [
        ("approve", None), ("adjust", first.id), ("withdraw", second.id)
    ]  # fmt: skip
    assert [d.superseded_by.id if d.superseded_by else None for d in decisions] == [second.id, third.id, None]
    assert decisions[1].final_plan["max_elemental_mg_per_day"] == 200  # the superseded rows are kept as signed
    assert decisions[1].signature_meaning.endswith(f"It supersedes decision #{first.id}.")
    case = db.session.get(Case, case.id)
    assert (case.status, case.reviewer, case.version) == ("pending", None, 4)  # back on the worklist
    assert actions()[-3:] == ["decision.approve", "decision.amend", "decision.withdraw"]
    amended = audit.read(db.session, action="decision.amend")[0]
    assert json.loads(amended.before) == {"status": "approved", "plan": case.plan, "decision": first.id}
    assert json.loads(amended.after)["kind"] == "adjust" and amended.seq == second.audit_seq
    withdrawn = audit.read(db.session, action="decision.withdraw")[0]
    assert json.loads(withdrawn.before)["decision"] == second.id and withdrawn.reason == "patient stopped taking it"
    assert audit.verify(db.session).ok
    # decided again after the withdrawal, as any pending case
    workflow.decide(case.id, expected_version=4, kind="refer", actor=clinician, password=PASSWORD, reason="renal")
    assert db.session.get(Case, case.id).status == "referred"


@pytest.mark.parametrize("what", ["amend", "withdraw"])
def test_a_stale_lock_is_refused_and_nothing_is_written(clinician, evaluator, what):
    bob = workflow.add_user("bob", PASSWORD, "clinician", actor="test")
    case = one_case(evaluator)
    workflow.decide(case.id, expected_version=1, kind="approve", actor=clinician, password=PASSWORD)
    workflow.amend_decision(case.id, expected_version=2, kind="reject", actor=clinician, password=PASSWORD, reason="r")
    before = actions()
    with pytest.raises(workflow.ConflictError, match="changed while you were working on it"):
        if what == "amend":  # bob opened the case before alice's amendment (version 2)
            workflow.amend_decision(case.id, expected_version=2, kind="refer", actor=bob, password=PASSWORD, reason="x")
        else:
            workflow.withdraw_decision(case.id, expected_version=2, actor=bob, password=PASSWORD, reason="x")
    assert db.session.query(Decision).count() == 2 and db.session.get(Case, case.id).status == "rejected"
    assert actions() == before and audit.verify(db.session).ok


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"password": "wrong"}, "password", "The password does not match: the amendment was not signed."),
        ({"reason": " "}, "reason", "Say why you amend the signed decision."),
        ({"kind": ""}, "kind", "Choose a decision."),
    ],
)
def test_an_amendment_needs_the_signature_a_reason_and_a_kind(clinician, evaluator, changes, field, message):
    case = one_case(evaluator)
    workflow.decide(case.id, expected_version=1, kind="approve", actor=clinician, password=PASSWORD)
    args = {"expected_version": 2, "kind": "refer", "actor": clinician, "password": PASSWORD, "reason": "r", **changes}
    with pytest.raises(workflow.WorkflowError) as e:
        workflow.amend_decision(case.id, **args)
    assert (e.value.field, e.value.message) == (field, message)
    assert db.session.query(Decision).count() == 1


def test_an_amendment_on_a_major_case_needs_the_override_too(clinician, evaluator):
    case = one_case(evaluator, SEVERE_RENAL)
    workflow.decide(case.id, expected_version=1, kind="refer", actor=clinician, password=PASSWORD, reason="renal")
    adjusted = dict(case.plan, max_elemental_mg_per_day=100, supplement="yes")
    with pytest.raises(workflow.WorkflowError, match=re.escape(RENAL_OVERRIDE)):
        workflow.amend_decision(
            case.id, expected_version=2, kind="adjust", actor=clinician, password=PASSWORD, reason="r",
            final_plan=adjusted,
        )  # fmt: skip


def test_a_pending_case_has_nothing_to_amend_or_withdraw(clinician, evaluator):
    case = one_case(evaluator)
    with pytest.raises(workflow.ConflictError):
        workflow.withdraw_decision(case.id, expected_version=1, actor=clinician, password=PASSWORD, reason="x")
    assert db.session.query(Decision).count() == 0


def test_amend_and_withdraw_through_the_page(app, client):
    cid, _ = opened(app, client, HEALTHY)
    client.post(f"/cases/{cid}/decide", data={"kind": "approve", "expected_version": "1", "password": PASSWORD})
    page = client.get(f"/cases/{cid}").get_data(as_text=True)
    amend = re.search(r'<form[^>]*id="amend-form">(.*?)</form>', page, re.S).group(1)
    assert checked_kinds(amend) == []  # an amendment chooses its kind afresh
    form = adjust_form(expected_version="2", max_elemental_mg_per_day="200", reason="GI upset at 350")
    page = client.post(f"/cases/{cid}/amend", data=form, follow_redirects=True).get_data(as_text=True)
    assert "Decision amended: case H1 adjusted." in page
    with app.app_context():
        first, second = (d.id for d in db.session.query(Decision).order_by(Decision.id))
    shown = section(page, "<h2>Decisions</h2>")
    assert re.search(rf"Superseded by #{second} on \d{{4}}-\d\d-\d\d \d\d:\d\d UTC by alice\.", shown)
    assert f"Supersedes decision #{first}." in shown and "GI upset at 350" in shown
    assert f"Amend or withdraw decision #{second}" in shown
    stale = {"withdraw-expected_version": "2", "withdraw-reason": "x", "withdraw-password": PASSWORD}
    page = client.post(f"/cases/{cid}/withdraw", data=stale, follow_redirects=True).get_data(as_text=True)
    assert "This case changed while you were working on it (now adjusted); nothing was overwritten." in page
    fresh = dict(stale, **{"withdraw-expected_version": "3", "withdraw-reason": "stopped"})
    page = client.post(f"/cases/{cid}/withdraw", data=fresh, follow_redirects=True).get_data(as_text=True)
    assert "Decision withdrawn: case H1 is pending again." in page
    assert 'id="case-status">pending<' in page and 'id="decision-form"' in page and 'id="amend-form"' not in page
    with app.app_context():
        withdrawal = db.session.query(Decision).order_by(Decision.id.desc()).first().id
    assert f"#{withdrawal} Withdrawn" in page and f"Superseded by #{withdrawal} on" in page
    audit_page = client.get("/audit").get_data(as_text=True)
    assert "decision.amend" in audit_page and "decision.withdraw" in audit_page and "audit log intact" in audit_page


def test_amending_without_a_reason_shows_it_beside_the_field(app, client):
    cid, _ = opened(app, client, HEALTHY)
    client.post(f"/cases/{cid}/decide", data={"kind": "approve", "expected_version": "1", "password": PASSWORD})
    response = client.post(
        f"/cases/{cid}/amend", data={"kind": "reject", "expected_version": "2", "password": PASSWORD}
    )
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert '<details class="card" id="amend" open>' in page
    assert '<div class="errors">Say why you amend the signed decision.</div>' in page


@pytest.mark.parametrize("what", ["amend", "withdraw"])
def test_only_those_who_decide_cases_amend_or_withdraw(app, client, what):
    cid, _ = opened(app, client, HEALTHY)
    client.post(f"/cases/{cid}/decide", data={"kind": "approve", "expected_version": "1", "password": PASSWORD})
    editor = app.test_client()
    login(editor, "ed")
    data = {"kind": "reject", "expected_version": "2", "reason": "x", "password": PASSWORD}
    data.update({f"withdraw-{k}": v for k, v in data.items()})
    assert editor.post(f"/cases/{cid}/{what}", data=data).status_code == 403
    with app.app_context():
        assert db.session.query(Decision).count() == 1 and db.session.get(Case, cid).status == "approved"


# --- in a real browser: the adjusted plan appears on choosing Adjust ------------------------------------


def test_the_adjusted_plan_appears_when_adjust_is_chosen(app, evaluator):
    from tests.review_ui.test_e2e_browser import CHROMIUM_ARGS, chromium_path

    if chromium_path() is None:
        pytest.skip("Chromium not installed")
    from playwright.sync_api import expect, sync_playwright
    from werkzeug.serving import make_server

    with app.app_context():
        workflow.add_user("carol", PASSWORD, "clinician", actor="test")
        workflow.import_records([(1, json.dumps(SEVERE_RENAL))], filename="t.jsonl", actor="carol", evaluator=evaluator)
        cid = db.session.query(Case).one().id
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{http.server_port}/login")
            page.fill("input[name=username]", "carol")
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit]")
            page.goto(f"http://127.0.0.1:{http.server_port}/cases/{cid}")
            plan = page.locator("#decision-form .adjust-only")
            expect(plan).to_be_hidden()
            page.check("#decision-form input[name=kind][value=refer]")
            expect(plan).to_be_hidden()
            page.check("#decision-form input[name=kind][value=adjust]")
            expect(plan).to_be_visible()
            expect(plan).to_contain_text(RENAL_OVERRIDE)
            page.focus("#decision-form input[name=kind][value=adjust]")
            page.keyboard.press("Tab")  # the first field of the adjusted plan is next by keyboard
            expect(page.locator("#decision-form input[name=form]")).to_be_focused()
            browser.close()
    finally:
        http.shutdown()

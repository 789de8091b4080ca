"""The printed patient plan: only for an approved or adjusted case, from the decision's final plan, in the patient's
language (Dutch or English, chosen per case and audited) whatever the clinician's page language."""

import os
import re
import threading

import pytest
from sqlalchemy import update
from werkzeug.serving import make_server

from audit import log as audit
from review_ui import preferences, workflow
from review_ui.db import db
from review_ui.models import Case
from tests.helpers import ROOT, record
from tests.review_ui.test_e2e_browser import CHROMIUM_ARGS, chromium_path

PASSWORD = "correct horse battery"
THYROID_AND_DOXY = record(
    id="PLAN1", jurisdiction="EU", medications=["Euthyrox 100 mcg", "doxycycline 100 mg"], supplement=None
)


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test", full_name="Dr. A. Jansen")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": PASSWORD}, headers={"Accept-Language": "en"})
    return client


def imported(app, evaluator, *records):
    """Import records as cases; their ids by patient ref."""
    with app.app_context():
        workflow.import_records(enumerate(records, 1), filename="t.jsonl", actor="alice", evaluator=evaluator)
        return {c.patient_ref: c.id for c in db.session.query(Case)}


def decide(app, case_id, kind, **changes):
    """Sign a decision as alice; an adjustment changes the suggested plan by `changes`."""
    with app.app_context():
        case = db.session.get(Case, case_id)
        final = {**case.plan, **changes} if kind == "adjust" else None
        override = {"override_code": "PHYSICIAN_ORDER", "override_text": "Dr Bakker, by phone"} if final else {}
        reason = "" if kind == "approve" else "checked with the patient"
        user = db.session.query(workflow.User).filter_by(username="alice").one()
        workflow.decide(
            case_id,
            expected_version=case.version,
            kind=kind,
            actor=user,
            password=PASSWORD,
            reason=reason,
            final_plan=final,
            **override,
        )


def plan_page(client, case_id, accept_language="en"):
    response = client.get(f"/cases/{case_id}/plan", headers={"Accept-Language": accept_language})
    return response.status_code, " ".join(response.get_data(as_text=True).split())


def sheet_of(page):
    """The patient's part of the plan page (what is printed)."""
    return page[page.index('<article class="patient-plan"') : page.index("</article>")]


@pytest.fixture
def approved(app, client, evaluator):
    case_id = imported(app, evaluator, THYROID_AND_DOXY)["PLAN1"]
    decide(app, case_id, "approve")
    return case_id


LANGUAGES = {
    "nl": [
        '<html lang="en">',  # the clinician's page stays English ...
        '<article class="patient-plan" id="patient-plan" lang="nl">',  # ... the patient's plan is Dutch
        "<h1>Uw magnesiumplan</h1>",
        "Neem een magnesiumsupplement in: niet meer dan 250 mg elementair magnesium per dag, verdeeld over 2 doses "
        "van hoogstens 125 mg.",
        "Neem uw middelen elke dag op deze tijden in:",
        '<th scope="row" class="time">07:00*</th><td>levothyroxine (Euthyrox 100 mcg), bij het opstaan, op een lege '
        "maag</td>",
        '<th scope="row" class="time">08:00*</th><td>doxycycline</td>',
        '<th scope="row" class="time">12:00</th><td>een magnesiumsupplement, hoogstens 125 mg</td>',
        '<th scope="row" class="time">22:00</th><td>een magnesiumsupplement, hoogstens 125 mg</td>',
        "Niet tegelijk innemen",
        "Neem doxycycline minstens 2 uur vóór of 4 uur na de magnesium in.",
        "Neem levothyroxine (Euthyrox 100 mcg) minstens 4 uur vóór of 4 uur na de magnesium in.",
        "Kom terug voor deze controles:",
        "<li>Na de start opnieuw klachten en serummagnesium controleren</li>",  # the ruleset's Dutch (v3)
        "Beoordeeld en ondertekend door Dr. A. Jansen op",
    ],
    "en": [
        '<html lang="en">',
        '<article class="patient-plan" id="patient-plan" lang="en">',
        "<h1>Your magnesium plan</h1>",
        "Take a magnesium supplement: no more than 250 mg of elemental magnesium a day, split into 2 doses of at most "
        "125 mg each.",
        '<th scope="row" class="time">07:00*</th><td>levothyroxine (Euthyrox 100 mcg), on waking, on an empty '
        "stomach</td>",
        '<th scope="row" class="time">12:00</th><td>a magnesium supplement, at most 125 mg</td>',
        '<th scope="row" class="time">22:00</th><td>a magnesium supplement, at most 125 mg</td>',
        "Take doxycycline at least 2 hours before or 4 hours after magnesium.",
        "Take levothyroxine (Euthyrox 100 mcg) at least 4 hours before or 4 hours after magnesium.",
        "<li>Re-check symptoms and serum magnesium after starting</li>",
        "Reviewed and signed by Dr. A. Jansen on",
    ],
}
NOT_IN = {"nl": ["Your magnesium plan", "Take levothyroxine", "[S10]"], "en": ["Uw magnesiumplan", "Neem ", "[S10]"]}


@pytest.mark.parametrize("language", ["nl", "en"])
def test_an_approved_plan_prints_in_the_patients_language_whatever_the_page_language(app, client, approved, language):
    if language == "en":  # EU record: Dutch unless the clinician chooses English for this patient
        client.post(f"/cases/{approved}/plan/language", data={"language": "en"})
    status, page = plan_page(client, approved, accept_language="en")
    assert status == 200
    for text in LANGUAGES[language]:
        assert text in page
    for text in NOT_IN[language]:
        assert text not in sheet_of(page)
    assert '<button type="button" id="print-button" onclick="window.print()">Print</button>' in page
    assert "<noscript>To print, or to save as PDF, use your browser’s Print command" in page


def test_the_signature_names_the_reviewer_and_the_date_in_the_patients_words(app, client, approved):
    with app.app_context():
        signed = db.session.get(Case, approved).decisions[-1].signed_at
    _, dutch = plan_page(client, approved)
    months = "januari februari maart april mei juni juli augustus september oktober november december"
    day = f"{signed.day} {months.split()[signed.month - 1]} {signed.year}"
    assert f"Beoordeeld en ondertekend door Dr. A. Jansen op {day}." in dutch
    client.post(f"/cases/{approved}/plan/language", data={"language": "en"})
    _, english = plan_page(client, approved)
    assert f"Reviewed and signed by Dr. A. Jansen on {signed:%B} {signed.day}, {signed.year}." in english


def test_a_dutch_clinician_prints_an_english_plan(app, client, approved):
    client.post(f"/cases/{approved}/plan/language", data={"language": "en"})
    status, page = plan_page(client, approved, accept_language="nl")
    assert status == 200
    assert '<html lang="nl">' in page and ">Afdrukken</button>" in page  # the clinician's own page: Dutch
    assert "<h1>Your magnesium plan</h1>" in sheet_of(page) and "Afdrukken" not in sheet_of(page)


@pytest.mark.parametrize("jurisdiction, language", [("EU", "nl"), ("US", "en")])
def test_with_none_chosen_the_patient_reads_the_language_of_the_jurisdiction(
    app, client, evaluator, jurisdiction, language
):
    case_id = imported(app, evaluator, record(id="J1", jurisdiction=jurisdiction))["J1"]
    decide(app, case_id, "approve")
    _, page = plan_page(client, case_id)
    assert f'lang="{language}"' in sheet_of(page)
    assert 'selected value="' + language + '"' in page or f'<option selected value="{language}">' in page


def test_choosing_the_patients_language_is_audited_and_leaves_the_decision_alone(app, client, approved):
    with app.app_context():
        version = db.session.get(Case, approved).version
    response = client.post(f"/cases/{approved}/plan/language", data={"language": "en"}, follow_redirects=True)
    assert "The plan for PLAN1 is now printed in English." in response.get_data(as_text=True)
    with app.app_context():
        case = db.session.get(Case, approved)
        assert (case.patient_language, case.version, case.status) == ("en", version, "approved")
        entry = audit.read(db.session, action="case.patient_language")[0].as_dict()
        assert (entry["actor"], entry["target_type"], entry["target_id"]) == ("alice", "case", str(approved))
        assert (entry["before"], entry["after"]) == ({"patient_language": None}, {"patient_language": "en"})
        assert entry["details"] == {"patient_ref": "PLAN1"}
        assert audit.verify(db.session).ok


def test_a_language_the_plan_is_not_written_in_is_refused(app, client, approved):
    response = client.post(f"/cases/{approved}/plan/language", data={"language": "de"}, follow_redirects=True)
    assert "Choose English or Nederlands for the patient." in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Case, approved).patient_language is None
        assert audit.read(db.session, action="case.patient_language") == []
        with pytest.raises(workflow.WorkflowError, match="Choose English or Nederlands"):
            preferences.set_patient_language(approved, "fr", actor=db.session.query(workflow.User).first())


@pytest.mark.parametrize(
    "kind, reason",
    [
        (None, "Case PLAN1 has no signed decision yet: a plan is printed only once a clinician has approved or"),
        ("reject", "The plan of case PLAN1 was rejected: there is no plan to give the patient."),
        ("refer", "Case PLAN1 was referred to a physician, who decides: there is no approved plan to print."),
    ],
)
def test_a_case_without_an_approved_or_adjusted_plan_prints_nothing(app, client, evaluator, kind, reason):
    case_id = imported(app, evaluator, THYROID_AND_DOXY)["PLAN1"]
    if kind:
        decide(app, case_id, kind)
    status, page = plan_page(client, case_id)
    assert status == 404
    assert "<h1>No plan to print</h1>" in page and reason in page
    assert "patient-plan" not in page and "Uw magnesiumplan" not in page
    case_page = client.get(f"/cases/{case_id}").get_data(as_text=True)
    assert "Printable patient plan" not in case_page


def test_the_case_page_links_to_the_plan_once_approved(client, approved):
    page = client.get(f"/cases/{approved}").get_data(as_text=True)
    assert f'href="/cases/{approved}/plan" id="patient-plan-link">Printable patient plan</a>' in page


def test_the_adjusted_plan_is_printed_not_the_suggestion(app, client, evaluator):
    case_id = imported(app, evaluator, THYROID_AND_DOXY)["PLAN1"]
    decide(app, case_id, "adjust", max_elemental_mg_per_day=150.0, doses_per_day=3, form="citrate")
    _, page = plan_page(client, case_id)
    sheet = sheet_of(page)
    assert (
        "Neem magnesiumcitraat in: niet meer dan 150 mg elementair magnesium per dag, verdeeld over 3 doses van "
        "hoogstens 50 mg." in sheet
    )
    assert "250 mg" not in sheet and "125 mg" not in sheet
    # three doses a day: the schedule is made again for the final plan, not the suggestion's two
    assert len(re.findall(r"<td>magnesiumcitraat, hoogstens 50 mg</td>", sheet)) == 3


def test_the_adjusted_plan_prints_the_clinicians_own_monitoring_as_written(app, client, evaluator):
    case_id = imported(app, evaluator, THYROID_AND_DOXY)["PLAN1"]
    with app.app_context():  # a ruleset with Dutch monitoring text (v3 results carry monitoring_nl)
        case = db.session.get(Case, case_id)
        plan = {**case.plan, "monitoring_nl": ["serum-magnesium opnieuw bepalen na de start [S10]"]}
        db.session.execute(update(Case).where(Case.id == case_id).values(result={**case.result, "plan": plan}))
        db.session.commit()
    other = imported(app, evaluator, record(id="PLAN2", jurisdiction="EU", medications=["levothyroxine"]))["PLAN2"]
    with app.app_context():
        case = db.session.get(Case, other)
        plan = {**case.plan, "monitoring_nl": ["serum-magnesium opnieuw bepalen na de start"]}
        db.session.execute(update(Case).where(Case.id == other).values(result={**case.result, "plan": plan}))
        db.session.commit()
    decide(app, case_id, "approve")
    decide(app, other, "adjust", monitoring=["TSH after 6 weeks"])
    kept = sheet_of(plan_page(client, case_id)[1])
    assert "<li>Serum-magnesium opnieuw bepalen na de start</li>" in kept and "Re-check" not in kept
    edited = sheet_of(plan_page(client, other)[1])
    assert "<li>TSH after 6 weeks</li>" in edited and "opnieuw bepalen" not in edited
    client.post(f"/cases/{case_id}/plan/language", data={"language": "en"})
    english = sheet_of(plan_page(client, case_id)[1])
    assert "<li>Re-check symptoms and serum magnesium after starting</li>" in english and "bepalen" not in english


def test_a_plan_without_magnesium_says_so_and_gives_no_advice_for_taking_it(app, client, evaluator):
    case_id = imported(app, evaluator, record(id="NO1", jurisdiction="EU", medications=["levothyroxine"]))["NO1"]
    decide(app, case_id, "adjust", max_elemental_mg_per_day=0.0, supplement="no")
    sheet = sheet_of(plan_page(client, case_id)[1])
    assert "Neem voorlopig geen magnesiumsupplement in." in sheet
    for advice in ("Wanneer neemt u het in", "Niet tegelijk innemen", "hoogstens", "elementair"):
        assert advice not in sheet


def test_a_one_sided_window_reads_as_one_side(app, client, evaluator):
    case_id = imported(app, evaluator, record(id="G1", jurisdiction="US", medications=["gabapentin 300 mg"]))["G1"]
    decide(app, case_id, "approve")
    sheet = sheet_of(plan_page(client, case_id)[1])
    assert "Take gabapentin at least 2 hours after magnesium." in sheet
    assert "before or" not in sheet


def test_only_clinicians_open_a_patients_plan(app, approved):
    editor = app.test_client()
    editor.post("/login", data={"username": "ed", "password": PASSWORD})
    assert editor.get(f"/cases/{approved}/plan").status_code == 403
    assert editor.post(f"/cases/{approved}/plan/language", data={"language": "en"}).status_code == 403
    with app.app_context():
        assert db.session.get(Case, approved).patient_language is None


# --- in a real browser: the printed plan on a phone -------------------------------------------------

SCREENSHOTS = ROOT / "docs" / "screenshots"  # kept in docs when run with MGREVIEW_SCREENSHOTS=1


@pytest.fixture
def served_plan(app, evaluator):
    """The app served on a free port with one approved case (EU record: a Dutch patient plan)."""
    if chromium_path() is None:
        pytest.skip("Chromium not installed")
    with app.app_context():
        workflow.add_user("carol", PASSWORD, "clinician", actor="test", full_name="Dr. C. de Vries")
    case_id = imported(
        app, evaluator, record(id="P-2041", jurisdiction="EU", medications=THYROID_AND_DOXY["medications"])
    )
    with app.app_context():
        user = db.session.query(workflow.User).filter_by(username="carol").one()
        workflow.decide(case_id["P-2041"], expected_version=1, kind="approve", actor=user, password=PASSWORD)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_port}", case_id["P-2041"]
    http.shutdown()


def printed(page, expect, path):
    """As printed: no header, no tools, the plan itself; a screenshot of it when asked for."""
    page.emulate_media(media="print")
    expect(page.locator("header")).to_be_hidden()
    expect(page.locator("#plan-tools")).to_be_hidden()
    expect(page.locator("#patient-plan")).to_be_visible()
    if os.environ.get("MGREVIEW_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / path), full_page=True)
    page.emulate_media(media="screen")


def test_the_printed_plan_on_a_phone_in_dutch_then_in_english(served_plan, app):
    from playwright.sync_api import expect, sync_playwright

    server, case_id = served_plan
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844}, locale="en-GB")
        page.goto(f"{server}/login")
        page.fill("input[name=username]", "carol")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        page.goto(f"{server}/cases/{case_id}")
        page.click("#patient-plan-link")
        plan = page.locator("#patient-plan")
        expect(plan.locator("h1")).to_have_text("Uw magnesiumplan")
        expect(plan).to_contain_text("niet meer dan 250 mg elementair magnesium per dag")
        expect(plan.locator("table.plan-schedule")).to_contain_text("12:00")
        expect(plan).to_contain_text(
            "Neem levothyroxine (Euthyrox 100 mcg) minstens 4 uur vóór of 4 uur na de magnesium in."
        )
        expect(plan.locator("#plan-signed")).to_contain_text("Beoordeeld en ondertekend door Dr. C. de Vries op")
        expect(page.locator("#print-button")).to_have_text("Print")  # the clinician's page stays English
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the phone
        printed(page, expect, "patient-plan-nl.png")

        page.select_option("#patient-language-form select[name=language]", "en")
        page.click("#patient-language-form input[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text("The plan for P-2041 is now printed in English.")
        expect(plan.locator("h1")).to_have_text("Your magnesium plan")
        expect(plan).to_contain_text(
            "Take levothyroxine (Euthyrox 100 mcg) at least 4 hours before or 4 hours after magnesium."
        )
        printed(page, expect, "patient-plan-en.png")
        browser.close()


def test_a_window_without_hours_leaves_the_times_to_the_pharmacist(app, client, evaluator):
    case_id = imported(app, evaluator, record(id="W1", jurisdiction="US"))["W1"]
    window = {"drug": "ciprofloxacin", "drug_before_mg_h": None, "drug_after_mg_h": None}
    decide(app, case_id, "adjust", separations=[window])
    sheet = sheet_of(plan_page(client, case_id)[1])
    assert "Ask your pharmacist how much time to keep between ciprofloxacin and magnesium." in sheet
    assert "cannot all be kept apart on one fixed schedule: your pharmacist sets the times with you." in sheet
    assert "plan-schedule" not in sheet


def test_with_no_cap_the_doctor_sets_the_amount(app, client, evaluator):
    case_id = imported(app, evaluator, record(id="C1", jurisdiction="US"))["C1"]
    decide(app, case_id, "adjust", max_elemental_mg_per_day=None, form="glycinate")
    sheet = sheet_of(plan_page(client, case_id)[1])
    assert "Take magnesium bisglycinate in the amount your doctor sets." in sheet
    assert "Do not take" not in sheet and "at most" not in sheet

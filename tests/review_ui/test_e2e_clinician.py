"""A clinician's walk in real Chromium (Debian package, driven by Playwright), asserting the text a person reads:
triage on the worklist, a contraindicated case, each decision (approve, adjust, reject, refer), an amendment and
the printed patient plan; the key pages again in Dutch after choosing Nederlands in Settings; the case page and
the decision form on a 390 px phone. Screenshots of the worklist and the case page in both languages go to
docs/screenshots when run with MGREVIEW_SCREENSHOTS=1, else to the test artefacts."""

import os
import threading

import pytest
from werkzeug.serving import make_server

from review_ui import workflow
from tests.helpers import ROOT
from tests.review_ui.test_e2e_browser import ARTIFACTS, CHROMIUM_ARGS, chromium_path

PASSWORD = "clinician-walk-password"
SAMPLE = ROOT / "samples" / "intake.jsonl"  # 64 records: 60 become cases, 4 are rejected with reasons
PHONE = {"width": 390, "height": 844}
# The elements sticking out on the right: named in a failure so the culprit is found without a debugger.
WIDER_THAN_THE_PHONE = """() => [...document.querySelectorAll('main *')]
  .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 2)
  .slice(0, 5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.name ? '[name=' + e.name + ']' : '')
  + ' ' + Math.round(e.getBoundingClientRect().right) + 'px')"""
OVERRIDE = "Dr Bakker (internist), by phone"


def shot(page, name, docs=True, full_page=True):
    """A full-page screenshot: into docs/screenshots when asked for (MGREVIEW_SCREENSHOTS=1), else the artefacts.
    The printed plans in docs are test_patient_plan's; this walk's go to the artefacts only (docs=False)."""
    keep = docs and os.environ.get("MGREVIEW_SCREENSHOTS") == "1"
    folder = ROOT / "docs" / "screenshots" if keep else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / name), full_page=full_page)


def read(locator):
    """What a person reads in a part of the page, whitespace collapsed."""
    return " ".join(locator.inner_text().split())


@pytest.fixture
def server(app):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium (Debian package 'chromium') is required in CI")
        pytest.skip("Chromium not installed")
    with app.app_context():
        workflow.add_user("carol", PASSWORD, "clinician", actor="test", full_name="Dr. C. de Vries")
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def sign_in_and_import(page, server):
    """Sign in as the clinician and import the sample file through the Import page."""
    page.goto(f"{server}/login")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")
    page.click("header >> text=Import")
    page.set_input_files("input[name=file]", str(SAMPLE))
    page.click("main form input[type=submit]")


def open_case(page, server, ref, status=""):
    """Find a patient on the worklist by reference (any status unless given) and open the case."""
    page.goto(f"{server}/cases?status={status}&q={ref}")
    page.click(f"table.worklist >> text={ref}")


def sign(page, form, kind, reason="", **fields):
    """Fill and sign a decision form (#decision-form or #amend-form)."""
    page.check(f"{form} input[name=kind][value={kind}]")
    for name, value in fields.items():
        tag = "select" if name == "override_code" else "textarea" if name == "override_text" else "input"
        if tag == "select":
            page.select_option(f"{form} select[name={name}]", value)
        else:
            page.fill(f"{form} {tag}[name={name}]", value)
    if reason:
        page.fill(f"{form} textarea[name=reason]", reason)
    page.fill(f"{form} input[name=password]", PASSWORD)
    page.click(f"{form} input[type=submit]")


def triage(page, expect):
    """The worklist: its columns, the top finding in words, then a filter by a finding's title."""
    expect(page.locator("h1")).to_have_text("Worklist")
    header = read(page.locator("table.worklist thead"))
    for column in ("Patient", "Age, sex", "eGFR", "Serum Mg", "Requested", "Proposed cap", "Top finding", "Status"):
        assert column in header
    first = read(page.locator("table.worklist tbody tr").first)  # the most severe first
    assert first.startswith("P0005 71 y, female 24.0 0.90 150 no magnesium contraindicated Severe kidney impairment")
    assert "60 cases" in read(page.locator("main"))
    shot(page, "worklist-en.png", full_page=False)  # the first screen: what triage starts from
    page.select_option("select[name=finding]", label="Separate from the thyroid hormone")
    page.click("main form button[type=submit]")
    rows = page.locator("table.worklist tbody tr")
    expect(rows).to_have_count(2)
    assert [read(r).split()[0] for r in rows.all()] == ["P0003", "P0058"]
    assert "major Separate from the thyroid hormone and 3 more findings" in read(rows.first)
    assert "Severe kidney impairment" not in read(page.locator("table.worklist"))  # the filter's false alarm


def contraindicated_case(page, expect, server):
    """P0005 (eGFR 24): the summary, the bottom line, nothing preselected; rejected with a reason."""
    open_case(page, server, "P0005")
    expect(page.locator("h1")).to_have_text("Case P0005 contraindicated")
    expect(page.locator("#bottom-line")).to_have_text(
        "Do not start magnesium: a physician decides (Severe kidney impairment)."
    )
    summary = read(page.locator("#patient-summary"))
    assert "71 years, female" in summary and "24 mL/min/1.73 m², KDIGO G4" in summary
    assert "metformine 500 mg 2dd → metformin" in summary
    assert read(page.locator("#suggested-plan")).startswith("No magnesium proposed.")
    expect(page.locator("#choose-first")).to_have_text(
        "Nothing is preselected on a case with a major or contraindicated finding: choose a decision."
    )
    assert [r.is_checked() for r in page.locator("#decision-form input[name=kind]").all()] == [False] * 4
    sign(page, "#decision-form", "reject", reason="eGFR 24: no supplement; nephrologist informed")
    expect(page.locator(".flash-success")).to_have_text("Decision signed: case P0005 rejected.")
    signed = read(page.locator(".decision").first)
    assert "Rejected by carol" in signed and "No supplement is to be given on the suggested plan." in signed
    expect(page.locator("#patient-plan-link")).to_have_count(0)  # nothing to print for a rejected plan


def approve_and_refer(page, expect, server):
    """An uncomplicated case approved as suggested (preselected); a toxic serum magnesium referred."""
    open_case(page, server, "P0001")
    expect(page.locator("#decision-form input[name=kind][value=approve]")).to_be_checked()
    sign(page, "#decision-form", "approve")
    expect(page.locator(".flash-success")).to_have_text("Decision signed: case P0001 approved.")
    expect(page.locator(".decision .as-suggested")).to_have_text("Final plan as suggested: no field changed.")
    open_case(page, server, "P0012")
    expect(page.locator("h1")).to_have_text("Case P0012 contraindicated")
    sign(page, "#decision-form", "refer", reason="Serum magnesium 1.89: to the GP today")
    expect(page.locator(".flash-success")).to_have_text("Decision signed: case P0012 referred.")
    assert "A physician decides the plan." in read(page.locator(".decision").first)


def adjust_and_amend(page, expect, server):
    """P0003 (levothyroxine, major): the adjusted plan only after choosing Adjust, the override naming the
    finding; the cap lowered to 200 then amended to 150 mg, both decisions kept, the first superseded."""
    open_case(page, server, "P0003")
    expect(page.locator("#bottom-line")).to_have_text(
        "Up to 250 mg elemental magnesium a day in 2 doses, 4 h apart from levothyroxine."
    )
    adjusted = page.locator("#decision-form .adjust-only")
    expect(adjusted).to_be_hidden()
    page.check("#decision-form input[name=kind][value=reject]")
    expect(adjusted).to_be_hidden()
    page.check("#decision-form input[name=kind][value=adjust]")
    expect(adjusted).to_be_visible()
    expect(adjusted.locator(".override-needed")).to_have_text(
        "Any change to the suggested plan needs a coded override reason and an explanation. "
        "Override needed: Separate from the thyroid hormone (rule THYROID_HORMONE, major)."
    )
    expect(page.locator("#decision-form input[name=max_elemental_mg_per_day]")).to_have_value("250.0")
    shot(page, "case-page-en.png")
    sign(
        page,
        "#decision-form",
        "adjust",
        reason="Lower dose while the levothyroxine dose is being set",
        max_elemental_mg_per_day="200",
        override_code="PHYSICIAN_ORDER",
        override_text=OVERRIDE,
    )
    expect(page.locator(".flash-success")).to_have_text("Decision signed: case P0003 adjusted.")
    changes = page.locator(".decision table.plan-changes")
    expect(changes).to_have_count(1)
    assert read(changes.locator("tbody")) == "Daily elemental magnesium 250 mg a day 200 mg a day"

    page.click("#amend summary")
    expect(page.locator("#amend-form input[name=kind]:checked")).to_have_count(0)  # nothing preselected
    sign(
        page,
        "#amend-form",
        "adjust",
        reason="Serum magnesium 0.71: start lower",
        max_elemental_mg_per_day="150",
        override_code="PHYSICIAN_ORDER",
        override_text=OVERRIDE,
    )
    expect(page.locator(".flash-success")).to_have_text("Decision amended: case P0003 adjusted.")
    old, new = page.locator(".decision").all()
    assert "superseded" in old.get_attribute("class") and "in force" not in read(old)
    assert "Superseded by #" in read(old) and "200 mg a day" in read(old)
    assert "in force" in read(new) and "Supersedes decision #" in read(new)
    assert read(new.locator("table.plan-changes tbody")) == "Daily elemental magnesium 250 mg a day 150 mg a day"


def printed_plan(page, expect, language, heading, cap_line, name):
    """The printed plan as the printer sees it: no header or tools, the amended cap."""
    if read(page.locator("#patient-plan h1")) != heading:
        page.select_option("#patient-language-form select[name=language]", language)
        page.click("#patient-language-form input[type=submit]")
    plan = page.locator("#patient-plan")
    expect(plan.locator("h1")).to_have_text(heading)
    expect(plan).to_contain_text(cap_line)
    expect(plan.locator("#plan-signed")).to_contain_text("Dr. C. de Vries")
    page.emulate_media(media="print")
    expect(page.locator("header")).to_be_hidden()
    expect(page.locator("#plan-tools")).to_be_hidden()
    expect(plan).to_be_visible()
    shot(page, name, docs=False)
    page.emulate_media(media="screen")


def in_dutch(page, expect, server):
    """Settings → Nederlands; the worklist, a case, a decision and the plan in Dutch."""
    page.click("#settings-link")
    page.check("#settings-form input[value=nl]")
    page.click("#settings-form input[type=submit]")
    expect(page.locator(".flash-success")).to_have_text("Uw taal voor de pagina's is opgeslagen.")
    expect(page.locator("html")).to_have_attribute("lang", "nl")

    page.click("header >> text=Werklijst")
    expect(page.locator("h1")).to_have_text("Werklijst")
    header = read(page.locator("table.worklist thead"))
    assert "Patiënt" in header and "Belangrijkste bevinding" in header and "Voorgestelde maximale dosis" in header
    first = read(page.locator("table.worklist tbody tr").first)
    assert first.startswith(
        "P0006 80 jr, man — 1,10 100 geen magnesium gecontra-indiceerd Ernstige nierfunctiestoornis"
    )
    assert "56 casussen" in read(page.locator("main"))  # four decided: off the pending list
    shot(page, "worklist-nl.png", full_page=False)

    open_case(page, server, "P0002")
    expect(page.locator("h1")).to_have_text("Casus P0002 ernstig")
    expect(page.locator("#bottom-line")).to_have_text(
        "Maximaal 250 mg elementair magnesium per dag, verdeeld over 2 innames."
    )
    expect(page.locator("#choose-first")).to_have_text(
        "Bij een casus met een ernstige of gecontra-indiceerde bevinding is niets vooraf gekozen: kies een besluit."
    )
    page.check("#decision-form input[name=kind][value=adjust]")
    expect(page.locator("#decision-form .override-needed")).to_contain_text(
        "Reden om af te wijken nodig: Langdurig gebruik van een protonpompremmer"
    )
    shot(page, "case-page-nl.png")
    sign(page, "#decision-form", "refer", reason="Eerst serum-magnesium herhalen, dan opnieuw beoordelen")
    expect(page.locator(".flash-success")).to_have_text("Besluit ondertekend: casus P0002 verwezen.")

    open_case(page, server, "P0003")
    old, new = page.locator(".decision").all()
    assert "Vervangen door #" in read(old) and "geldend" not in read(old)
    assert "geldend" in read(new) and "Vervangt besluit #" in read(new)
    changes = read(new.locator("table.plan-changes"))
    assert changes.startswith("Wat is gewijzigd ten opzichte van het voorgestelde plan") and "150 mg" in changes
    expect(page.locator("#patient-plan-link")).to_have_text("Patiëntplan om af te drukken")
    page.click("#patient-plan-link")
    expect(page.locator("#print-button")).to_have_text("Afdrukken")


def test_a_clinician_walks_triage_a_case_each_decision_an_amendment_and_the_plan_in_english_then_dutch(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(locale="en-GB", viewport={"width": 1280, "height": 900})
    sign_in_and_import(page, server)
    expect(page.get_by_role("status")).to_have_text(
        "Imported intake.jsonl: 60 new cases, 0 already imported, 4 rejected; 0 pending cases updated to a new version."
    )
    page.click("header >> text=Worklist")
    triage(page, expect)
    contraindicated_case(page, expect, server)
    approve_and_refer(page, expect, server)
    adjust_and_amend(page, expect, server)
    page.click("#patient-plan-link")
    expect(page.locator("#print-button")).to_have_text("Print")
    printed_plan(
        page,
        expect,
        "en",
        "Your magnesium plan",
        "no more than 150 mg of elemental magnesium a day",
        "walk-patient-plan-en.png",
    )
    in_dutch(page, expect, server)
    printed_plan(
        page,
        expect,
        "nl",
        "Uw magnesiumplan",
        "niet meer dan 150 mg elementair magnesium per dag",
        "walk-patient-plan-nl.png",
    )


def test_on_a_390_px_phone_the_case_page_and_decision_form_fit_and_the_submit_is_reached_by_tab(server, browser):
    from playwright.sync_api import expect

    page = browser.new_page(locale="en-GB", viewport=PHONE)
    sign_in_and_import(page, server)
    open_case(page, server, "P0003")
    expect(page.locator("#bottom-line")).to_be_visible()
    page.check("#decision-form input[name=kind][value=adjust]")
    wide = page.evaluate(WIDER_THAN_THE_PHONE)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 2, wide  # no sideways scroll
    shot(page, "case-page-phone-en.png", docs=False)
    page.locator("#decision-form").screenshot(path=str(ARTIFACTS / "decision-form-phone-en.png"))
    page.focus("#decision-form input[name=password]")
    submit = page.locator("#decision-form input[type=submit]")
    for _ in range(3):  # from the signature field the next stops lead to "Sign decision"
        page.keyboard.press("Tab")
        if submit.evaluate("e => e === document.activeElement"):
            break
    expect(submit).to_be_focused()
    expect(submit).to_be_in_viewport()
    box = submit.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]

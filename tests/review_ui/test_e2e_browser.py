"""End to end in real Chromium (Debian package, driven by Playwright): sign in, open a flagged case,
adjust the plan with a reason, sign, and find the entry in the audit log. A screenshot is kept."""

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine import ruleset as rs
from engine import scenarios
from engine.batch import read_records
from review_ui import workflow
from tests.helpers import ROOT

NEWEST = rs.load().version  # the newest shipped version; the published draft becomes NEWEST + 1
SCENARIOS = len(scenarios.load(scenarios.path_for(rs.latest_published())))
ARTIFACTS = Path(os.environ.get("MGREVIEW_TEST_ARTIFACTS", ROOT / "out" / "test-artifacts"))
PASSWORD = "browser-test-password"
# Chromium as root on this closed network: no sandbox, no background connections (see env notes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path():
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def server(app, evaluator):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium (Debian package 'chromium') is required in CI")
        pytest.skip("Chromium not installed")
    with app.app_context():
        workflow.add_user("carol", PASSWORD, "clinician", actor="test")
        workflow.import_records(
            read_records(ROOT / "samples" / "intake.jsonl"), filename="intake.jsonl", actor="carol", evaluator=evaluator
        )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()


def test_clinician_adjusts_a_flagged_case_and_finds_it_in_the_audit_log(server, app):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(f"{server}/login")
        page.fill("input[name=username]", "carol")
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("h1")).to_have_text("Worklist")

        first = page.locator("table tbody tr").first
        expect(first.locator(".sev")).to_have_text("contraindicated")  # highest severity first
        patient = first.locator("a").inner_text()
        first.locator("a").click()
        expect(page.locator("h1")).to_contain_text(f"Case {patient}")
        expect(page.locator(".finding").first).to_be_visible()

        page.check("#decision-form input[name=kind][value=adjust]")  # radio buttons: nothing preselected here
        page.fill("input[name=max_elemental_mg_per_day]", "100")
        page.fill("textarea[name=reason]", "Nephrologist agrees to a low dose with monitoring")
        page.select_option("select[name=override_code]", "PHYSICIAN_ORDER")
        page.fill("textarea[name=override_text]", "Dr Jansen, phone call today")
        page.fill("input[name=password]", PASSWORD)
        page.click("#decision-form input[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text(f"Decision signed: case {patient} adjusted.")
        expect(page.locator("#case-status")).to_have_text("adjusted")

        page.click("text=Audit log")
        expect(page.locator("p.ok")).to_contain_text("audit log intact")
        row = page.locator("table.audit tbody tr", has_text="decision.adjust").first
        expect(row).to_contain_text("carol")
        expect(row).to_contain_text("Nephrologist agrees")
        page.screenshot(path=str(ARTIFACTS / f"e2e-audit-{app.config['DB_KIND']}.png"), full_page=True)
        browser.close()


def sign_in(page, server, username):
    page.goto(f"{server}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit]")


def test_two_rule_editors_change_a_message_and_publish_the_next_version(server, app):
    """One editor edits a rule in the structured form and submits; the checker's error shows beside the
    field; a second editor reviews the diff, signs, and finds the publication in the audit log."""
    from playwright.sync_api import expect, sync_playwright

    with app.app_context():
        workflow.add_user("rita", PASSWORD, "rule_editor", actor="test")
        workflow.add_user("peter", PASSWORD, "rule_editor", actor="test")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        sign_in(page, server, "rita")
        page.click("text=Rulesets")
        page.click("#new-draft")
        expect(page.locator(".flash-success")).to_contain_text(f"started from magnesium v{NEWEST}")
        page.click("#rules >> text=SPLIT_DOSE")
        page.select_option("select[name=confidence]", "U")  # an unverified rule must say so in a note
        page.click("#rule-form input[type=submit]")
        expect(page.locator('[data-field="note"]')).to_contain_text("must say so in a 'note'")
        page.screenshot(path=str(ARTIFACTS / f"e2e-rule-form-{app.config['DB_KIND']}.png"), full_page=True)
        page.select_option("select[name=confidence]", "S")
        message = "Take supplemental magnesium in two or more doses a day, with meals."
        page.fill("textarea[name=message]", message)
        page.click("#rule-form input[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text("Rule SPLIT_DOSE saved")
        expect(page.locator("#scenario-result")).to_contain_text(f"{SCENARIOS} of {SCENARIOS} pass")
        page.fill("textarea[name=change_note]", "SPLIT_DOSE: advise taking the doses with meals")
        page.click("text=Save change note")
        page.click("text=Submit for approval")
        expect(page.locator("#draft-status")).to_have_text("submitted")
        page.click("text=Sign out")

        sign_in(page, server, "peter")
        page.goto(f"{server}/rulesets/drafts/1")
        page.click(f"text=Diff against v{NEWEST}")
        expect(page.locator("#diff-summary")).to_contain_text("~ rule SPLIT_DOSE: then.message:")
        page.screenshot(path=str(ARTIFACTS / f"e2e-ruleset-diff-{app.config['DB_KIND']}.png"), full_page=True)
        page.go_back()
        page.fill("#publish-form input[name=password]", PASSWORD)
        page.click("#publish-form input[type=submit]")
        expect(page.locator(".flash-success")).to_contain_text(f"Published magnesium v{NEWEST + 1}")
        expect(page.locator("h1")).to_have_text(f"magnesium v{NEWEST + 1}")
        page.click("text=Audit log")
        row = page.locator("table.audit tbody tr", has_text="ruleset.publish").first
        expect(row).to_contain_text("peter")
        page.screenshot(path=str(ARTIFACTS / f"e2e-ruleset-published-{app.config['DB_KIND']}.png"), full_page=True)
        browser.close()
    with app.app_context():
        from review_ui import ruleset_versions

        published = ruleset_versions.latest_version("magnesium")
        rule = next(r for r in json.loads(published.content)["rules"] if r["id"] == "SPLIT_DOSE")
        assert (published.version, published.authors, published.approver) == (NEWEST + 1, ["rita"], "peter")
        assert rule["then"]["message"] == message

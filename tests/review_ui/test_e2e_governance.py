"""Rule governance end to end in real Chromium (Debian package, driven by Playwright): one rule editor widens the
mycophenolate window (2 h -> 3 h) and lowers the HYPOMAGNESEMIA threshold (0.75 -> 0.70 mmol/L) through the
structured forms, previews the impact and submits; a second editor reviews the read-only draft with its marked
rules and JSON diff, signs and publishes. Screenshots of the review page are kept."""

import json
import re
import threading

import pytest
from werkzeug.serving import make_server

from engine import ruleset as rs
from engine import scenarios
from engine.batch import read_records
from review_ui import ruleset_versions, workflow
from tests.helpers import ROOT
from tests.review_ui.test_e2e_browser import ARTIFACTS, CHROMIUM_ARGS, PASSWORD, chromium_path, sign_in

NEWEST = rs.load().version  # the draft becomes NEWEST + 1
SCENARIOS = len(scenarios.load(scenarios.path_for(rs.latest_published())))
MYCOPHENOLATE_MESSAGE = (
    "Mycophenolate ('{text}') is absorbed less with magnesium: do not take them together; "
    "keep at least 3 h between them."
)
MYCOPHENOLATE_MESSAGE_NL = (
    "Mycofenolaat ('{text}') wordt minder goed opgenomen samen met magnesium: niet tegelijk innemen; "
    "houd ten minste 3 uur tussen beide innames."
)
HYPOMAGNESEMIA_MESSAGE_NL = (
    "Serummagnesium {serum_mg_mmol_l} mmol/L ligt onder de referentiewaarde (0,70 mmol/L): suppletie is zinvol; "
    "zoek de oorzaak (geneesmiddelen, alcohol, verlies via de darm)."
)
HYPOMAGNESEMIA_MESSAGE = (
    "Serum magnesium {serum_mg_mmol_l} mmol/L is below the reference range (0.70 mmol/L): supplementation is "
    "reasonable; look for the cause (medicines, alcohol, gut losses)."
)


@pytest.fixture
def server(app, evaluator):
    """The app served on a free port, with the sample intake stored as cases and two rule editors."""
    if chromium_path() is None:
        pytest.skip("Chromium not installed")
    with app.app_context():
        workflow.add_user("carol", PASSWORD, "clinician", actor="test")
        workflow.add_user("rita", PASSWORD, "rule_editor", actor="test")
        workflow.add_user("peter", PASSWORD, "rule_editor", actor="test")
        workflow.import_records(
            read_records(ROOT / "samples" / "intake.jsonl"), filename="intake.jsonl", actor="carol", evaluator=evaluator
        )
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()


def edit_rule(page, expect, rule_id, fields):
    """Open a rule from the draft's rule list, fill its structured form and save it."""
    page.click(f"#rules >> text={rule_id}")
    for name, value in fields.items():
        page.fill(f"[name='{name}']", value)
    page.click("#rule-form input[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text(f"Rule {rule_id} saved; the draft passes the checker.")


def expect_window_in_scenarios(page, expect):
    """The mycophenolate scenario pinned the 2 h window: the editor updates it in the raw view."""
    page.click("text=Raw JSON and scenarios")
    cases = json.loads(page.input_value("textarea[name=scenarios]"))
    next(c for c in cases if c["name"] == "mycophenolate")["expect"]["separations"]["mycophenolate"] = [3, 3]
    # set the edited text at once (typing some 100 kB of JSON through fill() outlasts the timeout)
    page.locator("textarea[name=scenarios]").evaluate("(area, text) => { area.value = text; }", json.dumps(cases))
    page.click("#raw-form input[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text("Draft saved; the draft passes the checker.")


def author_changes_and_submits(page, expect, server):
    sign_in(page, server, "rita")
    page.click("text=Rulesets")
    page.click("#new-draft")
    expect(page.locator(".flash-success")).to_contain_text(f"started from magnesium v{NEWEST}")
    edit_rule(
        page,
        expect,
        "MYCOPHENOLATE",
        {
            "separation_before_h": "3",
            "separation_after_h": "3",
            "description": "mycophenolate: 3 h",
            "description_nl": "mycofenolaat: 3 uur",
            "message": MYCOPHENOLATE_MESSAGE,
            "message_nl": MYCOPHENOLATE_MESSAGE_NL,
        },
    )
    expect(page.locator("#scenario-result")).to_contain_text(f"{SCENARIOS - 1} of {SCENARIOS} pass")
    expect(page.locator("#checks")).to_contain_text("mycophenolate: separation mycophenolate: expected [2, 2]")
    expect_window_in_scenarios(page, expect)
    page.locator(".draft-nav a").first.click()  # back to the draft page
    edit_rule(
        page,
        expect,
        "HYPOMAGNESEMIA",
        {
            "patterns-0-conditions-1-value": "0.70",
            "description": "0.5 <= Mg < 0.70 mmol/L",
            "description_nl": "0,5 <= Mg < 0,70 mmol/L",
            "message": HYPOMAGNESEMIA_MESSAGE,
            "message_nl": HYPOMAGNESEMIA_MESSAGE_NL,
        },
    )
    expect(page.locator("#scenario-result")).to_contain_text(f"{SCENARIOS} of {SCENARIOS} pass")
    page.fill("textarea[name=change_note]", "Mycophenolate window 2 h -> 3 h; HYPOMAGNESEMIA below 0.70 mmol/L")
    page.click("text=Save change note")
    expect(page.locator(".flash-success")).to_contain_text("Change note saved")

    page.click("text=Impact preview")
    page.click("input[type=submit][value='Preview impact']")
    expect(page.locator(".flash-info")).to_contain_text(f"through v{NEWEST} and the draft")
    expect(page.locator("#impact-totals")).to_contain_text(re.compile(r"\d+ records replayed, [1-9]\d* would change"))
    expect(page.locator("#impact-totals")).to_contain_text("finding HYPOMAGNESEMIA removed in")
    p0026 = page.locator("#impact-cases tr", has_text="P0026")  # CellCept, Mg 0.74 mmol/L
    expect(p0026).to_contain_text("HYPOMAGNESEMIA")
    expect(p0026).to_contain_text("~ separation mycophenolate: before 2 h -> 3 h, after 2 h -> 3 h")
    expect(page.locator("#impact-totals")).to_contain_text("separation window changed in 1: mycophenolate")

    page.locator(".draft-nav a").first.click()  # back to the draft page
    page.click("text=Submit for approval")
    expect(page.locator("#draft-status")).to_have_text("submitted")
    expect(page.locator("#read-only")).to_have_text(
        "This draft is submitted for approval and read-only: nobody can change it."
    )
    expect(page.locator("text=Save change note")).to_have_count(0)
    page.click("text=Sign out")


def approver_reviews_and_publishes(page, expect, server, shot):
    sign_in(page, server, "peter")
    page.click("text=Rulesets")
    page.click(f"text=magnesium v{NEWEST + 1}")
    expect(page.locator("#draft-status")).to_have_text("submitted")
    expect(page.locator("#read-only")).to_be_visible()
    for control in ("text=Save change note", "text=Add a rule", "textarea[name=change_note]"):
        expect(page.locator(control)).to_have_count(0)
    expect(page.locator("#change-note")).to_contain_text("Mycophenolate window 2 h -> 3 h")
    expect(page.locator("h2", has_text="Rules (")).to_contain_text(f"2 changed against v{NEWEST}")
    marked = page.locator("#rules tr.mark-changed")
    expect(marked).to_have_count(2)
    expect(marked.nth(0)).to_contain_text("HYPOMAGNESEMIA")
    expect(marked.nth(1)).to_contain_text("MYCOPHENOLATE")
    window = page.locator('pre.json[data-rule="MYCOPHENOLATE"]')
    shown = json.loads(window.inner_text())
    assert shown["then.separation"] == {"from": {"after_h": 2, "before_h": 2}, "to": {"after_h": 3, "before_h": 3}}
    threshold = json.loads(page.locator('pre.json[data-rule="HYPOMAGNESEMIA"]').inner_text())
    assert threshold["when"]["to"][0]["where"][1] == ["serum_mg_mmol_l", "<", 0.7]
    summary = page.locator("#diff-summary")
    expect(summary).to_contain_text('~ rule MYCOPHENOLATE: description: "mycophenolate: 2 h" -> "mycophenolate: 3 h"')
    expect(summary).not_to_contain_text("None")
    expect(page.locator("#scenario-changes")).to_contain_text(
        '~ scenario mycophenolate: expect.separations: {"mycophenolate": [2, 2]} -> {"mycophenolate": [3, 3]}'
    )
    shot(page)

    page.fill("#publish-form input[name=password]", PASSWORD)
    page.click("#publish-form input[type=submit]")
    expect(page.locator(".flash-success")).to_contain_text(f"Published magnesium v{NEWEST + 1}")
    expect(page.locator("h1")).to_have_text(f"magnesium v{NEWEST + 1}")
    page.click("text=Audit log")
    row = page.locator("table.audit tbody tr", has_text="ruleset.publish").first
    expect(row).to_contain_text("peter")


def test_two_editors_change_a_window_and_a_threshold_review_the_marked_diff_and_publish(server, app):
    from playwright.sync_api import expect, sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    kind = app.config["DB_KIND"]

    def shot(page):
        page.screenshot(path=str(ARTIFACTS / f"e2e-review-submitted-draft-{kind}.png"), full_page=True)
        page.locator("#diff-summary").screenshot(path=str(ARTIFACTS / f"e2e-review-what-changed-{kind}.png"))
        page.locator("#rules tr.mark-changed").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / f"e2e-review-marked-rules-{kind}.png"))

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        author_changes_and_submits(page, expect, server)
        approver_reviews_and_publishes(page, expect, server, shot)
        browser.close()
    with app.app_context():
        version = ruleset_versions.latest_version("magnesium")
        rules = {r["id"]: r for r in json.loads(version.content)["rules"]}
        assert (version.version, version.authors, version.approver) == (NEWEST + 1, ["rita"], "peter")
        assert rules["MYCOPHENOLATE"]["then"]["separation"] == {"before_h": 3, "after_h": 3}
        assert rules["HYPOMAGNESEMIA"]["when"][0]["where"][1] == ["serum_mg_mmol_l", "<", 0.7]

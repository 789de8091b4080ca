"""Issue 15 as two rule editors and a clinician meet it: a draft moves the mycophenolate window 2 h -> 3 h and
lowers the HYPOMAGNESEMIA threshold; the impact preview lists the patient on CellCept with the exact window change
(the patient beside, on levothyroxine, is not listed); after two-person publishing, re-evaluating that case records
the window change. On SQLite and PostgreSQL."""

import json
import re

from sqlalchemy import select

from audit import log as audit
from engine import impact
from engine.schedule import Window, build_schedule
from review_ui import ruleset_drafts, ruleset_versions, workflow
from review_ui.db import db
from review_ui.models import Reevaluation, User
from tests.helpers import record
from tests.review_ui.test_governance import NEXT, PASSWORD, publish
from tests.review_ui.test_ruleset_views import case_id, form_of, login, post

PEOPLE = [
    record(id="CELLCEPT", medications=["CellCept 500 mg"]),
    record(id="LEVO", medications=["levothyroxine 50 mcg"]),
    record(id="MG072", serum_magnesium={"value": 0.72, "unit": "mmol/L"}),
]
WINDOW = "~ separation mycophenolate: before 2 h -> 3 h, after 2 h -> 3 h"


def _day(hours: int) -> str:
    return impact._day(build_schedule([Window("mycophenolate", hours, hours)], 2).to_dict())


SCHEDULE = f"~ schedule: {_day(2)} -> {_day(3)}"  # the CellCept patient's day moves with the window


def people():
    """The two rule editors and the clinician, as the workflow functions take them."""
    users = {u.username: u for u in db.session.execute(select(User)).scalars()}
    return {"author": users["rita"], "approver": users["peter"], "clinician": users["alice"]}


def window_and_threshold(data, scenarios_text):
    """The mycophenolate window 2 -> 3 h and HYPOMAGNESEMIA below 0.70 (was 0.75), wording and scenarios with them."""
    for rule in data["rules"]:
        if rule["then"].get("separation") and "mycophenol" in rule["id"].lower():
            rule["then"]["separation"] = {"before_h": 3, "after_h": 3}
            rule["description"] = rule["description"].replace("2 h", "3 h")
            rule["then"]["message"] = rule["then"]["message"].replace("2 h", "3 h")
            rule["description_nl"] = rule["description_nl"].replace("2 uur", "3 uur")  # the Dutch follows
            rule["then"]["message_nl"] = rule["then"]["message_nl"].replace("2 uur", "3 uur")
        if rule["id"] == "HYPOMAGNESEMIA":
            rule["when"][0]["where"][1][2] = 0.70
            rule["description"] = rule["description"].replace("0.75", "0.70")
            rule["then"]["message"] = rule["then"]["message"].replace("0.75", "0.70")
            rule["description_nl"] = rule["description_nl"].replace("0,75", "0,70")
            rule["then"]["message_nl"] = rule["then"]["message_nl"].replace("0,75", "0,70")
    data["change_note"] = "mycophenolate 3 h apart; hypomagnesaemia below 0.70 mmol/L (test)"
    cases = json.loads(scenarios_text)
    for case in cases:
        if "mycophenolate" in case["expect"].get("separations", {}):
            case["expect"]["separations"]["mycophenolate"] = [3, 3]
    return data, json.dumps(cases)


def impact_rows(html):
    """Record -> its change lines, as the impact preview's table shows them."""
    table = html.split('id="impact-cases"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", table)
    return {ref: re.findall(r'<div class="change-\w+">(.*?)</div>', cells) for ref, cells in rows}


def test_preview_and_reevaluation_show_the_mycophenolate_window_change(app):
    with app.app_context():
        for name, role in (("rita", "rule_editor"), ("peter", "rule_editor"), ("alice", "clinician")):
            workflow.add_user(name, PASSWORD, role, actor="test")
        items = [(i, json.dumps(r)) for i, r in enumerate(PEOPLE, start=1)]
        evaluator = ruleset_versions.active_evaluator()
        workflow.import_records(items, filename="t.jsonl", actor="alice", evaluator=evaluator)
        draft = ruleset_drafts.create_draft("magnesium", actor=people()["author"])
        data, scenarios_text = window_and_threshold(ruleset_drafts.draft_data(draft), draft.scenarios)
        draft = ruleset_drafts.save_draft(
            draft.id, actor=people()["author"], expected_lock=draft.lock, data=data, scenarios_text=scenarios_text
        )
        draft_id = draft.id
    client = app.test_client()
    login(client, "rita")
    preview = client.post(f"/rulesets/drafts/{draft_id}/impact", data={"source": "cases", "limit": 100})
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert impact_rows(html.replace("&gt;", ">")) == {
        "CELLCEPT": [WINDOW, SCHEDULE],
        "MG072": ["- HYPOMAGNESEMIA (moderate)", "- monitoring: repeat serum magnesium after starting"],
    }
    assert "<p>3 records replayed, 2 would change</p>" in html
    assert "<p>separation window changed in 1: mycophenolate</p>" in html

    with app.app_context():
        publish(ruleset_drafts.get_draft(draft_id), people())
    login(client, "alice")
    case = case_id(app, "CELLCEPT")
    pairs = form_of(client.get(f"/cases/{case}"), "reevaluate-form")
    done = post(client, f"/cases/{case}/reevaluate", pairs, follow_redirects=True).get_data(as_text=True)
    assert f"Re-evaluated under v{NEXT}: {WINDOW}; {SCHEDULE}.".replace(">", "&gt;") in done
    assert f'<li class="change-separation">{WINDOW.replace(">", "&gt;")}</li>' in done
    beside = case_id(app, "LEVO")
    pairs = form_of(client.get(f"/cases/{beside}"), "reevaluate-form")
    quiet = post(client, f"/cases/{beside}/reevaluate", pairs, follow_redirects=True).get_data(as_text=True)
    assert f"Re-evaluated under v{NEXT}: no change." in quiet

    with app.app_context():
        stored = db.session.execute(select(Reevaluation).where(Reevaluation.case_id == case)).scalar_one()
        assert [x["kind"] for x in stored.changes] == ["separation", "schedule"]
        assert stored.changes[:1] == [
            {
                "kind": "separation",
                "drug": "mycophenolate",
                "old": {"drug_before_mg_h": 2, "drug_after_mg_h": 2},
                "new": {"drug_before_mg_h": 3, "drug_after_mg_h": 3},
                "text": WINDOW,
            }
        ]
        entries = [e.as_dict() for e in audit.read(db.session) if e.action == "case.reevaluate"]
        assert [e["details"]["changes"] for e in entries if e["target_id"] == str(case)] == [[WINDOW, SCHEDULE]]

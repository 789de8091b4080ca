"""The worklist as a clinician triages it: values in words and units, the finding filter by title, bounded pages;
and the audit log naming each entry's patient with a link to the case or the ruleset version."""

import html
import re

import pytest

from engine.batch import read_records
from review_ui import workflow
from review_ui.db import db
from review_ui.intake import evaluator
from review_ui.models import Case
from tests.helpers import SAMPLE, record

PASSWORD = "correct horse battery"


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
        workflow.add_user("ed", PASSWORD, "rule_editor", actor="test")
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": PASSWORD})
    return client


def imported(app, *records, items=None):
    with app.app_context():
        items = items if items is not None else list(enumerate(records, start=1))
        return workflow.import_records(items, filename="t.jsonl", actor="alice", evaluator=evaluator())


def cells(page, ref):
    """The cells of the worklist row of patient `ref`, as text a person reads."""
    row = re.search(rf"<tr>\s*<td><a href=\"/cases/\d+\">{ref}</a>.*?</tr>", page, re.S)
    assert row, f"no row for {ref}"
    texts = re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    return [" ".join(html.unescape(re.sub(r"<[^>]+>", " ", t)).split()) for t in texts]


# patient, age/sex, eGFR, serum Mg (mmol/L), requested, cap, top finding (severity and title), status, reviewer
SAMPLE_ROWS = [
    ("P0001", "42 y, female", "98.0", "0.82", "200", "250", "info Follow-up and 1 more finding"),
    ("P0002", "67 y, male", "73.6", "0.78", "200", "250", "major Long-term proton pump inhibitor and 3 more findings"),
    ("P0005", "71 y, female", "24.0", "0.90", "150", "no magnesium", "contraindicated Severe kidney impairment"),
    ("P0006", "80 y, male", "—", "1.10", "100", "no magnesium", "contraindicated Severe kidney impairment"),
    ("P0008", "63 y, male", "41.5", "—", "200", "250", "moderate Moderately reduced kidney function"),
]


def test_worklist_columns_from_the_sample_records(app, client):
    imported(app, items=list(read_records(SAMPLE)))
    page = client.get("/cases?status=").get_data(as_text=True) + client.get("/cases?status=&page=2").get_data(
        as_text=True
    )
    for ref, age_sex, egfr, mg, requested, cap, top in SAMPLE_ROWS:
        row = cells(page, ref)
        assert row[1:6] == [age_sex, egfr, mg, requested, cap], ref
        assert row[6].startswith(top), (ref, row[6])
        assert row[7:9] == ["pending", "—"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", row[9])
    assert "PPI_LONG_TERM" not in cells(page, "P0002")[6]  # the finding in words, never its id
    assert "mL/min/1.73 m²" in page and "mmol/L" in page and "mg elemental/day" in page


def test_an_info_only_case_is_listed_with_its_finding(app, client):
    imported(app, record(id="CALM"), record(id="RENAL", egfr_ml_min_1_73m2=20))
    page = client.get("/cases").get_data(as_text=True)
    calm = cells(page, "CALM")
    assert calm[6].startswith("info ") and "Follow-up" in calm[6]  # info-level findings are not filtered out
    assert cells(page, "RENAL")[6].startswith("contraindicated Severe kidney impairment")


def test_the_finding_filter_is_a_select_of_titles(app, client):
    imported(app, record(id="RAL", medications=["Isentress"]), record(id="PLAIN"))
    page = client.get("/cases").get_data(as_text=True)
    assert '<select id="finding" name="finding">' in page
    assert '<option value="RALTEGRAVIR_AVOID">Avoid magnesium with raltegravir</option>' in page
    assert '<input id="finding"' not in page  # no free-text id
    only = client.get("/cases?finding=RALTEGRAVIR_AVOID").get_data(as_text=True)
    assert ">RAL</a>" in only
    assert ">PLAIN</a>" not in only  # a case without the finding is not shown
    assert '<option selected value="RALTEGRAVIR_AVOID">' in only


def test_titles_and_values_in_dutch(app, client):
    imported(app, record(id="NL1", egfr_ml_min_1_73m2=20))
    page = client.get("/cases", headers={"Accept-Language": "nl"}).get_data(as_text=True)
    row = cells(page, "NL1")
    assert row[1:4] == ["45 jr, vrouw", "20,0", "0,85"]  # the Dutch decimal comma
    assert row[5] == "geen magnesium"
    assert row[6] == "gecontra-indiceerd Ernstige nierfunctiestoornis"  # the title_nl of RENAL_SEVERE
    assert "Severe kidney impairment" not in page


@pytest.mark.parametrize("asked", ["9999", "-1", "x"])
def test_a_page_past_the_last_shows_the_last(app, client, asked):
    imported(app, record(id="ONLY"))
    response = client.get(f"/cases?page={asked}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert ">ONLY</a>" in page and "page 1 of 1" in page
    notice = "There is no page 9999; this is the last page, 1."
    assert (notice in page) == (asked == "9999")


def test_audit_entries_name_the_patient_and_link_to_the_case(app, client):
    imported(app, record(id="AUD1"))
    with app.app_context():
        case = db.session.query(Case).filter_by(patient_ref="AUD1").one()
        user = workflow.db.session.get(workflow.User, 1)
        workflow.decide(case.id, expected_version=case.version, kind="approve", actor=user, password=PASSWORD)
        cid = case.id
    page = client.get("/audit").get_data(as_text=True)
    assert f'<a href="/cases/{cid}">patient AUD1 (case {cid})</a>' in page
    assert re.search(r'<a href="/batches/\d+">import \d+</a>', page)
    assert re.search(r'<a href="/rulesets/magnesium/v\d+">ruleset magnesium v\d+</a>', page)
    assert "user alice" in page and '">user alice</a>' not in page  # a user entry names the user, links nowhere


def test_a_rule_editor_reads_ruleset_entries_with_links_and_no_case(app, client):
    imported(app, record(id="HIDDEN"))
    editor = app.test_client()
    editor.post("/login", data={"username": "ed", "password": PASSWORD})
    page = editor.get("/audit").get_data(as_text=True)
    assert re.search(r'<a href="/rulesets/magnesium/v\d+">ruleset magnesium v\d+</a>', page)
    assert "HIDDEN" not in page and "/cases/" not in page

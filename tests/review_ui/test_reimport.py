"""Importing the same patients again: the same intake from another file is a duplicate, a changed intake supersedes
the patient's pending case (a new version with what changed), and a decided case is never overwritten."""

import io
import json

import pytest

from audit import log as audit
from engine.batch import read_records
from review_ui import workflow
from review_ui.db import db
from review_ui.intake import evaluator
from review_ui.models import Case, CaseRevision
from tests.helpers import ROOT, SAMPLE, record

PASSWORD = "correct horse battery"
SAMPLE_CSV = ROOT / "samples" / "intake.csv"


@pytest.fixture
def client(app):
    with app.app_context():
        workflow.add_user("alice", PASSWORD, "clinician", actor="test")
    client = app.test_client()
    client.post("/login", data={"username": "alice", "password": PASSWORD})
    return client


def imported(items, name="t.jsonl"):
    return workflow.import_records(items, filename=name, actor="alice", evaluator=evaluator())


def upload(client, body: bytes, name: str):
    return client.post(
        "/import", data={"file": (io.BytesIO(body), name)}, content_type="multipart/form-data", follow_redirects=True
    ).get_data(as_text=True)


def count(**where):
    return db.session.query(Case).filter_by(**where).count()


def test_the_csv_of_the_jsonl_patients_makes_no_duplicate_cases(app, client):
    with app.app_context():
        first = imported(read_records(SAMPLE), "intake.jsonl")
        before = count()
    assert before == 60 and len(first.accepted) == 60
    page = upload(client, SAMPLE_CSV.read_bytes(), "intake.csv")
    # 11 CSV rows are JSONL patients (numbers read as 42.0, lists split from one cell: the same engine input);
    # the twelfth (P0061) is rejected in both files
    assert "12 records: 0 new cases, 11 already imported, 1 rejected." in page
    assert "0 pending cases updated to a new version" in page
    with app.app_context():
        assert count() == before
        assert db.session.query(CaseRevision).count() == 0


def test_a_changed_csv_row_supersedes_its_pending_case_beside_the_duplicates(app, client):
    with app.app_context():
        imported(read_records(SAMPLE), "intake.jsonl")
        p2 = db.session.query(Case).filter_by(patient_ref="P0002").one()
        p2_id, p2_version = p2.id, p2.version
    text = SAMPLE_CSV.read_text("utf-8")
    row = next(line for line in text.splitlines() if line.startswith("P0002,"))
    assert ",1.9,mg/dL," in row
    changed = text.replace(row, row.replace(",1.9,mg/dL,", ",0.9,mg/dL,"))  # now a low serum magnesium
    page = upload(client, changed.encode("utf-8"), "changed.csv")
    assert "12 records: 0 new cases, 10 already imported, 1 rejected." in page
    assert "1 pending cases updated to a new version" in page
    assert "P0002</a>: ~ serum magnesium (mmol/L): 0.78 → 0.37; + Severely low serum magnesium (major);" in page
    with app.app_context():
        assert count() == 60 and count(patient_ref="P0002") == 1
        case = db.session.get(Case, p2_id)
        assert case.version == p2_version + 1 and case.status == "pending"
        assert case.intake["serum_magnesium"]["value"] == 0.9
        assert "HYPOMAGNESEMIA_SEVERE" in {f.finding_id for f in case.findings}
        (revision,) = case.revisions
        assert revision.previous_intake["serum_magnesium"]["value"] == 1.9
        (entry,) = audit.read(db.session, action="case.supersede")
        assert entry.target_id == str(p2_id) and '"patient_ref":"P0002"' in entry.details.replace(" ", "")
    case_page = client.get(f"/cases/{p2_id}").get_data(as_text=True)
    assert "Version 2: a new intake replaced the earlier one" in case_page
    assert "~ serum magnesium (mmol/L): 0.78 → 0.37" in case_page
    assert "+ Severely low serum magnesium (major)" in case_page  # the finding by its title (the audit keeps the id)
    worklist = client.get("/cases?finding=HYPOMAGNESEMIA_SEVERE").get_data(as_text=True)
    assert ">P0002</a>" in worklist and "version 2: new intake" in worklist


def test_a_new_version_refuses_a_decision_signed_on_the_old_one(app, client):
    with app.app_context():
        imported([(1, record(id="V1"))])
        case = db.session.query(Case).filter_by(patient_ref="V1").one()
        seen = case.version
        report = imported([(1, record(id="V1", egfr_ml_min_1_73m2=20))])
        assert report.superseded == ["V1"] and report.accepted == []
        alice = db.session.query(workflow.User).filter_by(username="alice").one()
        with pytest.raises(workflow.ConflictError):
            workflow.decide(case.id, expected_version=seen, kind="approve", actor=alice, password=PASSWORD)
        assert db.session.get(Case, case.id).status == "pending"


def test_the_same_changed_record_again_is_a_duplicate(app):
    with app.app_context():
        imported([(1, record(id="D1"))])
        imported([(1, record(id="D1", age_years=46))])
        again = imported([(1, record(id="D1", age_years=46.0))])  # another file's way of writing the same number
        assert again.duplicates == ["D1"] and again.superseded == [] and again.accepted == []
        assert count() == 1 and db.session.query(CaseRevision).count() == 1


def test_a_decided_case_is_never_overwritten(app, client):
    with app.app_context():
        imported([(1, record(id="DEC"))])
        decided = db.session.query(Case).filter_by(patient_ref="DEC").one()
        alice = db.session.query(workflow.User).filter_by(username="alice").one()
        workflow.decide(decided.id, expected_version=decided.version, kind="approve", actor=alice, password=PASSWORD)
        decided_id, decided_result = decided.id, db.session.get(Case, decided.id).result
        report = imported([(1, record(id="DEC", egfr_ml_min_1_73m2=20))])
        assert report.accepted == ["DEC"] and report.after_decision == ["DEC"] and report.superseded == []
        kept = db.session.get(Case, decided_id)
        assert kept.status == "approved" and kept.result == decided_result and kept.revisions == []
        new = db.session.query(Case).filter_by(patient_ref="DEC", status="pending").one()
        assert new.follows_case_id == decided_id and new.id != decided_id
        (entry,) = audit.read(db.session, action="case.new_intake_after_decision")
        assert entry.target_id == str(new.id)
        new_id = new.id
        same_again = imported([(1, record(id="DEC", egfr_ml_min_1_73m2=20))])
        assert same_again.duplicates == ["DEC"] and count(patient_ref="DEC") == 2
    page = client.get(f"/cases/{new_id}").get_data(as_text=True)
    assert "New intake after a decision" in page
    assert f'<a href="/cases/{decided_id}">Open the decided case</a>' in page
    assert "~ eGFR (mL/min/1.73 m²): 95 → 20" in page and "+ Severe kidney impairment (contraindicated)" in page
    old_page = client.get(f"/cases/{decided_id}").get_data(as_text=True)
    assert "New intake after a decision" not in old_page  # the decided case itself is not marked
    worklist = client.get("/cases").get_data(as_text=True)
    assert '>DEC</a><br><small class="note">new intake after a decision</small>' in worklist


def test_a_case_decided_during_the_import_is_not_overwritten(app, client, monkeypatch):
    from sqlalchemy import update

    from review_ui import reimport

    with app.app_context():
        imported([(1, record(id="RACE"))])
    real = reimport.what_changed

    def decided_meanwhile(old, new):  # another clinician signs while the import compares
        db.session.execute(update(Case).where(Case.patient_ref == "RACE").values(status="approved"))
        return real(old, new)

    monkeypatch.setattr(reimport, "what_changed", decided_meanwhile)
    body = json.dumps(record(id="RACE", egfr_ml_min_1_73m2=20)).encode()
    page = upload(client, body, "race.jsonl")
    assert "The case of RACE changed during the import; nothing was imported. Import again." in page
    with app.app_context():
        (case,) = db.session.query(Case).all()
        assert case.status == "pending" and case.intake["egfr_ml_min_1_73m2"] == 95  # all rolled back
        assert not audit.read(db.session, action="case.supersede")

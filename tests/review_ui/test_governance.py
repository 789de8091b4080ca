"""Ruleset governance: drafts, field-level validation, blocked publishing, two-person signed approval,
impact preview, re-evaluation of cases, export; on SQLite and PostgreSQL."""

import json

import pytest
import sqlalchemy
from sqlalchemy import select

from audit import log as audit
from engine import ruleset as rs
from review_ui import ruleset_drafts, ruleset_publishing, ruleset_versions, workflow
from review_ui.db import db
from review_ui.models import Case, Decision, RulesetVersion
from tests.helpers import record

PASSWORD = "correct horse battery"
NEWEST = rs.load().version  # the newest version shipped in rulesets/; a draft becomes NEWEST + 1
NEXT = NEWEST + 1
SHIPPED = len(rs.ruleset_files())


@pytest.fixture
def people(ctx):
    return {
        "author": workflow.add_user("rita", PASSWORD, "rule_editor", actor="test"),
        "approver": workflow.add_user("peter", PASSWORD, "rule_editor", actor="test"),
        "clinician": workflow.add_user("alice", PASSWORD, "clinician", actor="test"),
    }


def actions():
    return [e.action for e in audit.read(db.session, newest_first=False)]


def us_limit(data, mg):
    """Set the US upper limit for ages 9 and over to `mg`, and the scenarios that pin it."""
    row = next(r for r in data["upper_limits"] if r["id"] == "UL_US_9_PLUS")
    old, row["ul_mg"] = row["ul_mg"], mg
    return old


def rescope(scenarios_text, old, new):
    cases = json.loads(scenarios_text)
    for case in cases:
        plan = case.get("expect", {}).get("plan", {})
        cap = plan.get("max_elemental_mg_per_day")
        adult_us = case["record"].get("jurisdiction") == "US" and case["record"].get("age_years", 0) >= 9
        if adult_us and isinstance(cap, int | float) and 0 < cap <= old:  # the limit, or the limit minus Mg taken
            plan["max_elemental_mg_per_day"] = max(0, cap - (old - new))
    return json.dumps(cases)


def lowered_draft(people, mg=300, note="US adult upper limit lowered (test)"):
    """A draft by the author that lowers the US adult limit, with its scenarios updated."""
    draft = ruleset_drafts.create_draft("magnesium", actor=people["author"])
    data = ruleset_drafts.draft_data(draft)
    old = us_limit(data, mg)
    data["change_note"] = note
    return ruleset_drafts.save_draft(
        draft.id,
        actor=people["author"],
        expected_lock=draft.lock,
        data=data,
        scenarios_text=rescope(draft.scenarios, old, mg),
    )


def publish(draft, people, who="approver"):
    submitted = ruleset_drafts.submit_draft(draft.id, actor=people["author"], expected_lock=draft.lock)
    return ruleset_publishing.publish_draft(
        draft.id, actor=people[who], password=PASSWORD, expected_lock=submitted.lock
    )


def test_shipped_versions_are_registered_once_and_cannot_change(people, app):
    first = ruleset_versions.latest_version("magnesium")
    path = rs.latest_published()
    assert (first.version, first.sha256, first.origin) == (NEWEST, rs.sha256_of(path), "file")
    assert first.content == path.read_text("utf-8")
    assert ruleset_versions.register_files() == []
    assert actions().count("ruleset.register") == SHIPPED
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="immutable"):
        db.session.execute(sqlalchemy.text("UPDATE ruleset_version SET change_note = 'quietly changed'"))
        db.session.commit()
    db.session.rollback()
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="immutable"):
        db.session.execute(sqlalchemy.text("DELETE FROM ruleset_version"))
        db.session.commit()
    db.session.rollback()
    assert ruleset_versions.latest_version("magnesium").sha256 == first.sha256


def test_only_rule_editors_make_drafts(people):
    with pytest.raises(workflow.WorkflowError, match="rule editor"):
        ruleset_drafts.create_draft("magnesium", actor=people["clinician"])
    draft = ruleset_drafts.create_draft("magnesium", actor=people["author"])
    data = ruleset_drafts.draft_data(draft)
    assert (draft.version, data["version"], data["supersedes"], data["status"]) == (NEXT, NEXT, NEWEST, "draft")
    assert actions()[-1] == "ruleset.draft.create"


@pytest.mark.parametrize(
    "edit, rule_id, field, text",
    [
        (
            lambda d: d["rules"][0]["when"][0]["where"].__setitem__(0, ["age_yeers", ">=", 18]),
            "rules[0]",
            "when[0].where[0]",
            "did you mean 'age_years'",
        ),
        (lambda d: d["rules"][0].__setitem__("sources", ["S999"]), "rules[0]", "sources", "unknown source tag"),
        (lambda d: d["rules"][0].__setitem__("sources", []), "rules[0]", "sources", "at least one source"),
        (
            lambda d: next(r for r in d["upper_limits"] if r["id"] == "UL_US_4_8").__setitem__("age_below_years", 10),
            "UL_US_9_PLUS",
            "age_min_years",
            "overlaps UL_US_4_8",
        ),
        (lambda d: d.__setitem__("version", 7), None, "version", "cannot be changed"),
    ],
)
def test_invalid_drafts_are_refused_with_field_level_errors(people, edit, rule_id, field, text):
    draft = ruleset_drafts.create_draft("magnesium", actor=people["author"])
    data = ruleset_drafts.draft_data(draft)
    if rule_id == "rules[0]":
        rule_id = data["rules"][0]["id"]
    edit(data)
    with pytest.raises(ruleset_drafts.DraftInvalid) as e:
        ruleset_drafts.save_draft(draft.id, actor=people["author"], expected_lock=draft.lock, data=data)
    assert any(err.rule_id == rule_id and err.field == field and text in str(err) for err in e.value.errors), [
        str(err) for err in e.value.errors
    ]
    assert ruleset_drafts.get_draft(draft.id).content == draft.content
    assert actions()[-1] == "ruleset.draft.create"


def test_an_edit_on_a_stale_draft_is_a_conflict(people):
    draft = ruleset_drafts.create_draft("magnesium", actor=people["author"])
    stale = draft.lock
    data = ruleset_drafts.draft_data(draft)
    data["change_note"] = "first"
    ruleset_drafts.save_draft(draft.id, actor=people["author"], expected_lock=stale, data=data)
    data["change_note"] = "second"
    with pytest.raises(workflow.ConflictError):
        ruleset_drafts.save_draft(draft.id, actor=people["approver"], expected_lock=stale, data=data)
    assert ruleset_drafts.draft_data(ruleset_drafts.get_draft(draft.id))["change_note"] == "first"


def test_failing_scenarios_block_publishing_and_the_block_is_audited(people):
    draft = ruleset_drafts.create_draft("magnesium", actor=people["author"])
    data = ruleset_drafts.draft_data(draft)
    moxi = next(r for r in data["rules"] if r["id"] == "FLUOROQUINOLONE_MOXIFLOXACIN")
    moxi["then"]["separation"]["before_h"] = 2
    moxi["description"] = moxi["description"].replace("4 h before", "2 h before")  # the wording follows
    moxi["then"]["message"] = moxi["then"]["message"].replace("4 h before", "2 h before")
    moxi["description_nl"] = moxi["description_nl"].replace("4 uur vóór", "2 uur vóór")  # the Dutch follows too
    moxi["then"]["message_nl"] = moxi["then"]["message_nl"].replace("4 uur vóór", "2 uur vóór")
    data["change_note"] = "moxifloxacin window"
    draft = ruleset_drafts.save_draft(draft.id, actor=people["author"], expected_lock=draft.lock, data=data)
    check = ruleset_drafts.check_draft(draft)
    assert not check.errors and any("moxifloxacin" in str(f) for f in check.failures)
    with pytest.raises(ruleset_publishing.PublishBlocked) as e:
        publish(draft, people)
    assert any("expected [4, 8], got [2, 8]" in p for p in e.value.problems)
    assert ruleset_versions.latest_version("magnesium").version == NEWEST
    assert ruleset_drafts.get_draft(draft.id).status == "submitted"
    refused = audit.read(db.session, limit=1)[0]
    assert (refused.action, json.loads(refused.details)["kind"]) == ("ruleset.publish.refused", "blocked")
    assert "moxifloxacin" in refused.reason


def test_a_change_note_is_required(people):
    draft = ruleset_drafts.create_draft("magnesium", actor=people["author"])
    with pytest.raises(ruleset_publishing.PublishBlocked, match="change note"):
        publish(draft, people)


def test_the_author_and_every_contributor_cannot_approve(people):
    draft = lowered_draft(people)
    with pytest.raises(workflow.WorkflowError, match="cannot approve"):
        publish(draft, people, who="author")
    assert actions()[-1] == "ruleset.publish.refused"
    draft = lowered_draft(people, mg=320)
    data = ruleset_drafts.draft_data(draft)
    data["change_note"] += " (reviewed wording)"
    draft = ruleset_drafts.save_draft(draft.id, actor=people["approver"], expected_lock=draft.lock, data=data)
    assert draft.status == "editing" and draft.contributors == ["peter", "rita"]
    with pytest.raises(workflow.WorkflowError, match="cannot approve"):
        publish(draft, people, who="approver")
    assert ruleset_versions.latest_version("magnesium").version == NEWEST


def test_a_wrong_password_publishes_nothing(people):
    draft = lowered_draft(people)
    submitted = ruleset_drafts.submit_draft(draft.id, actor=people["author"], expected_lock=draft.lock)
    with pytest.raises(workflow.WorkflowError, match="password") as e:
        ruleset_publishing.publish_draft(
            draft.id, actor=people["approver"], password="wrong", expected_lock=submitted.lock
        )
    assert e.value.field == "password"
    assert ruleset_versions.latest_version("magnesium").version == NEWEST


def test_two_person_publish_makes_the_next_immutable_version(people):
    draft = lowered_draft(people)
    late = lowered_draft(people, mg=320, note="made from the same version too")
    version = publish(draft, people)
    data = json.loads(version.content)
    assert (version.version, version.supersedes, data["status"], data["supersedes"]) == (
        NEXT,
        NEWEST,
        "published",
        NEWEST,
    )
    assert version.sha256 == rs.sha256_text(version.content)
    assert (version.authors, version.approver) == (["rita"], "peter")
    assert next(r for r in data["upper_limits"] if r["id"] == "UL_US_9_PLUS")["ul_mg"] == 300
    assert ruleset_drafts.get_draft(draft.id).status == "published"
    entry = audit.read(db.session, limit=1)[0].as_dict()
    assert (entry["action"], entry["actor"], entry["target_id"]) == ("ruleset.publish", "peter", f"magnesium v{NEXT}")
    assert entry["after"]["sha256"] == version.sha256 and entry["details"]["authors"] == ["rita"]
    assert entry["details"]["signature_meaning"] == ruleset_publishing.PUBLISH_MEANING
    assert any("UL_US_9_PLUS" in line and "300" in line for line in entry["details"]["changes"])
    assert audit.verify(db.session).ok
    evaluator = ruleset_versions.active_evaluator()
    assert evaluator.ruleset.ref == {"id": "magnesium", "version": NEXT, "sha256": version.sha256}
    # a draft made from the same version can no longer be published over the new one
    with pytest.raises(workflow.ConflictError, match=f"v{NEXT} was published"):
        publish(late, people)


def test_impact_preview_counts_what_would_change(people, app):
    records = [
        record(id="US400", supplement={"form": "citrate", "dose_mg": 400, "dose_basis": "elemental"}),
        record(id="US320", supplement={"form": "citrate", "dose_mg": 320, "dose_basis": "elemental"}),
        record(id="EU200", jurisdiction="EU"),
    ]
    items = [(i, json.dumps(r)) for i, r in enumerate(records, start=1)]
    workflow.import_records(items, filename="t.jsonl", actor="alice", evaluator=ruleset_versions.active_evaluator())
    draft = lowered_draft(people)
    result = ruleset_drafts.draft_impact(draft, workflow.stored_case_items(100))
    assert result.records == 3
    changed = {c.record_id: c for c in result.changed}
    assert set(changed) == {"US400", "US320"}
    assert changed["US320"].lines() == ["+ DOSE_ABOVE_UL_US (moderate)", "~ plan.max_elemental_mg_per_day: 350 -> 300"]
    assert changed["US400"].lines() == ["~ plan.max_elemental_mg_per_day: 350 -> 300"]
    assert result.summary() == [
        "3 records replayed, 2 would change",
        "finding DOSE_ABOVE_UL_US added in 1",
        "plan.max_elemental_mg_per_day changed in 2",
    ]


def test_reevaluation_updates_pending_cases_and_never_touches_signed_decisions(people):
    records = [
        record(id="PENDING", supplement={"form": "citrate", "dose_mg": 320, "dose_basis": "elemental"}),
        record(id="DECIDED", supplement={"form": "citrate", "dose_mg": 320, "dose_basis": "elemental"}, age_years=50),
    ]
    items = [(i, json.dumps(r)) for i, r in enumerate(records, start=1)]
    workflow.import_records(items, filename="t.jsonl", actor="alice", evaluator=ruleset_versions.active_evaluator())
    pending, decided = (
        db.session.execute(select(Case).where(Case.patient_ref == r["id"])).scalar_one() for r in records
    )
    with pytest.raises(workflow.WorkflowError, match="newest version"):
        workflow.reevaluate_case(pending.id, actor=people["clinician"], expected_version=pending.version)
    workflow.decide(
        decided.id, expected_version=decided.version, kind="approve", actor=people["clinician"], password=PASSWORD
    )
    signed = db.session.execute(select(Decision).where(Decision.case_id == decided.id)).scalar_one()
    signed_before = (signed.suggested_plan, signed.final_plan, signed.signed_at, signed.audit_seq)
    publish(lowered_draft(people), people)

    again = workflow.reevaluate_case(pending.id, actor=people["clinician"], expected_version=pending.version)
    case = db.session.get(Case, pending.id)
    assert again.adopted and case.ruleset_version == NEXT and case.status == "pending"
    assert case.plan["max_elemental_mg_per_day"] == 300
    assert {f.finding_id for f in case.findings} >= {"DOSE_ABOVE_UL_US"}
    assert "+ DOSE_ABOVE_UL_US (moderate)" in [c["text"] for c in again.changes]

    decided = db.session.get(Case, decided.id)
    kept = workflow.reevaluate_case(decided.id, actor=people["clinician"], expected_version=decided.version)
    decided = db.session.get(Case, decided.id)
    assert not kept.adopted and decided.ruleset_version == NEWEST and decided.status == "approved"
    assert decided.plan["max_elemental_mg_per_day"] == 350 and kept.result["plan"]["max_elemental_mg_per_day"] == 300
    signed = db.session.execute(select(Decision).where(Decision.case_id == decided.id)).scalar_one()
    assert (signed.suggested_plan, signed.final_plan, signed.signed_at, signed.audit_seq) == signed_before
    assert actions()[-2:] == ["case.reevaluate", "case.reevaluate"]


def test_export_writes_published_versions_as_files_with_their_hash(people, tmp_path):
    version = publish(lowered_draft(people), people)
    folder = tmp_path / "rulesets"
    (folder / "magnesium").mkdir(parents=True)
    for shipped in rs.ruleset_files():
        (folder / "magnesium" / shipped.name).write_bytes(shipped.read_bytes())
    written = ruleset_versions.export_versions(folder)
    assert written == [folder / "magnesium" / f"v{NEXT}.json"]
    assert rs.sha256_of(written[0]) == version.sha256
    loaded = rs.load(written[0])
    assert (loaded.version, loaded.sha256, loaded.supersedes) == (NEXT, version.sha256, NEWEST)
    manifest = json.loads((folder / "published.json").read_text("utf-8"))
    assert manifest[f"magnesium/v{NEXT}.json"] == version.sha256
    assert json.loads((folder / "magnesium" / f"v{NEXT}.scenarios.json").read_text("utf-8")) == json.loads(
        version.scenarios
    )
    assert ruleset_versions.export_versions(folder) == []
    assert (
        db.session.execute(select(RulesetVersion).where(RulesetVersion.version == NEXT)).scalar_one().origin
        == "published"
    )

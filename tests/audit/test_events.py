"""Each audit event is stored in exactly the shape the log has always held, so old chains still verify."""

import pytest

from audit import events
from audit.events import AuditEvent

PLAN = {"max_elemental_mg_per_day": 350}
REF = {"id": "magnesium", "version": 2, "sha256": "ab" * 32}


@pytest.mark.parametrize(
    "event, stored",
    [
        (events.UserAdded("admin", "bob", "clinician"),
         AuditEvent("admin", "user.add", "user", "bob", after={"username": "bob", "role": "clinician"})),
        (events.LoginFailed("", "unknown user"), AuditEvent("?", "login.failed", "user", "?", reason="unknown user")),
        (events.LoginFailed("bob", "locked"), AuditEvent("bob", "login.failed", "user", "bob", reason="locked")),
        (events.LoggedIn("bob"), AuditEvent("bob", "login", "user", "bob")),
        (events.SignatureFailed("bob", "case", "7", "wrong signature password (1 of 5)"),
         AuditEvent("bob", "signature.failed", "case", "7", reason="wrong signature password (1 of 5)")),
        (events.LoggedOut("bob"), AuditEvent("bob", "logout", "user", "bob")),
        (events.LoggedOutEverywhere("admin", "bob", 3),
         AuditEvent("admin", "logout.everywhere", "user", "bob", after={"sessions": 3})),
        (events.CasesImported("bob", 4, "a.jsonl", records=3, accepted=1, duplicates=1, rejected=1, ruleset="m v2"),
         AuditEvent("bob", "import", "batch", "4", ruleset="m v2", after={
             "filename": "a.jsonl", "records": 3, "accepted": 1, "duplicates": 1, "rejected": 1})),
        (events.DecisionSigned("bob", "adjust", 7, suggested_plan=PLAN, status="adjusted", final_plan={}, reason="r",
                               ruleset="m v2", override_code="PHYSICIAN_ORDER", signature_meaning="I sign",
                               patient_ref="P1"),
         AuditEvent("bob", "decision.adjust", "case", "7", before={"status": "pending", "plan": PLAN},
                    after={"status": "adjusted", "plan": {}}, reason="r", ruleset="m v2",
                    details={"override_code": "PHYSICIAN_ORDER", "signature_meaning": "I sign", "patient_ref": "P1"})),
        (events.CaseReevaluated("bob", 7, previous_ruleset=REF, status="pending", new_ruleset=REF, adopted=True,
                                ruleset="m v2", changes=["x"], patient_ref="P1"),
         AuditEvent("bob", "case.reevaluate", "case", "7", before={"ruleset": REF, "status": "pending"},
                    after={"ruleset": REF, "adopted": True}, ruleset="m v2",
                    details={"changes": ["x"], "patient_ref": "P1"})),
        (events.CdsFeedback("ehr", "svc", "c1", "overridden", outcome_timestamp="t", accepted_suggestions=[],
                            override={"reason": {"code": "X"}}, reason="X"),
         AuditEvent("ehr", "cds.feedback.overridden", "card", "c1",
                    after={"outcome": "overridden", "outcomeTimestamp": "t", "acceptedSuggestions": []},
                    reason="X", details={"service": "svc", "overrideReason": {"reason": {"code": "X"}}})),
        (events.VersionRegistered("system", "magnesium v2", "cd" * 32, "magnesium/v2.json"),
         AuditEvent("system", "ruleset.register", "ruleset", "magnesium v2",
                    after={"sha256": "cd" * 32, "file": "magnesium/v2.json"}, ruleset="magnesium v2 " + "cd" * 6)),
        (events.DraftCreated("ed", 1, "magnesium v3 (draft 1)", "magnesium v2", "cd" * 32),
         AuditEvent("ed", "ruleset.draft.create", "ruleset_draft", "1",
                    after={"draft": "magnesium v3 (draft 1)", "base_sha256": "cd" * 32},
                    ruleset="magnesium v2 " + "cd" * 6)),
        (events.DraftSaved("ed", 1, before_sha256="a", before_status="submitted", sha256="b",
                           changes=list(range(250)), scenarios_changed=False),
         AuditEvent("ed", "ruleset.draft.save", "ruleset_draft", "1", before={"sha256": "a", "status": "submitted"},
                    after={"sha256": "b", "status": "editing"},
                    details={"changes": list(range(200)), "scenarios_changed": False})),
        (events.DraftSubmitted("ed", 1, "b", ["p"] * 250),
         AuditEvent("ed", "ruleset.draft.submit", "ruleset_draft", "1", before={"status": "editing"},
                    after={"status": "submitted", "sha256": "b"}, details={"open_problems": ["p"] * 200})),
        (events.DraftDiscarded("ed", 1, "editing", "obsolete"),
         AuditEvent("ed", "ruleset.draft.discard", "ruleset_draft", "1", before={"status": "editing"},
                    after={"status": "discarded"}, reason="obsolete")),
        (events.VersionPublished("rita", "magnesium v3", base_version=2, base_sha256="a", version=3, sha256="ef" * 32,
                                 draft_id=1, change_note="why", authors=["ed"], signature_meaning="I approve",
                                 scenarios_passed=9, changes=list(range(250))),
         AuditEvent("rita", "ruleset.publish", "ruleset", "magnesium v3", before={"version": 2, "sha256": "a"},
                    after={"version": 3, "sha256": "ef" * 32, "draft": 1}, reason="why",
                    ruleset="magnesium v3 " + "ef" * 6,
                    details={"authors": ["ed"], "approver": "rita", "signature_meaning": "I approve",
                             "scenarios_passed": 9, "changes": list(range(200))})),
        (events.ApprovalRefused("ed", 1, "magnesium v3 (draft 1)", "self-approval", "You edited this draft"),
         AuditEvent("ed", "ruleset.publish.refused", "ruleset_draft", "1", reason="You edited this draft",
                    details={"draft": "magnesium v3 (draft 1)", "kind": "self-approval", "problems": []})),
        (events.ApprovalRefused("rita", 1, "d", "blocked", "Publishing is blocked: p0", [f"p{i}" for i in range(250)]),
         AuditEvent("rita", "ruleset.publish.refused", "ruleset_draft", "1", reason="Publishing is blocked: p0",
                    details={"draft": "d", "kind": "blocked", "problems": [f"p{i}" for i in range(200)]})),
    ],
)  # fmt: skip
def test_event_is_stored_as_before(event, stored):
    assert event.record() == stored


def test_events_are_frozen():
    with pytest.raises(AttributeError):
        events.LoggedIn("bob").username = "eve"

"""What the audit log records: one small frozen dataclass per kind of event, each naming its stored action.

`AuditEvent` is the stored shape (who did what to which target, before, after, why); every other
event says how it fills that shape, so an action string and its fields are written in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

# How many changes or problems one entry keeps: enough to read, bounded so one entry stays small.
MAX_LISTED = 200


@dataclass(frozen=True)
class AuditEvent:
    """What happened: who did what to which target, the state before and after, and why."""

    actor: str
    action: str
    target_type: str
    target_id: str
    before: Any = None
    after: Any = None
    reason: str = ""
    ruleset: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def record(self) -> AuditEvent:
        """The event as stored."""
        return self


class Event(Protocol):
    """Anything the log can append: it says how it is stored."""

    def record(self) -> AuditEvent:
        """The event as stored."""
        ...


# --- users and sign-in -----------------------------------------------------------------------------


@dataclass(frozen=True)
class UserAdded:
    """An administrator created an account."""

    actor: str
    username: str
    role: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor, "user.add", "user", self.username, after={"username": self.username, "role": self.role}
        )


@dataclass(frozen=True)
class LoginFailed:
    """A sign-in refused: unknown user, locked account or wrong password."""

    username: str
    reason: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        who = self.username or "?"
        return AuditEvent(who, "login.failed", "user", who, reason=self.reason)


@dataclass(frozen=True)
class LoggedIn:
    """A user signed in."""

    username: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(self.username, "login", "user", self.username)


@dataclass(frozen=True)
class SignatureFailed:
    """A signature refused (wrong password or locked account) on a decision or an approval."""

    actor: str
    target_type: str
    target_id: str
    reason: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(self.actor, "signature.failed", self.target_type, self.target_id, reason=self.reason)


@dataclass(frozen=True)
class LoggedOut:
    """A user signed out of this session."""

    actor: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(self.actor, "logout", "user", self.actor)


@dataclass(frozen=True)
class LoggedOutEverywhere:
    """Every live session of a user was revoked."""

    actor: str
    username: str
    sessions: int

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(self.actor, "logout.everywhere", "user", self.username, after={"sessions": self.sessions})


@dataclass(frozen=True)
class PageLanguageChosen:
    """A user chose the language of their pages (None: follow the browser)."""

    actor: str
    before: str | None
    after: str | None

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "user.language",
            "user",
            self.actor,
            before={"language": self.before},
            after={"language": self.after},
        )


# --- cases -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CasesImported:
    """A file of intake records was evaluated and its accepted records stored as cases."""

    actor: str
    batch_id: int
    filename: str
    records: int
    accepted: int
    duplicates: int
    rejected: int
    ruleset: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        counts = {"records": self.records, "accepted": self.accepted, "duplicates": self.duplicates}
        return AuditEvent(
            self.actor,
            "import",
            "batch",
            str(self.batch_id),
            after={"filename": self.filename, **counts, "rejected": self.rejected},
            ruleset=self.ruleset,
        )


@dataclass(frozen=True)
class DecisionSigned:
    """A clinician signed a decision (approve, adjust, reject, refer) on a pending case."""

    actor: str
    kind: str
    case_id: int
    suggested_plan: Any
    status: str
    final_plan: Any
    reason: str
    ruleset: str
    override_code: str | None
    signature_meaning: str
    patient_ref: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            f"decision.{self.kind}",
            "case",
            str(self.case_id),
            before={"status": "pending", "plan": self.suggested_plan},
            after={"status": self.status, "plan": self.final_plan},
            reason=self.reason,
            ruleset=self.ruleset,
            details={
                "override_code": self.override_code,
                "signature_meaning": self.signature_meaning,
                "patient_ref": self.patient_ref,
            },
        )


@dataclass(frozen=True)
class DecisionAmended:
    """A clinician signed a new decision on a decided case that supersedes its signed decision (both are kept)."""

    actor: str
    kind: str
    case_id: int
    supersedes: int
    previous_status: str
    previous_plan: Any
    status: str
    final_plan: Any
    reason: str
    ruleset: str
    override_code: str | None
    signature_meaning: str
    patient_ref: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "decision.amend",
            "case",
            str(self.case_id),
            before={"status": self.previous_status, "plan": self.previous_plan, "decision": self.supersedes},
            after={"status": self.status, "plan": self.final_plan, "kind": self.kind},
            reason=self.reason,
            ruleset=self.ruleset,
            details={
                "override_code": self.override_code,
                "signature_meaning": self.signature_meaning,
                "patient_ref": self.patient_ref,
            },
        )


@dataclass(frozen=True)
class DecisionWithdrawn:
    """A clinician withdrew a case's signed decision by a signed decision: the case is pending again."""

    actor: str
    case_id: int
    supersedes: int
    previous_status: str
    previous_plan: Any
    reason: str
    ruleset: str
    signature_meaning: str
    patient_ref: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "decision.withdraw",
            "case",
            str(self.case_id),
            before={"status": self.previous_status, "plan": self.previous_plan, "decision": self.supersedes},
            after={"status": "pending", "plan": None},
            reason=self.reason,
            ruleset=self.ruleset,
            details={"signature_meaning": self.signature_meaning, "patient_ref": self.patient_ref},
        )


@dataclass(frozen=True)
class CaseReevaluated:
    """A case evaluated again under a newer ruleset version; `adopted` when it took the new result."""

    actor: str
    case_id: int
    previous_ruleset: Any
    status: str
    new_ruleset: Any
    adopted: bool
    ruleset: str
    changes: list[str]
    patient_ref: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "case.reevaluate",
            "case",
            str(self.case_id),
            before={"ruleset": self.previous_ruleset, "status": self.status},
            after={"ruleset": self.new_ruleset, "adopted": self.adopted},
            ruleset=self.ruleset,
            details={"changes": self.changes, "patient_ref": self.patient_ref},
        )


@dataclass(frozen=True)
class PatientLanguageChosen:
    """A clinician chose the language a case's printed patient plan is written in."""

    actor: str
    case_id: int
    before: str | None
    after: str
    patient_ref: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "case.patient_language",
            "case",
            str(self.case_id),
            before={"patient_language": self.before},
            after={"patient_language": self.after},
            details={"patient_ref": self.patient_ref},
        )


@dataclass(frozen=True)
class CdsFeedback:
    """An EHR reported a CDS Hooks card as accepted or overridden."""

    actor: str
    service: str
    card: str
    outcome: str
    outcome_timestamp: Any
    accepted_suggestions: Any
    override: dict[str, Any]
    reason: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            f"cds.feedback.{self.outcome}",
            "card",
            self.card,
            after={
                "outcome": self.outcome,
                "outcomeTimestamp": self.outcome_timestamp,
                "acceptedSuggestions": self.accepted_suggestions,
            },
            reason=self.reason,
            details={"service": self.service, "overrideReason": self.override},
        )


# --- rulesets --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionRegistered:
    """A published version file shipped with mgreview was recorded."""

    actor: str
    label: str
    sha256: str
    file: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.register",
            "ruleset",
            self.label,
            after={"sha256": self.sha256, "file": self.file},
            ruleset=f"{self.label} {self.sha256[:12]}",
        )


@dataclass(frozen=True)
class DraftCreated:
    """A rule editor started a draft of the next version."""

    actor: str
    draft_id: int
    draft: str
    base_label: str
    base_sha256: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.draft.create",
            "ruleset_draft",
            str(self.draft_id),
            after={"draft": self.draft, "base_sha256": self.base_sha256},
            ruleset=f"{self.base_label} {self.base_sha256[:12]}",
        )


@dataclass(frozen=True)
class DraftSaved:
    """A rule editor saved a changed draft."""

    actor: str
    draft_id: int
    before_sha256: str
    before_status: str
    sha256: str
    changes: list[Any]
    scenarios_changed: bool

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.draft.save",
            "ruleset_draft",
            str(self.draft_id),
            before={"sha256": self.before_sha256, "status": self.before_status},
            after={"sha256": self.sha256, "status": "editing"},
            details={"changes": self.changes[:MAX_LISTED], "scenarios_changed": self.scenarios_changed},
        )


@dataclass(frozen=True)
class DraftSubmitted:
    """A rule editor asked another to review and approve a draft."""

    actor: str
    draft_id: int
    sha256: str
    open_problems: list[str]

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.draft.submit",
            "ruleset_draft",
            str(self.draft_id),
            before={"status": "editing"},
            after={"status": "submitted", "sha256": self.sha256},
            details={"open_problems": self.open_problems[:MAX_LISTED]},
        )


@dataclass(frozen=True)
class DraftDiscarded:
    """A rule editor gave a draft up."""

    actor: str
    draft_id: int
    before_status: str
    reason: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.draft.discard",
            "ruleset_draft",
            str(self.draft_id),
            before={"status": self.before_status},
            after={"status": "discarded"},
            reason=self.reason,
        )


@dataclass(frozen=True)
class VersionPublished:
    """A second rule editor's signed approval published a draft as the next version."""

    actor: str
    label: str
    base_version: int
    base_sha256: str
    version: int
    sha256: str
    draft_id: int
    change_note: str
    authors: list[str]
    signature_meaning: str
    scenarios_passed: int
    changes: list[Any]

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.publish",
            "ruleset",
            self.label,
            before={"version": self.base_version, "sha256": self.base_sha256},
            after={"version": self.version, "sha256": self.sha256, "draft": self.draft_id},
            reason=self.change_note,
            ruleset=f"{self.label} {self.sha256[:12]}",
            details={
                "authors": self.authors,
                "approver": self.actor,
                "signature_meaning": self.signature_meaning,
                "scenarios_passed": self.scenarios_passed,
                "changes": self.changes[:MAX_LISTED],
            },
        )


@dataclass(frozen=True)
class ApprovalRefused:
    """An approval or publish refused, of any `kind`: self-approval, unsigned, signature, not-submitted, stale,
    blocked (failing checks or scenarios); `reason` is the message the user read."""

    actor: str
    draft_id: int
    draft: str
    kind: str
    reason: str
    problems: list[str] = field(default_factory=list)

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "ruleset.publish.refused",
            "ruleset_draft",
            str(self.draft_id),
            reason=self.reason,
            details={"draft": self.draft, "kind": self.kind, "problems": self.problems[:MAX_LISTED]},
        )


@dataclass(frozen=True)
class CaseSuperseded:
    """A pending case took a re-imported record of its patient with different content (a new version of the case)."""

    actor: str
    case_id: int
    batch_id: int
    patient_ref: str
    previous_input_hash: str
    input_hash: str
    changes: list[str]
    ruleset: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "case.supersede",
            "case",
            str(self.case_id),
            before={"input_hash": self.previous_input_hash},
            after={"input_hash": self.input_hash, "batch": self.batch_id},
            ruleset=self.ruleset,
            details={"changes": self.changes[:MAX_LISTED], "patient_ref": self.patient_ref},
        )


@dataclass(frozen=True)
class CaseAfterDecision:
    """A re-imported record of a patient whose case was already decided: a new pending case naming the decided one."""

    actor: str
    case_id: int
    decided_case_id: int
    decided_status: str
    batch_id: int
    patient_ref: str
    changes: list[str]
    ruleset: str

    def record(self) -> AuditEvent:
        """The event as stored."""
        return AuditEvent(
            self.actor,
            "case.new_intake_after_decision",
            "case",
            str(self.case_id),
            before={"case": self.decided_case_id, "status": self.decided_status},
            after={"case": self.case_id, "status": "pending", "batch": self.batch_id},
            ruleset=self.ruleset,
            details={"changes": self.changes[:MAX_LISTED], "patient_ref": self.patient_ref},
        )

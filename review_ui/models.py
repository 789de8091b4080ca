"""Users, import batches, cases, their findings, signed decisions, and ruleset versions and drafts."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine import vocabulary
from review_ui.db import db


class Role(StrEnum):
    """What a user is: clinicians decide cases, rule editors write and publish rulesets, admins oversee both."""

    CLINICIAN = "clinician"
    RULE_EDITOR = "rule_editor"
    ADMIN = "admin"


ROLES: tuple[str, ...] = tuple(role.value for role in Role)
ANY_ROLE: tuple[str, ...] = ROLES
CLINICAL: tuple[str, ...] = (Role.CLINICIAN, Role.ADMIN)  # work the worklist, import, decide
RULESET_EDITORS: tuple[str, ...] = (Role.RULE_EDITOR,)  # edit drafts, approve and publish
DRAFT_READERS: tuple[str, ...] = (Role.RULE_EDITOR, Role.ADMIN)  # see drafts; clinicians see published versions

CASE_STATUSES = ("pending", "approved", "adjusted", "rejected", "referred")
WITHDRAW = "withdraw"  # the kind of the decision that withdraws a signed one (the case is pending again)
# "none" ranks a case without findings after every severity
SEVERITY_RANK: dict[str, int] = {**vocabulary.SEVERITY_RANK, "none": len(vocabulary.SEVERITIES)}


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    """A person who logs in: clinician, rule editor or admin."""

    __tablename__ = "user_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(300))
    role: Mapped[str] = mapped_column(String(20))
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)  # page language; None: the browser's

    @property
    def home_endpoint(self) -> str:
        """The page this user lands on: the worklist for those who work cases, else the rulesets."""
        return "cases.worklist" if self.works_cases else "rulesets.index"

    @property
    def works_cases(self) -> bool:
        """Sees the worklist, imports and decides cases."""
        return self.role in CLINICAL

    @property
    def reads_drafts(self) -> bool:
        """Sees ruleset drafts (not only published versions)."""
        return self.role in DRAFT_READERS

    @property
    def edits_rulesets(self) -> bool:
        """Edits drafts, submits, approves and publishes them."""
        return self.role in RULESET_EDITORS


class UserSession(db.Model):  # type: ignore[name-defined,misc]
    """A signed-in session kept on the server: the cookie names it, sign-out revokes it, it ends at `expires_at`."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the cookie's token
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Batch(db.Model):  # type: ignore[name-defined,misc]
    """One imported intake file."""

    __tablename__ = "batch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    filename: Mapped[str] = mapped_column(String(300))
    imported_by: Mapped[str] = mapped_column(String(80))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    records: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    rejects: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)


class Case(db.Model):  # type: ignore[name-defined,misc]
    """One evaluated intake record waiting for (or past) a clinician's decision."""

    __tablename__ = "review_case"
    __table_args__ = (
        Index("ix_case_worklist", "status", "severity_rank", "created_at"),
        Index("ix_case_worklist_all", "severity_rank", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_ref: Mapped[str] = mapped_column(String(120), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"), index=True)
    input_hash: Mapped[str] = mapped_column(String(64), unique=True)
    intake: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    highest_severity: Mapped[str] = mapped_column(String(20))
    severity_rank: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    reviewer: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    ruleset_id: Mapped[str] = mapped_column(String(80))
    ruleset_version: Mapped[int] = mapped_column(Integer)
    ruleset_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock for concurrent decisions
    patient_language: Mapped[str | None] = mapped_column(
        String(8), nullable=True
    )  # printed plan; None: by jurisdiction
    # a new intake for a patient whose case was already decided: a new case that names the decided one
    follows_case_id: Mapped[int | None] = mapped_column(ForeignKey("review_case.id"), nullable=True, index=True)

    batch: Mapped[Batch] = relationship()
    findings: Mapped[list[CaseFinding]] = relationship(back_populates="case", order_by="CaseFinding.rank")
    decisions: Mapped[list[Decision]] = relationship(back_populates="case", order_by="Decision.id")
    reevaluations: Mapped[list[Reevaluation]] = relationship(back_populates="case", order_by="Reevaluation.id")
    revisions: Mapped[list[CaseRevision]] = relationship(back_populates="case", order_by="CaseRevision.id")
    follows: Mapped[Case | None] = relationship(remote_side="Case.id")

    @property
    def plan(self) -> dict[str, Any]:
        """The engine's suggested plan."""
        return dict(self.result.get("plan", {}))

    @property
    def change_needs_override(self) -> bool:
        """Any change to the suggested plan needs a coded override reason: a finding is major or worse."""
        return self.severity_rank <= SEVERITY_RANK["major"]


class CaseFinding(db.Model):  # type: ignore[name-defined,misc]
    """A finding of a case, kept as a row so the worklist can filter by finding id."""

    __tablename__ = "case_finding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"), index=True)
    finding_id: Mapped[str] = mapped_column(String(60), index=True)
    severity: Mapped[str] = mapped_column(String(20))
    rank: Mapped[int] = mapped_column(Integer)

    case: Mapped[Case] = relationship(back_populates="findings")


class Decision(db.Model):  # type: ignore[name-defined,misc]
    """A signed decision: the suggested plan and the final plan side by side, who, when, why, and what it means.

    A signed decision is never changed: an amendment or a withdrawal is a new signed decision whose
    `supersedes_id` names the one it replaces (kind "withdraw" for a withdrawal, which has no plan).
    """

    __tablename__ = "decision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(80))
    suggested_plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    final_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    override_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    signature_meaning: Mapped[str] = mapped_column(Text)
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    audit_seq: Mapped[int] = mapped_column(Integer)
    # the decision this one amends or withdraws; unique: a decision is superseded at most once
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("decision.id"), nullable=True, unique=True)

    case: Mapped[Case] = relationship(back_populates="decisions")
    supersedes: Mapped[Decision | None] = relationship(
        remote_side="Decision.id", back_populates="superseded_by", foreign_keys="Decision.supersedes_id"
    )
    superseded_by: Mapped[Decision | None] = relationship(back_populates="supersedes", uselist=False)

    @property
    def in_force(self) -> bool:
        """The case's signed decision now: not superseded, and not itself a withdrawal."""
        return self.superseded_by is None and self.kind != WITHDRAW


class Reevaluation(db.Model):  # type: ignore[name-defined,misc]
    """A case evaluated again under a newer ruleset version: what changed, and whether the case took it.

    A case still pending takes the new result; a decided case keeps its result and its signed decision,
    and the re-evaluation is kept beside them.
    """

    __tablename__ = "reevaluation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    previous_ruleset: Mapped[dict[str, Any]] = mapped_column(JSON)
    ruleset: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    changes: Mapped[list[Any]] = mapped_column(JSON)  # engine.impact Change.to_dict() each (older rows: lines)
    adopted: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    audit_seq: Mapped[int] = mapped_column(Integer)

    case: Mapped[Case] = relationship(back_populates="reevaluations")


class CaseRevision(db.Model):  # type: ignore[name-defined,misc]
    """A pending case superseded by a re-imported record of the same patient with different content.

    The case takes the new intake and result; this row keeps the ones it replaced and what changed.
    """

    __tablename__ = "case_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("review_case.id"), index=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch.id"))
    actor: Mapped[str] = mapped_column(String(80))
    previous_intake: Mapped[dict[str, Any]] = mapped_column(JSON)
    previous_result: Mapped[dict[str, Any]] = mapped_column(JSON)
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # {"kind", "text"} each: intake, then result
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    audit_seq: Mapped[int] = mapped_column(Integer)

    case: Mapped[Case] = relationship(back_populates="revisions")


DRAFT_STATUSES = ("editing", "submitted", "published", "discarded")


class RulesetVersion(db.Model):  # type: ignore[name-defined,misc]
    """A published ruleset version: its exact text and hash. Rows are never updated or deleted (triggers)."""

    __tablename__ = "ruleset_version"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_ruleset_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    content: Mapped[str] = mapped_column(Text)
    scenarios: Mapped[str] = mapped_column(Text)
    supersedes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    change_note: Mapped[str] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(String(20))  # "file" (shipped in rulesets/) or "published" (here)
    authors: Mapped[list[str]] = mapped_column(JSON)
    approver: Mapped[str | None] = mapped_column(String(80), nullable=True)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    audit_seq: Mapped[int] = mapped_column(Integer)

    @property
    def label(self) -> str:
        """`magnesium v2`."""
        return f"{self.name} v{self.version}"


class RulesetDraft(db.Model):  # type: ignore[name-defined,misc]
    """A draft of the next version of a ruleset, edited by rule editors until another one publishes it."""

    __tablename__ = "ruleset_draft"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), index=True)
    base_version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    scenarios: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(80))
    contributors: Mapped[list[str]] = mapped_column(JSON)  # everyone who changed it: none of them may approve
    status: Mapped[str] = mapped_column(String(20), default="editing", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    lock: Mapped[int] = mapped_column(Integer, default=1)  # optimistic lock for concurrent edits

    @property
    def version(self) -> int:
        """The version number it gets when published."""
        return self.base_version + 1

    @property
    def label(self) -> str:
        """`magnesium v2 (draft 3)`."""
        return f"{self.name} v{self.version} (draft {self.id})"


class CdsTokenSeen(db.Model):  # type: ignore[name-defined,misc]
    """A CDS Hooks client JWT already used (issuer + jti), kept until it expires: a replay is refused."""

    __tablename__ = "cds_token_seen"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of issuer and jti
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)

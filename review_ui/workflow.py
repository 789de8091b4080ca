"""Every write that matters, each with its audit entry in the same transaction.

Views validate forms and call these functions; nothing else changes cases, users or decisions.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from werkzeug.security import check_password_hash, generate_password_hash

from audit import events
from audit import log as audit
from engine import impact
from engine.evaluate import Evaluator
from engine.lines import result_of
from review_ui import decisions, reimport, ruleset_versions
from review_ui.db import db
from review_ui.decisions import _
from review_ui.models import (
    ROLES,
    SEVERITY_RANK,
    Batch,
    Case,
    CaseFinding,
    CaseRevision,
    Decision,
    Reevaluation,
    User,
    UserSession,
    utcnow,
)
from review_ui.models import WITHDRAW as WITHDRAW
from review_ui.writes import ConflictError as ConflictError
from review_ui.writes import WorkflowError as WorkflowError
from review_ui.writes import commit_or_rollback as commit_or_rollback
from review_ui.writes import rowcount as _rowcount
from review_ui.writes import update_if_unchanged

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD_LENGTH = 10

# Coded override reasons: why a clinician departs from the engine on a case it flagged major or worse.
OVERRIDE_CODES: dict[str, str] = {
    "PHYSICIAN_ORDER": "A physician ordered this plan after reviewing the findings",
    "DIAGNOSED_DEFICIENCY": "Therapeutic dose for a diagnosed deficiency, physician-supervised [S10][S11]",
    "NEWER_LAB_RESULT": "A newer lab result than the intake changes the assessment",
    "FINDING_NOT_APPLICABLE": "The finding does not apply to this patient (documented in the reason)",
    "SPECIALIST_ADVICE": "Following documented specialist advice",
}

# What a signature means, recorded with every signed decision (21 CFR Part 11 style); stored in English as signed.
SIGNATURE_MEANINGS: dict[str, str] = dict(decisions.MEANINGS)
DECISION_STATUS = {"approve": "approved", "adjust": "adjusted", "reject": "rejected", "refer": "referred"}


# --- users and sign-in ----------------------------------------------------------------------


def add_user(username: str, password: str, role: str, *, actor: str, full_name: str = "") -> User:
    """Create a user with a hashed password; audited."""
    username = username.strip()
    if not username:
        raise WorkflowError("A username is required.", "username")
    if role not in ROLES:
        raise WorkflowError(f"Role must be one of {', '.join(ROLES)}.", "role")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WorkflowError(f"The password needs at least {MIN_PASSWORD_LENGTH} characters.", "password")
    if db.session.execute(select(User).where(User.username == username)).scalar_one_or_none():
        raise WorkflowError(f"User {username!r} already exists.", "username")
    user = User(username=username, full_name=full_name, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.flush()
    audit.append(db.session, events.UserAdded(actor, username, role))
    commit_or_rollback()
    return user


SIGN_IN_FAILED = (
    f"Unknown username or wrong password. After {MAX_FAILED_LOGINS} failed attempts an account is locked "
    f"for {LOCKOUT.seconds // 60} minutes."
)
_dummy_hash: list[str] = []


def _check_password(user: User | None, password: str) -> bool:
    """The password check, costing the same for an unknown user (no timing difference to enumerate users)."""
    if user is None:
        if not _dummy_hash:
            _dummy_hash.append(generate_password_hash(secrets.token_hex(16)))
        check_password_hash(_dummy_hash[0], password)
        return False
    return check_password_hash(user.password_hash, password)


def authenticate(username: str, password: str, *, now: datetime | None = None) -> User:
    """Check a sign-in; lock the account after repeated failures. Every attempt is audited.

    Unknown users, wrong passwords and locked accounts get the same message and cost the same time.
    """
    now = now or datetime.now(UTC)
    user = db.session.execute(select(User).where(User.username == username)).scalar_one_or_none()
    matches = _check_password(user, password)
    if user is None:
        audit.append(db.session, events.LoginFailed(username, "unknown user"))
        commit_or_rollback()
        raise WorkflowError(SIGN_IN_FAILED)
    locked_until = _aware(user.locked_until)
    if locked_until and locked_until > now:
        audit.append(db.session, events.LoginFailed(username, "locked"))
        commit_or_rollback()
        raise WorkflowError(SIGN_IN_FAILED)
    if not matches:
        reason = _count_failure(user, now, "wrong password")
        audit.append(db.session, events.LoginFailed(username, reason))
        commit_or_rollback()
        raise WorkflowError(SIGN_IN_FAILED)
    user.failed_logins = 0
    user.locked_until = None
    audit.append(db.session, events.LoggedIn(username))
    commit_or_rollback()
    return user


def _count_failure(user: User, now: datetime, what: str) -> str:
    """One more failed password toward the lockout; the reason to audit."""
    user.failed_logins += 1
    reason = f"{what} ({user.failed_logins} of {MAX_FAILED_LOGINS})"
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + LOCKOUT
        user.failed_logins = 0
        reason += "; account locked"
    return reason


def verify_signature(user: User, password: str, *, refused: str, target_type: str, target_id: str) -> None:
    """Check the password given to sign; a wrong one counts toward the lockout and is audited, as at sign-in."""
    now = datetime.now(UTC)
    locked_until = _aware(user.locked_until)
    if locked_until and locked_until > now:
        reason = "account locked"
    elif check_password_hash(user.password_hash, password):
        user.failed_logins = 0
        return
    else:
        reason = _count_failure(user, now, "wrong signature password")
    audit.append(db.session, events.SignatureFailed(user.username, target_type, target_id, reason))
    commit_or_rollback()
    if "locked" in reason:
        raise WorkflowError(
            f"{refused} The account is locked after {MAX_FAILED_LOGINS} wrong passwords; try again later.", "password"
        )
    raise WorkflowError(f"The password does not match: {refused[0].lower()}{refused[1:]}", "password")


# --- sessions ---------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(user: User, *, lifetime: timedelta) -> str:
    """A new server-side session for a signed-in user; the token goes into the (signed) session cookie."""
    token = secrets.token_urlsafe(32)
    db.session.add(UserSession(token_hash=_token_hash(token), user_id=user.id, expires_at=utcnow() + lifetime))
    commit_or_rollback()
    return token


def session_user(token: str | None, user_id: int) -> User | None:
    """The user of a live session (not revoked, not past its absolute lifetime), or None."""
    if not token:
        return None
    found = db.session.execute(
        select(UserSession).where(UserSession.token_hash == _token_hash(token), UserSession.user_id == user_id)
    ).scalar_one_or_none()
    if found is None or found.revoked_at is not None or (_aware(found.expires_at) or utcnow()) <= utcnow():
        return None
    return db.session.get(User, user_id)


def end_session(token: str | None, *, actor: str) -> None:
    """Sign out: revoke this session on the server (a saved cookie no longer works); audited."""
    if token:
        db.session.execute(
            update(UserSession)
            .where(UserSession.token_hash == _token_hash(token), UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    audit.append(db.session, events.LoggedOut(actor))
    commit_or_rollback()


def end_all_sessions(user: User, *, actor: str) -> int:
    """Sign out everywhere: revoke every live session of `user`; audited. The number revoked."""
    revoked = _rowcount(
        db.session.execute(
            update(UserSession)
            .where(UserSession.user_id == user.id, UserSession.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
    )
    audit.append(db.session, events.LoggedOutEverywhere(actor, user.username, revoked))
    commit_or_rollback()
    return int(revoked)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite returns naive datetimes
        return value.replace(tzinfo=UTC)
    return value


# --- import -----------------------------------------------------------------------------------


@dataclass
class ImportReport:
    """What an import did, for the page and the CLI: by patient reference, each record counted once."""

    batch_id: int
    records: int = 0
    accepted: list[str] = field(default_factory=list)  # new cases, those after a decision included
    superseded: list[str] = field(default_factory=list)  # pending cases that took a changed record
    after_decision: list[str] = field(default_factory=list)  # new cases for a patient whose case was decided
    duplicates: list[str] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)


def record_hash(record: Any) -> str:
    """Identity of an intake record for idempotent imports: sha256 of its canonical JSON."""
    return hashlib.sha256(audit.canonical(record).encode("utf-8")).hexdigest()


def import_records(
    items: Iterable[tuple[int, Any]], *, filename: str, actor: str, evaluator: Evaluator
) -> ImportReport:
    """Evaluate records and store them as cases, one case per patient reference and intake.

    A record already imported (the same bytes, or the same normalised intake from another file) changes
    nothing. A changed record supersedes its patient's pending case (a new version of it, with what changed);
    a decided case is never overwritten: the changed record becomes a new pending case that names it.
    """
    batch = Batch(filename=_clip(filename, Batch.filename.type.length), imported_by=actor)
    db.session.add(batch)
    db.session.flush()
    report = ImportReport(batch_id=batch.id)
    for line, raw in items:
        report.records += 1
        result = result_of(evaluator, (line, raw)).to_dict()
        refused = _refusal(line, result)
        if refused is not None:
            report.rejected.append(refused)
            continue
        record = json.loads(raw) if isinstance(raw, str) else raw
        _file_record(record, result, batch.id, actor, report)
    batch.records, batch.accepted = report.records, len(report.accepted)
    batch.duplicates, batch.rejected, batch.rejects = len(report.duplicates), len(report.rejected), report.rejected
    imported = events.CasesImported(
        actor,
        batch.id,
        filename,
        records=report.records,
        accepted=len(report.accepted),
        duplicates=len(report.duplicates),
        rejected=len(report.rejected),
        ruleset=ruleset_label(evaluator.ruleset.ref),
    )
    audit.append(db.session, imported)
    commit_or_rollback()
    return report


def _refusal(line: int, result: dict[str, Any]) -> dict[str, Any] | None:
    """The reject entry of a record that cannot become a case, or None."""
    if result["status"] != "ok":
        return {"line": line, "record_id": result.get("record_id"), "errors": result["errors"]}
    if len(str(result["record_id"])) > PATIENT_REF_LENGTH:  # would fail the whole import on PostgreSQL
        return {
            "line": line,
            "record_id": _clip(str(result["record_id"]), 40),
            "errors": [{"field": "id", "reason": f"longer than {PATIENT_REF_LENGTH} characters"}],
        }
    return None


def _file_record(
    record: dict[str, Any], result: dict[str, Any], batch_id: int, actor: str, report: ImportReport
) -> None:
    """One evaluated record: a duplicate, a new case, a new version of a pending case, or a case after a decision."""
    key, ref = record_hash(record), result["record_id"]
    if db.session.execute(select(Case.id).where(Case.input_hash == key)).first() is not None:
        report.duplicates.append(ref)
        return
    latest = db.session.execute(
        select(Case).where(Case.patient_ref == ref).order_by(Case.id.desc()).limit(1)
    ).scalar_one_or_none()
    if latest is not None and reimport.same_intake(latest.result, result):
        report.duplicates.append(ref)
    elif latest is not None and latest.status == "pending":
        _supersede(latest, record, result, key, batch_id, actor)
        report.superseded.append(ref)
    else:
        case = _case(record, result, key, batch_id)
        if latest is not None:
            case.follows_case_id = latest.id
        db.session.add(case)
        db.session.flush()
        report.accepted.append(ref)
        if latest is not None:
            _after_decision(case, latest, actor)
            report.after_decision.append(ref)


def _supersede(case: Case, record: dict[str, Any], result: dict[str, Any], key: str, batch_id: int, actor: str) -> None:
    """A pending case takes a changed record of its patient: a new version, the old intake and result kept."""
    changes = reimport.what_changed(case.result, result)
    previous_intake, previous_result, previous_hash = case.intake, case.result, case.input_hash
    columns, findings = stored_result(result)
    update_if_unchanged(
        Case.version,
        case.id,
        case.version,
        where=(Case.status == "pending",),
        conflict=f"The case of {case.patient_ref} changed during the import; nothing was imported. Import again.",
        intake=record,
        input_hash=key,
        **columns,
    )
    for old in case.findings:
        db.session.delete(old)
    for row in findings:
        row.case_id = case.id
    db.session.add_all(findings)
    superseded = events.CaseSuperseded(
        actor,
        case.id,
        batch_id,
        case.patient_ref,
        previous_input_hash=previous_hash,
        input_hash=key,
        changes=[c["text"] for c in changes],
        ruleset=ruleset_label(result["ruleset"]),
    )
    entry = audit.append(db.session, superseded)
    revision = CaseRevision(
        case_id=case.id,
        batch_id=batch_id,
        actor=actor,
        previous_intake=previous_intake,
        previous_result=previous_result,
        changes=changes,
        audit_seq=entry.seq,
    )
    db.session.add(revision)
    db.session.flush()
    db.session.expire(case)  # the update bypassed the session: read the new version next time


def _after_decision(case: Case, decided: Case, actor: str) -> None:
    """Audit a new pending case made for a patient whose newest case was already decided."""
    changes = reimport.what_changed(decided.result, case.result)
    after = events.CaseAfterDecision(
        actor,
        case.id,
        decided.id,
        decided.status,
        case.batch_id,
        case.patient_ref,
        changes=[c["text"] for c in changes],
        ruleset=ruleset_label(case.result["ruleset"]),
    )
    audit.append(db.session, after)


PATIENT_REF_LENGTH: int = Case.patient_ref.type.length


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _case(record: dict[str, Any], result: dict[str, Any], key: str, batch_id: int) -> Case:
    columns, findings = stored_result(result)
    case = Case(
        patient_ref=result["record_id"], batch_id=batch_id, input_hash=key, intake=record, status="pending", **columns
    )
    case.findings = findings
    return case


def stored_result(result: dict[str, Any]) -> tuple[dict[str, Any], list[CaseFinding]]:
    """How a case stores an evaluation: its columns (result, highest severity, ruleset) and its finding rows."""
    findings = result["findings"]
    highest = findings[0]["severity"] if findings else "none"  # the engine sorts findings most severe first
    ref = result["ruleset"]
    columns = {
        "result": result,
        "highest_severity": highest,
        "severity_rank": SEVERITY_RANK[highest],
        "ruleset_id": ref["id"],
        "ruleset_version": ref["version"],
        "ruleset_sha256": ref["sha256"],
    }
    rows = [
        CaseFinding(finding_id=f["id"], severity=f["severity"], rank=SEVERITY_RANK[f["severity"]]) for f in findings
    ]
    return columns, rows


def ruleset_label(ref: dict[str, Any]) -> str:
    """A ruleset reference as audit entries name it: id, version and the start of its sha256."""
    return f"{ref['id']} v{ref['version']} {ref['sha256'][:12]}"


# --- decisions --------------------------------------------------------------------------------


def needs_override(case: Case, kind: str, final_plan: dict[str, Any] | None) -> bool:
    """A dose above the engine's cap, or any change on a case with a major or worse finding."""
    if kind != "adjust" or final_plan is None:
        return False
    cap = case.plan.get("max_elemental_mg_per_day") or 0
    if (final_plan.get("max_elemental_mg_per_day") or 0) > cap:
        return True
    return case.change_needs_override


def _signing(case_id: int, actor: User, password: str, refused: str) -> Case:
    """The case to sign on, once the signer may decide cases and the password matches."""
    if not actor.works_cases:
        raise WorkflowError(_("Only clinicians and administrators decide cases."))
    case = db.session.get(Case, case_id)
    if case is None:
        raise WorkflowError(_("No such case."))
    verify_signature(actor, password, refused=refused, target_type="case", target_id=str(case_id))
    return case


def _checked(
    case: Case, kind: str, reason: str, final_plan: dict[str, Any] | None, override_code: str | None, override_text: str
) -> tuple[dict[str, Any] | None, str | None, str]:
    """The final plan and override of a decision once its rules hold: a reason for anything but an approval, the
    adjusted plan for an adjustment, and a coded, explained override where the change needs one."""
    if kind in ("adjust", "reject", "refer") and not reason:
        raise WorkflowError(_("A reason is required for this decision."), "reason")
    if kind != "adjust":
        return (case.plan if kind == "approve" else None), None, ""
    if final_plan is None:
        raise WorkflowError(_("An adjustment needs the adjusted plan."))
    if needs_override(case, kind, final_plan):
        needed = decisions.override_needed(case, final_plan)
        if override_code not in OVERRIDE_CODES:
            raise WorkflowError(
                _("This change needs a coded override reason. %(needed)s.", needed=needed), "override_code"
            )
        if not override_text.strip():
            raise WorkflowError(_("Explain the override in free text. %(needed)s.", needed=needed), "override_text")
    return final_plan, override_code, override_text.strip()


def _full_reason(reason: str, override_code: str | None, override_text: str) -> str:
    return reason if not override_text else f"{reason}\n[{override_code}] {override_text}"


def _known_kind(kind: str) -> None:
    if kind not in DECISION_STATUS:
        raise WorkflowError(_("Choose a decision."), "kind")


def decide(
    case_id: int,
    *,
    expected_version: int,
    kind: str,
    actor: User,
    password: str,
    reason: str = "",
    final_plan: dict[str, Any] | None = None,
    override_code: str | None = None,
    override_text: str = "",
) -> Decision:
    """Sign a decision on a case: check the signature, refuse a stale version, store it with its audit entry."""
    _known_kind(kind)
    case = _signing(case_id, actor, password, _("The decision was not signed."))
    reason = reason.strip()
    final_plan, override_code, override_text = _checked(case, kind, reason, final_plan, override_code, override_text)
    status = DECISION_STATUS[kind]

    def decided_by() -> str:
        current = db.session.get(Case, case_id)
        return _(
            "This case was decided%(who)s while you were working on it (now %(status)s); nothing was overwritten. "
            "Reload the case to see the decision.",
            who=_(" by %(name)s", name=current.reviewer) if current and current.reviewer else "",
            status=decisions.status_word(current.status) if current else "?",
        )

    update_if_unchanged(
        Case.version,
        case_id,
        expected_version,
        where=(Case.status == "pending",),
        conflict=decided_by,
        status=status,
        reviewer=actor.username,
    )
    full_reason = _full_reason(reason, override_code, override_text)
    signed = events.DecisionSigned(
        actor.username,
        kind,
        case_id,
        suggested_plan=case.plan,
        status=status,
        final_plan=final_plan,
        reason=full_reason,
        ruleset=ruleset_label(case.result["ruleset"]),
        override_code=override_code,
        signature_meaning=SIGNATURE_MEANINGS[kind],
        patient_ref=case.patient_ref,
    )
    return _recorded(case, signed, kind, actor, final_plan, full_reason, override_code, SIGNATURE_MEANINGS[kind])


def _superseding(case: Case, case_id: int, expected_version: int, status: str, reviewer: str | None) -> Decision:
    """The signed decision in force that a new one supersedes, once the case is taken under the optimistic lock
    (refused, nothing written, when the case changed since the clinician opened it or has no signed decision)."""
    previous = decisions.in_force(case)

    def changed_meanwhile() -> str:
        current = db.session.get(Case, case_id)
        return _(
            "This case changed while you were working on it (now %(status)s); nothing was overwritten. "
            "Reload the case to see its decisions.",
            status=decisions.status_word(current.status) if current else "?",
        )

    if previous is None:
        raise ConflictError(changed_meanwhile())
    update_if_unchanged(
        Case.version,
        case_id,
        expected_version,
        where=(Case.status != "pending",),
        conflict=changed_meanwhile,
        status=status,
        reviewer=reviewer,
    )
    return previous


def amend_decision(
    case_id: int,
    *,
    expected_version: int,
    kind: str,
    actor: User,
    password: str,
    reason: str,
    final_plan: dict[str, Any] | None = None,
    override_code: str | None = None,
    override_text: str = "",
) -> Decision:
    """Amend a case's signed decision: a new signed decision (approve, adjust, reject, refer) supersedes it.

    Both stay: the earlier one is kept unchanged and shown as superseded; the amendment is audited in the same
    transaction; it needs the password, a reason, and the case's version as the clinician saw it.
    """
    _known_kind(kind)
    case = _signing(case_id, actor, password, _("The amendment was not signed."))
    reason = reason.strip()
    if not reason:
        raise WorkflowError(_("Say why you amend the signed decision."), "reason")
    final_plan, override_code, override_text = _checked(case, kind, reason, final_plan, override_code, override_text)
    status = DECISION_STATUS[kind]
    previous = _superseding(case, case_id, expected_version, status, actor.username)
    full_reason = _full_reason(reason, override_code, override_text)
    meaning = f"{SIGNATURE_MEANINGS[kind]} It supersedes decision #{previous.id}."
    amended = events.DecisionAmended(
        actor.username,
        kind,
        case_id,
        supersedes=previous.id,
        previous_status=DECISION_STATUS[previous.kind],
        previous_plan=previous.final_plan,
        status=status,
        final_plan=final_plan,
        reason=full_reason,
        ruleset=ruleset_label(case.result["ruleset"]),
        override_code=override_code,
        signature_meaning=meaning,
        patient_ref=case.patient_ref,
    )
    return _recorded(case, amended, kind, actor, final_plan, full_reason, override_code, meaning, previous)


def withdraw_decision(case_id: int, *, expected_version: int, actor: User, password: str, reason: str) -> Decision:
    """Withdraw a case's signed decision by a signed decision that supersedes it: the case is pending again.

    Pending, not a separate "withdrawn" state: a clinician who withdraws a plan means it is no longer to be
    followed and the patient still needs a decision, so the case goes back on the worklist (which shows pending
    cases) to be decided anew, with the suggested plan, by anyone who decides cases. The withdrawn decision and
    the withdrawal are both kept and both audited.
    """
    case = _signing(case_id, actor, password, _("The withdrawal was not signed."))
    reason = reason.strip()
    if not reason:
        raise WorkflowError(_("Say why you withdraw the signed decision."), "reason")
    previous = _superseding(case, case_id, expected_version, "pending", None)
    withdrawn = events.DecisionWithdrawn(
        actor.username,
        case_id,
        supersedes=previous.id,
        previous_status=DECISION_STATUS[previous.kind],
        previous_plan=previous.final_plan,
        reason=reason,
        ruleset=ruleset_label(case.result["ruleset"]),
        signature_meaning=SIGNATURE_MEANINGS[WITHDRAW],
        patient_ref=case.patient_ref,
    )
    return _recorded(case, withdrawn, WITHDRAW, actor, None, reason, None, SIGNATURE_MEANINGS[WITHDRAW], previous)


def _recorded(
    case: Case,
    event: events.Event,
    kind: str,
    actor: User,
    final_plan: dict[str, Any] | None,
    reason: str,
    override_code: str | None,
    meaning: str,
    supersedes: Decision | None = None,
) -> Decision:
    """Store a signed decision with its audit entry in one transaction (the entry's number kept on the decision)."""
    entry = audit.append(db.session, event)
    decision = Decision(
        case_id=case.id,
        kind=kind,
        actor=actor.username,
        suggested_plan=case.plan,
        final_plan=final_plan,
        reason=reason,
        override_code=override_code,
        signature_meaning=meaning,
        audit_seq=entry.seq,
        supersedes_id=supersedes.id if supersedes is not None else None,
    )
    db.session.add(decision)
    commit_or_rollback()
    db.session.expire_all()
    return decision


def record_cds_feedback(service_id: str, feedback: list[dict[str, Any]], *, actor: str) -> int:
    """Store CDS Hooks feedback (accepted or overridden cards, with the reason) in the audit log."""
    count = 0
    for item in feedback:
        outcome = item.get("outcome")
        if outcome not in ("accepted", "overridden") or not item.get("card"):
            raise WorkflowError("Each feedback item needs a card id and an outcome of accepted or overridden.")
        override = item.get("overrideReason") or {}
        reason = override.get("reason") or {}
        feedback_event = events.CdsFeedback(
            actor,
            service_id,
            str(item["card"]),
            outcome,
            outcome_timestamp=item.get("outcomeTimestamp"),
            accepted_suggestions=item.get("acceptedSuggestions", []),
            override=override,
            reason=" ".join(p for p in (str(reason.get("code") or ""), str(override.get("userComment") or "")) if p),
        )
        audit.append(db.session, feedback_event)
        count += 1
    commit_or_rollback()
    return count


# --- re-evaluation under a newer ruleset version ----------------------------------------------


def stored_case_items(limit: int) -> list[tuple[int, Any]]:
    """The newest `limit` stored cases as (case id, intake record) items to replay."""
    rows = db.session.execute(select(Case.id, Case.intake).order_by(Case.id.desc()).limit(limit)).all()
    return [(case_id, intake) for case_id, intake in rows]


def reevaluate_case(case_id: int, *, actor: User, expected_version: int) -> Reevaluation:
    """Evaluate a case under the newest published version and record what changed.

    A pending case takes the new result (findings, plan, ruleset); a decided case keeps its result
    and its signed decision untouched, and the re-evaluation is recorded beside them.
    """
    case = db.session.get(Case, case_id)
    if case is None:
        raise WorkflowError("No such case.")
    newest = ruleset_versions.latest_version(case.ruleset_id)
    if newest.version <= case.ruleset_version:
        raise WorkflowError(f"This case is already evaluated under {newest.label}, the newest version.")
    result = impact.result_of(ruleset_versions.version_evaluator(newest), (case.result.get("line", 0), case.intake))
    change = impact.compare(case.result, result)
    adopt = case.status == "pending" and result["status"] == "ok"
    previous = case.result["ruleset"]
    if adopt:
        columns, findings = stored_result(result)
        update_if_unchanged(
            Case.version,
            case_id,
            expected_version,
            where=(Case.status == "pending",),
            conflict="This case changed while you were looking at it; nothing was re-evaluated. Reload.",
            **columns,
        )
        for old in case.findings:
            db.session.delete(old)
        for row in findings:
            row.case_id = case_id
        db.session.add_all(findings)
    reevaluated = events.CaseReevaluated(
        actor.username,
        case_id,
        previous_ruleset=previous,
        status=case.status,
        new_ruleset=result["ruleset"],
        adopted=adopt,
        ruleset=ruleset_label(result["ruleset"]),
        changes=change.lines(),
        patient_ref=case.patient_ref,
    )
    entry = audit.append(db.session, reevaluated)
    record = Reevaluation(
        case_id=case_id,
        actor=actor.username,
        previous_ruleset=previous,
        ruleset=result["ruleset"],
        result=result,
        changes=[c.to_dict() for c in change.changes],
        adopted=adopt,
        audit_seq=entry.seq,
    )
    db.session.add(record)
    commit_or_rollback()
    db.session.expire_all()
    return record

"""Publishing a draft: the second rule editor's signed approval (the two-person rule).

The checker and the scenarios run again (on durable_rules) and block publishing when either fails;
an approver who edited the draft is refused. Every refusal (self-approval, no or a wrong signature, a draft
not submitted, a stale lock or base version, failing checks) is audited in its own transaction, kept
although nothing is published.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from audit import events
from audit import log as audit
from engine import rulediff
from engine import ruleset as rulesets
from review_ui.db import db
from review_ui.models import RulesetDraft, RulesetVersion, User
from review_ui.ruleset_drafts import (
    DRAFT_CHANGED,
    DraftCheck,
    check_draft,
    draft_data,
    get_draft,
    require_editor,
)
from review_ui.ruleset_versions import latest_version
from review_ui.texts import N_, Text
from review_ui.workflow import MAX_FAILED_LOGINS, verify_signature
from review_ui.writes import ConflictError, WorkflowError, commit_or_rollback, update_if_unchanged

PUBLISH_MEANING = N_(  # audited in English; the approval form shows it in the reader's language
    "I reviewed this draft, its change note, its checks and its scenarios, and approve it as the next "
    "published version of the ruleset. I did not author any part of it."
)


class PublishBlocked(WorkflowError):
    """Publishing (or submitting) refused because checks or scenarios fail."""

    def __init__(self, problems: list[str]):
        shown = "; ".join(problems[:5])
        if len(problems) > 5:
            blocked = Text(
                N_("Publishing is blocked: %(problems)s (and %(more)s more)"), problems=shown, more=len(problems) - 5
            )
        else:
            blocked = Text(N_("Publishing is blocked: %(problems)s"), problems=shown)
        super().__init__(blocked)
        self.problems = problems


class ApprovalRefusedError(WorkflowError):
    """An approval refused before anything was checked or written, with its kind (as audited)."""

    def __init__(self, kind: str, message: str, field: str | None = None):
        super().__init__(message, field)
        self.kind = kind


def publish_draft(draft_id: int, *, actor: User, password: str, expected_lock: int) -> RulesetVersion:
    """The second rule editor's signed approval: publish the draft as the next version.

    Every refusal is audited (an ApprovalRefused entry) and raised again with the message the user reads.
    """
    require_editor(actor)
    draft = get_draft(draft_id)
    draft_id, label = draft.id, draft.label
    try:
        check = _approvable(draft, actor=actor, password=password, expected_lock=expected_lock)
        return _publish(draft, actor=actor, check=check, expected_lock=expected_lock)
    except WorkflowError as e:
        _refusal(actor, draft_id, label, e)
        raise


def _approvable(draft: RulesetDraft, *, actor: User, password: str, expected_lock: int) -> DraftCheck:
    """Refuse an approval that may not go ahead, cheapest reason first; else the draft's checks, which pass."""
    if actor.username in draft.contributors:
        raise ApprovalRefusedError(
            "self-approval",
            Text(N_("You edited this draft, so you cannot approve it: another rule editor must review and sign.")),
        )
    if draft.status != "submitted":
        raise ApprovalRefusedError(
            "not-submitted",
            Text(N_("This draft is %(status)s; only a submitted draft can be approved."), status=draft.status),
        )
    if not password:
        raise ApprovalRefusedError("unsigned", Text(N_("Sign with your password to approve.")), "password")
    try:
        refused = "The approval was not signed."
        verify_signature(actor, password, refused=refused, target_type="ruleset_draft", target_id=str(draft.id))
    except WorkflowError as e:
        raise ApprovalRefusedError("signature", _signature_refusal(e.message), e.field) from None
    if draft.lock != expected_lock:
        raise ConflictError(Text(N_("The draft changed since you opened it; nothing was published. Review it again.")))
    base = latest_version(draft.name)
    if base.version != draft.base_version:
        raise ConflictError(
            Text(
                N_(
                    "%(newest)s was published after this draft was made from v%(base)s; "
                    "make a new draft from the newest version."
                ),
                newest=base.label,
                base=draft.base_version,
            )
        )
    check = check_draft(draft, backend="durable")
    problems = check.problems(change_note=draft_data(draft).get("change_note", ""))
    if problems:
        raise PublishBlocked(problems)
    return check


SIGNATURE_WRONG = N_("The password does not match: the approval was not signed.")
SIGNATURE_LOCKED = N_(
    "The approval was not signed. The account is locked after %(count)s wrong passwords; try again later."
)


def _signature_refusal(message: str) -> str:
    """The workflow's refusal of a signature, as a text the page translates (the same English words)."""
    if message == SIGNATURE_WRONG:
        return Text(SIGNATURE_WRONG)
    locked = Text(SIGNATURE_LOCKED, count=MAX_FAILED_LOGINS)
    return locked if message == locked else message


def _publish(draft: RulesetDraft, *, actor: User, check: DraftCheck, expected_lock: int) -> RulesetVersion:
    """Write the next version and its audit entry, and close the draft, in one transaction."""
    base = latest_version(draft.name)
    data = draft_data(draft)
    data["status"] = "published"
    text = rulesets.dump(data)
    sha = rulesets.sha256_text(text)
    label = f"{draft.name} v{draft.version}"
    published = events.VersionPublished(
        actor.username,
        label,
        base_version=base.version,
        base_sha256=base.sha256,
        version=draft.version,
        sha256=sha,
        draft_id=draft.id,
        change_note=data["change_note"],
        authors=draft.contributors,
        signature_meaning=PUBLISH_MEANING,
        scenarios_passed=check.scenario_count,
        changes=rulediff.diff(rulesets.parse_text(base.content), data),
    )
    entry = audit.append(db.session, published)
    version = RulesetVersion(
        name=draft.name,
        version=draft.version,
        sha256=sha,
        content=text,
        scenarios=draft.scenarios,
        supersedes=draft.base_version,
        change_note=data["change_note"],
        origin="published",
        authors=list(draft.contributors),
        approver=actor.username,
        audit_seq=entry.seq,
    )
    db.session.add(version)
    update_if_unchanged(RulesetDraft.lock, draft.id, expected_lock, conflict=DRAFT_CHANGED, status="published")
    try:
        commit_or_rollback()
    except IntegrityError:  # another approval published this version number a moment earlier
        raise ConflictError(
            Text(N_("%(label)s was published by someone else a moment ago; make a new draft from it."), label=label)
        ) from None
    return version


def refusal_kind(error: WorkflowError) -> str:
    """How an approval was refused, as the audit entry names it."""
    if isinstance(error, ApprovalRefusedError):
        return error.kind
    if isinstance(error, PublishBlocked):
        return "blocked"
    if isinstance(error, ConflictError):
        return "stale"
    return "refused"


def _refusal(actor: User, draft_id: int, label: str, error: WorkflowError) -> None:
    """Audit a refused approval in its own transaction: the refusal is kept although nothing is published."""
    db.session.rollback()
    problems = error.problems if isinstance(error, PublishBlocked) else []
    refused = events.ApprovalRefused(actor.username, draft_id, label, refusal_kind(error), error.message, problems)
    audit.append(db.session, refused)
    commit_or_rollback()

"""Publishing a draft: the second rule editor's signed approval (the two-person rule).

The checker and the scenarios run again (on durable_rules) and block publishing when either fails;
an approver who edited the draft is refused. Both refusals are audited in their own transaction.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError

from audit import events
from audit import log as audit
from engine import rulediff
from engine import ruleset as rulesets
from review_ui.db import db
from review_ui.models import RulesetDraft, RulesetVersion, User
from review_ui.ruleset_drafts import DRAFT_CHANGED, check_draft, draft_data, get_draft, require_editor
from review_ui.ruleset_versions import latest_version
from review_ui.workflow import verify_signature
from review_ui.writes import ConflictError, WorkflowError, commit_or_rollback, update_if_unchanged

PUBLISH_MEANING = (
    "I reviewed this draft, its change note, its checks and its scenarios, and approve it as the next "
    "published version of the ruleset. I did not author any part of it."
)


class PublishBlocked(WorkflowError):
    """Publishing (or submitting) refused because checks or scenarios fail."""

    def __init__(self, problems: list[str]):
        super().__init__(f"Publishing is blocked: {len(problems)} problem(s). First: {problems[0]}")
        self.problems = problems


def publish_draft(draft_id: int, *, actor: User, password: str, expected_lock: int) -> RulesetVersion:
    """The second rule editor's signed approval: publish the draft as the next version.

    Refused, with an audit entry, when the approver contributed to the draft or when checks or
    scenarios fail; refused without one for a wrong password or a draft that is not submitted.
    """
    require_editor(actor)
    verify_signature(
        actor, password, refused="The approval was not signed.", target_type="ruleset_draft", target_id=str(draft_id)
    )
    draft = get_draft(draft_id)
    if draft.status != "submitted":
        raise WorkflowError(f"This draft is {draft.status}; only a submitted draft can be approved.")
    if draft.lock != expected_lock:
        raise ConflictError("The draft changed since you opened it; nothing was published. Review it again.")
    if actor.username in draft.contributors:
        _refusal(actor, draft, ["self-approval: the approver edited this draft"], blocked=False)
        raise WorkflowError(
            "You edited this draft, so you cannot approve it: another rule editor must review and sign."
        )
    base = latest_version(draft.name)
    if base.version != draft.base_version:
        raise ConflictError(
            f"{base.label} was published after this draft was made from v{draft.base_version}; "
            "make a new draft from the newest version."
        )
    data = draft_data(draft)
    check = check_draft(draft, backend="durable")
    problems = check.problems(change_note=data.get("change_note", ""))
    if problems:
        _refusal(actor, draft, problems, blocked=True)
        raise PublishBlocked(problems)
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
        raise ConflictError(f"{label} was published by someone else a moment ago; make a new draft from it.") from None
    return version


def _refusal(actor: User, draft: RulesetDraft, problems: list[str], *, blocked: bool) -> None:
    """Audit a refused approval (its own transaction: the refusal is kept although nothing is published)."""
    db.session.rollback()
    audit.append(db.session, events.PublishRefused(actor.username, draft.id, draft.label, problems, blocked=blocked))
    commit_or_rollback()

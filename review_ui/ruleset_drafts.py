"""Ruleset drafts: the next version of one ruleset, edited by rule editors, checked and submitted for approval.

A draft's editors are its contributors (none of them may approve it, see review_ui.ruleset_publishing).
Every save is checked and refused with every problem found; concurrent edits are refused by an
optimistic lock. Every write appends its audit entry in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from flask import current_app

from audit import events
from audit import log as audit
from engine import impact, rulediff, ruleset_check, scenarios
from engine import ruleset as rulesets
from engine.errors import RulesetError
from review_ui.db import db
from review_ui.models import Role, RulesetDraft, User
from review_ui.ruleset_versions import evaluator_for, get_version, latest_version, version_evaluator
from review_ui.texts import N_, Text
from review_ui.writes import WorkflowError, commit_or_rollback, update_if_unchanged

DRAFT_CHANGED = Text(N_("Someone changed this draft while you were editing it; nothing was saved. Reload it."))


class DraftInvalid(WorkflowError):
    """A draft the checker refuses, with every problem found."""

    def __init__(self, errors: list[RulesetError]):
        super().__init__(
            Text(
                N_("The draft has %(count)s problem(s); nothing was saved: %(first)s"),
                count=len(errors),
                first=str(errors[0]),
            )
        )
        self.errors = errors


def require_editor(user: User) -> None:
    """Only rule editors change rulesets."""
    if user.role != Role.RULE_EDITOR:
        raise WorkflowError(Text(N_("Only a rule editor can change rulesets.")))


def require_editable(draft: RulesetDraft) -> None:
    """Only a draft being edited changes: a submitted draft is read-only to everyone, its author included."""
    if draft.status == "submitted":
        raise WorkflowError(
            Text(
                N_(
                    "This draft is submitted for approval and read-only; nothing was saved. "
                    "To change it, discard it and start a new draft."
                )
            )
        )
    if draft.status != "editing":
        raise WorkflowError(Text(N_("This draft is %(status)s; it can no longer be changed."), status=draft.status))


def create_draft(name: str, *, actor: User) -> RulesetDraft:
    """A draft of the next version, copied from the newest published one."""
    require_editor(actor)
    base = latest_version(name)
    data = rulesets.parse_text(base.content, base.label)
    data.update(version=base.version + 1, status="draft", supersedes=base.version, change_note="")
    draft = RulesetDraft(
        name=name,
        base_version=base.version,
        content=rulesets.dump(data),
        scenarios=base.scenarios,
        author=actor.username,
        contributors=[actor.username],
        status="editing",
    )
    db.session.add(draft)
    db.session.flush()
    audit.append(db.session, events.DraftCreated(actor.username, draft.id, draft.label, base.label, base.sha256))
    commit_or_rollback()
    return draft


def get_draft(draft_id: int) -> RulesetDraft:
    """One draft, or a WorkflowError."""
    draft = db.session.get(RulesetDraft, draft_id)
    if draft is None:
        raise WorkflowError(Text(N_("No such draft.")))
    return draft


def draft_data(draft: RulesetDraft) -> dict[str, Any]:
    """The draft's ruleset document, to edit."""
    return rulesets.parse_text(draft.content, draft.label)


def validate_draft(draft: RulesetDraft, data: dict[str, Any]) -> list[RulesetError]:
    """Every problem of a draft document, the fixed identity fields first."""
    fixed = {"ruleset": draft.name, "version": draft.version, "status": "draft", "supersedes": draft.base_version}
    errors = [
        RulesetError(f"a draft's {key!r} is {value!r}; it cannot be changed", ruleset=draft.label, field=key)
        for key, value in fixed.items()
        if data.get(key) != value
    ]
    return errors + list(ruleset_check.check_data(data))


def save_draft(
    draft_id: int,
    *,
    actor: User,
    expected_lock: int,
    data: dict[str, Any] | None = None,
    scenarios_text: str | None = None,
) -> RulesetDraft:
    """Save a changed draft after checking it; refused with every problem when the checker finds any."""
    require_editor(actor)
    draft = get_draft(draft_id)
    require_editable(draft)
    old = draft_data(draft)
    new = old if data is None else data
    errors = validate_draft(draft, new)
    if errors:
        raise DraftInvalid(errors)
    content = rulesets.dump(new)
    cases = draft.scenarios
    if scenarios_text is not None:
        try:
            cases = json.dumps(scenarios.parse(scenarios_text, "scenarios"), indent=1, ensure_ascii=False) + "\n"
        except ValueError as e:
            raise WorkflowError(str(e), "scenarios") from None
    if content == draft.content and cases == draft.scenarios:
        return draft
    changes = rulediff.diff(old, new)
    contributors = sorted({*draft.contributors, actor.username})
    update_if_unchanged(
        RulesetDraft.lock,
        draft.id,
        expected_lock,
        conflict=DRAFT_CHANGED,
        content=content,
        scenarios=cases,
        contributors=contributors,
        status="editing",
    )
    saved = events.DraftSaved(
        actor.username,
        draft.id,
        before_sha256=rulesets.sha256_text(draft.content),
        before_status=draft.status,
        sha256=rulesets.sha256_text(content),
        changes=changes,
        scenarios_changed=cases != draft.scenarios,
    )
    audit.append(db.session, saved)
    commit_or_rollback()
    db.session.expire_all()
    return get_draft(draft_id)


@dataclass
class DraftCheck:
    """The checker's problems and the scenario failures of a draft."""

    errors: list[RulesetError] = field(default_factory=list)
    failures: list[scenarios.Failure] = field(default_factory=list)
    scenario_count: int = 0

    def problems(self, *, change_note: str) -> list[str]:
        """Everything that blocks publishing."""
        out = [str(e) for e in self.errors] + [f"scenario {f}" for f in self.failures]
        if not change_note.strip():
            out.append(Text(N_("a change note is required: say what changed and why")))
        if not self.scenario_count and not self.errors:
            out.append(Text(N_("the draft has no scenarios")))
        return out


def check_draft(draft: RulesetDraft, backend: str = "python") -> DraftCheck:
    """Run the checker and the scenarios on a draft (with the draft's own scenarios)."""
    data = draft_data(draft)
    errors = validate_draft(draft, data)
    if errors:
        return DraftCheck(errors=errors)
    cases = scenarios.parse(draft.scenarios, f"{draft.label} scenarios")
    evaluator = evaluator_for(draft.content, draft.label, backend=backend)
    return DraftCheck(failures=scenarios.run(evaluator, cases), scenario_count=len(cases))


def submit_draft(draft_id: int, *, actor: User, expected_lock: int) -> RulesetDraft:
    """Ask another rule editor to review and approve. The checks run again at approval, where they block."""
    require_editor(actor)
    draft = get_draft(draft_id)
    if draft.status != "editing":
        raise WorkflowError(
            Text(N_("This draft is %(status)s; only a draft being edited can be submitted."), status=draft.status)
        )
    problems = check_draft(draft).problems(change_note=draft_data(draft).get("change_note", ""))
    update_if_unchanged(RulesetDraft.lock, draft.id, expected_lock, conflict=DRAFT_CHANGED, status="submitted")
    audit.append(
        db.session, events.DraftSubmitted(actor.username, draft.id, rulesets.sha256_text(draft.content), problems)
    )
    commit_or_rollback()
    db.session.expire_all()
    return get_draft(draft_id)


def discard_draft(draft_id: int, *, actor: User, expected_lock: int, reason: str) -> None:
    """Give a draft up; it stays readable and its history stays in the audit log."""
    require_editor(actor)
    draft = get_draft(draft_id)
    if draft.status not in ("editing", "submitted"):
        raise WorkflowError(Text(N_("This draft is %(status)s already."), status=draft.status))
    if not reason.strip():
        raise WorkflowError(Text(N_("Say why the draft is discarded.")), "reason")
    before = draft.status
    update_if_unchanged(RulesetDraft.lock, draft.id, expected_lock, conflict=DRAFT_CHANGED, status="discarded")
    audit.append(db.session, events.DraftDiscarded(actor.username, draft.id, before, reason.strip()))
    commit_or_rollback()


def draft_impact(draft: RulesetDraft, items: list[tuple[int, Any]]) -> impact.Impact:
    """Replay records through the published base version and the draft (both on the plain-Python backend)."""
    base = get_version(draft.name, draft.base_version)
    errors = validate_draft(draft, draft_data(draft))
    if errors:
        raise DraftInvalid(errors)
    return impact.replay(
        items,
        version_evaluator(base, "python"),
        evaluator_for(draft.content, draft.label, current_app.config["MGREVIEW_JURISDICTION"], "python"),
    )

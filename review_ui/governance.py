"""Ruleset governance: drafts, checks, two-person signed publishing, and re-evaluating cases.

Published versions live in the `ruleset_version` table (the database refuses to change a row) with
their exact text and sha256; the versions shipped in `rulesets/` are registered there on first use.
A draft is the next version of one ruleset. Its editors are its contributors, and none of them may
approve it. Publishing runs the checker and the scenarios again and is refused (and audited) when
either fails. Every write here appends its audit entry in the same transaction.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from audit import log as audit
from engine import impact, rulediff, ruleset_check, scenarios
from engine import ruleset as rulesets
from engine.errors import RulesetError
from engine.evaluate import Evaluator
from review_ui.db import db
from review_ui.models import SEVERITY_RANK, Case, CaseFinding, Reevaluation, RulesetDraft, RulesetVersion, User, utcnow
from review_ui.workflow import ConflictError, WorkflowError, commit_or_rollback, ruleset_label, verify_signature

EDITOR_ROLE = "rule_editor"
DEFAULT_RULESET = "magnesium"
PUBLISH_MEANING = (
    "I reviewed this draft, its change note, its checks and its scenarios, and approve it as the next "
    "published version of the ruleset. I did not author any part of it."
)
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str | None, str], Evaluator] = OrderedDict()
_cache_lock = threading.Lock()


class DraftInvalid(WorkflowError):
    """A draft the checker refuses, with every problem found."""

    def __init__(self, errors: list[RulesetError]):
        super().__init__(f"The draft has {len(errors)} problem(s); nothing was saved: {errors[0]}")
        self.errors = errors


class PublishBlocked(WorkflowError):
    """Publishing (or submitting) refused because checks or scenarios fail."""

    def __init__(self, problems: list[str]):
        super().__init__(f"Publishing is blocked: {len(problems)} problem(s). First: {problems[0]}")
        self.problems = problems


# --- evaluators for stored versions ------------------------------------------------------------


def evaluator_for(text: str, origin: str, jurisdiction: str | None = None, backend: str = "durable") -> Evaluator:
    """An evaluator for a ruleset text, compiled once per process and kept for the last few texts.

    Drafts are checked and previewed with the plain-Python backend (engine/interpreter.py, held to
    durable_rules by the differential tests): durable_rules rulesets cannot be freed safely, and a
    draft changes with every save. Approval runs the scenarios on durable_rules.
    """
    key = (rulesets.sha256_text(text), jurisdiction, backend)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    made = Evaluator(rulesets.load_text(text, origin), jurisdiction, backend=backend)
    with _cache_lock:
        _cache[key] = made
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return made


def version_evaluator(version: RulesetVersion, backend: str = "durable") -> Evaluator:
    """The evaluator of a published version, with the app's jurisdiction setting."""
    return evaluator_for(version.content, version.label, current_app.config["MGREVIEW_JURISDICTION"], backend)


def active_evaluator() -> Evaluator:
    """What the app evaluates with: a pinned file (MGREVIEW_RULESET), else the newest published version."""
    pinned = current_app.config["MGREVIEW_RULESET"]
    if pinned:
        text = rulesets.exact_text(Path(pinned))
        return evaluator_for(text, str(pinned), current_app.config["MGREVIEW_JURISDICTION"])
    return version_evaluator(latest_version(DEFAULT_RULESET))


def latest_version(name: str, *, register: bool = True) -> RulesetVersion:
    """The newest usable published version of a ruleset (registering the shipped files first if none is known).

    A stored version is usable only when its text matches its sha256 and its publication is on the
    audit chain (`version_problem`); an unusable one is skipped and reported, never evaluated with.
    """
    query = select(RulesetVersion.id).where(RulesetVersion.name == name).order_by(RulesetVersion.version.desc())
    ids = list(db.session.execute(query).scalars())  # ids only: the newest text is usually the only one read
    seen = bool(ids)
    for version_id in ids:
        found = db.session.get_one(RulesetVersion, version_id)
        problem = version_problem(found)
        if problem is None:
            return found
        _report(found, problem)
    if not seen and register:
        register_files()
        return latest_version(name, register=False)
    raise WorkflowError(f"No usable published version of ruleset {name!r}.")


def get_version(name: str, version: int) -> RulesetVersion:
    """One published, usable version, or a WorkflowError (saying why a stored one is refused)."""
    found = db.session.execute(
        select(RulesetVersion).where(RulesetVersion.name == name, RulesetVersion.version == version)
    ).scalar_one_or_none()
    if found is None:
        raise WorkflowError(f"No published version {name} v{version}.")
    problem = version_problem(found)
    if problem is not None:
        _report(found, problem)
        raise WorkflowError(f"{found.label} is refused: {problem}.")
    return found


def version_problem(version: RulesetVersion) -> str | None:
    """Why a stored version must not be used, or None: its text must match its sha256, and its publication
    (the signed approval, or for a shipped file its manifest entry and registration) must be an authentic
    entry of the audit chain naming this version and hash."""
    if rulesets.sha256_text(version.content) != version.sha256:
        return "its stored text does not match its sha256 (edited after publishing)"
    entry = audit.entry_at(db.session, version.audit_seq) if version.audit_seq else None
    if entry is None or not entry.is_authentic():
        return "no authentic audit entry records its publication (inserted outside mgreview)"
    after, details = json.loads(entry.after) or {}, json.loads(entry.details) or {}
    if entry.target_id != version.label or not isinstance(after, dict) or after.get("sha256") != version.sha256:
        return f"audit entry {entry.seq} does not record the publication of this version and hash"
    if version.origin == "file":
        manifest = _manifest()
        if entry.action != "ruleset.register" or manifest.get(str(after.get("file"))) != version.sha256:
            return f"it is not a shipped file recorded in {rulesets.PUBLISHED_MANIFEST.name} with this sha256"
        return None
    if version.origin == "published":
        approver = details.get("approver") if isinstance(details, dict) else None
        if entry.action != "ruleset.publish" or not version.approver or approver != version.approver:
            return f"audit entry {entry.seq} is not its signed approval"
        if version.approver in (details.get("authors") or []):
            return "its approver is one of its authors"
        return None
    return f"unknown origin {version.origin!r}"


def check_versions() -> list[tuple[RulesetVersion, str | None]]:
    """Every stored version with the reason it is refused (None when usable), for `rulesets check`."""
    query = select(RulesetVersion).order_by(RulesetVersion.name, RulesetVersion.version)
    return [(v, version_problem(v)) for v in db.session.execute(query).scalars()]


def _manifest() -> dict[str, str]:
    path = rulesets.PUBLISHED_MANIFEST
    data = json.loads(path.read_text("utf-8")) if path.exists() else {}
    return data if isinstance(data, dict) else {}


def _report(version: RulesetVersion, problem: str) -> None:
    """Log a refused version once per app (it is also listed by `rulesets check` and on the rulesets page)."""
    reported: set[tuple[int, str]] = current_app.extensions.setdefault("mgreview_refused_versions", set())
    if (version.id, problem) not in reported:
        reported.add((version.id, problem))
        current_app.logger.error("ruleset version %s (id %s) refused: %s", version.label, version.id, problem)


def register_files(directory: Path = rulesets.RULESETS_DIR, *, actor: str = "system") -> list[RulesetVersion]:
    """Record every published version file shipped in `directory`; idempotent. A changed file is refused."""
    added = []
    for path in rulesets.ruleset_files(directory):
        text = rulesets.exact_text(path)
        data = rulesets.parse_text(text, str(path))
        if data.get("status") != "published":
            continue
        errors = rulesets.check_file(path)
        if errors:
            raise WorkflowError(f"{path}: {errors[0]}")
        sha = rulesets.sha256_text(text)
        existing = db.session.execute(
            select(RulesetVersion).where(
                RulesetVersion.name == data["ruleset"], RulesetVersion.version == data["version"]
            )
        ).scalar_one_or_none()
        if existing is not None:
            if existing.sha256 != sha:
                raise WorkflowError(
                    f"{path}: sha256 {sha} differs from {existing.label} as published here ({existing.sha256}); "
                    "a published version never changes"
                )
            continue
        scenario_file = scenarios.path_for(path)
        label = f"{data['ruleset']} v{data['version']}"
        entry = audit.append(
            db.session,
            audit.AuditEvent(
                actor,
                "ruleset.register",
                "ruleset",
                label,
                after={"sha256": sha, "file": f"{path.parent.name}/{path.name}"},
                ruleset=f"{label} {sha[:12]}",
            ),
        )
        version = RulesetVersion(
            name=data["ruleset"],
            version=data["version"],
            sha256=sha,
            content=text,
            scenarios=rulesets.exact_text(scenario_file) if scenario_file.exists() else "[]",
            supersedes=data.get("supersedes"),
            change_note=data.get("change_note", ""),
            origin="file",
            authors=[],
            approver=None,
            audit_seq=entry.seq,
        )
        db.session.add(version)
        added.append(version)
    commit_or_rollback()
    return added


def export_versions(directory: Path = rulesets.RULESETS_DIR) -> list[Path]:
    """Write versions published here (not yet in `directory`) as files, with scenarios and manifest entries."""
    manifest_path = directory / rulesets.PUBLISHED_MANIFEST.name
    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.exists() else {}
    written = []
    for version in db.session.execute(select(RulesetVersion).order_by(RulesetVersion.id)).scalars():
        path = directory / version.name / f"v{version.version}.json"
        key = f"{version.name}/{path.name}"
        if path.exists():
            if rulesets.sha256_of(path) != version.sha256:
                raise WorkflowError(f"{path} exists with other content than {version.label} ({version.sha256})")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(version.content.encode("utf-8"))
        scenarios.path_for(path).write_bytes(version.scenarios.encode("utf-8"))
        manifest[key] = version.sha256
        written.append(path)
    if written:
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", "utf-8")
    return written


# --- drafts -------------------------------------------------------------------------------------


def require_editor(user: User) -> None:
    """Only rule editors change rulesets."""
    if user.role != EDITOR_ROLE:
        raise WorkflowError("Only a rule editor can change rulesets.")


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
    audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            "ruleset.draft.create",
            "ruleset_draft",
            str(draft.id),
            after={"draft": draft.label, "base_sha256": base.sha256},
            ruleset=f"{base.label} {base.sha256[:12]}",
        ),
    )
    commit_or_rollback()
    return draft


def get_draft(draft_id: int) -> RulesetDraft:
    """One draft, or a WorkflowError."""
    draft = db.session.get(RulesetDraft, draft_id)
    if draft is None:
        raise WorkflowError("No such draft.")
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
    if draft.status not in ("editing", "submitted"):
        raise WorkflowError(f"This draft is {draft.status}; it can no longer be changed.")
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
    _update_draft(
        draft,
        expected_lock,
        content=content,
        scenarios=cases,
        contributors=contributors,
        status="editing",
    )
    audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            "ruleset.draft.save",
            "ruleset_draft",
            str(draft.id),
            before={"sha256": rulesets.sha256_text(draft.content), "status": draft.status},
            after={"sha256": rulesets.sha256_text(content), "status": "editing"},
            details={"changes": changes[:200], "scenarios_changed": cases != draft.scenarios},
        ),
    )
    commit_or_rollback()
    db.session.expire_all()
    return get_draft(draft_id)


def _update_draft(draft: RulesetDraft, expected_lock: int, **values: Any) -> None:
    """Write a draft only if nobody changed it since `expected_lock` was read."""
    changed = db.session.execute(
        update(RulesetDraft)
        .where(RulesetDraft.id == draft.id, RulesetDraft.lock == expected_lock)
        .values(lock=RulesetDraft.lock + 1, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        db.session.rollback()
        raise ConflictError("Someone changed this draft while you were editing it; nothing was saved. Reload it.")


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
            out.append("a change note is required: say what changed and why")
        if not self.scenario_count and not self.errors:
            out.append("the draft has no scenarios")
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
        raise WorkflowError(f"This draft is {draft.status}; only a draft being edited can be submitted.")
    problems = check_draft(draft).problems(change_note=draft_data(draft).get("change_note", ""))
    _update_draft(draft, expected_lock, status="submitted")
    audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            "ruleset.draft.submit",
            "ruleset_draft",
            str(draft.id),
            before={"status": "editing"},
            after={"status": "submitted", "sha256": rulesets.sha256_text(draft.content)},
            details={"open_problems": problems[:200]},
        ),
    )
    commit_or_rollback()
    db.session.expire_all()
    return get_draft(draft_id)


def discard_draft(draft_id: int, *, actor: User, expected_lock: int, reason: str) -> None:
    """Give a draft up; it stays readable and its history stays in the audit log."""
    require_editor(actor)
    draft = get_draft(draft_id)
    if draft.status not in ("editing", "submitted"):
        raise WorkflowError(f"This draft is {draft.status} already.")
    if not reason.strip():
        raise WorkflowError("Say why the draft is discarded.", "reason")
    before = draft.status
    _update_draft(draft, expected_lock, status="discarded")
    audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            "ruleset.draft.discard",
            "ruleset_draft",
            str(draft.id),
            before={"status": before},
            after={"status": "discarded"},
            reason=reason.strip(),
        ),
    )
    commit_or_rollback()


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
        _refusal(actor, draft, "ruleset.publish.refused", ["self-approval: the approver edited this draft"])
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
        _refusal(actor, draft, "ruleset.publish.blocked", problems)
        raise PublishBlocked(problems)
    data["status"] = "published"
    text = rulesets.dump(data)
    sha = rulesets.sha256_text(text)
    label = f"{draft.name} v{draft.version}"
    entry = audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            "ruleset.publish",
            "ruleset",
            label,
            before={"version": base.version, "sha256": base.sha256},
            after={"version": draft.version, "sha256": sha, "draft": draft.id},
            reason=data["change_note"],
            ruleset=f"{label} {sha[:12]}",
            details={
                "authors": draft.contributors,
                "approver": actor.username,
                "signature_meaning": PUBLISH_MEANING,
                "scenarios_passed": check.scenario_count,
                "changes": rulediff.diff(rulesets.parse_text(base.content), data)[:200],
            },
        ),
    )
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
    _update_draft(draft, expected_lock, status="published")
    try:
        commit_or_rollback()
    except IntegrityError:  # another approval published this version number a moment earlier
        raise ConflictError(f"{label} was published by someone else a moment ago; make a new draft from it.") from None
    return version


def _refusal(actor: User, draft: RulesetDraft, action: str, problems: list[str]) -> None:
    """Audit a refused approval (its own transaction: the refusal is kept although nothing is published)."""
    db.session.rollback()
    audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            action,
            "ruleset_draft",
            str(draft.id),
            reason="; ".join(problems[:20]),
            details={"draft": draft.label, "problems": problems[:200]},
        ),
    )
    commit_or_rollback()


# --- impact and re-evaluation -----------------------------------------------------------------


def stored_case_items(limit: int) -> list[tuple[int, Any]]:
    """The newest `limit` stored cases as (case id, intake record) items to replay."""
    rows = db.session.execute(select(Case.id, Case.intake).order_by(Case.id.desc()).limit(limit)).all()
    return [(case_id, intake) for case_id, intake in rows]


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


def reevaluate_case(case_id: int, *, actor: User, expected_version: int) -> Reevaluation:
    """Evaluate a case under the newest published version and record what changed.

    A pending case takes the new result (findings, plan, ruleset); a decided case keeps its result
    and its signed decision untouched, and the re-evaluation is recorded beside them.
    """
    case = db.session.get(Case, case_id)
    if case is None:
        raise WorkflowError("No such case.")
    newest = latest_version(case.ruleset_id)
    if newest.version <= case.ruleset_version:
        raise WorkflowError(f"This case is already evaluated under {newest.label}, the newest version.")
    result = impact.result_of(version_evaluator(newest), (case.result.get("line", 0), case.intake))
    change = impact.compare(case.result, result)
    adopt = case.status == "pending" and result["status"] == "ok"
    previous = case.result["ruleset"]
    if adopt:
        findings = result["findings"]
        highest = findings[0]["severity"] if findings else "none"
        changed = db.session.execute(
            update(Case)
            .where(Case.id == case_id, Case.version == expected_version, Case.status == "pending")
            .values(
                result=result,
                highest_severity=highest,
                severity_rank=SEVERITY_RANK[highest],
                ruleset_version=newest.version,
                ruleset_sha256=newest.sha256,
                version=Case.version + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            db.session.rollback()
            raise ConflictError("This case changed while you were looking at it; nothing was re-evaluated. Reload.")
        for old in case.findings:
            db.session.delete(old)
        db.session.add_all(
            CaseFinding(case_id=case_id, finding_id=f["id"], severity=f["severity"], rank=SEVERITY_RANK[f["severity"]])
            for f in findings
        )
    entry = audit.append(
        db.session,
        audit.AuditEvent(
            actor.username,
            "case.reevaluate",
            "case",
            str(case_id),
            before={"ruleset": previous, "status": case.status},
            after={"ruleset": result["ruleset"], "adopted": adopt},
            ruleset=ruleset_label(result["ruleset"]),
            details={"changes": change.lines(), "patient_ref": case.patient_ref},
        ),
    )
    record = Reevaluation(
        case_id=case_id,
        actor=actor.username,
        previous_ruleset=previous,
        ruleset=result["ruleset"],
        result=result,
        changes=change.lines(),
        adopted=adopt,
        audit_seq=entry.seq,
    )
    db.session.add(record)
    commit_or_rollback()
    db.session.expire_all()
    return record

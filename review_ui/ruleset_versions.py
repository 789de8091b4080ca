"""Published ruleset versions: the registry, the evaluators built from them, and exporting them as files.

Published versions live in the `ruleset_version` table (the database refuses to change a row) with
their exact text and sha256; the versions shipped in `rulesets/` are registered there on first use.
A stored version is used only when its text matches its sha256 and its publication is an authentic
entry of the audit chain.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from audit import events
from audit import log as audit
from engine import ruleset as rulesets
from engine import scenarios
from engine.evaluate import Evaluator
from review_ui.db import db
from review_ui.models import RulesetVersion
from review_ui.texts import N_, Text
from review_ui.writes import WorkflowError, commit_or_rollback

DEFAULT_RULESET = "magnesium"
_CACHE_SIZE = 8
_cache: OrderedDict[tuple[str, str | None, str], Evaluator] = OrderedDict()
_cache_lock = threading.Lock()


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
    raise WorkflowError(Text(N_("No usable published version of ruleset '%(name)s'."), name=name))


def get_version(name: str, version: int) -> RulesetVersion:
    """One published, usable version, or a WorkflowError (saying why a stored one is refused)."""
    found = db.session.execute(
        select(RulesetVersion).where(RulesetVersion.name == name, RulesetVersion.version == version)
    ).scalar_one_or_none()
    if found is None:
        raise WorkflowError(Text(N_("No published version %(name)s v%(version)s."), name=name, version=version))
    problem = version_problem(found)
    if problem is not None:
        _report(found, problem)
        raise WorkflowError(Text(N_("%(label)s is refused: %(problem)s."), label=found.label, problem=problem))
    return found


def version_problem(version: RulesetVersion) -> str | None:
    """Why a stored version must not be used, or None: its text must match its sha256, and its publication
    (the signed approval, or for a shipped file its manifest entry and registration) must be an authentic
    entry of the audit chain naming this version and hash."""
    if rulesets.sha256_text(version.content) != version.sha256:
        return Text(N_("its stored text does not match its sha256 (edited after publishing)"))
    entry = audit.entry_at(db.session, version.audit_seq) if version.audit_seq else None
    if entry is None or not entry.is_authentic():
        return Text(N_("no authentic audit entry records its publication (inserted outside mgreview)"))
    after, details = json.loads(entry.after) or {}, json.loads(entry.details) or {}
    if entry.target_id != version.label or not isinstance(after, dict) or after.get("sha256") != version.sha256:
        return Text(N_("audit entry %(seq)s does not record the publication of this version and hash"), seq=entry.seq)
    if version.origin == "file":
        manifest = _manifest()
        if entry.action != "ruleset.register" or manifest.get(str(after.get("file"))) != version.sha256:
            return Text(
                N_("it is not a shipped file recorded in %(manifest)s with this sha256"),
                manifest=rulesets.PUBLISHED_MANIFEST.name,
            )
        return None
    if version.origin == "published":
        approver = details.get("approver") if isinstance(details, dict) else None
        if entry.action != "ruleset.publish" or not version.approver or approver != version.approver:
            return Text(N_("audit entry %(seq)s is not its signed approval"), seq=entry.seq)
        if version.approver in (details.get("authors") or []):
            return Text(N_("its approver is one of its authors"))
        return None
    return Text(N_("unknown origin '%(origin)s'"), origin=version.origin)


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
        registered = events.VersionRegistered(actor, label, sha, f"{path.parent.name}/{path.name}")
        entry = audit.append(db.session, registered)
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

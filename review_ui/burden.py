"""The rows the alert-burden page counts: cases, their signed decisions and the CDS Hooks feedback in the audit log."""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from audit import log as audit
from engine import burden as engine_burden
from engine.burden import CaseRow, DecisionRow, FeedbackRow, FiredFinding
from engine.cards import CARD_NAMESPACE
from review_ui import ruleset_versions
from review_ui.db import db
from review_ui.models import Batch, Case, CaseFinding, Decision, RulesetDraft, RulesetVersion

CDS_BATCH_PREFIX = "cds-hooks "  # import_records filename of a case made by a CDS Hooks call: "cds-hooks SERVICE HOOK"
FEEDBACK_ACTIONS = ("cds.feedback.accepted", "cds.feedback.overridden")


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite returns naive datetimes


def _fired(result: dict[str, Any]) -> tuple[FiredFinding, ...]:
    return tuple(
        FiredFinding(str(f["id"]), str(f["severity"]), tuple(f.get("rules") or ()))
        for f in result.get("findings") or ()
    )


def case_rows(
    finding_ids: Collection[str] | None = None,
) -> tuple[list[CaseRow], dict[str, tuple[FiredFinding, str, datetime]]]:
    """Cases as rows (all, or those with one of `finding_ids`), and the CDS Hooks cards they showed.

    The cards map a card uuid to its finding, patient and the time the case was stored.
    """
    query = select(Case.id, Case.patient_ref, Case.created_at, Case.result, Batch.filename).join(
        Batch, Batch.id == Case.batch_id
    )
    if finding_ids is not None:  # the results are the heavy part: read only those that can count
        query = query.where(Case.id.in_(select(CaseFinding.case_id).where(CaseFinding.finding_id.in_(finding_ids))))
    rows: list[CaseRow] = []
    cards: dict[str, tuple[FiredFinding, str, datetime]] = {}
    for case_id, patient_ref, created_at, result, filename in db.session.execute(query):
        row = CaseRow(case_id, patient_ref, _aware(created_at), _fired(result))
        rows.append(row)
        if filename.startswith(CDS_BATCH_PREFIX):
            hook_instance = filename[len(CDS_BATCH_PREFIX) :].partition(" ")[2]  # after the service id
            for found in row.findings:  # the card uuid engine.cards gives each finding of this hook call
                card = str(uuid.uuid5(CARD_NAMESPACE, f"{hook_instance}:{found.finding_id}"))
                cards[card] = (found, patient_ref, row.created_at)
    return rows, cards


def decision_rows() -> list[DecisionRow]:
    """Every signed decision as a row."""
    query = select(Decision.case_id, Decision.kind, Decision.override_code, Decision.signed_at)
    return [DecisionRow(c, k, o, _aware(s)) for c, k, o, s in db.session.execute(query)]


def _when(after: dict[str, Any], at: str) -> datetime:
    """The client's outcomeTimestamp, else the time the feedback was recorded."""
    for text in (after.get("outcomeTimestamp"), at):
        try:
            return _aware(datetime.fromisoformat(str(text).replace("Z", "+00:00")))
        except ValueError:
            continue
    return datetime.now(UTC)


def feedback_rows(cards: dict[str, tuple[FiredFinding, str, datetime]]) -> list[FeedbackRow]:
    """CDS Hooks feedback from the audit log; a card shown with a stored case is traced to its finding."""
    out = []
    for entry in audit.read(db.session, target_type="card", newest_first=False):
        if entry.action not in FEEDBACK_ACTIONS:
            continue
        after = json.loads(entry.after) or {}
        details = json.loads(entry.details) or {}
        code = ((details.get("overrideReason") or {}).get("reason") or {}).get("code")
        shown = cards.get(entry.target_id)
        out.append(
            FeedbackRow(
                card=entry.target_id,
                outcome=str(after.get("outcome") or entry.action.rsplit(".", 1)[-1]),
                reason_code=str(code) if code else None,
                at=_when(after, entry.at),
                finding=shown[0] if shown else None,
                patient_ref=shown[1] if shown else None,
                shown_at=shown[2] if shown else None,
            )
        )
    return out


def ruleset_document(version: RulesetVersion | RulesetDraft) -> dict[str, Any]:
    """The parsed ruleset text of a version or draft."""
    return dict(json.loads(version.content))


def rule_findings(document: dict[str, Any]) -> dict[str, str | None]:
    """Rule id -> the finding id it reports (None for a rule that only derives a fact)."""
    return {str(r["id"]): (r.get("then") or {}).get("finding") for r in document.get("rules", [])}


def finding_titles(document: dict[str, Any]) -> dict[str, str]:
    """Finding id -> its title in the ruleset's catalogue."""
    return {str(k): str(v.get("title", "")) for k, v in (document.get("findings") or {}).items()}


def compute(document: dict[str, Any] | None = None, *, only_findings: bool = False) -> engine_burden.Burden:
    """The alert burden of every rule, over all cases, decisions and CDS Hooks feedback stored so far.

    `only_findings`: read only the cases with a finding of the rules in `document` (for a few rules).
    """
    findings = rule_findings(document) if document else {}
    cases, cards = case_rows([f for f in findings.values() if f] if only_findings else None)
    return engine_burden.compute(
        cases,
        decision_rows(),
        feedback_rows(cards),
        rule_findings=findings,
    )


def current_document() -> dict[str, Any]:
    """The newest published version of the default ruleset, parsed."""
    return ruleset_document(ruleset_versions.latest_version(ruleset_versions.DEFAULT_RULESET))


def changed_rules(draft: RulesetDraft) -> list[str]:
    """Ids of the rules a draft adds, removes or changes against its base version, in the draft's order."""
    base = ruleset_document(ruleset_versions.get_version(draft.name, draft.base_version))
    before = {r["id"]: r for r in base.get("rules", [])}
    after = {r["id"]: r for r in ruleset_document(draft).get("rules", [])}
    ids = [rid for rid, rule in after.items() if before.get(rid) != rule]
    return ids + [rid for rid in before if rid not in after]


def draft_burden(draft: RulesetDraft) -> list[engine_burden.RuleBurden]:
    """The burden of each rule the draft changes, a zero row for a changed rule that never fired."""
    ids = changed_rules(draft)
    if not ids:
        return []
    document = ruleset_document(draft)
    known = rule_findings(document) | rule_findings(
        ruleset_document(ruleset_versions.get_version(draft.name, draft.base_version))
    )
    changed = {"rules": [{"id": rid, "then": {"finding": known.get(rid)}} for rid in ids]}
    return compute(changed, only_findings=True).for_rules(ids)

"""The audit log page and its CSV export: filtered by role, verified, each entry naming its patient or version."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from flask import Blueprint, Response, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from audit import log as audit
from review_ui.auth import roles_required
from review_ui.db import db
from review_ui.forms import AuditFilter
from review_ui.models import ANY_ROLE, Case, Role
from review_ui.spreadsheets import spreadsheet_safe

bp = Blueprint("audit", __name__)


RULE_EDITOR_AUDIT = ("ruleset", "ruleset_draft")  # rule editors see rulesets' entries, not patients' plans


def _audit_entries(form: AuditFilter, limit: int | None) -> list[audit.AuditEntry]:
    return audit.read(
        db.session,
        target_types=RULE_EDITOR_AUDIT if current_user.role == Role.RULE_EDITOR else None,
        action=form.action.data or None,
        actor=form.actor.data or None,
        target_type=form.target_type.data or None,
        target_id=form.target_id.data or None,
        limit=limit,
    )


@bp.route("/audit")
@roles_required(*ANY_ROLE)
def log_page() -> Any:
    """The overall audit log, filterable, with the chain's verification; each entry names its patient or version."""
    form = AuditFilter(request.args)
    entries = with_subjects([e.as_dict() for e in _audit_entries(form, 500)])
    return render_template(
        "audit.html", form=form, entries=entries, verification=audit.verify(db.session), args=request.args.to_dict()
    )


RULESET_LABEL = re.compile(r"^(?P<name>[\w.-]+) v(?P<version>\d+)$")  # how ruleset entries name their target


def with_subjects(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each entry with what it is about in words (`subject`) and a link to it (`link`): the patient's case,
    the import, the ruleset version or draft; entries about users name the user and link nowhere."""
    case_ids = {int(e["target_id"]) for e in entries if e["target_type"] == "case" and e["target_id"].isdigit()}
    refs = dict(db.session.execute(select(Case.id, Case.patient_ref).where(Case.id.in_(case_ids))).all())
    for entry in entries:
        entry["subject"], entry["link"] = _subject(entry, refs)
    return entries


def _subject(entry: dict[str, Any], refs: dict[int, str]) -> tuple[str, str | None]:
    kind, target = entry["target_type"], entry["target_id"]
    if kind == "case":
        ref = refs.get(int(target)) if target.isdigit() else None
        ref = ref or (entry.get("details") or {}).get("patient_ref") or "?"
        link = (
            url_for("cases.case_page", case_id=int(target)) if target.isdigit() and current_user.works_cases else None
        )
        return _("patient %(ref)s (case %(id)s)", ref=ref, id=target), link
    if kind == "batch":
        link = (
            url_for("imports.batch_page", batch_id=int(target))
            if target.isdigit() and current_user.works_cases
            else None
        )
        return _("import %(id)s", id=target), link
    if kind == "ruleset":
        found = RULESET_LABEL.match(target)
        link = url_for("rulesets.version_page", name=found["name"], version=int(found["version"])) if found else None
        return _("ruleset %(label)s", label=target), link
    if kind == "ruleset_draft":
        link = (
            url_for("rulesets.draft_page", draft_id=int(target))
            if target.isdigit() and current_user.reads_drafts
            else None
        )
        return _("ruleset draft %(id)s", id=target), link
    return _("user %(name)s", name=target) if kind == "user" else f"{kind} {target}", None


@bp.route("/audit.csv")
@roles_required(*ANY_ROLE)
def export() -> Response:
    """The filtered audit log as CSV."""
    form = AuditFilter(request.args)
    out = io.StringIO()
    writer = csv.writer(out)
    columns = [*audit.HASHED_FIELDS, "hash"]
    writer.writerow(columns)
    for entry in _audit_entries(form, None):
        writer.writerow([spreadsheet_safe(getattr(entry, c)) for c in columns])
    return Response(
        out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=mgreview-audit.csv"}
    )

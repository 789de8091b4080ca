"""The alert-burden page under Rulesets: which rules fire, and which ones clinicians override."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, current_app, render_template
from flask_babel import get_locale

from engine import burden as engine_burden
from review_ui import burden
from review_ui.auth import roles_required
from review_ui.models import DRAFT_READERS, RulesetDraft
from review_ui.spreadsheets import spreadsheet_safe
from review_ui.workflow import WorkflowError

bp = Blueprint("burden", __name__, url_prefix="/rulesets")


@bp.route("/burden")
@roles_required(*DRAFT_READERS)
def page() -> Any:
    """Per rule and finding: alerts, overrides and their reasons, repeats per patient, time to decision."""
    document = burden.current_document()
    stats = burden.compute(document)
    try:
        plot: str | None = engine_burden.png_data_uri(stats)
    except ImportError:  # matplotlib is the optional `report` extra
        current_app.logger.info("alert burden: matplotlib not installed, page shown without plots")
        plot = None
    return render_template("burden.html", stats=stats, titles=finding_titles(document), plot=plot)


def finding_titles(document: dict[str, Any]) -> dict[str, str]:
    """Finding id -> its catalogue title in the page's language (Dutch `title_nl`, else the English title)."""
    titles = burden.finding_titles(document)
    if str(get_locale()) != "nl":
        return titles
    findings = document.get("findings") or {}
    return {k: str(findings.get(k, {}).get("title_nl") or title) for k, title in titles.items()}


@bp.route("/burden.csv")
@roles_required(*DRAFT_READERS)
def export() -> Response:
    """The alert burden per rule as CSV."""
    stats = burden.compute(burden.current_document())
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(engine_burden.CSV_COLUMNS)
    for row in engine_burden.table(stats):
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=mgreview-alert-burden.csv"},
    )


@bp.app_template_global("draft_burden")
def draft_burden(draft: RulesetDraft) -> dict[str, Any]:
    """For the draft page: the burden of each rule the draft changes, and the findings' titles."""
    try:
        return {"rows": burden.draft_burden(draft), "titles": finding_titles(burden.ruleset_document(draft))}
    except (WorkflowError, ValueError) as e:  # a refused base version, or a draft text that does not parse
        current_app.logger.warning("alert burden of draft %s not shown: %s", draft.id, e)
        return {"rows": [], "titles": {}}


@bp.app_template_filter("duration")
def duration(seconds: float | None) -> str:
    """`—`, `45 s`, `12 min`, `3.5 h` or `2.0 d`: a time to decision a person reads at a glance."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"

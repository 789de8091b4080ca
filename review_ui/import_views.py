"""Importing intake files: the upload page and each import's page (new cases, pending cases it updated, rejects)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from review_ui import triage, workflow
from review_ui.auth import roles_required
from review_ui.db import db
from review_ui.forms import ImportForm
from review_ui.intake import evaluator, uploaded_items
from review_ui.models import CLINICAL, Batch, Case, CaseRevision

bp = Blueprint("imports", __name__)


@bp.route("/import", methods=["GET", "POST"])
@roles_required(*CLINICAL)
def upload() -> Any:
    """Upload an intake file: records are evaluated and become cases; rejects are listed with reasons."""
    form = ImportForm()
    if form.validate_on_submit():
        name = form.file.data.filename or "upload"
        try:
            items = uploaded_items(form.file.data)
        except workflow.WorkflowError as e:
            form.file.errors = [*form.file.errors, e.message]
            batches = db.session.execute(select(Batch).order_by(Batch.id.desc()).limit(20)).scalars().all()
            return render_template("import.html", form=form, batches=batches), 400
        try:
            report = workflow.import_records(items, filename=name, actor=current_user.username, evaluator=evaluator())
        except workflow.ConflictError as e:  # a case decided while the import superseded it: nothing was imported
            flash(e.message, "error")
            return redirect(url_for("imports.upload"))
        flash(
            _(
                "Imported %(name)s: %(new)s new cases, %(duplicates)s already imported, %(rejected)s rejected; "
                "%(superseded)s pending cases updated to a new version.",
                name=name,
                new=len(report.accepted),
                duplicates=len(report.duplicates),
                rejected=len(report.rejected),
                superseded=len(report.superseded),
            ),
            "success" if not report.rejected else "warning",
        )
        return redirect(url_for("imports.batch_page", batch_id=report.batch_id))
    batches = db.session.execute(select(Batch).order_by(Batch.id.desc()).limit(20)).scalars().all()
    return render_template("import.html", form=form, batches=batches)


@bp.route("/batches/<int:batch_id>")
@roles_required(*CLINICAL)
def batch_page(batch_id: int) -> Any:
    """An import: counts, new cases, pending cases it updated, rejected records with reasons."""
    batch = db.get_or_404(Batch, batch_id)
    accepted = db.session.execute(select(Case).where(Case.batch_id == batch_id).order_by(Case.id)).scalars().all()
    revisions = (
        db.session.execute(select(CaseRevision).where(CaseRevision.batch_id == batch_id).order_by(CaseRevision.id))
        .scalars()
        .all()
    )
    ruleset, language = evaluator().ruleset, str(get_locale() or "en")
    return render_template(
        "batch.html",
        batch=batch,
        accepted=[triage.row(c, lambda fid: ruleset.finding_title(fid, language)) for c in accepted],
        revisions=revisions,
    )

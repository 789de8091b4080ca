"""The clinicians' pages (worklist, case and decision, import) and the audit log: thin views that validate a form,
call the workflow, flash and redirect."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal
from typing import Any

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from audit import log as audit
from engine.evaluate import Evaluator
from engine.schedule import ScheduleError, schedule_for_plan
from review_ui import decisions, explaining, presenting, reimport, ruleset_versions, triage, workflow
from review_ui.auth import login_required, roles_required
from review_ui.db import db
from review_ui.forms import (
    AmendForm,
    AuditFilter,
    DecisionForm,
    ImportForm,
    ReevaluateForm,
    WithdrawForm,
    WorklistFilter,
)
from review_ui.intake import evaluator, uploaded_items
from review_ui.models import ANY_ROLE, CLINICAL, SEVERITY_RANK, Batch, Case, CaseFinding, CaseRevision, Role
from review_ui.spreadsheets import spreadsheet_safe

cases = Blueprint("cases", __name__)
imports = Blueprint("imports", __name__)
audit_views = Blueprint("audit", __name__)


# --- worklist and cases -----------------------------------------------------------------------


@cases.route("/")
@login_required
def index() -> Any:
    """Home: each role lands on its own page (clinicians the worklist, rule editors the rulesets)."""
    return redirect(url_for(current_user.home_endpoint))


@cases.route("/cases")
@roles_required(*CLINICAL)
def worklist() -> Any:
    """Cases by highest severity, then age of the case; filtered and paginated, each row what a clinician triages by."""
    form = WorklistFilter(request.args)
    ruleset = evaluator().ruleset
    language = str(get_locale() or "en")
    titles = {fid: ruleset.finding_title(fid, language) for fid in ruleset.raw.get("findings", {})}
    form.set_findings(titles)
    status = request.args.get("status", "pending")
    page, asked = _worklist_page(_worklist_query(form, status))
    rows = [
        triage.row(case, lambda fid: titles.get(fid) or ruleset.finding_title(fid, language)) for case in page.items
    ]
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("worklist.html", form=form, page=page, rows=rows, status=status, args=args, asked=asked)


def _worklist_query(form: WorklistFilter, status: str) -> Any:
    """The worklist's cases under the filters: the most severe first, then the oldest."""
    query = select(Case)
    if status:
        query = query.where(Case.status == status)
    if form.severity.data:
        query = query.where(Case.severity_rank == SEVERITY_RANK.get(form.severity.data, -1))
    if form.finding.data:
        finding = str(form.finding.data).strip().upper()
        query = query.where(Case.id.in_(select(CaseFinding.case_id).where(CaseFinding.finding_id == finding)))
    if form.batch.data:
        query = query.where(Case.batch_id == form.batch.data)
    if form.reviewer.data:
        query = query.where(Case.reviewer == form.reviewer.data.strip())
    if form.q.data:
        query = query.where(Case.patient_ref.contains(form.q.data.strip(), autoescape=True))
    return query.options(selectinload(Case.revisions)).order_by(Case.severity_rank, Case.created_at, Case.id)


def _worklist_page(query: Any) -> tuple[Any, int]:
    """The page asked for (a number past the last shows the last one, not an empty list), and the number asked."""
    per_page = current_app.config["PAGE_SIZE"]
    asked = max(1, request.args.get("page", 1, type=int) or 1)
    page = db.paginate(query, page=asked, per_page=per_page, error_out=False)
    if page.pages and page.page > page.pages:
        page = db.paginate(query, page=page.pages, per_page=per_page, error_out=False)
    return page, asked


@cases.route("/cases/<int:case_id>")
@roles_required(*CLINICAL)
def case_page(case_id: int) -> Any:
    """One case: intake facts, findings with evidence and sources, suggested plan, decision form, history."""
    case = db.get_or_404(Case, case_id)
    form = DecisionForm(expected_version=case.version)
    _prefill(form, case.plan)
    if not case.change_needs_override:  # a major or contraindicated case has nothing preselected: the clinician chooses
        form.kind.data = "approve"
    return _render_case(case, form)


def _render_case(
    case: Case,
    form: DecisionForm,
    status: int = 200,
    amend_form: AmendForm | None = None,
    withdraw_form: WithdrawForm | None = None,
) -> Any:
    entries = audit.read(db.session, target_type="case", target_id=str(case.id))
    newest = ruleset_versions.latest_version(case.ruleset_id)
    ruleset = _case_evaluator(case).ruleset
    return (
        render_template(
            "case.html",
            case=case,
            form=form,
            entries=[e.as_dict() for e in entries],
            sources=evaluator().ruleset.sources,
            page=presenting.case_page(case.result, case.intake, ruleset, str(get_locale())),
            needs_override=case.change_needs_override,
            explanation=_explanation(case),
            newest=newest,
            reevaluate_form=ReevaluateForm(expected_version=case.version),
            **_decision_context(case, amend_form, withdraw_form),
        ),
        status,
    )


def _case_evaluator(case: Case) -> Evaluator:
    """The evaluator of the version that evaluated the case; the active one when that version is not usable."""
    try:
        return ruleset_versions.version_evaluator(ruleset_versions.get_version(case.ruleset_id, case.ruleset_version))
    except workflow.WorkflowError:
        return evaluator()


def _decision_context(case: Case, amend: AmendForm | None, withdraw: WithdrawForm | None) -> dict[str, Any]:
    """The decision sections: why an override is needed, each decision in words, and the forms that amend or
    withdraw the signed one (the amendment starts from the plan it supersedes)."""
    signed = decisions.in_force(case)
    if signed is not None and amend is None:
        amend = AmendForm(formdata=None, expected_version=case.version)  # never the data of another form posted
        _prefill(amend, signed.final_plan or case.plan)
    return {
        "override_needed": decisions.override_needed(case) if case.change_needs_override else "",
        "decision_views": decisions.decision_views(case),
        "signed": signed,
        "amend_form": amend,
        "withdraw_form": withdraw or WithdrawForm(formdata=None, prefix="withdraw", expected_version=case.version),
    }


def _explanation(case: Case) -> explaining.CaseExplanation | None:
    """Why each finding applies and what would change it, under the version that evaluated the case."""
    if case.result.get("status") != "ok":
        return None
    try:
        version = ruleset_versions.get_version(case.ruleset_id, case.ruleset_version)
    except workflow.WorkflowError:  # a version no longer usable: the page says nothing rather than guess
        return None
    evaluator = ruleset_versions.version_evaluator(version)
    return explaining.for_case(evaluator, case.result, case.intake, str(get_locale()))


def _prefill(form: DecisionForm, plan: dict[str, Any]) -> None:
    form.form.data = plan.get("form") or ""
    cap = plan.get("max_elemental_mg_per_day")
    form.max_elemental_mg_per_day.data = Decimal(str(cap)) if cap is not None else None
    form.doses_per_day.data = plan.get("doses_per_day")
    form.separations.data = "\n".join(
        f"{s['drug']}: {_hours(s['drug_before_mg_h'])} / {_hours(s['drug_after_mg_h'])}"
        for s in plan.get("separations", [])
    )
    form.monitoring.data = "\n".join(plan.get("monitoring", []))


def _hours(value: Any) -> str:
    return "-" if value is None else str(value)


def _plan_from(form: DecisionForm, suggested: dict[str, Any]) -> dict[str, Any]:
    """The adjusted plan from the form; separation lines are `drug: before / after`."""
    separations = []
    for number, line in enumerate((form.separations.data or "").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            drug, hours = line.split(":", 1)
            before, after = (h.strip() for h in hours.split("/", 1))
            separations.append(
                {
                    "drug": drug.strip(),
                    "drug_before_mg_h": None if before == "-" else float(before),
                    "drug_after_mg_h": None if after == "-" else float(after),
                }
            )
        except ValueError:
            raise workflow.WorkflowError(
                _(
                    "Separation line %(number)s must read 'drug: hours before / hours after' (use - for none).",
                    number=number,
                ),
                "separations",
            ) from None
    dose = form.max_elemental_mg_per_day.data
    plan = dict(suggested)
    plan.update(
        {
            "form": (form.form.data or "").strip() or None,
            "max_elemental_mg_per_day": float(dose) if dose is not None else suggested.get("max_elemental_mg_per_day"),
            "doses_per_day": form.doses_per_day.data
            if form.doses_per_day.data is not None
            else suggested.get("doses_per_day"),
            "separations": separations,
            "monitoring": [m.strip() for m in (form.monitoring.data or "").splitlines() if m.strip()],
        }
    )
    plan["supplement"] = "yes" if (plan["max_elemental_mg_per_day"] or 0) > 0 else "no"
    if "schedule" in suggested:  # the daily schedule follows the adjusted doses and windows
        try:
            schedule = schedule_for_plan(plan)
        except ScheduleError as e:
            raise workflow.WorkflowError(
                _("The separations cannot be scheduled: %(reason)s.", reason=e.reason), "separations"
            ) from None
        plan["schedule"] = schedule.to_dict() if schedule is not None else None
    return plan


@cases.route("/cases/<int:case_id>/decide", methods=["POST"])
@roles_required(*CLINICAL)
def decide(case_id: int) -> Any:
    """Sign a decision on a case."""
    case = db.get_or_404(Case, case_id)
    form = DecisionForm()
    if not form.validate_on_submit():
        return _render_case(case, form, 400)
    kind = form.kind.data or ""
    try:
        final = _plan_from(form, case.plan) if kind == "adjust" else None
        workflow.decide(case_id, actor=current_user, final_plan=final, **_signed_fields(form))
    except workflow.ConflictError as e:
        flash(e.message, "error")
        return redirect(url_for("cases.case_page", case_id=case_id))
    except workflow.WorkflowError as e:
        _show_error(form, e)
        return _render_case(db.get_or_404(Case, case_id), form, 400)
    status = decisions.status_word(workflow.DECISION_STATUS[kind])
    flash(_("Decision signed: case %(ref)s %(status)s.", ref=case.patient_ref, status=status), "success")
    return redirect(url_for("cases.case_page", case_id=case_id))


def _signed_fields(form: DecisionForm) -> dict[str, Any]:
    """What a decision or an amendment form gives the workflow, besides the plan."""
    return {
        "expected_version": int(form.expected_version.data or 0),
        "kind": form.kind.data or "",
        "password": form.password.data or "",
        "reason": form.reason.data or "",
        "override_code": form.override_code.data or None,
        "override_text": form.override_text.data or "",
    }


def _show_error(form: DecisionForm | WithdrawForm, error: workflow.WorkflowError) -> None:
    """A refusal beside the field it concerns, else as a message at the top."""
    field = getattr(form, error.field, None) if error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
    else:
        flash(error.message, "error")


@cases.route("/cases/<int:case_id>/amend", methods=["POST"])
@roles_required(*CLINICAL)
def amend(case_id: int) -> Any:
    """Amend a case's signed decision by a new signed decision that supersedes it."""
    case = db.get_or_404(Case, case_id)
    form = AmendForm()
    if not form.validate_on_submit():
        return _render_case(case, DecisionForm(formdata=None), 400, amend_form=form)
    kind = form.kind.data or ""
    try:
        final = _plan_from(form, case.plan) if kind == "adjust" else None
        workflow.amend_decision(case_id, actor=current_user, final_plan=final, **_signed_fields(form))
    except workflow.ConflictError as e:
        flash(e.message, "error")
        return redirect(url_for("cases.case_page", case_id=case_id))
    except workflow.WorkflowError as e:
        _show_error(form, e)
        return _render_case(db.get_or_404(Case, case_id), DecisionForm(formdata=None), 400, amend_form=form)
    status = decisions.status_word(workflow.DECISION_STATUS[kind])
    flash(_("Decision amended: case %(ref)s %(status)s.", ref=case.patient_ref, status=status), "success")
    return redirect(url_for("cases.case_page", case_id=case_id))


@cases.route("/cases/<int:case_id>/withdraw", methods=["POST"])
@roles_required(*CLINICAL)
def withdraw(case_id: int) -> Any:
    """Withdraw a case's signed decision by a signed decision: the case is pending again."""
    case = db.get_or_404(Case, case_id)
    form = WithdrawForm(prefix="withdraw")
    if not form.validate_on_submit():
        return _render_case(case, DecisionForm(formdata=None), 400, withdraw_form=form)
    try:
        workflow.withdraw_decision(
            case_id,
            expected_version=int(form.expected_version.data or 0),
            actor=current_user,
            password=form.password.data or "",
            reason=form.reason.data or "",
        )
    except workflow.ConflictError as e:
        flash(e.message, "error")
        return redirect(url_for("cases.case_page", case_id=case_id))
    except workflow.WorkflowError as e:
        _show_error(form, e)
        return _render_case(db.get_or_404(Case, case_id), DecisionForm(formdata=None), 400, withdraw_form=form)
    flash(_("Decision withdrawn: case %(ref)s is pending again.", ref=case.patient_ref), "success")
    return redirect(url_for("cases.case_page", case_id=case_id))


@cases.route("/cases/<int:case_id>/reevaluate", methods=["POST"])
@roles_required(*CLINICAL)
def reevaluate(case_id: int) -> Any:
    """Evaluate a case under the newest published ruleset version and show what changed."""
    db.get_or_404(Case, case_id)
    form = ReevaluateForm()
    try:
        done = workflow.reevaluate_case(
            case_id, actor=current_user, expected_version=int(form.expected_version.data or 0)
        )
    except workflow.WorkflowError as e:
        flash(e.message, "error")
    else:
        changes = "; ".join(c["text"] for c in done.changes) or "no change"
        kept = "" if done.adopted else " The case keeps its decision and its original result."
        flash(f"Re-evaluated under v{done.ruleset['version']}: {changes}.{kept}", "success")
    return redirect(url_for("cases.case_page", case_id=case_id))


@cases.app_template_global("case_changes")
def case_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What changed between two results of one patient (intake, then findings and plan), for the case page."""
    return reimport.what_changed(old, new)


@cases.app_template_global("change_line")
def change_line(change: dict[str, Any]) -> str:
    """One stored change as a clinician reads it: findings by title, intake facts by name, else the engine's line."""
    if change.get("kind") == "finding" and change.get("finding"):
        title = evaluator().ruleset.finding_title(change["finding"], str(get_locale() or "en"))
        old, new = change.get("old"), change.get("new")
        if old is None or new is None:
            return f"{'+' if old is None else '-'} {title} ({triage.severity_label(str(new or old))})"
        return f"~ {title}: {triage.severity_label(old)} → {triage.severity_label(new)}"
    if change.get("kind") == reimport.INTAKE and change.get("fact"):
        return f"~ {triage.fact_label(change['fact'])}: {change['old']} → {change['new']}"
    return str(change.get("text", ""))


@cases.app_template_filter("case_status")
def case_status(status: str) -> str:
    """A case status in the page's language."""
    return triage.status_label(status)


# --- import -----------------------------------------------------------------------------------


@imports.route("/import", methods=["GET", "POST"])
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


@imports.route("/batches/<int:batch_id>")
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


# --- audit log --------------------------------------------------------------------------------


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


@audit_views.route("/audit")
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


@audit_views.route("/audit.csv")
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

"""The clinicians' case pages: the worklist, one case with its decision form, and signing, amending, withdrawing
and re-evaluating a decision: thin views that validate a form, call the workflow, flash and redirect."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from audit import log as audit
from engine.evaluate import Evaluator
from engine.schedule import ScheduleError, schedule_for_plan
from review_ui import decisions, explaining, presenting, ruleset_versions, triage, workflow
from review_ui.auth import login_required, roles_required
from review_ui.db import db
from review_ui.forms import AmendForm, DecisionForm, ReevaluateForm, WithdrawForm, WorklistFilter
from review_ui.intake import evaluator
from review_ui.models import CLINICAL, SEVERITY_RANK, Case, CaseFinding

bp = Blueprint("cases", __name__)


@bp.route("/")
@login_required
def index() -> Any:
    """Home: each role lands on its own page (clinicians the worklist, rule editors the rulesets)."""
    return redirect(url_for(current_user.home_endpoint))


@bp.route("/cases")
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


@bp.route("/cases/<int:case_id>")
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


@bp.route("/cases/<int:case_id>/decide", methods=["POST"])
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


@bp.route("/cases/<int:case_id>/amend", methods=["POST"])
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


@bp.route("/cases/<int:case_id>/withdraw", methods=["POST"])
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


@bp.route("/cases/<int:case_id>/reevaluate", methods=["POST"])
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

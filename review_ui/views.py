"""Blueprints: thin views that validate a form, call the workflow, flash and redirect."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from decimal import Decimal
from functools import wraps
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select

from audit import log as audit
from engine import ruleset as rulesets
from engine.batch import InputError, read_stream
from engine.evaluate import Evaluator
from review_ui import limiter, login_manager, ruleset_versions, workflow
from review_ui.db import db
from review_ui.forms import AuditFilter, DecisionForm, ImportForm, LoginForm, ReevaluateForm, WorklistFilter
from review_ui.models import SEVERITY_RANK, Batch, Case, CaseFinding, User

F = TypeVar("F", bound=Callable[..., Any])
auth = Blueprint("auth", __name__)
cases = Blueprint("cases", __name__)
imports = Blueprint("imports", __name__)
audit_views = Blueprint("audit", __name__)


def roles_required(*roles: str) -> Callable[[F], F]:
    """Require login and one of `roles`; others get a 403 page."""

    def decorate(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorate


CLINICAL = ("clinician", "admin")
ANY_ROLE = ("clinician", "rule_editor", "admin")


def evaluator() -> Evaluator:
    """The app's evaluator: the newest published ruleset version (or the pinned file), compiled once."""
    return ruleset_versions.active_evaluator()


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: only for a live server-side session (not signed out, not past its lifetime)."""
    return workflow.session_user(session.get("sid"), int(user_id))


# --- sign-in ----------------------------------------------------------------------------------


def _account_key() -> str:
    """The throttle key of the account being signed in to (the same for unknown users)."""
    return "account:" + (request.form.get("username") or "").strip().lower()[:80]


@auth.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_CLIENT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], key_func=_account_key)
def login() -> Any:
    """Sign in; failures and lockouts are audited by the workflow; throttled per client and per account."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = workflow.authenticate(form.username.data or "", form.password.data or "")
        except workflow.WorkflowError as e:
            flash(e.message, "error")
        else:
            session.clear()
            session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME without activity
            session["sid"] = workflow.start_session(user, lifetime=current_app.config["SESSION_ABSOLUTE_LIFETIME"])
            login_user(user)
            return redirect(url_for("cases.worklist"))
    return render_template("login.html", form=form)


@auth.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    """Sign out: the server-side session is revoked, so a saved cookie no longer works."""
    workflow.end_session(session.get("sid"), actor=current_user.username)
    logout_user()
    session.clear()
    flash("Signed out.", "info")
    return redirect(url_for("auth.login"))


@auth.route("/logout/everywhere", methods=["POST"])
@login_required
def logout_everywhere() -> Any:
    """Sign out on every browser and device: every session of this user is revoked."""
    count = workflow.end_all_sessions(current_user, actor=current_user.username)
    logout_user()
    session.clear()
    flash(f"Signed out everywhere ({count} session(s) ended).", "info")
    return redirect(url_for("auth.login"))


# --- worklist and cases -----------------------------------------------------------------------


@cases.route("/")
@login_required
def index() -> Any:
    """Home: the worklist."""
    return redirect(url_for("cases.worklist"))


@cases.route("/cases")
@roles_required(*CLINICAL)
def worklist() -> Any:
    """Cases by highest severity, then age of the case; filtered and paginated."""
    form = WorklistFilter(request.args)
    query = select(Case)
    status = request.args.get("status", "pending")
    if status:
        query = query.where(Case.status == status)
    if form.severity.data:
        query = query.where(Case.severity_rank == SEVERITY_RANK.get(form.severity.data, -1))
    if form.finding.data:
        query = query.where(
            Case.id.in_(select(CaseFinding.case_id).where(CaseFinding.finding_id == form.finding.data.strip().upper()))
        )
    if form.batch.data:
        query = query.where(Case.batch_id == form.batch.data)
    if form.reviewer.data:
        query = query.where(Case.reviewer == form.reviewer.data.strip())
    if form.q.data:
        query = query.where(Case.patient_ref.contains(form.q.data.strip(), autoescape=True))
    query = query.order_by(Case.severity_rank, Case.created_at, Case.id)
    page = db.paginate(query, per_page=current_app.config["PAGE_SIZE"], error_out=False)
    args = {k: v for k, v in request.args.items() if k != "page"}
    return render_template("worklist.html", form=form, page=page, status=status, args=args)


@cases.route("/cases/<int:case_id>")
@roles_required(*CLINICAL)
def case_page(case_id: int) -> Any:
    """One case: intake facts, findings with evidence and sources, suggested plan, decision form, history."""
    case = db.get_or_404(Case, case_id)
    form = DecisionForm(expected_version=case.version)
    _prefill(form, case.plan)
    return _render_case(case, form)


def _render_case(case: Case, form: DecisionForm, status: int = 200) -> Any:
    entries = audit.read(db.session, target_type="case", target_id=str(case.id))
    newest = ruleset_versions.latest_version(case.ruleset_id)
    return (
        render_template(
            "case.html",
            case=case,
            form=form,
            entries=[e.as_dict() for e in entries],
            sources=evaluator().ruleset.sources,
            needs_override=case.severity_rank <= SEVERITY_RANK["major"],
            newest=newest,
            reevaluate_form=ReevaluateForm(expected_version=case.version),
        ),
        status,
    )


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
                f"Separation line {number} must read 'drug: hours before / hours after' (use - for none).",
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
        workflow.decide(
            case_id,
            expected_version=int(form.expected_version.data or 0),
            kind=kind,
            actor=current_user,
            password=form.password.data or "",
            reason=form.reason.data or "",
            final_plan=final,
            override_code=form.override_code.data or None,
            override_text=form.override_text.data or "",
        )
    except workflow.ConflictError as e:
        flash(e.message, "error")
        return redirect(url_for("cases.case_page", case_id=case_id))
    except workflow.WorkflowError as e:
        field = getattr(form, e.field, None) if e.field else None
        if field is not None:
            field.errors = [*field.errors, e.message]
        else:
            flash(e.message, "error")
        return _render_case(db.session.get(Case, case_id), form, 400)
    flash(f"Decision signed: case {case.patient_ref} {workflow.DECISION_STATUS[kind]}.", "success")
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
        changes = "; ".join(done.changes) or "no change"
        kept = "" if done.adopted else " The case keeps its decision and its original result."
        flash(f"Re-evaluated under v{done.ruleset['version']}: {changes}.{kept}", "success")
    return redirect(url_for("cases.case_page", case_id=case_id))


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
        report = workflow.import_records(items, filename=name, actor=current_user.username, evaluator=evaluator())
        flash(
            f"Imported {name}: {len(report.accepted)} new cases, {len(report.duplicates)} already imported, "
            f"{len(report.rejected)} rejected.",
            "success" if not report.rejected else "warning",
        )
        return redirect(url_for("imports.batch_page", batch_id=report.batch_id))
    batches = db.session.execute(select(Batch).order_by(Batch.id.desc()).limit(20)).scalars().all()
    return render_template("import.html", form=form, batches=batches)


def uploaded_items(storage: Any) -> list[tuple[int, Any]]:
    """(line, record) items of an uploaded intake file, read exactly as the CLI reads a file (engine.batch)."""
    try:
        return list(read_stream(storage.stream, storage.filename or "upload"))
    except InputError as e:
        raise workflow.WorkflowError(str(e), "file") from None


@imports.route("/batches/<int:batch_id>")
@roles_required(*CLINICAL)
def batch_page(batch_id: int) -> Any:
    """An import: counts, accepted cases, rejected records with reasons."""
    batch = db.get_or_404(Batch, batch_id)
    accepted = db.session.execute(select(Case).where(Case.batch_id == batch_id).order_by(Case.id)).scalars().all()
    return render_template("batch.html", batch=batch, accepted=accepted)


# --- audit log --------------------------------------------------------------------------------


RULE_EDITOR_AUDIT = ("ruleset", "ruleset_draft")  # rule editors see rulesets' entries, not patients' plans


def _audit_entries(form: AuditFilter, limit: int | None) -> list[audit.AuditEntry]:
    return audit.read(
        db.session,
        target_types=RULE_EDITOR_AUDIT if current_user.role == "rule_editor" else None,
        action=form.action.data or None,
        actor=form.actor.data or None,
        target_type=form.target_type.data or None,
        target_id=form.target_id.data or None,
        limit=limit,
    )


@audit_views.route("/audit")
@roles_required(*ANY_ROLE)
def log_page() -> Any:
    """The overall audit log, filterable, with the chain's verification."""
    form = AuditFilter(request.args)
    entries = [e.as_dict() for e in _audit_entries(form, 500)]
    return render_template(
        "audit.html", form=form, entries=entries, verification=audit.verify(db.session), args=request.args.to_dict()
    )


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


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a leading apostrophe (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# --- errors -----------------------------------------------------------------------------------

ERROR_MESSAGES = {
    400: "The request could not be understood.",
    403: "Your role does not give access to this page.",
    404: "There is nothing at this address.",
    413: "The file is too large.",
    429: "Too many attempts from here or for this account; wait a minute and try again.",
    500: "Something went wrong on our side. The error was logged; nothing you entered was half-saved.",
}


def _error(e: Any) -> Any:
    code = getattr(e, "code", 500) or 500
    if code == 500:
        db.session.rollback()
    return render_error(code)


def render_error(code: int) -> Any:
    """The error page for an HTTP status."""
    return render_template("error.html", code=code, message=ERROR_MESSAGES.get(code, "Error.")), code


def init_app(app: Flask) -> None:
    """Register blueprints, the user loader and error pages."""
    from audit import log  # noqa: F401  (the audit tables must be known to migrations)
    from review_ui import (
        csrf,
        models,  # noqa: F401
    )
    from review_ui.cdshooks import cds
    from review_ui.ruleset_views import bp as ruleset_pages

    for blueprint in (auth, cases, imports, audit_views, cds, ruleset_pages):
        app.register_blueprint(blueprint)
    csrf.exempt(cds)  # a JSON API for EHRs, authenticated by JWT, not a browser form
    for code in ERROR_MESSAGES:
        app.register_error_handler(code, _error)
    app.jinja_env.filters["sha256"] = lambda text: rulesets.sha256_text(text)[:16] + "…"
    app.jinja_env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)

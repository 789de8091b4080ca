"""The printable patient plan of a decided case, in the patient's language, and the language choices: the patient's
(per case, on the plan page) and each user's own (the settings page)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup

from review_ui import language, patient_plan, preferences
from review_ui.auth import roles_required
from review_ui.db import db
from review_ui.forms import BROWSER_LANGUAGE, PageLanguageForm, PatientLanguageForm
from review_ui.models import ANY_ROLE, CLINICAL, Case
from review_ui.writes import WorkflowError

bp = Blueprint("plans", __name__)

# --- the printable plan ----------------------------------------------------------------------------


@bp.route("/cases/<int:case_id>/plan")
@roles_required(*CLINICAL)
def patient_plan_page(case_id: int) -> Any:
    """The plan of an approved or adjusted case, for the patient, in the patient's language; ready to print."""
    case = db.get_or_404(Case, case_id)
    decision = patient_plan.printable_decision(case)
    if decision is None:
        return render_template("plan_unavailable.html", case=case, reason=patient_plan.why_not_printable(case)), 404
    patient_language = preferences.patient_language(case)
    with force_locale(patient_language):
        sheet = patient_plan.sheet(case, decision, patient_language)
        sheet_html = Markup(render_template("_patient_plan_sheet.html", sheet=sheet))
    form = PatientLanguageForm(language=patient_language)
    return render_template("patient_plan.html", case=case, sheet_html=sheet_html, form=form)


@bp.route("/cases/<int:case_id>/plan/language", methods=["POST"])
@roles_required(*CLINICAL)
def patient_language(case_id: int) -> Any:
    """Change the language a case's plan is printed in."""
    case = db.get_or_404(Case, case_id)
    form = PatientLanguageForm()
    if not form.validate_on_submit():
        flash(_("Choose English or Nederlands for the patient."), "error")
        return redirect(url_for("plans.patient_plan_page", case_id=case_id))
    try:
        preferences.set_patient_language(case_id, form.language.data or "", actor=current_user)
    except WorkflowError as e:
        flash(e.message, "error")
    else:
        name = language.LANGUAGE_NAMES[form.language.data or ""]
        flash(_("The plan for %(ref)s is now printed in %(language)s.", ref=case.patient_ref, language=name), "success")
    return redirect(url_for("plans.patient_plan_page", case_id=case_id))


# --- the user's own language ------------------------------------------------------------------------


@bp.route("/settings", methods=["GET", "POST"])
@roles_required(*ANY_ROLE)
def settings() -> Any:
    """Each user's settings: the language of their pages (English, Nederlands or as the browser says)."""
    form = PageLanguageForm(language=current_user.language or BROWSER_LANGUAGE)
    if form.validate_on_submit():
        chosen = None if form.language.data == BROWSER_LANGUAGE else form.language.data
        try:
            preferences.set_page_language(current_user, chosen)
        except WorkflowError as e:
            form.language.errors = [*form.language.errors, e.message]
        else:
            with force_locale(language.select_locale()):  # said in the language just chosen
                flash(_("Your page language is saved."), "success")
            return redirect(url_for("plans.settings"))
    browser = language.LANGUAGE_NAMES[language.browser_locale()]
    return render_template("settings.html", form=form, browser=browser), 400 if form.errors else 200

"""The language choices that are written: a user's page language and the language of a case's printed patient plan.

Each is a write of its own with its audit entry in the same transaction, as every write of workflow.py.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from sqlalchemy import update

from audit import events
from audit import log as audit
from review_ui.db import db
from review_ui.language import LANGUAGES
from review_ui.models import Case, User
from review_ui.writes import WorkflowError, commit_or_rollback

# With no language chosen for a case, the patient reads the language of the jurisdiction the record was
# evaluated under (intake records carry no language of their own): the EU rules are this project's Dutch ones.
JURISDICTION_LANGUAGE: dict[str, str] = {"EU": "nl", "US": "en"}
FALLBACK_PATIENT_LANGUAGE = "nl"  # the shipped rulesets' default jurisdiction is EU


def set_page_language(user: User, chosen: str | None) -> None:
    """Set the language of `user`'s pages (None: follow the browser's Accept-Language); audited."""
    if chosen is not None and chosen not in LANGUAGES:
        raise WorkflowError(_("Choose English, Nederlands or your browser's language."), "language")
    before = user.language
    user.language = chosen
    audit.append(db.session, events.PageLanguageChosen(user.username, before, chosen))
    commit_or_rollback()


def default_patient_language(result: dict[str, Any]) -> str:
    """The language of a case's patient plan when none was chosen: that of the record's jurisdiction."""
    patient = (result.get("facts") or {}).get("patient") or {}
    return JURISDICTION_LANGUAGE.get(str(patient.get("jurisdiction")), FALLBACK_PATIENT_LANGUAGE)


def patient_language(case: Case) -> str:
    """The language the case's patient plan is printed in: the one chosen, else the jurisdiction's."""
    if case.patient_language in LANGUAGES:
        return str(case.patient_language)
    return default_patient_language(case.result)


def set_patient_language(case_id: int, chosen: str, *, actor: User) -> Case:
    """Choose the language of a case's printed patient plan; audited. The case's decision is left as it is."""
    if chosen not in LANGUAGES:
        raise WorkflowError(_("Choose English or Nederlands for the patient."), "language")
    case = db.session.get(Case, case_id)
    if case is None:
        raise WorkflowError(_("No such case."))
    before = case.patient_language
    # not through the case's version lock: the language is no part of the decision, and a decision form open
    # elsewhere must not be refused because the plan's language changed meanwhile
    db.session.execute(
        update(Case)
        .where(Case.id == case_id)
        .values(patient_language=chosen)
        .execution_options(synchronize_session=False)
    )
    chosen_event = events.PatientLanguageChosen(actor.username, case_id, before, chosen, case.patient_ref)
    audit.append(db.session, chosen_event)
    commit_or_rollback()
    db.session.expire_all()
    return case

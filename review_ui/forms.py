"""WTForms forms; CSRF comes from Flask-WTF on every POST form."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, FileRequired
from wtforms import (
    DecimalField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from review_ui.decisions import STATUS_WORDS
from review_ui.language import LANGUAGE_NAMES
from review_ui.models import CASE_STATUSES, SEVERITY_RANK
from review_ui.triage import SEVERITY_LABELS
from review_ui.workflow import OVERRIDE_CODES

BROWSER_LANGUAGE = "browser"  # the page-language choice that stores none: the browser's Accept-Language decides


def select_choices(pairs: list[tuple[str, str]]) -> list[SelectChoice]:
    """Select options from (value, label) pairs."""
    return [SelectChoice(value, label) for value, label in pairs]


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=80)])
    password = PasswordField(_l("Password"), validators=[DataRequired()])
    submit = SubmitField(_l("Sign in"))


class PageLanguageForm(FlaskForm):
    """The language of the signed-in user's own pages: English, Nederlands or as the browser says."""

    language = RadioField(
        _l("Page language"),
        choices=select_choices([(BROWSER_LANGUAGE, _l("As my browser says")), *LANGUAGE_NAMES.items()]),
        default=BROWSER_LANGUAGE,
    )
    submit = SubmitField(_l("Save"))


class PatientLanguageForm(FlaskForm):
    """The language a case's printed plan is written in for the patient."""

    language = SelectField(_l("Patient's language"), choices=select_choices(list(LANGUAGE_NAMES.items())))
    submit = SubmitField(_l("Change language"))


DECISION_KINDS = [
    ("approve", _l("Approve the suggested plan")),
    ("adjust", _l("Adjust the plan")),
    ("reject", _l("Reject the plan")),
    ("refer", _l("Refer to a physician")),
]
# The coded override reasons as a clinician reads them (the codes are stored; workflow.OVERRIDE_CODES says them in
# English for the audit log and the CDS Hooks service).
OVERRIDE_LABELS = {
    "PHYSICIAN_ORDER": _l("A physician ordered this plan after reviewing the findings"),
    "DIAGNOSED_DEFICIENCY": _l("Therapeutic dose for a diagnosed deficiency, physician-supervised [S10][S11]"),
    "NEWER_LAB_RESULT": _l("A newer lab result than the intake changes the assessment"),
    "FINDING_NOT_APPLICABLE": _l("The finding does not apply to this patient (documented in the reason)"),
    "SPECIALIST_ADVICE": _l("Following documented specialist advice"),
}


class DecisionForm(FlaskForm):
    """Approve, adjust, reject or refer; signing asks for the password again.

    The kind is a set of radio buttons with no default: the case page preselects "approve" only on a case without
    a major or contraindicated finding. The adjusted plan's fields are shown for "Adjust" only (CSS).
    """

    kind = RadioField(
        _l("Decision"),
        choices=select_choices(DECISION_KINDS),
        validators=[InputRequired(message=_l("Choose a decision."))],
        validate_choice=False,  # an unknown kind is refused by the workflow, with the same message
    )
    expected_version = HiddenField()
    form = StringField(_l("Form"), validators=[Optional(), Length(max=60)])
    max_elemental_mg_per_day = DecimalField(
        _l("Daily elemental Mg (mg)"), places=1, validators=[Optional(), NumberRange(min=0, max=5000)]
    )
    doses_per_day = IntegerField(_l("Doses per day"), validators=[Optional(), NumberRange(min=0, max=8)])
    separations = TextAreaField(
        _l("Separations (one per line: drug: hours before / hours after)"), validators=[Optional(), Length(max=4000)]
    )
    monitoring = TextAreaField(_l("Monitoring (one per line)"), validators=[Optional(), Length(max=4000)])
    reason = TextAreaField(_l("Reason"), validators=[Optional(), Length(max=4000)])
    override_code = SelectField(
        _l("Override reason (coded)"),
        choices=select_choices(
            [("", "—"), *((code, OVERRIDE_LABELS.get(code, text)) for code, text in OVERRIDE_CODES.items())]
        ),
        validators=[Optional()],
    )
    override_text = TextAreaField(_l("Override explanation"), validators=[Optional(), Length(max=4000)])
    password = PasswordField(
        _l("Password (signature)"), validators=[InputRequired(message=_l("Sign with your password."))]
    )
    submit = SubmitField(_l("Sign decision"))


class AmendForm(DecisionForm):
    """A new signed decision that supersedes the case's signed one: nothing preselected, a reason always."""

    reason = TextAreaField(
        _l("Why you amend the decision"),
        validators=[InputRequired(message=_l("Say why you amend the signed decision.")), Length(max=4000)],
    )
    submit = SubmitField(_l("Sign the amendment"))


class WithdrawForm(FlaskForm):
    """Withdraw the case's signed decision by a signed decision: the case is pending again."""

    expected_version = HiddenField()
    reason = TextAreaField(
        _l("Why you withdraw the decision"),
        validators=[InputRequired(message=_l("Say why you withdraw the signed decision.")), Length(max=4000)],
    )
    password = PasswordField(
        _l("Password (signature)"), validators=[InputRequired(message=_l("Sign with your password."))]
    )
    submit = SubmitField(_l("Withdraw the decision"))


class ImportForm(FlaskForm):
    """An intake file to evaluate and import."""

    file = FileField(
        "Intake file (JSONL, NDJSON of FHIR Bundles, or CSV)",
        validators=[FileRequired(), FileAllowed(["jsonl", "json", "ndjson", "csv"])],
    )
    submit = SubmitField("Import")


class WorklistFilter(FlaskForm):
    """Worklist filters from the query string (GET: no CSRF); the finding choices are the catalogue's, set per page."""

    class Meta:
        csrf = False

    status = SelectField(
        _l("Status"),
        choices=select_choices([("", _l("any")), *[(s, _l(STATUS_WORDS[s])) for s in CASE_STATUSES]]),
        default="pending",
    )
    severity = SelectField(
        _l("Severity"),
        choices=select_choices([("", _l("any")), *[(s, SEVERITY_LABELS[s]) for s in SEVERITY_RANK if s != "none"]]),
    )
    finding = SelectField(_l("Finding"), choices=select_choices([("", _l("any"))]), validate_choice=False)
    batch = IntegerField(_l("Import no."), validators=[Optional()])
    reviewer = StringField(_l("Reviewer"))
    q = StringField(_l("Patient reference"))

    def set_findings(self, titles: dict[str, str]) -> None:
        """The finding choices: every catalogue finding by its title (id as value), in alphabetical order."""
        ordered = sorted(titles.items(), key=lambda item: item[1].casefold())
        self.finding.choices = select_choices([("", str(_l("any"))), *ordered])


class AuditFilter(FlaskForm):
    """Audit log filters from the query string."""

    class Meta:
        csrf = False

    action = StringField(_l("Action"))
    actor = StringField(_l("Actor"))
    target_type = SelectField(
        _l("Target"),
        choices=select_choices(
            [
                ("", _l("any")),
                ("case", _l("case")),
                ("batch", _l("import")),
                ("user", _l("user")),
                ("ruleset", _l("ruleset")),
                ("ruleset_draft", _l("ruleset draft")),
            ]
        ),
    )
    target_id = StringField(_l("Target id"))


class ReevaluateForm(FlaskForm):
    """Re-evaluate a case under the newest published ruleset version."""

    expected_version = HiddenField()
    submit = SubmitField("Re-evaluate under the newest version")

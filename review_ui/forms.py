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

from review_ui.language import LANGUAGE_NAMES
from review_ui.models import CASE_STATUSES, SEVERITY_RANK
from review_ui.triage import SEVERITY_LABELS, STATUS_LABELS
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


class DecisionForm(FlaskForm):
    """Approve, adjust, reject or refer; signing asks for the password again."""

    kind = SelectField(
        "Decision",
        choices=select_choices(
            [
                ("approve", "Approve the suggested plan"),
                ("adjust", "Adjust the plan"),
                ("reject", "Reject the plan"),
                ("refer", "Refer to a physician"),
            ]
        ),
    )
    expected_version = HiddenField()
    form = StringField("Form", validators=[Optional(), Length(max=60)])
    max_elemental_mg_per_day = DecimalField(
        "Daily elemental Mg (mg)", places=1, validators=[Optional(), NumberRange(min=0, max=5000)]
    )
    doses_per_day = IntegerField("Doses per day", validators=[Optional(), NumberRange(min=0, max=8)])
    separations = TextAreaField(
        "Separations (one per line: drug: hours before / hours after)", validators=[Optional(), Length(max=4000)]
    )
    monitoring = TextAreaField("Monitoring (one per line)", validators=[Optional(), Length(max=4000)])
    reason = TextAreaField("Reason", validators=[Optional(), Length(max=4000)])
    override_code = SelectField(
        "Override reason (coded)", choices=select_choices([("", "—"), *OVERRIDE_CODES.items()]), validators=[Optional()]
    )
    override_text = TextAreaField("Override explanation", validators=[Optional(), Length(max=4000)])
    password = PasswordField("Password (signature)", validators=[InputRequired(message="Sign with your password.")])
    submit = SubmitField("Sign decision")


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
        choices=select_choices([("", _l("any")), *[(s, STATUS_LABELS[s]) for s in CASE_STATUSES]]),
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

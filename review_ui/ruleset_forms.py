"""Forms of the ruleset editor, built from the engine's vocabulary, and their mapping to ruleset data.

A rule, the upper-limit table, a drug entry and the sources each have a structured form; the raw view
edits the whole document. Every form turns into ruleset data that the checker validates; the checker's
errors come back to the form field they concern (see `field_errors`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from markupsafe import escape
from wtforms import (
    BooleanField,
    DecimalField,
    FieldList,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    PasswordField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from engine import vocabulary as vocab
from engine.errors import RulesetError
from review_ui.forms import select_choices

FACT_TYPES = ("patient", "medication", "concept", "derived")
FIELD_CHOICES = [("", "—")] + [
    (f"{on}.{name}", f"{on}: {name} ({spec.type}{', ' + spec.unit if spec.unit else ''})")
    for on, fields in vocab.FACT_TYPES.items()
    if on != "derived"
    for name, spec in fields.items()
]
# What each operator means, in the reader's language (engine/vocabulary.py declares the operators, in English).
OPERATOR_WORDS = {
    "==": _l("equals"),
    "!=": _l("differs from"),
    "<": _l("is below"),
    "<=": _l("is at most"),
    ">": _l("is above"),
    ">=": _l("is at least"),
    "in": _l("is one of"),
    "contains": _l("list contains"),
    "contains_any": _l("list contains one of"),
}
SEVERITY_WORDS = {
    "contraindicated": _l("contraindicated"),
    "major": _l("major"),
    "moderate": _l("moderate"),
    "minor": _l("minor"),
    "info": _l("info"),
}
EXTRA_CONDITIONS = 2  # blank condition rows offered under each pattern
EXTRA_PATTERNS = 1  # blank patterns offered under a rule


def _bounds(effect: str) -> NumberRange:
    """The range the vocabulary declares for a numeric effect."""
    spec = vocab.EFFECTS[effect]
    return NumberRange(min=spec.minimum, max=spec.maximum)


class ConditionForm(Form):
    """One condition `field op value`; `any` puts it among the where_any alternatives."""

    field = SelectField(_l("Fact"), choices=select_choices(FIELD_CHOICES), validate_choice=False)
    op = SelectField(
        _l("Operator"),
        choices=select_choices(
            [
                # a lazy label is rendered as markup (no escaping), so the operator is escaped here
                (op, _l("%(op)s (%(words)s)", op=escape(op), words=OPERATOR_WORDS.get(op, text)))
                for op, text in vocab.OPERATORS.items()
            ]
        ),
    )
    value = StringField(_l("Value"), validators=[Length(max=4000)])
    any = BooleanField(_l("one of (any)"))


class PatternForm(Form):
    """One fact the rule must match."""

    on = SelectField(_l("On"), choices=select_choices([("", _l("— unused —")), *[(t, t) for t in FACT_TYPES]]))
    derived = StringField(_l("Derived fact name"), validators=[Length(max=80)])
    conditions = FieldList(FormField(ConditionForm))


class RuleForm(FlaskForm):
    """A rule: patterns, effects, sources and confidence."""

    expected_lock = HiddenField()
    rule_id = StringField(_l("Rule id (UPPER_SNAKE_CASE)"), validators=[Length(max=80)])
    description = TextAreaField(_l("Description"), validators=[Length(max=2000)])
    description_nl = TextAreaField(_l("Description in Dutch"), validators=[Length(max=2000)])
    patterns = FieldList(FormField(PatternForm))
    finding = SelectField(
        _l("Finding"), choices=select_choices([("", _l("— none —")), *[(f, f) for f in vocab.FINDING_IDS]])
    )
    severity = SelectField(
        _l("Severity"), choices=select_choices([("", "—"), *[(s, SEVERITY_WORDS.get(s, s)) for s in vocab.SEVERITIES]])
    )
    message = TextAreaField(
        _l("Message ({field} takes a matched fact's value, {threshold:field} the rule's own threshold)"),
        validators=[Length(max=4000)],
    )
    message_nl = TextAreaField(_l("Message in Dutch (the same {placeholders})"), validators=[Length(max=4000)])
    cap_mg = DecimalField(_l("Cap, elemental mg/day"), places=None, validators=[Optional(), _bounds("cap_mg")])
    separation_before_h = DecimalField(
        _l("Hours Mg before the drug"), places=None, validators=[Optional(), _bounds("separation")]
    )
    separation_after_h = DecimalField(
        _l("Hours Mg after the drug"), places=None, validators=[Optional(), _bounds("separation")]
    )
    doses_per_day_min = IntegerField(_l("Minimum doses per day"), validators=[Optional(), _bounds("doses_per_day_min")])
    suggest_form = SelectField(_l("Suggest form"), choices=[], validate_choice=False)
    monitoring = TextAreaField(_l("Monitoring (one line each)"), validators=[Length(max=4000)])
    monitoring_nl = TextAreaField(_l("Monitoring in Dutch (one line for each line)"), validators=[Length(max=4000)])
    monitoring_on_magnesium = TextAreaField(
        _l("Monitoring only while magnesium is proposed (one line each)"), validators=[Length(max=4000)]
    )
    monitoring_on_magnesium_nl = TextAreaField(
        _l("Monitoring only while magnesium is proposed, in Dutch (one line for each line)"),
        validators=[Length(max=4000)],
    )
    only_when_supplemented = BooleanField(_l("Advice for taking magnesium: shown only when the plan proposes some"))
    derive = StringField(_l("Derive fact"), validators=[Length(max=80)])
    requires_physician = BooleanField(_l("A physician must decide"))
    urgent = BooleanField(_l("Urgent: seek care, no self-directed plan"))
    sources = SelectMultipleField(_l("Sources"), choices=[], validate_choice=False)
    confidence = SelectField(
        _l("Confidence"),
        choices=select_choices([("V", _l("V verified")), ("S", _l("S single source")), ("U", _l("U unverified"))]),
    )
    note = TextAreaField(_l("Note (required for U)"), validators=[Length(max=4000)])
    save = SubmitField(_l("Save rule"))


class LimitForm(Form):
    """One row of the upper-limit table."""

    id = StringField(_l("Id"), validators=[Length(max=80)])
    jurisdiction = SelectField(_l("Jurisdiction"), choices=select_choices([("US", "US"), ("EU", "EU")]))
    age_min_years = DecimalField(_l("From age (years)"), places=None, validators=[Optional()])
    age_below_years = DecimalField(_l("Below age (empty: no upper bound)"), places=None, validators=[Optional()])
    ul_mg = DecimalField(_l("Upper limit mg/day"), places=None, validators=[Optional()])
    finding = SelectField(
        _l("Finding"), choices=select_choices([(f, f) for f in vocab.FINDING_IDS if f.startswith("DOSE_")])
    )
    sources = StringField(_l("Sources (comma separated)"), validators=[Length(max=400)])
    confidence = SelectField(_l("Confidence"), choices=select_choices([("V", "V"), ("S", "S"), ("U", "U")]))
    note = StringField(_l("Note"), validators=[Length(max=2000)])


class LimitsForm(FlaskForm):
    """The upper-limit table; a row whose id is emptied is removed."""

    expected_lock = HiddenField()
    rows = FieldList(FormField(LimitForm))
    save = SubmitField(_l("Save limits"))


class DrugForm(FlaskForm):
    """A drug (ingredient) of the vocabulary: names and synonyms, classes and codes."""

    expected_lock = HiddenField()
    key = StringField(_l("Ingredient (lower case)"), validators=[InputRequired(), Length(max=80)])
    names = TextAreaField(_l("Other names, brands, misspellings (one per line, lower case)"))
    classes = StringField(_l("Classes (comma separated)"), validators=[Length(max=400)])
    atc = StringField(_l("ATC codes (comma separated)"), validators=[Length(max=400)])
    rxnorm = StringField(_l("RxNorm codes (comma separated)"), validators=[Length(max=400)])
    sources = SelectMultipleField(_l("Sources"), choices=[], validate_choice=False)
    note = TextAreaField(_l("Note"), validators=[Length(max=2000)])
    save = SubmitField(_l("Save drug"))


class SourceForm(Form):
    """One source tag and its citation; an emptied citation removes the tag."""

    tag = StringField(_l("Tag"), validators=[Length(max=40)])
    text = TextAreaField(_l("Citation"), validators=[Length(max=4000)])


class SourcesForm(FlaskForm):
    """Every source of the ruleset."""

    expected_lock = HiddenField()
    rows = FieldList(FormField(SourceForm))
    save = SubmitField(_l("Save sources"))


class RawForm(FlaskForm):
    """The whole draft as JSON, and its scenarios."""

    expected_lock = HiddenField()
    content = TextAreaField(_l("Ruleset (JSON)"))
    scenarios = TextAreaField(_l("Scenarios (JSON: a list of {name, record, expect})"))
    save = SubmitField(_l("Check and save"))


class ChangeNoteForm(FlaskForm):
    """What changed and why, recorded in the published version."""

    expected_lock = HiddenField()
    change_note = TextAreaField(_l("Change note"), validators=[Length(max=4000)])
    save = SubmitField(_l("Save change note"))


class LockForm(FlaskForm):
    """A button that acts on a draft (submit)."""

    expected_lock = HiddenField()
    submit = SubmitField(_l("Submit for approval"))


class DiscardForm(FlaskForm):
    """Give a draft up, with a reason."""

    expected_lock = HiddenField()
    reason = TextAreaField(_l("Reason"), validators=[InputRequired(message=_l("Say why.")), Length(max=2000)])
    submit = SubmitField(_l("Discard draft"))


class PublishForm(FlaskForm):
    """The second rule editor's signed approval."""

    expected_lock = HiddenField()
    password = PasswordField(
        _l("Password (signature)"), validators=[InputRequired(message=_l("Sign with your password."))]
    )
    submit = SubmitField(_l("Approve and publish"))


class ImpactForm(FlaskForm):
    """What to replay: the stored cases, or an uploaded intake file."""

    source = RadioField(
        _l("Replay"),
        choices=select_choices([("cases", _l("stored cases")), ("file", _l("an intake file"))]),
        default="cases",
    )
    limit = IntegerField(_l("Newest cases"), default=2000, validators=[Optional(), NumberRange(min=1, max=100000)])
    file = FileField(_l("Intake file"), validators=[FileAllowed(["jsonl", "json", "ndjson", "csv"])])
    submit = SubmitField(_l("Preview impact"))


# --- ruleset data <-> forms -----------------------------------------------------------------


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _typed(text: str, kind: str) -> Any:
    """A value typed in a form, as the fact's type wants it (the checker explains a wrong one)."""
    text = text.strip()
    if kind == "number":
        try:
            number = float(text.replace(",", "."))
        except ValueError:
            return text
        return int(number) if number.is_integer() and "." not in text and "," not in text else number
    if kind == "boolean":
        return {"true": True, "false": False, "yes": True, "no": False}.get(text.lower(), text)
    return text


def _number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def rule_to_form(form: RuleForm, rule: dict[str, Any], sources: dict[str, str], forms: dict[str, Any]) -> None:
    """Fill a rule form from a rule (GET)."""
    form.rule_id.data = rule.get("id", "")
    form.description.data = rule.get("description", "")
    form.description_nl.data = rule.get("description_nl", "")
    then = rule.get("then", {})
    for pattern in [*rule.get("when", []), *([{}] * EXTRA_PATTERNS)]:
        form.patterns.append_entry()
        entry = form.patterns[-1].form
        if "derived" in pattern:
            entry.on.data, entry.derived.data = "derived", pattern["derived"]
        else:
            entry.on.data = pattern.get("on", "")
        rows = [(c, False) for c in pattern.get("where", [])] + [(c, True) for c in pattern.get("where_any", [])]
        for (name, op, value), any_of in [*rows, *([(("", "==", ""), False)] * EXTRA_CONDITIONS)]:
            entry.conditions.append_entry()
            row = entry.conditions[-1].form
            row.field.data = f"{entry.on.data}.{name}" if name else ""  # a blank row to add a condition
            row.op.data, row.value.data, row.any.data = op, _text(value), any_of
    form.finding.data = then.get("finding", "")
    form.severity.data = then.get("severity", "")
    form.message.data = then.get("message", "")
    form.message_nl.data = then.get("message_nl", "")
    form.cap_mg.data = then.get("cap_mg")
    separation = then.get("separation") or {}
    form.separation_before_h.data = separation.get("before_h")
    form.separation_after_h.data = separation.get("after_h")
    form.doses_per_day_min.data = then.get("doses_per_day_min")
    form.suggest_form.data = then.get("suggest_form", "")
    form.monitoring.data = "\n".join(then.get("monitoring", []))
    form.monitoring_on_magnesium.data = "\n".join(then.get("monitoring_on_magnesium", []))
    form.monitoring_nl.data = "\n".join(then.get("monitoring_nl", []))
    form.monitoring_on_magnesium_nl.data = "\n".join(then.get("monitoring_on_magnesium_nl", []))
    form.only_when_supplemented.data = bool(then.get("only_when_supplemented"))
    form.derive.data = then.get("derive", "")
    form.requires_physician.data = bool(then.get("requires_physician"))
    form.urgent.data = bool(then.get("urgent"))
    form.sources.data = list(rule.get("sources", []))
    form.confidence.data = rule.get("confidence", "S")
    form.note.data = rule.get("note", "")
    set_rule_choices(form, sources, forms)


def source_choices(sources: dict[str, str]) -> list[Any]:
    """Source tags as options, each with the start of its citation."""
    return select_choices([(tag, f"{tag}: {_citation_text(text)[:90]}") for tag, text in sources.items()])


def _citation_text(source: Any) -> str:
    """A source as one text: a full citation (ruleset v3 on) by its title, else as written."""
    return str(source.get("title") or source.get("text", "")) if isinstance(source, dict) else str(source)


def set_rule_choices(form: RuleForm, sources: dict[str, str], forms: dict[str, Any]) -> None:
    """Choices that come from the draft itself: its sources and its supplement forms."""
    form.sources.choices = source_choices(sources)
    form.suggest_form.choices = select_choices([("", "—"), *[(key, key) for key in forms]])


def rule_from_form(form: RuleForm) -> tuple[dict[str, Any], dict[str, str]]:
    """The rule a submitted form describes, and where each condition came from (checker path -> form field)."""
    when, where_from = _when_from_form(form)
    rule: dict[str, Any] = {"id": form.rule_id.data.strip(), "description": form.description.data.strip()}
    if form.description_nl.data and form.description_nl.data.strip():
        rule["description_nl"] = form.description_nl.data.strip()
    rule.update(
        when=when, then=_then_from_form(form), sources=list(form.sources.data or []), confidence=form.confidence.data
    )
    if form.note.data and form.note.data.strip():
        rule["note"] = form.note.data.strip()
    return rule, where_from


def _when_from_form(form: RuleForm) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The rule's patterns, skipping blank ones, and the form field each checker path points back to."""
    where_from: dict[str, str] = {}
    when: list[dict[str, Any]] = []
    for pattern_field in (entry.form for entry in form.patterns):
        if pattern_field.on.data == "derived":
            if pattern_field.derived.data.strip():
                where_from[f"when[{len(when)}]"] = pattern_field.derived.id
                when.append({"derived": pattern_field.derived.data.strip()})
        elif pattern_field.on.data:  # else an unused (blank) pattern
            when.append(_pattern_from_form(pattern_field, len(when), where_from))
    return when, where_from


def _pattern_from_form(pattern_field: Any, index: int, where_from: dict[str, str]) -> dict[str, Any]:
    """One fact pattern (`when[index]`) with its typed conditions; records where each came from."""
    on = pattern_field.on.data
    pattern: dict[str, Any] = {"on": on, "where": []}
    where_from[f"when[{index}]"] = pattern_field.on.id
    where_from[f"when[{index}].on"] = pattern_field.on.id
    for row in (row.form for row in pattern_field.conditions if row.form.field.data):
        fact, _, name = row.field.data.partition(".")
        section = "where_any" if row.any.data else "where"
        conditions = pattern.setdefault(section, [])
        where_from[f"when[{index}].{section}[{len(conditions)}]"] = row.value.id
        if fact != on:  # a fact of another type: the checker names it with a did-you-mean
            name = row.field.data
        spec = vocab.FACT_TYPES.get(on, {}).get(name)
        conditions.append([name, row.op.data, _condition_value(row, spec.type if spec else "string")])
    return pattern


def _condition_value(row: Any, kind: str) -> Any:
    """A condition's value typed as its fact field; a list for `in` and `contains_any` (comma-separated)."""
    item_kind = "string" if kind == "string_list" else kind
    if row.op.data in ("in", "contains_any"):
        values = [_typed(v, item_kind) for v in row.value.data.split(",")]
        return [v for v in values if v != ""]
    return _typed(row.value.data, item_kind)


def _then_from_form(form: RuleForm) -> dict[str, Any]:
    """The rule's effects, in the order the vocabulary lists them; an empty field adds nothing."""
    then: dict[str, Any] = {}
    if form.finding.data:
        then["finding"] = form.finding.data
    if form.severity.data:
        then["severity"] = form.severity.data
    for key in ("message", "message_nl", "derive"):
        text = getattr(form, key).data
        if text and text.strip():
            then[key] = text.strip()
    if form.cap_mg.data is not None:
        then["cap_mg"] = _number(form.cap_mg.data)
    if form.requires_physician.data:
        then["requires_physician"] = True
    _lines_into(form, then, ("monitoring", "monitoring_nl"))
    if form.separation_before_h.data is not None or form.separation_after_h.data is not None:
        then["separation"] = {
            "before_h": _number(form.separation_before_h.data),
            "after_h": _number(form.separation_after_h.data),
        }
    if form.doses_per_day_min.data is not None:
        then["doses_per_day_min"] = form.doses_per_day_min.data
    if form.suggest_form.data:
        then["suggest_form"] = form.suggest_form.data
    if form.urgent.data:
        then["urgent"] = True
    _plan_contract_from_form(form, then)
    return then


def _lines_into(form: RuleForm, then: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Each text area of `keys` as a list of its non-blank lines, when it has any."""
    for key in keys:
        lines = [line.strip() for line in (getattr(form, key).data or "").splitlines() if line.strip()]
        if lines:
            then[key] = lines


def in_order_of(new: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """`new` with keys, effects and sources in the order `old` had them, so a diff shows only real changes."""
    rank = {key: i for i, key in enumerate(old)}
    out = {key: new[key] for key in sorted(new, key=lambda k: rank.get(k, len(rank)))}
    if isinstance(out.get("then"), dict) and isinstance(old.get("then"), dict):
        out["then"] = in_order_of(out["then"], old["then"])
    if isinstance(out.get("sources"), list) and isinstance(old.get("sources"), list):
        cited = {tag: i for i, tag in enumerate(old["sources"])}
        out["sources"] = sorted(out["sources"], key=lambda tag: cited.get(tag, len(cited)))
    return out


def _plan_contract_from_form(form: RuleForm, then: dict[str, Any]) -> None:
    """Effects of the plan contract (REFERENCE §8): advice and monitoring only when magnesium is proposed."""
    _lines_into(form, then, ("monitoring_on_magnesium", "monitoring_on_magnesium_nl"))
    if form.only_when_supplemented.data:
        then["only_when_supplemented"] = True


RULE_FIELDS = {
    "description": "description",
    "sources": "sources",
    "confidence": "confidence",
    "note": "note",
    "then.finding": "finding",
    "then.severity": "severity",
    "then.message": "message",
    "then.message_nl": "message_nl",
    "description_nl": "description_nl",
    "then.monitoring_nl": "monitoring_nl",
    "then.monitoring_on_magnesium_nl": "monitoring_on_magnesium_nl",
    "then.cap_mg": "cap_mg",
    "then.separation": "separation_before_h",
    "then.monitoring": "monitoring",
    "then.suggest_form": "suggest_form",
    "then.derive": "derive",
    "then.doses_per_day_min": "doses_per_day_min",
    "then.requires_physician": "requires_physician",
    "then.monitoring_on_magnesium": "monitoring_on_magnesium",
    "then.only_when_supplemented": "only_when_supplemented",
}


def field_errors(
    errors: list[RulesetError], rule_id: str | None, where_from: dict[str, str], fields: dict[str, str]
) -> tuple[dict[str, list[str]], list[str]]:
    """Split checker errors into messages per form field id, and the rest (shown above the form)."""
    by_field: dict[str, list[str]] = {}
    rest = []
    for error in errors:
        target = None
        if rule_id is not None and error.rule_id == rule_id and error.field:
            target = where_from.get(error.field) or fields.get(error.field)
            if target is None and error.field.startswith("when["):
                target = where_from.get(error.field.split(".")[0])
        if target:
            by_field.setdefault(target, []).append(error.hint)
        else:
            rest.append(str(error))
    return by_field, rest


def limits_to_form(form: LimitsForm, table: list[dict[str, Any]]) -> None:
    """Fill the upper-limit table form, with one blank row to add a band."""
    for row in [*table, {}]:
        form.rows.append_entry()
        entry = form.rows[-1].form
        entry.id.data = row.get("id", "")
        entry.jurisdiction.data = row.get("jurisdiction", "US")
        entry.age_min_years.data = row.get("age_min_years")
        entry.age_below_years.data = row.get("age_below_years")
        entry.ul_mg.data = row.get("ul_mg")
        entry.finding.data = row.get("finding", "DOSE_ABOVE_UL_US")
        entry.sources.data = ", ".join(row.get("sources", []))
        entry.confidence.data = row.get("confidence", "V")
        entry.note.data = row.get("note", "")


def limits_from_form(form: LimitsForm) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The table a submitted form describes (rows without an id are dropped), and row id -> form prefix."""
    table, where_from = [], {}
    for entry in (e.form for e in form.rows):
        row_id = (entry.id.data or "").strip()
        if not row_id:
            continue
        row: dict[str, Any] = {
            "id": row_id,
            "jurisdiction": entry.jurisdiction.data,
            "age_min_years": _number(entry.age_min_years.data),
            "age_below_years": _number(entry.age_below_years.data),
            "ul_mg": _number(entry.ul_mg.data),
            "finding": entry.finding.data,
            "sources": [s.strip() for s in (entry.sources.data or "").split(",") if s.strip()],
            "confidence": entry.confidence.data,
        }
        if row["age_below_years"] is None:
            del row["age_below_years"]
        if entry.note.data and entry.note.data.strip():
            row["note"] = entry.note.data.strip()
        table.append(row)
        where_from[row_id] = entry.id.id.rsplit("-", 1)[0]
    return table, where_from


def drug_to_form(form: DrugForm, key: str, drug: dict[str, Any], sources: dict[str, str]) -> None:
    """Fill a drug form."""
    form.key.data = key
    form.names.data = "\n".join(drug.get("names", []))
    form.classes.data = ", ".join(drug.get("classes", []))
    form.atc.data = ", ".join(drug.get("atc", []))
    form.rxnorm.data = ", ".join(drug.get("rxnorm", []))
    form.sources.data = list(drug.get("sources", []))
    form.note.data = drug.get("note", "")
    form.sources.choices = source_choices(sources)


def drug_from_form(form: DrugForm, before: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(ingredient key, entry); fields the form does not show are kept from `before`."""

    def items(text: str | None) -> list[str]:
        return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]

    drug = dict(before)
    drug.update(
        names=[line.strip() for line in (form.names.data or "").splitlines() if line.strip()],
        classes=items(form.classes.data),
        atc=items(form.atc.data),
        rxnorm=items(form.rxnorm.data),
        sources=list(form.sources.data or []),
    )
    drug = in_order_of(drug, before)
    if form.note.data and form.note.data.strip():
        drug["note"] = form.note.data.strip()
    else:
        drug.pop("note", None)
    return form.key.data.strip(), drug


def sources_to_form(form: SourcesForm, sources: dict[str, Any]) -> None:
    """Fill the sources form (a full citation by its text), with two blank rows to add tags."""
    for tag, source in [*sources.items(), ("", ""), ("", "")]:
        form.rows.append_entry()
        text = source.get("text", "") if isinstance(source, dict) else source
        form.rows[-1].form.tag.data, form.rows[-1].form.text.data = tag, text


def sources_from_form(form: SourcesForm, old: dict[str, Any] | None = None) -> dict[str, Any]:
    """Tags with a citation; an emptied citation removes its tag. A full citation keeps its title, publisher,
    year, link and marks, with the text as edited."""
    out: dict[str, Any] = {}
    for e in form.rows:
        tag, text = (e.form.tag.data or "").strip(), (e.form.text.data or "").strip()
        if tag and text:
            before = (old or {}).get(tag)
            out[tag] = {**before, "text": text} if isinstance(before, dict) else text
    return out

"""Ruleset pages: versions, drafts and their structured editors, checks, impact preview, diff, publishing.

Views stay thin: they fill and read forms (review_ui.ruleset_forms) and call review_ui.ruleset_drafts,
ruleset_publishing and ruleset_versions, which check, write and audit.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from engine import rulediff, scenarios
from engine import ruleset as rulesets
from engine.errors import RulesetError
from engine.impact import Impact
from review_ui import ruleset_drafts, ruleset_publishing, ruleset_versions, workflow
from review_ui import ruleset_forms as forms
from review_ui.auth import roles_required
from review_ui.db import db
from review_ui.intake import uploaded_items
from review_ui.models import ANY_ROLE, DRAFT_READERS, RULESET_EDITORS, RulesetDraft, RulesetVersion
from review_ui.texts import N_, shown, status_text
from review_ui.workflow import WorkflowError

bp = Blueprint("rulesets", __name__, url_prefix="/rulesets")


@dataclass
class Changes:
    """What changed between two versions (or a version and a draft), as the review pages show it."""

    summary: list[str] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    marks: dict[str, str] = field(default_factory=dict)  # rule id -> added / changed / removed
    removed: list[dict[str, Any]] = field(default_factory=list)  # rules only the old version has
    details: list[tuple[str, str, str]] = field(default_factory=list)  # (rule id, mark, JSON text)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _scenario_list(text: str | None) -> list[dict[str, Any]]:
    try:
        return scenarios.parse(text, "scenarios") if text and text.strip() else []
    except ValueError:
        return []  # unreadable scenarios are the checker's to report, not the diff's


def compare(old: tuple[str, str | None], new: tuple[str, str | None]) -> Changes:
    """Rule-by-rule and scenario-by-scenario changes from (ruleset text, scenarios text) `old` to `new`."""
    a, b = rulesets.parse_text(old[0]), rulesets.parse_text(new[0])
    marks = rulediff.marks(a.get("rules", []), b.get("rules", []))
    before = {r.get("id"): r for r in a.get("rules", [])}
    after = {r.get("id"): r for r in b.get("rules", [])}
    details = []
    for rule_id, mark in sorted(marks.items()):
        if mark == "changed":
            shown: Any = {
                f: {"from": x, "to": y} for f, (x, y) in rulediff.field_changes(before[rule_id], after[rule_id]).items()
            }
        else:
            shown = {"to": after[rule_id]} if mark == "added" else {"from": before[rule_id]}
        details.append((rule_id, mark, _json(shown)))
    return Changes(
        summary=rulediff.diff(a, b),
        scenarios=rulediff.scenario_diff(_scenario_list(old[1]), _scenario_list(new[1])),
        marks=marks,
        removed=[before[k] for k, mark in sorted(marks.items()) if mark == "removed"],
        details=details,
    )


def _read_only(draft: RulesetDraft) -> Any:
    """A redirect with the reason when the draft may not change (submitted, published, discarded), else None."""
    try:
        ruleset_drafts.require_editable(draft)
    except WorkflowError as e:
        flash(shown(e.message), "error")
        return redirect(url_for("rulesets.draft_page", draft_id=draft.id))
    return None


@bp.route("/")
@roles_required(*ANY_ROLE)
def index() -> Any:
    """Published versions, open drafts, and a form to compare any two."""
    newest_first = select(RulesetVersion).order_by(RulesetVersion.name, RulesetVersion.version.desc())
    versions = list(db.session.execute(newest_first).scalars()) or [
        ruleset_versions.latest_version(ruleset_versions.DEFAULT_RULESET)
    ]
    drafts: list[RulesetDraft] = []
    if current_user.reads_drafts:  # clinicians see published versions only
        drafts = list(db.session.execute(select(RulesetDraft).order_by(RulesetDraft.id.desc())).scalars())
    refused = {v.id: problem for v in versions if (problem := ruleset_versions.version_problem(v))}
    shown_refused = {version_id: shown(problem) for version_id, problem in refused.items()}
    usable = [v for v in versions if v.id not in refused]
    return render_template(
        "rulesets/index.html", versions=versions, refused=shown_refused, drafts=drafts, refs=_refs(usable, drafts)
    )


def _refs(versions: list[RulesetVersion], drafts: list[RulesetDraft]) -> list[tuple[str, str]]:
    return [(f"v{v.version}", v.label) for v in versions] + [(f"draft-{d.id}", d.label) for d in drafts]


@bp.route("/<name>/v<int:version>")
@roles_required(*ANY_ROLE)
def version_page(name: str, version: int) -> Any:
    """One published version: who wrote and approved it, its change note, rules, and exact text."""
    try:
        found = ruleset_versions.get_version(name, version)
    except WorkflowError:
        abort(404)
    data = rulesets.parse_text(found.content)
    return render_template("rulesets/version.html", version=found, data=data)


@bp.route("/<name>/drafts", methods=["POST"])
@roles_required(*RULESET_EDITORS)
def new_draft(name: str) -> Any:
    """Start a draft of the next version from the newest published one."""
    try:
        draft = ruleset_drafts.create_draft(name, actor=current_user)
    except WorkflowError as e:
        flash(shown(e.message), "error")
        return redirect(url_for("rulesets.index"))
    flash(
        _("Draft %(id)s started from %(name)s v%(base)s.", id=draft.id, name=name, base=draft.base_version), "success"
    )
    return redirect(url_for("rulesets.draft_page", draft_id=draft.id))


def _draft(draft_id: int) -> RulesetDraft:
    return db.get_or_404(RulesetDraft, draft_id)


def _save(
    draft: RulesetDraft, lock: str | None, data: dict[str, Any] | None = None, scenarios_text: str | None = None
) -> list[RulesetError] | str | None:
    """Save through the workflow: None when saved, the checker's errors, or a message for the user."""
    try:
        ruleset_drafts.save_draft(
            draft.id,
            actor=current_user,
            expected_lock=int(lock or 0),
            data=data,
            scenarios_text=scenarios_text,
        )
    except ruleset_drafts.DraftInvalid as e:
        return e.errors
    except WorkflowError as e:
        return shown(e.message)
    return None


def _after_save(problem: list[RulesetError] | str | None, draft: RulesetDraft, what: str) -> Any:
    """Redirect after a successful save; otherwise None so the view re-renders its form with the errors."""
    if problem is None:
        flash(_("%(what)s saved; the draft passes the checker.", what=what), "success")
        return redirect(url_for("rulesets.draft_page", draft_id=draft.id))
    if isinstance(problem, str):
        flash(problem, "error")
    return None


@bp.route("/drafts/<int:draft_id>")
@roles_required(*DRAFT_READERS)
def draft_page(draft_id: int) -> Any:
    """A draft: its change note, rules, checks and scenarios, and what can be done with it next."""
    draft = _draft(draft_id)
    data = ruleset_drafts.draft_data(draft)
    check = ruleset_drafts.check_draft(draft)
    problems = check.problems(change_note=data.get("change_note", ""))
    base = ruleset_versions.get_version(draft.name, draft.base_version)
    return render_template(
        "rulesets/draft.html",
        draft=draft,
        data=data,
        check=check,
        problems=[shown(p) for p in problems],
        changes=compare((base.content, base.scenarios), (draft.content, draft.scenarios)),
        note_form=forms.ChangeNoteForm(expected_lock=draft.lock, change_note=data.get("change_note", "")),
        submit_form=forms.LockForm(expected_lock=draft.lock),
        publish_form=forms.PublishForm(expected_lock=draft.lock),
        discard_form=forms.DiscardForm(expected_lock=draft.lock),
        may_approve=current_user.edits_rulesets and current_user.username not in draft.contributors,
        publish_meaning=_(ruleset_publishing.PUBLISH_MEANING),
    )


@bp.route("/drafts/<int:draft_id>/note", methods=["POST"])
@roles_required(*RULESET_EDITORS)
def save_note(draft_id: int) -> Any:
    """Save the change note."""
    draft = _draft(draft_id)
    if refused := _read_only(draft):
        return refused
    form = forms.ChangeNoteForm()
    data = ruleset_drafts.draft_data(draft)
    data["change_note"] = (form.change_note.data or "").strip()
    problem = _save(draft, form.expected_lock.data, data)
    if isinstance(problem, list):
        flash(_("Not saved: %(problem)s", problem=problem[0]), "error")
    return _after_save(problem, draft, _("Change note")) or redirect(url_for("rulesets.draft_page", draft_id=draft_id))


@bp.route("/drafts/<int:draft_id>/rules/<rule_id>", methods=["GET", "POST"])
@roles_required(*DRAFT_READERS)
def edit_rule(draft_id: int, rule_id: str) -> Any:
    """The structured editor of one rule (`new` adds a rule)."""
    draft = _draft(draft_id)
    data = ruleset_drafts.draft_data(draft)
    index = next((i for i, r in enumerate(data["rules"]) if r.get("id") == rule_id), None)
    if index is None and rule_id != "new":
        abort(404)
    forms_voc = data["vocabulary"]["forms"]
    if request.method == "GET":
        form = forms.RuleForm(expected_lock=draft.lock)
        rule = data["rules"][index] if index is not None else {"id": "", "when": [], "then": {}, "sources": []}
        forms.rule_to_form(form, rule, data["sources"], forms_voc)
        return render_template("rulesets/rule.html", draft=draft, form=form, rule_id=rule_id, errors={}, other=[])
    if not current_user.edits_rulesets:
        abort(403)
    if refused := _read_only(draft):
        return refused
    form = forms.RuleForm()
    forms.set_rule_choices(form, data["sources"], forms_voc)
    errors: dict[str, list[str]] = {}
    other: list[str] = []
    if form.validate_on_submit():
        rule, where_from = forms.rule_from_form(form)
        changed = copy.deepcopy(data)
        if index is None:
            changed["rules"].append(rule)
        else:
            changed["rules"][index] = forms.in_order_of(rule, data["rules"][index])
        problem = _save(draft, form.expected_lock.data, changed)
        done = _after_save(problem, draft, _("Rule %(id)s", id=rule["id"]))
        if done is not None:
            return done
        if isinstance(problem, list):
            errors, other = forms.field_errors(problem, rule["id"], where_from, _form_ids(form))
    return render_template(
        "rulesets/rule.html", draft=draft, form=form, rule_id=rule_id, errors=errors, other=other
    ), 400


def _form_ids(form: forms.RuleForm) -> dict[str, str]:
    return {path: getattr(form, name).id for path, name in forms.RULE_FIELDS.items()}


@bp.route("/drafts/<int:draft_id>/rules/<rule_id>/delete", methods=["POST"])
@roles_required(*RULESET_EDITORS)
def delete_rule(draft_id: int, rule_id: str) -> Any:
    """Remove a rule (refused when the checker needs it, e.g. the only rule reporting a catalogue finding)."""
    draft = _draft(draft_id)
    if refused := _read_only(draft):
        return refused
    form = forms.LockForm()
    data = ruleset_drafts.draft_data(draft)
    data["rules"] = [r for r in data["rules"] if r.get("id") != rule_id]
    problem = _save(draft, form.expected_lock.data, data)
    if isinstance(problem, list):
        reasons = "; ".join(str(e) for e in problem[:3])
        flash(_("Rule %(id)s was not removed: %(reasons)s", id=rule_id, reasons=reasons), "error")
        return redirect(url_for("rulesets.edit_rule", draft_id=draft_id, rule_id=rule_id))
    return _after_save(problem, draft, _("Removal of rule %(id)s", id=rule_id)) or redirect(
        url_for("rulesets.edit_rule", draft_id=draft_id, rule_id=rule_id)
    )


@bp.route("/drafts/<int:draft_id>/limits", methods=["GET", "POST"])
@roles_required(*DRAFT_READERS)
def edit_limits(draft_id: int) -> Any:
    """The upper-limit table by jurisdiction and age band."""
    draft = _draft(draft_id)
    data = ruleset_drafts.draft_data(draft)
    if request.method == "GET":
        form = forms.LimitsForm(expected_lock=draft.lock)
        forms.limits_to_form(form, data.get("upper_limits", []))
        return render_template("rulesets/limits.html", draft=draft, form=form, errors={}, other=[])
    if not current_user.edits_rulesets:
        abort(403)
    if refused := _read_only(draft):
        return refused
    form = forms.LimitsForm()
    errors: dict[str, list[str]] = {}
    other: list[str] = []
    if form.validate_on_submit():
        table, prefixes = forms.limits_from_form(form)
        changed = copy.deepcopy(data)
        changed["upper_limits"] = table
        problem = _save(draft, form.expected_lock.data, changed)
        done = _after_save(problem, draft, _("Upper-limit table"))
        if done is not None:
            return done
        for error in problem if isinstance(problem, list) else []:
            row = prefixes.get(error.rule_id or "")
            if row and error.field:
                errors.setdefault(f"{row}-{error.field}", []).append(error.hint)
            else:
                other.append(str(error))
    return render_template("rulesets/limits.html", draft=draft, form=form, errors=errors, other=other), 400


@bp.route("/drafts/<int:draft_id>/drugs")
@roles_required(*DRAFT_READERS)
def drugs(draft_id: int) -> Any:
    """The drug vocabulary, searchable by any name."""
    draft = _draft(draft_id)
    voc = ruleset_drafts.draft_data(draft)["vocabulary"]["drugs"]
    q = (request.args.get("q") or "").strip().lower()
    shown = {k: v for k, v in voc.items() if not q or q in k or any(q in n for n in v.get("names", []))}
    return render_template("rulesets/drugs.html", draft=draft, drugs=shown, q=q, total=len(voc))


@bp.route("/drafts/<int:draft_id>/drugs/<key>", methods=["GET", "POST"])
@roles_required(*DRAFT_READERS)
def edit_drug(draft_id: int, key: str) -> Any:
    """One drug: its names and synonyms, classes, codes and sources (`new` adds a drug)."""
    draft = _draft(draft_id)
    data = ruleset_drafts.draft_data(draft)
    voc = data["vocabulary"]["drugs"]
    if key not in voc and key != "new":
        abort(404)
    before = voc.get(key, {"names": [], "classes": [], "atc": [], "rxnorm": [], "sources": []})
    if request.method == "GET":
        form = forms.DrugForm(expected_lock=draft.lock)
        forms.drug_to_form(form, "" if key == "new" else key, before, data["sources"])
        return render_template("rulesets/drug.html", draft=draft, form=form, key=key, problems=[])
    if not current_user.edits_rulesets:
        abort(403)
    if refused := _read_only(draft):
        return refused
    form = forms.DrugForm()
    form.sources.choices = forms.source_choices(data["sources"])
    problems: list[str] = []
    if form.validate_on_submit():
        new_key, drug = forms.drug_from_form(form, before)
        changed = copy.deepcopy(data)
        drugs_voc = changed["vocabulary"]["drugs"]
        if key != "new" and new_key != key:
            drugs_voc.pop(key, None)
        if key == "new" and new_key in drugs_voc:
            already = _("'%(key)s' is already in the vocabulary: edit it instead.", key=new_key)
            form.key.errors = [*form.key.errors, already]
            return render_template("rulesets/drug.html", draft=draft, form=form, key=key, problems=[]), 400
        drugs_voc[new_key] = drug
        problem = _save(draft, form.expected_lock.data, changed)
        done = _after_save(problem, draft, _("Drug %(key)s", key=new_key))
        if done is not None:
            return done
        problems = [str(e) for e in problem] if isinstance(problem, list) else []
    return render_template("rulesets/drug.html", draft=draft, form=form, key=key, problems=problems), 400


@bp.route("/drafts/<int:draft_id>/sources", methods=["GET", "POST"])
@roles_required(*DRAFT_READERS)
def edit_sources(draft_id: int) -> Any:
    """Source tags and their citations."""
    draft = _draft(draft_id)
    data = ruleset_drafts.draft_data(draft)
    if request.method == "GET":
        form = forms.SourcesForm(expected_lock=draft.lock)
        forms.sources_to_form(form, data["sources"])
        return render_template("rulesets/sources.html", draft=draft, form=form, problems=[])
    if not current_user.edits_rulesets:
        abort(403)
    if refused := _read_only(draft):
        return refused
    form = forms.SourcesForm()
    problems: list[str] = []
    if form.validate_on_submit():
        changed = copy.deepcopy(data)
        changed["sources"] = forms.sources_from_form(form, data["sources"])
        problem = _save(draft, form.expected_lock.data, changed)
        done = _after_save(problem, draft, _("Sources"))
        if done is not None:
            return done
        problems = [str(e) for e in problem] if isinstance(problem, list) else []
    return render_template("rulesets/sources.html", draft=draft, form=form, problems=problems), 400


@bp.route("/drafts/<int:draft_id>/raw", methods=["GET", "POST"])
@roles_required(*DRAFT_READERS)
def edit_raw(draft_id: int) -> Any:
    """The whole draft and its scenarios as JSON text, for power users."""
    draft = _draft(draft_id)
    if request.method == "GET":
        form = forms.RawForm(expected_lock=draft.lock, content=draft.content, scenarios=draft.scenarios)
        return render_template("rulesets/raw.html", draft=draft, form=form, problems=[])
    if not current_user.edits_rulesets:
        abort(403)
    if refused := _read_only(draft):
        return refused
    form = forms.RawForm()
    problems: list[str] = []
    if form.validate_on_submit():
        try:
            data = rulesets.parse_text(form.content.data or "", "ruleset")
        except RulesetError as e:
            form.content.errors = [*form.content.errors, str(e)]
        else:
            problem = _save(draft, form.expected_lock.data, data, form.scenarios.data or "")
            done = _after_save(problem, draft, _("Draft"))
            if done is not None:
                return done
            problems = [str(e) for e in problem] if isinstance(problem, list) else []
    return render_template("rulesets/raw.html", draft=draft, form=form, problems=problems), 400


@bp.route("/drafts/<int:draft_id>/impact", methods=["GET", "POST"])
@roles_required(*DRAFT_READERS)
def impact(draft_id: int) -> Any:
    """Replay stored cases or an uploaded intake file through the published version and the draft."""
    draft = _draft(draft_id)
    form = forms.ImpactForm()
    result = None
    if form.validate_on_submit():
        if form.source.data == "file":
            if not form.file.data:
                form.file.errors = [*form.file.errors, _("Choose an intake file to replay.")]
                return render_template("rulesets/impact.html", draft=draft, form=form, result=None), 400
            try:
                items = uploaded_items(form.file.data)
            except WorkflowError as e:
                form.file.errors = [*form.file.errors, shown(e.message)]
                return render_template("rulesets/impact.html", draft=draft, form=form, result=None), 400
            what = form.file.data.filename or "upload"
        else:
            items = workflow.stored_case_items(form.limit.data or 2000)
            what = _("the newest %(count)s stored cases", count=len(items))
        try:
            result = ruleset_drafts.draft_impact(draft, items)
        except ruleset_drafts.DraftInvalid as e:
            flash(_("The draft does not pass the checker: %(problem)s", problem=e.errors[0]), "error")
        else:
            flash(_("Replayed %(what)s through v%(base)s and the draft.", what=what, base=draft.base_version), "info")
    return render_template("rulesets/impact.html", draft=draft, form=form, result=result)


@bp.route("/drafts/<int:draft_id>/submit", methods=["POST"])
@roles_required(*RULESET_EDITORS)
def submit(draft_id: int) -> Any:
    """Ask another rule editor to approve."""
    form = forms.LockForm()
    try:
        ruleset_drafts.submit_draft(draft_id, actor=current_user, expected_lock=int(form.expected_lock.data or 0))
    except WorkflowError as e:
        flash(shown(e.message), "error")
    else:
        flash(_("Submitted: another rule editor can now review, approve and publish it."), "success")
    return redirect(url_for("rulesets.draft_page", draft_id=draft_id))


@bp.route("/drafts/<int:draft_id>/publish", methods=["POST"])
@roles_required(*RULESET_EDITORS)
def publish(draft_id: int) -> Any:
    """The second rule editor approves and publishes, signing with the password."""
    form = forms.PublishForm()  # not validated here: an unsigned approval is refused (and audited) by the workflow
    try:
        version = ruleset_publishing.publish_draft(
            draft_id,
            actor=current_user,
            password=form.password.data or "",
            expected_lock=int(form.expected_lock.data or 0),
        )
    except WorkflowError as e:  # refused and audited (in English): self-approval, signature, stale, blocked ...
        flash(shown(e.message), "error")
    else:
        flash(_("Published %(label)s (sha256 %(sha)s…).", label=version.label, sha=version.sha256[:16]), "success")
        return redirect(url_for("rulesets.version_page", name=version.name, version=version.version))
    return redirect(url_for("rulesets.draft_page", draft_id=draft_id))


@bp.route("/drafts/<int:draft_id>/discard", methods=["POST"])
@roles_required(*RULESET_EDITORS)
def discard(draft_id: int) -> Any:
    """Give a draft up."""
    form = forms.DiscardForm()
    try:
        ruleset_drafts.discard_draft(
            draft_id, actor=current_user, expected_lock=int(form.expected_lock.data or 0), reason=form.reason.data or ""
        )
    except WorkflowError as e:
        flash(shown(e.message), "error")
    else:
        flash(_("Draft discarded."), "info")
    return redirect(url_for("rulesets.draft_page", draft_id=draft_id))


# The impact preview's totals are the engine's English lines; each kind of line has its text for the page.
_TALLIES = [
    (re.compile(r"finding (?P<finding>\S+) added"), N_("finding %(finding)s added")),
    (re.compile(r"finding (?P<finding>\S+) removed"), N_("finding %(finding)s removed")),
    (
        re.compile(r"severity (?P<finding>\S+): (?P<old>\S+) -> (?P<new>\S+)"),
        N_("severity %(finding)s: %(old)s -> %(new)s"),
    ),
    (re.compile(r"plan\.(?P<key>\S+) changed"), N_("plan.%(key)s changed")),
    (re.compile(r"separation window added"), N_("separation window added")),
    (re.compile(r"separation window removed"), N_("separation window removed")),
    (re.compile(r"separation window changed"), N_("separation window changed")),
    (re.compile(r"monitoring added"), N_("monitoring added")),
    (re.compile(r"monitoring removed"), N_("monitoring removed")),
    (re.compile(r"schedule changed"), N_("schedule changed")),
    (re.compile(r"status (?P<old>\S+) -> (?P<new>\S+)"), N_("status %(old)s -> %(new)s")),
]
_TALLY_LINE = re.compile(r"(?P<what>.+?) in (?P<count>[0-9]+)(?:: (?P<subject>.*))?")


def _tally_text(what: str) -> str:
    """One kind of change in the reader's language (the engine's words when the kind is new)."""
    for pattern, template in _TALLIES:
        if found := pattern.fullmatch(what):
            return str(_(template, **found.groupdict()) if found.groupdict() else _(template))
    return what


@bp.app_template_global("impact_totals")
def impact_totals(result: Impact) -> list[str]:
    """The impact preview's totals in the reader's language, in the engine's order."""
    lines = [
        _("%(records)s records replayed, %(changed)s would change", records=result.records, changed=len(result.changed))
    ]
    for line in result.summary()[1:]:
        parts = _TALLY_LINE.fullmatch(line)
        if parts is None:
            lines.append(line)
        elif parts["subject"] is None:
            lines.append(_("%(what)s in %(count)s", what=_tally_text(parts["what"]), count=parts["count"]))
        else:
            what = _tally_text(parts["what"])
            lines.append(
                _("%(what)s in %(count)s: %(subject)s", what=what, count=parts["count"], subject=parts["subject"])
            )
    return lines


_CHANGE_MARKS = {"added": N_("added"), "changed": N_("changed"), "removed": N_("removed")}


@bp.app_template_filter("change_mark")
def change_mark(mark: str) -> str:
    """A rule's change against the base version (added, changed, removed) in the reader's language."""
    return _(_CHANGE_MARKS[mark]) if mark in _CHANGE_MARKS else mark


@bp.app_template_filter("draft_status")
def draft_status(status: str) -> str:
    """A draft's status in the reader's language."""
    return status_text(status)


@bp.route("/diff")
@roles_required(*ANY_ROLE)
def diff() -> Any:
    """Two versions (or drafts) side by side: what changed rule by rule, and the text."""
    a, b = request.args.get("a", ""), request.args.get("b", "")
    old, new = _text_of(a), _text_of(b)
    if old is None or new is None:
        flash(_("Choose two versions to compare (e.g. v1 and draft-2)."), "error")
        return redirect(url_for("rulesets.index"))
    changes = compare(old[1:], new[1:])
    table = difflib.HtmlDiff(wrapcolumn=72).make_table(
        old[1].splitlines(), new[1].splitlines(), old[0], new[0], context=True, numlines=4
    )
    return render_template("rulesets/diff.html", old=old[0], new=new[0], changes=changes, table=Markup(table))


def _text_of(ref: str) -> tuple[str, str, str | None] | None:
    """(label, text, scenarios) of `v<N>` (a published version of the default ruleset) or `draft-<id>`."""
    if not re.fullmatch(r"(v|draft-)[0-9]{1,9}", ref):
        return None
    if ref.startswith("draft-"):
        if not current_user.reads_drafts:
            abort(403)
        draft = db.session.get(RulesetDraft, int(ref[6:]))
        return (draft.label, draft.content, draft.scenarios) if draft else None
    if ref.startswith("v"):
        try:
            version = ruleset_versions.get_version(ruleset_versions.DEFAULT_RULESET, int(ref[1:]))
        except WorkflowError:
            return None
        return version.label, version.content, version.scenarios
    return None

"""Alert burden per rule: how often each rule's finding fired, how clinicians answered it, and how fast.

An alert is a finding shown to someone who answers it: a case on the review worklist (answered by a signed
decision) or a CDS Hooks card in the EHR (answered by feedback). A decision answers every finding of its case,
so an override of a case counts against each rule that put a finding on it. Plain rows in, plain stats out:
the review UI builds the rows from its database.
"""

from __future__ import annotations

import base64
import io
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.report import COLORS

UNCODED = "(no code)"  # an override answered without a coded reason


@dataclass(frozen=True)
class FiredFinding:
    """One finding of an evaluation and the rules that reported it."""

    finding_id: str
    severity: str
    rules: tuple[str, ...]


@dataclass(frozen=True)
class CaseRow:
    """One evaluated record on the worklist."""

    case_id: int
    patient_ref: str
    created_at: datetime
    findings: tuple[FiredFinding, ...]


@dataclass(frozen=True)
class DecisionRow:
    """A signed decision on a case; an override carries a coded reason."""

    case_id: int
    kind: str  # approve, adjust, reject, refer
    override_code: str | None
    signed_at: datetime


@dataclass(frozen=True)
class FeedbackRow:
    """One CDS Hooks feedback item; `finding` is None when the card could not be traced to a finding."""

    card: str
    outcome: str  # accepted or overridden
    reason_code: str | None
    at: datetime
    finding: FiredFinding | None = None
    patient_ref: str | None = None
    shown_at: datetime | None = None


@dataclass
class RuleBurden:
    """The burden of one rule's finding."""

    rule_id: str
    finding_id: str
    severity: str = ""
    fired: int = 0  # alerts: worklist cases plus answered cards
    cards: int = 0  # of which CDS Hooks cards
    answered: int = 0  # alerts with a signed decision or feedback
    overridden: int = 0
    decisions: Counter[str] = field(default_factory=Counter)  # decision kind (or card outcome) -> count
    reasons: Counter[str] = field(default_factory=Counter)  # override code -> count
    patients: set[str] = field(default_factory=set)
    fired_for_patients: int = 0  # alerts whose patient is known
    seconds_to_decision: list[float] = field(default_factory=list)

    @property
    def override_rate(self) -> float | None:
        """Overridden share of the answered alerts, None when none was answered."""
        return self.overridden / self.answered if self.answered else None

    @property
    def repeat_rate(self) -> float | None:
        """Share of alerts a patient had already seen for this rule, None when it never fired for a patient."""
        counted = self.fired_for_patients
        return (counted - len(self.patients)) / counted if counted else None

    @property
    def median_seconds_to_decision(self) -> float | None:
        """Median time from alert to answer, None without a timed answer."""
        return statistics.median(self.seconds_to_decision) if self.seconds_to_decision else None

    def top_reasons(self, n: int = 3) -> list[tuple[str, int]]:
        """The most frequent override reasons, most frequent first, ties by code."""
        return sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


@dataclass
class Burden:
    """Every rule's burden, and the feedback that could not be traced to a rule."""

    rules: list[RuleBurden]
    untraced_feedback: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # each override once, whatever rules it answered

    def for_rules(self, rule_ids: Iterable[str]) -> list[RuleBurden]:
        """The rows of these rules, in the order of `rules`."""
        wanted = set(rule_ids)
        return [r for r in self.rules if r.rule_id in wanted]


def compute(
    cases: Iterable[CaseRow],
    decisions: Iterable[DecisionRow],
    feedback: Iterable[FeedbackRow] = (),
    *,
    rule_findings: Mapping[str, str | None] | None = None,
) -> Burden:
    """Per (rule, finding): alerts, answers, overrides and their reasons, repeats per patient, time to answer.

    `rule_findings` (rule id -> finding id of the current ruleset) adds a zero row for every rule that never
    fired, so an editor sees those too; rules without a finding are left out.
    """
    tally = _Tally()
    first_decision: dict[int, DecisionRow] = {}
    for d in sorted(decisions, key=lambda d: d.signed_at):
        first_decision.setdefault(d.case_id, d)  # the workflow decides a case once; the earliest row counts
    for case in cases:
        tally.case(case, first_decision.get(case.case_id))
    for item in feedback:
        tally.card(item)
    for rule_id, finding_id in (rule_findings or {}).items():
        if finding_id and not any(k[0] == rule_id for k in tally.rows):
            tally.rows[(rule_id, finding_id)] = RuleBurden(rule_id, finding_id)
    ordered = sorted(tally.rows.values(), key=lambda r: (-r.fired, -(r.override_rate or 0.0), r.rule_id, r.finding_id))
    return Burden(ordered, tally.untraced, tally.reasons)


@dataclass
class _Tally:
    """The counts being gathered, one row per (rule, finding)."""

    rows: dict[tuple[str, str], RuleBurden] = field(default_factory=dict)
    reasons: Counter[str] = field(default_factory=Counter)
    untraced: int = 0

    def row(self, rule_id: str, found: FiredFinding) -> RuleBurden:
        """The row of this rule and finding, made on first use."""
        key = (rule_id, found.finding_id)
        if key not in self.rows:
            self.rows[key] = RuleBurden(rule_id, found.finding_id)
        r = self.rows[key]
        r.severity = r.severity or found.severity
        return r

    def case(self, case: CaseRow, decision: DecisionRow | None) -> None:
        """A case on the worklist and its decision, if signed: one alert per rule behind each finding."""
        if decision is not None and decision.override_code:
            self.reasons[decision.override_code] += 1
        for found in case.findings:
            for rule_id in found.rules:
                r = self.row(rule_id, found)
                r.fired += 1
                r.fired_for_patients += 1
                r.patients.add(case.patient_ref)
                if decision is not None:
                    self._answer(r, decision, case)

    @staticmethod
    def _answer(r: RuleBurden, decision: DecisionRow, case: CaseRow) -> None:
        r.answered += 1
        r.decisions[decision.kind] += 1
        if decision.override_code:
            r.overridden += 1
            r.reasons[decision.override_code] += 1
        r.seconds_to_decision.append((decision.signed_at - case.created_at).total_seconds())

    def card(self, item: FeedbackRow) -> None:
        """A CDS Hooks card answered by the prescriber; untraced when it names no finding of ours."""
        if item.outcome == "overridden":
            self.reasons[item.reason_code or UNCODED] += 1
        if item.finding is None:
            self.untraced += 1
            return
        for rule_id in item.finding.rules:
            r = self.row(rule_id, item.finding)
            r.fired += 1
            r.cards += 1
            r.answered += 1
            r.decisions[f"card {item.outcome}"] += 1
            if item.patient_ref is not None:
                r.fired_for_patients += 1
                r.patients.add(item.patient_ref)
            if item.outcome == "overridden":
                r.overridden += 1
                r.reasons[item.reason_code or UNCODED] += 1
            if item.shown_at is not None:
                r.seconds_to_decision.append((item.at - item.shown_at).total_seconds())


CSV_COLUMNS = (
    "rule",
    "finding",
    "severity",
    "fired",
    "cards",
    "answered",
    "answers",
    "overridden",
    "override_rate",
    "override_reasons",
    "patients",
    "repeat_rate",
    "median_seconds_to_decision",
)


def table(burden: Burden) -> list[list[Any]]:
    """The rows of the CSV download, without its header (`CSV_COLUMNS`)."""
    out = []
    for r in burden.rules:
        out.append(
            [
                r.rule_id,
                r.finding_id,
                r.severity,
                r.fired,
                r.cards,
                r.answered,
                "; ".join(f"{kind} {n}" for kind, n in sorted(r.decisions.items())),
                r.overridden,
                _round(r.override_rate),
                "; ".join(f"{code} {n}" for code, n in r.top_reasons(len(r.reasons))),
                len(r.patients),
                _round(r.repeat_rate),
                _round(r.median_seconds_to_decision),
            ]
        )
    return out


def _round(value: float | None) -> float | str:
    return "" if value is None else round(value, 4)


def figure(burden: Burden, top: int = 20) -> Any:
    """Two panels: the most frequent alerts with their overridden part, and override reasons over all rules."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 6), gridspec_kw={"width_ratios": [3, 2]})
    shown = [r for r in burden.rules if r.fired][:top][::-1]
    if shown:
        labels = [f"{r.rule_id} / {r.finding_id}" for r in shown]
        left.barh(labels, [r.fired for r in shown], color=[COLORS.get(r.severity, "#8fb3cc") for r in shown])
        left.barh(labels, [r.overridden for r in shown], color="#1f3b4d", height=0.35, label="overridden")
        left.legend(loc="lower right")
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.tick_params(axis="y", labelsize=8)
    else:
        left.text(0.5, 0.5, "no alert has fired yet", ha="center", va="center")
        left.set_axis_off()
    left.set_title(f"Alerts per rule (top {top}), colour = severity, dark = overridden")
    if burden.reasons:
        items = sorted(burden.reasons.items(), key=lambda kv: (kv[1], kv[0]))
        right.barh([k for k, _ in items], [v for _, v in items], color="#7f8c8d")
        right.tick_params(axis="y", labelsize=8)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        right.text(0.5, 0.5, "no override", ha="center", va="center")
        right.set_axis_off()
    right.set_title("Override reasons (each override once)")
    fig.tight_layout()
    return fig


def png_data_uri(burden: Burden) -> str:
    """The figure as a `data:image/png;base64,...` URI for an <img> on a page."""
    import matplotlib.pyplot as plt

    fig = figure(burden)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")

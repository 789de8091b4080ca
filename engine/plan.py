"""Turn the rules that fired into merged findings and a suggested plan.

Decisions that need the absence of something ("nothing caps the dose") are made here in
Python, after the rules ran, because durable_rules' negation is not truth-maintained.
What a rule contributes that does not depend on the patient (finding id, severity, sources,
message template, which fields its evidence shows, plan effects) is worked out once per
ruleset, so evaluating a record only looks values up.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

from engine import amounts
from engine.facts import LAB_EVIDENCE, Intake, lab_evidence
from engine.results import ContractTerms, Finding, Firing, Plan, Separation, pattern_name
from engine.ruleset import Rule, Ruleset
from engine.schedule import Conflict, Schedule, Window, build_schedule
from engine.vocabulary import DAILY_SCHEDULE_SINCE_VERSION, PLAN_CONTRACT_SINCE_VERSION, PLAN_EFFECTS, SEVERITY_RANK

CONFIDENCE_RANK = {"V": 0, "S": 1, "U": 2}
SHAPES_CACHE_SIZE = 4096  # each part of a plan's shape kept per ruleset (distinct sets of the rules with that part)
TERMS_CACHE_SIZE = 1024  # plan-contract terms kept per ruleset (distinct decisions and magnesium already taken)
_AS_WRITTEN_FIELDS = ("ingredient", "classes", "concept")
# Kinds of evidence item: a derived fact, a plain field, a field shown as written, the eGFR with its source,
# another lab field (with status, date and bound when reported).
_DERIVED, _PLAIN, _AS_WRITTEN, _EGFR, _LAB = range(5)


class _Values(dict[str, Any]):
    """Message values; a field the matched facts do not have reads as "unknown", never a crash."""

    def __missing__(self, key: str) -> str:
        return "unknown"


class _DutchValues(_Values):
    """Message values for the Dutch twin: a missing field reads as "onbekend"."""

    def __missing__(self, key: str) -> str:
        return "onbekend"


def _decimal_comma(number: str) -> str:
    """'0.71' -> '0,71': a number as Dutch writes it."""
    return number.replace(".", ",")


class _Dutch:
    """The Dutch a bilingual ruleset carries, looked up once: monitoring lines, form names, plan texts."""

    def __init__(self, ruleset: Ruleset):
        self.ruleset = ruleset
        self.monitoring: dict[str, str] = {}
        for rule in ruleset.rules:
            for key in ("monitoring", "monitoring_on_magnesium"):
                lines, dutch = rule.then.get(key, []), rule.then.get(key + "_nl", [])
                for line, line_nl in zip(lines, dutch, strict=False):
                    self.monitoring.setdefault(line, line_nl)

    def text(self, key: str, **values: Any) -> str:
        """A plan text of the ruleset in Dutch, its {placeholders} filled."""
        return (self.ruleset.text(key, "nl") or "").format(**values)

    def value(self, name: str, value: Any) -> Any:
        """A placeholder's value as a Dutch reader reads it: a decimal comma, a form or jurisdiction in Dutch."""
        if isinstance(value, float):
            return _decimal_comma(_display(value))
        if name == "supplement_form" and isinstance(value, str):
            return self.ruleset.text(f"patient_plan:form_{value}", "nl") or value
        if name == "jurisdiction" and isinstance(value, str):
            return self.ruleset.text(f"patient_plan:jurisdiction_{value}", "nl") or value
        return value

    def lines(self, monitoring: list[str]) -> list[str]:
        """The Dutch of each monitoring line (the English line when a rule gives none)."""
        return [self.monitoring.get(line, line) for line in monitoring]


def _display(value: Any) -> Any:
    if isinstance(value, float):
        return format(round(value, 3), "g")
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return value


@dataclass(frozen=True)
class RuleOutput:
    """What one rule adds to findings, plan and trace, computed once from the checked rule."""

    rule_id: str
    patterns: tuple[str, ...]  # pattern names in rule order
    finding: str | None
    severity: str
    severity_rank: int
    confidence: str
    confidence_rank: int
    sources: tuple[str, ...]
    template: str
    template_nl: str | None  # the Dutch twin (bilingual rulesets)
    placeholders: tuple[str, ...]
    # (kind, pattern name, field or derived name, fact label, op, threshold), in rule order
    evidence: tuple[tuple[int, str, str, str, str, Any], ...]
    unverified: str | None
    caps: tuple[float, ...]
    requires_physician: bool
    urgent: bool
    doses_per_day_min: int
    suggest_form: str | None
    monitoring: tuple[str, ...]
    separation: tuple[float | None, float | None] | None
    medication_pattern: str | None
    shapes_plan: bool
    derive: str | None  # the derived fact the rule makes

    @classmethod
    def of(cls, rule: Rule) -> RuleOutput:
        """The static output data of one rule."""
        then = rule.then
        patterns = tuple(pattern_name(i) for i in range(len(rule.when)))
        evidence: list[tuple[int, str, str, str, str, Any]] = []
        for name, pattern in zip(patterns, rule.when, strict=True):
            if pattern.on == "derived":
                derived = pattern.where[0].value
                evidence.append((_DERIVED, name, derived, f"derived.{derived}", "", None))
                continue
            for c in pattern.conditions():
                if pattern.on != "patient" and c.field in _AS_WRITTEN_FIELDS:
                    kind = _AS_WRITTEN
                elif pattern.on == "patient" and c.field == "egfr_ml_min_1_73m2":
                    kind = _EGFR
                elif pattern.on == "patient" and c.field in LAB_EVIDENCE:
                    kind = _LAB
                else:
                    kind = _PLAIN
                evidence.append((kind, name, c.field, f"{pattern.on}.{c.field}", c.op, c.value))
        template = str(then.get("message", ""))
        finding = then.get("finding") or None
        severity = then.get("severity", "info") if finding else "info"
        separation = then.get("separation")
        medication = next((n for n, p in zip(patterns, rule.when, strict=True) if p.on == "medication"), None)
        caps = tuple(float(then[key]) for key in ("ul_mg", "cap_mg") if key in then)
        monitoring = tuple(then.get("monitoring", []))
        return cls(
            rule_id=rule.id,
            patterns=patterns,
            finding=finding,
            severity=severity,
            severity_rank=SEVERITY_RANK[severity],
            confidence=rule.confidence,
            confidence_rank=CONFIDENCE_RANK[rule.confidence],
            sources=rule.sources,
            template=template,
            template_nl=then.get("message_nl") if isinstance(then.get("message_nl"), str) else None,
            placeholders=tuple(n for _, n, _, _ in string.Formatter().parse(template) if n),
            evidence=tuple(evidence),
            unverified=rule.note if rule.confidence == "U" else None,
            caps=caps,
            requires_physician=bool(then.get("requires_physician")),
            urgent=bool(then.get("urgent")),
            doses_per_day_min=int(then.get("doses_per_day_min", 0)),
            suggest_form=then.get("suggest_form") or None,
            monitoring=monitoring,
            separation=(separation["before_h"], separation["after_h"]) if separation else None,
            medication_pattern=medication,
            shapes_plan=bool(caps or any(then.get(name) for name in PLAN_EFFECTS)),
            derive=then.get("derive") or None,
        )


class Planner:
    """Findings and plan for the firings of one ruleset."""

    def __init__(self, ruleset: Ruleset):
        self.outputs = tuple(RuleOutput.of(rule) for rule in ruleset.rules)
        self.contract = _Contract(ruleset) if ruleset.version >= PLAN_CONTRACT_SINCE_VERSION else None
        self.daily_schedule = ruleset.version >= DAILY_SCHEDULE_SINCE_VERSION
        self.dutch = _Dutch(ruleset) if ruleset.bilingual else None
        self.shapes = _PlanRules(self.outputs, self.contract, self.dutch)
        self.messages = _Messages(self.dutch)

    def findings(self, fired: list[Firing], intake: Intake) -> list[Finding]:
        """One finding per catalogue id: the most severe rule's severity, every rule's evidence and sources."""
        if self.contract is not None:
            return self.contract.findings(self, fired, intake)
        return _Findings(self, fired, intake).build()

    def plan(self, fired: list[Firing], merged: list[Finding], intake: Intake) -> Plan:
        """The suggested plan: the strictest cap, divided doses, strictest separations, monitoring."""
        caps, lines, separations = self.shapes.of(fired)
        supplement = caps.cap > 0
        patient = intake.patient
        requested_form = patient.get("supplement_form")
        form = caps.suggested_form or (requested_form if requested_form not in (None, "none", "unknown") else None)
        contraindicated = "contraindicated" in {finding.severity for finding in merged}  # a set: twice any()'s speed
        # The plan's terms are gathered, amended by the contract and the schedule, and the frozen Plan built once
        # (dataclasses.replace per amendment cost about 4 µs each, a few per cent of a record). The lists a plan
        # hands out are its own copies of the shared, immutable parts.
        terms: dict[str, Any] = {
            "supplement": supplement,
            "form": form if supplement else None,
            "requested_form": requested_form if requested_form != "none" else None,
            "max_elemental_mg_per_day": caps.max_elemental_mg_per_day,
            "cap_set_by": caps.cap_set_by,
            "requested_elemental_mg_per_day": patient.get("supplement_dose_elemental_mg"),
            "doses_per_day": caps.doses_per_day if supplement else 0,
            "separations": list(separations.separations),
            "requires_physician": contraindicated or caps.physician_sets_cap or not supplement,
            "urgent": caps.urgent,
        }
        monitoring, monitoring_nl = lines.lines, lines.lines_nl
        if self.contract is not None:
            self.contract.apply(self, fired, terms, form, intake)
            if terms["supplement"]:  # the contract's advice for taking magnesium, only when some is proposed
                monitoring, monitoring_nl = lines.on_magnesium, lines.on_magnesium_nl
        terms["monitoring"] = list(monitoring)
        if self.daily_schedule:
            doses = terms["doses_per_day"]
            terms["schedule"] = separations.schedule(doses) if terms["supplement"] and doses >= 1 else None
            terms["carries_schedule"] = True
        if monitoring_nl is not None:
            terms["monitoring_nl"] = list(monitoring_nl)
        return Plan(**terms)


def daily_schedule(
    supplement: bool, doses_per_day: int, separations: Sequence[Separation]
) -> Schedule | Conflict | None:
    """One day that keeps every separation window of a plan, or why none can; None when no magnesium is proposed."""
    if not supplement or doses_per_day < 1:
        return None
    windows = [Window(s.drug, s.drug_before_mg_h, s.drug_after_mg_h) for s in separations]
    return build_schedule(windows, doses_per_day)


@dataclass(slots=True)
class _Shaping:
    """What the rules that fired ask of the plan, gathered in the order given."""

    best: tuple[float, str] | None = None  # the strictest cap; equal caps: the smallest rule id
    requires_physician: bool = False
    urgent: bool = False
    doses_min: int = 0
    suggested_form: str | None = None  # the first rule's that suggests one
    monitoring: list[str] = dataclasses.field(default_factory=list)
    separations: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # drug -> its strictest window

    def add(self, firing: Firing, out: RuleOutput) -> None:
        """One firing of a rule that shapes the plan."""
        for cap in out.caps:
            if self.best is None or (cap, out.rule_id) < self.best:
                self.best = (cap, out.rule_id)
        self.requires_physician = self.requires_physician or out.requires_physician
        self.urgent = self.urgent or out.urgent
        self.doses_min = max(self.doses_min, out.doses_per_day_min)
        if self.suggested_form is None and out.suggest_form:
            self.suggested_form = out.suggest_form
        if out.monitoring:
            self.monitoring += [m for m in out.monitoring if m not in self.monitoring]
        if out.separation is not None:
            self._separate(_medication_of(firing, out), out.finding, out.separation)

    def _separate(self, drug: str, finding: str | None, hours: tuple[float | None, float | None]) -> None:
        """Widen a drug's window to the rule's hours before and after magnesium (the longest wins)."""
        window = self.separations.setdefault(
            drug, {"drug": drug, "findings": [], "drug_before_mg_h": None, "drug_after_mg_h": None}
        )
        if finding and finding not in window["findings"]:
            window["findings"].append(finding)
        for h, key in zip(hours, ("drug_before_mg_h", "drug_after_mg_h"), strict=True):
            if h is not None and (window[key] is None or h > window[key]):
                window[key] = h

    def cap(self) -> tuple[float, str, bool]:
        """(cap mg/day, what set it, whether a physician must decide) before the plan contract.

        No upper limit covering the patient fails safe (0, a physician decides); urgent overrides any cap.
        """
        cap, cap_rule = self.best if self.best is not None else (0.0, "NO_UPPER_LIMIT")
        if self.urgent:
            cap, cap_rule = 0.0, "URGENT"
        return cap, cap_rule, self.requires_physician or self.best is None

    def separation_list(self) -> list[Separation]:
        """One separation per drug, by drug name."""
        return [
            Separation(w["drug"], ", ".join(w["findings"]), w["drug_before_mg_h"], w["drug_after_mg_h"])
            for w in sorted(self.separations.values(), key=lambda w: w["drug"])
        ]


# What a rule contributes to the plan's shape: the cap and the other single values, monitoring lines, a separation.
_CAPS, _LINES, _SEPARATES = 1, 2, 4
_K = TypeVar("_K")
_V = TypeVar("_V")


class _PlanRules:
    """The rules of a ruleset that shape a plan, and the parts of the plan they make, kept per set that fired.

    Each part of a plan's shape depends only on which rules with that part fired, in ruleset order: the cap, doses and
    form; the monitoring lines; the separations (with the drug each names) and their daily schedule. Records share few
    sets of each (far fewer than whole sets of rules), and working them out was most of the plan stage.
    """

    def __init__(self, outputs: tuple[RuleOutput, ...], contract: _Contract | None, dutch: _Dutch | None):
        self.outputs = outputs
        self.dutch = dutch
        self.on_magnesium = contract.on_magnesium if contract is not None else tuple(() for _ in outputs)
        self.roles = tuple(_role(out, bool(on)) for out, on in zip(outputs, self.on_magnesium, strict=True))
        self._caps: dict[tuple[int, ...], _CapPart] = {}
        self._lines: dict[tuple[int, ...], _Monitoring] = {}
        self._separations: dict[tuple[int | str, ...], _Separations] = {}

    def of(self, fired: list[Firing]) -> tuple[_CapPart, _Monitoring, _Separations]:
        """The parts of the plan's shape the rules that fired ask for."""
        roles = self.roles
        caps: list[int] = []
        lines: list[int] = []
        separations: list[int | str] = []
        for f in fired:
            index = f.rule.index
            role = roles[index]
            if role:
                if role & _CAPS:
                    caps.append(index)
                if role & _LINES:
                    lines.append(index)
                if role & _SEPARATES:
                    separations += (index, _medication_of(f, self.outputs[index]))
        keys = tuple(caps), tuple(lines), tuple(separations)
        kept_caps, kept_lines = self._caps.get(keys[0]), self._lines.get(keys[1])
        kept_separations = self._separations.get(keys[2])
        if kept_caps is None or kept_lines is None or kept_separations is None:
            return self._keep(fired, *keys)
        return kept_caps, kept_lines, kept_separations

    def _keep(
        self, fired: list[Firing], caps: tuple[int, ...], lines: tuple[int, ...], separations: tuple[int | str, ...]
    ) -> tuple[_CapPart, _Monitoring, _Separations]:
        """Work the parts out from the rules that fired, and keep those not kept yet."""
        shaping = self._shaping(fired)
        return (
            _kept(self._caps, caps, _CapPart.of(shaping)),
            _kept(self._lines, lines, _Monitoring.of(shaping, self._on(fired), self.dutch)),
            _kept(self._separations, separations, _Separations(shaping.separation_list())),
        )

    def _shaping(self, fired: list[Firing]) -> _Shaping:
        shaping = _Shaping()
        outputs = self.outputs
        for f in fired:
            out = outputs[f.rule.index]
            if out.shapes_plan:
                shaping.add(f, out)
        return shaping

    def _on(self, fired: list[Firing]) -> list[str]:
        """The lines for when magnesium is taken (plan contract), in rule order."""
        return [m for f in fired for m in self.on_magnesium[f.rule.index]]


def _role(out: RuleOutput, on_magnesium: bool) -> int:
    """Which parts of the plan's shape a rule contributes to (_CAPS, _LINES, _SEPARATES), 0 for none."""
    role = 0
    if out.shapes_plan and (
        out.caps or out.requires_physician or out.urgent or out.doses_per_day_min or out.suggest_form
    ):
        role |= _CAPS
    if (out.shapes_plan and out.monitoring) or on_magnesium:
        role |= _LINES
    if out.shapes_plan and out.separation is not None:
        role |= _SEPARATES
    return role


def _kept(store: dict[_K, _V], key: _K, made: _V) -> _V:
    """store[key], or `made` kept there; a full store is emptied first (it holds pure results: made again)."""
    found = store.get(key)
    if found is None:
        if len(store) >= SHAPES_CACHE_SIZE:
            store.clear()
        found = store[key] = made
    return found


@dataclass(frozen=True, slots=True)
class _CapPart:
    """The cap, who sets it, doses and form the rules ask for, before the plan contract."""

    cap: float
    cap_set_by: str
    physician_sets_cap: bool
    urgent: bool
    max_elemental_mg_per_day: int | float
    doses_per_day: int  # when magnesium is proposed
    suggested_form: str | None

    @classmethod
    def of(cls, shaping: _Shaping) -> _CapPart:
        """The part gathered from the rules that fired."""
        cap, cap_set_by, physician_sets_cap = shaping.cap()
        return cls(
            cap,
            cap_set_by,
            physician_sets_cap,
            shaping.urgent,
            _number(cap),
            max(shaping.doses_min, 1),
            shaping.suggested_form,
        )


@dataclass(frozen=True, slots=True)
class _Monitoring:
    """The monitoring lines, and with the plan contract's lines for when magnesium is taken; each in Dutch too."""

    lines: tuple[str, ...]
    lines_nl: tuple[str, ...] | None  # None: the ruleset has no Dutch
    on_magnesium: tuple[str, ...]
    on_magnesium_nl: tuple[str, ...] | None

    @classmethod
    def of(cls, shaping: _Shaping, on_magnesium: list[str], dutch: _Dutch | None) -> _Monitoring:
        """The lines of the rules that fired, each once, in rule order."""
        lines = tuple(shaping.monitoring)
        with_magnesium = tuple(dict.fromkeys(lines + tuple(on_magnesium)))
        if dutch is None:
            return cls(lines, None, with_magnesium, None)
        return cls(lines, tuple(dutch.lines(list(lines))), with_magnesium, tuple(dutch.lines(list(with_magnesium))))


class _Separations:
    """The separations the rules that fired ask for, by drug, and their daily schedule per doses a day."""

    def __init__(self, separations: list[Separation]):
        self.separations = tuple(separations)  # Separation is frozen: shared by plans in a list of their own
        self._schedules: dict[int, Schedule | Conflict | None] = {}

    def schedule(self, doses_per_day: int) -> Schedule | Conflict | None:
        """The daily schedule (frozen) at these doses a day, worked out on first use: a window the schedule cannot read
        raises ScheduleError, so it is worked out only for a plan that proposes magnesium, as before."""
        if doses_per_day not in self._schedules:
            self._schedules[doses_per_day] = daily_schedule(True, doses_per_day, self.separations)
        return self._schedules[doses_per_day]


class _Decision(NamedTuple):
    """The cap of one evaluation under the plan contract (REFERENCE §1.5, §8).

    A named tuple rather than a frozen dataclass: it keys the contract's kept terms, and a tuple hashes and compares
    in C, not in a dataclass's Python __hash__ and __eq__."""

    cap: float
    cap_set_by: str | None  # None: keep the strictest rule the base plan found
    ul: float | None  # the strictest upper limit that applies (None: no upper limit at this age)
    ul_rule: str | None
    allowed: float | None  # UL minus magnesium already taken
    decides: tuple[str, ...]  # findings (or URGENT / NO_UPPER_LIMIT) for which a physician decides the dose


class _Contract:
    """Plan contract of REFERENCE §8 and magnesium already taken (§1.5), for rulesets from PLAN_CONTRACT_SINCE_VERSION.

    A rule with cap_mg 0 means a physician decides the dose: the plan proposes none and states separately the
    ceiling the rules would allow once a physician agrees. Other caps are upper limits, from which magnesium already
    taken is subtracted. Advice for taking magnesium appears only when the plan proposes some.
    """

    def __init__(self, ruleset: Ruleset):
        self.advice_only = tuple(bool(rule.then.get("only_when_supplemented")) for rule in ruleset.rules)
        self.on_magnesium = tuple(tuple(rule.then.get("monitoring_on_magnesium", [])) for rule in ruleset.rules)
        # per rule: (its strictest positive cap and rule id, or None; what a physician decides for, or None; urgent)
        self.caps: tuple[tuple[tuple[float, str] | None, str | None, bool], ...] = tuple(
            (
                min(((float(c), rule.id) for c in _caps(rule) if c > 0), default=None),
                (rule.then.get("finding") or rule.id) if 0 in _caps(rule) else None,
                bool(rule.then.get("urgent")),
            )
            for rule in ruleset.rules
        )
        self._last: tuple[list[Firing], Intake, _Decision] | None = None  # findings() then plan() of one record
        self._kept_terms: dict[tuple[Any, ...], ContractTerms] = {}

    def decide(self, planner: Planner, fired: list[Firing], intake: Intake) -> _Decision:
        """The strictest upper limit minus magnesium already taken, or 0 where a physician decides."""
        last = self._last
        if last is not None and last[0] is fired and last[1] is intake:
            return last[2]
        decision = self._decide(fired, intake)
        self._last = (fired, intake, decision)
        return decision

    def _decide(self, fired: list[Firing], intake: Intake) -> _Decision:
        ul: tuple[float, str] | None = None
        decides: list[str] = []
        urgent = False
        caps = self.caps
        for f in fired:
            rule_ul, decided, rule_urgent = caps[f.rule.index]
            urgent = urgent or rule_urgent
            if decided is not None:
                decides.append(decided)
            if rule_ul is not None and (ul is None or rule_ul < ul):
                ul = rule_ul
        if urgent:
            decides.append("URGENT")
        if ul is None:
            decides.append("NO_UPPER_LIMIT")
        other = float(intake.patient.get("other_mg_elemental_mg_per_day", 0.0))
        allowed = amounts.allowed_mg(ul[0], other) if ul else None
        because = tuple(dict.fromkeys(decides))
        if because or ul is None:  # cap_set_by: the base plan's strictest cap-0 rule, URGENT or NO_UPPER_LIMIT
            return _Decision(0.0, None, *_ul(ul), allowed, because)
        assert allowed is not None
        return _Decision(allowed, ul[1], ul[0], ul[1], allowed, because)  # 0 when other magnesium uses up the UL

    def findings(self, planner: Planner, fired: list[Firing], intake: Intake) -> list[Finding]:
        """Findings without advice for taking magnesium when none is proposed; other magnesium shown as read."""
        decision = self.decide(planner, fired, intake)
        if decision.cap == 0:
            fired = [f for f in fired if not self.advice_only[f.rule.index]]
        merged = _Findings(planner, fired, intake).build()
        if intake.other_mg is not None and intake.other_mg.readings:
            _explain_other_mg(merged, intake.other_mg, decision)
        return merged

    def apply(
        self, planner: Planner, fired: list[Firing], terms: dict[str, Any], form: str | None, intake: Intake
    ) -> None:
        """Amend the base plan's terms: cap = UL − magnesium already taken, or 0 with a separate ceiling where a
        physician decides."""
        d = self.decide(planner, fired, intake)
        supplement = d.cap > 0
        requires_physician = terms["requires_physician"]
        terms.update(
            supplement=supplement,
            form=form if supplement else None,
            max_elemental_mg_per_day=_number(d.cap),
            cap_set_by=d.cap_set_by if d.cap_set_by is not None else terms["cap_set_by"],
            doses_per_day=terms["doses_per_day"] if supplement else 0,
            requires_physician=requires_physician or not supplement,
            contract=self._terms(planner.dutch, d, intake, requires_physician),
        )

    def _terms(self, dutch: _Dutch | None, d: _Decision, intake: Intake, requires_physician: bool) -> ContractTerms:
        """The contract's terms, kept per (decision, magnesium already taken, physician approves): the ceiling reasons
        are pure functions of few distinct values, and they and the frozen ContractTerms were a third of the plan
        stage. ContractTerms holds only immutable values, so plans share it."""
        other = intake.other_mg
        other_mg = intake.patient.get("other_mg_elemental_mg_per_day")
        key = (d, other.readings if other is not None else None, requires_physician, other_mg)
        terms = self._kept_terms.get(key)
        if terms is None:
            if len(self._kept_terms) >= TERMS_CACHE_SIZE:
                self._kept_terms.clear()
            terms = self._kept_terms[key] = _contract_terms(dutch, d, other, requires_physician, other_mg)
        return terms


def _contract_terms(
    dutch: _Dutch | None, d: _Decision, other: amounts.OtherMagnesium | None, requires_physician: bool, other_mg: Any
) -> ContractTerms:
    """No ceiling, reasons or physician's findings unless a physician decides (no amount proposed)."""
    decides = not d.cap > 0
    return ContractTerms(
        physician="decides" if decides else ("approves" if requires_physician else "none"),
        physician_decides_because=(d.decides or ("CUMULATIVE_MG_SOURCES",)) if decides else (),
        ceiling_if_physician_agrees_mg_per_day=_number(d.allowed) if decides and d.allowed is not None else None,
        ceiling_reason=_ceiling_reason(d, other) if decides else None,
        dutch=dutch is not None,
        ceiling_reason_nl=_ceiling_reason_nl(dutch, d, other) if decides and dutch else None,
        other_mg_elemental_mg_per_day=other_mg,
        cap_arithmetic=other.arithmetic(d.ul) if other and other.known_mg_per_day and d.ul else None,
        cap_assumes=other.assumption() if other else None,
    )


def _caps(rule: Rule) -> list[float]:
    return [float(rule.then[key]) for key in ("ul_mg", "cap_mg") if key in rule.then]


def _ul(ul: tuple[float, str] | None) -> tuple[float | None, str | None]:
    return (ul[0], ul[1]) if ul else (None, None)


def _ceiling_reason(d: _Decision, other: amounts.OtherMagnesium | None) -> str:
    """Why the plan proposes no amount, and what the rules would allow once a physician agrees."""
    if d.ul is None:
        return "No upper limit applies at this age and jurisdiction: any amount is for a physician to set."
    limit = other.arithmetic(d.ul) if other and other.known_mg_per_day else f"UL {amounts._fmt(d.ul)} mg/day"
    why = [x for x in d.decides if x not in ("NO_UPPER_LIMIT",)]
    if not why:
        return (
            f"The magnesium already taken uses up the upper limit ({limit}): no further magnesium without a physician."
        )
    allowed = f"once a physician agrees the rules allow {limit} ({d.ul_rule})"
    return f"A physician decides the dose ({', '.join(why)}); {allowed}."


def _ceiling_reason_nl(dutch: _Dutch, d: _Decision, other: amounts.OtherMagnesium | None) -> str:
    """The ceiling reason in Dutch, from the ruleset's plan texts; the findings named by their Dutch titles."""
    if d.ul is None:
        return dutch.text("plan.py:ceiling_no_upper_limit")
    if other and other.known_mg_per_day:
        limit = _arithmetic_nl(dutch, other, d.ul)
    else:
        limit = dutch.text("plan.py:ceiling_limit_plain", ul_mg=_decimal_comma(amounts._fmt(d.ul)))
    why = [x for x in d.decides if x not in ("NO_UPPER_LIMIT",)]
    if not why:
        return dutch.text("plan.py:ceiling_used_up", limit=limit)
    reasons = ", ".join("spoed" if x == "URGENT" else dutch.ruleset.finding_title(x, "nl") for x in why)
    return dutch.text("plan.py:ceiling_physician_decides", reasons=reasons, limit=limit, ul_rule=d.ul_rule)


def _arithmetic_nl(dutch: _Dutch, other: amounts.OtherMagnesium, ul_mg: float) -> str:
    """'bovengrens 250 − 100 mg uit '…' = 150 mg/dag': OtherMagnesium.arithmetic in Dutch."""
    parts = [dutch.text("amounts.py:arithmetic_start", ul_mg=_decimal_comma(amounts._fmt(ul_mg)))]
    parts += [
        dutch.text("amounts.py:arithmetic_minus", mg=_decimal_comma(amounts._fmt(r.elemental_mg_per_day)), text=r.text)
        for r in other.readings
        if r.elemental_mg_per_day
    ]
    allowed = amounts.allowed_mg(ul_mg, other.known_mg_per_day)
    result = dutch.text("amounts.py:arithmetic_result", allowed_mg=_decimal_comma(amounts._fmt(allowed)))
    text = " ".join(parts) + " " + result
    if other.known_mg_per_day > ul_mg:
        text += dutch.text("amounts.py:arithmetic_above_on_its_own")
    return text


def _explain_other_mg(merged: list[Finding], other: amounts.OtherMagnesium, decision: _Decision) -> None:
    """Evidence of the facts about magnesium already taken: how each amount was read, and the arithmetic."""
    for finding in merged:
        for entry in finding.evidence:
            for item in entry["facts"]:
                fact = item.get("fact")
                if fact in ("patient.other_mg_elemental_mg_per_day", "patient.total_supplemental_mg_per_day"):
                    item["read_from"] = [r.summary() for r in other.readings if r.elemental_mg_per_day]
                    if decision.ul is not None:
                        item["arithmetic"] = other.arithmetic(decision.ul)
                elif fact == "patient.other_mg_amount_unknown":
                    item["read_from"] = [r.summary() for r in other.unknown]
                    item["cap_assumes"] = other.assumption()


@dataclass(slots=True)
class _Merged:
    """The rules that report one finding id, merged: the most severe severity, the least sure confidence."""

    severity_rank: int
    severity: str
    confidence_rank: int
    confidence: str
    sources: list[str]
    messages: list[tuple[int, str, str | None]]  # (severity rank, message, its Dutch)
    evidence: list[dict[str, Any]]
    rules: list[str]

    def __init__(self, out: RuleOutput):
        self.severity_rank, self.severity = out.severity_rank, out.severity
        self.confidence_rank, self.confidence = out.confidence_rank, out.confidence
        self.sources = list(out.sources)
        self.messages, self.evidence, self.rules = [], [], []

    def add(self, out: RuleOutput) -> None:
        """Another rule reporting the same finding."""
        if out.severity_rank < self.severity_rank:
            self.severity_rank, self.severity = out.severity_rank, out.severity
        if out.confidence_rank > self.confidence_rank:
            self.confidence_rank, self.confidence = out.confidence_rank, out.confidence
        self.sources += [s for s in out.sources if s not in self.sources]

    def finding(self, fid: str) -> Finding:
        """The merged finding; the most severe rules' messages make its message."""
        texts: list[str] = []
        texts_nl: list[str] = []
        for rank, text, text_nl in self.messages:
            if rank == self.severity_rank and text not in texts:
                texts.append(text)
                if text_nl is not None:
                    texts_nl.append(text_nl)
        dutch = " ".join(texts_nl) if texts_nl else None
        return Finding(
            fid, self.severity, " ".join(texts), self.sources, self.evidence, self.confidence, self.rules, dutch
        )


class _Findings:
    """The findings of one evaluation; the evidence of a derived fact's cause is built once."""

    def __init__(self, planner: Planner, fired: list[Firing], intake: Intake):
        self.outputs = planner.outputs
        self.messages = planner.messages
        self.fired = fired
        self.patient = intake.patient
        self.derived_by: dict[str, Firing] | None = None  # derived fact -> the first firing that made it, when needed
        self.because: dict[int, list[dict[str, Any]]] = {}  # id(firing) -> its evidence

    def build(self) -> list[Finding]:
        """The merged findings, most severe first, then by id."""
        outputs = self.outputs
        groups: dict[str, list[tuple[Firing, RuleOutput]]] = {}  # finding id -> the firings reporting it, in order
        for f in self.fired:
            out = outputs[f.rule.index]
            if out.finding:
                group = groups.get(out.finding)
                if group is None:
                    groups[out.finding] = [(f, out)]
                else:
                    group.append((f, out))
        ranked = [
            self._one(fid, *group[0]) if len(group) == 1 else self._merged(fid, group) for fid, group in groups.items()
        ]
        ranked.sort(key=_RANK_AND_ID)
        return [finding for _, _, finding in ranked]

    def _one(self, fid: str, firing: Firing, out: RuleOutput) -> tuple[int, str, Finding]:
        """(severity rank, id, finding) of a finding one rule reports, as most are: no merging needed."""
        message, dutch = self.messages.of(firing, out)
        evidence = [{"rule": out.rule_id, "facts": self.evidence(firing, out)}]
        finding = Finding(fid, out.severity, message, list(out.sources), evidence, out.confidence, [out.rule_id], dutch)
        return out.severity_rank, fid, finding

    def _merged(self, fid: str, group: list[tuple[Firing, RuleOutput]]) -> tuple[int, str, Finding]:
        """(severity rank, id, finding) of a finding several rules report, merged."""
        entry = _Merged(group[0][1])
        for f, out in group:
            entry.add(out)
            message, dutch = self.messages.of(f, out)
            entry.messages.append((out.severity_rank, message, dutch))
            entry.evidence.append({"rule": out.rule_id, "facts": self.evidence(f, out)})
            entry.rules.append(out.rule_id)
        return entry.severity_rank, fid, entry.finding(fid)

    def evidence(self, firing: Firing, out: RuleOutput) -> list[dict[str, Any]]:
        """The facts and thresholds that made one rule fire, with derived facts traced to their cause."""
        items: list[dict[str, Any]] = []
        matched = firing.matched
        for kind, name, field, label, op, threshold in out.evidence:
            if kind == _PLAIN:
                value = matched.get(name, _EMPTY).get(field)
                items.append({"fact": label, "value": value, "op": op, "threshold": threshold})
            elif kind == _AS_WRITTEN:
                fact = matched.get(name, _EMPTY)
                value, text = fact.get(field), fact.get("text")
                items.append({"fact": label, "value": value, "as_written": text, "op": op, "threshold": threshold})
            elif kind == _DERIVED:
                items.append(self._derived(label, field))
            else:
                value = matched.get(name, _EMPTY).get(field)
                items.append(self._lab(kind, field, {"fact": label, "value": value, "op": op, "threshold": threshold}))
        if out.unverified is not None:
            items.append({"unverified": out.unverified})
        return items

    def _lab(self, kind: int, field: str, item: dict[str, Any]) -> dict[str, Any]:
        """A lab's evidence item with how the lab was reported; the eGFR with its source (and creatinine)."""
        patient = self.patient
        if kind == _EGFR:
            item["egfr_source"] = patient.get("egfr_source")
            if "creatinine_mg_dl" in patient:
                item["creatinine_mg_dl"] = patient["creatinine_mg_dl"]
            item.update(lab_evidence("egfr", patient))
        else:
            item.update(lab_evidence(LAB_EVIDENCE[field], patient))
        return item

    def _derived(self, label: str, name: str) -> dict[str, Any]:
        """A derived fact's evidence item, traced to the rule that derived it and that rule's evidence."""
        item: dict[str, Any] = {"fact": label, "value": True}
        cause = self._derived_by().get(name)
        if cause is not None:
            item["derived_by"] = cause.rule.id
            item["because"] = self._because(cause)
        return item

    def _derived_by(self) -> dict[str, Firing]:
        """Derived fact -> the first firing that made it (worked out only for a record whose evidence needs it)."""
        if self.derived_by is None:
            outputs = self.outputs
            self.derived_by = {}
            for f in self.fired:
                name = outputs[f.rule.index].derive
                if name and name not in self.derived_by:
                    self.derived_by[name] = f
        return self.derived_by

    def _because(self, cause: Firing) -> list[dict[str, Any]]:
        key = id(cause)
        found = self.because.get(key)
        if found is None:
            found = self.because[key] = self.evidence(cause, self.outputs[cause.rule.index])
        return found


_EMPTY: dict[str, Any] = {}
_RANK_AND_ID = operator.itemgetter(0, 1)  # findings most severe first, then by id


class _Missing:
    """The value of a placeholder none of the matched facts has (it reads as "unknown")."""


_MISSING: Final = _Missing()
_TEXT_TYPES = frozenset({str, type(None), _Missing})  # values that are keys as they are
_ALWAYS_MISSING = itertools.repeat(_MISSING)  # the default of every dict.get when reading placeholder values


class _Messages:
    """The filled messages of one ruleset's rules: the English and the Dutch from one reading of the matched facts.

    A rule firing again on the same values (a drug's name, a form, a lab value) gives the same texts, so recent
    pairs are kept, keyed by rule and values. The texts are strings, immutable, so a kept pair is safely shared.
    """

    SIZE = 4096  # pairs kept; when full, the cache starts afresh

    def __init__(self, dutch: _Dutch | None):
        self.dutch = dutch
        self.filled: dict[tuple[Any, ...], tuple[str, str | None]] = {}

    def of(self, firing: Firing, out: RuleOutput) -> tuple[str, str | None]:
        """(the rule's message, its Dutch or None) with the {field} placeholders filled (first pattern wins)."""
        if not out.placeholders:
            return out.template, out.template_nl if self.dutch is not None else None
        values = _placeholder_values(firing.matched, out)
        key = _message_key(firing.rule.index, values)
        if key is None:
            return self._fill(out, values)
        found = self.filled.get(key)
        if found is None:
            if len(self.filled) >= self.SIZE:
                self.filled.clear()
            found = self.filled[key] = self._fill(out, values)
        return found

    def _fill(self, out: RuleOutput, values: tuple[Any, ...]) -> tuple[str, str | None]:
        """Both texts; a missing value reads as "unknown" ("onbekend"), code values (form, jurisdiction) in Dutch."""
        english = _Values()
        dutch = self.dutch if out.template_nl is not None else None
        values_nl = _DutchValues()
        for name, value in zip(out.placeholders, values, strict=True):
            if value is _MISSING:
                continue
            shown = _display(value)
            english[name] = shown
            if dutch is not None:
                values_nl[name] = dutch.value(name, value if isinstance(value, float) else shown)
        message_nl = None if dutch is None or out.template_nl is None else out.template_nl.format_map(values_nl)
        return out.template.format_map(english), message_nl


def _placeholder_values(matched: dict[str, dict[str, Any]], out: RuleOutput) -> tuple[Any, ...]:
    """The value of each placeholder of a rule's message: the first matched fact that has it, else _MISSING."""
    if len(out.patterns) == 1:  # one matched fact, as for most rules: read straight from it
        return tuple(map(matched.get(out.patterns[0], _EMPTY).get, out.placeholders, _ALWAYS_MISSING))
    facts = [matched.get(name, _EMPTY) for name in out.patterns]
    return tuple(next((fact[name] for fact in facts if name in fact), _MISSING) for name in out.placeholders)


def _message_key(index: int, values: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """What a rule's filled texts depend on: the rule and its values. Texts are keys as they are; a number is keyed
    with its type (1, 1.0 and True print differently), a float by its repr (-0.0 equals 0.0 but prints "-0");
    None for a value that is no key (a list)."""
    if _TEXT_TYPES.issuperset(map(type, values)):  # the usual case
        return index, values
    key: list[Any] = []
    for value in values:
        kind = type(value)
        if kind in _TEXT_TYPES:
            key.append(value)
        elif kind is float:
            key.append((kind, repr(value)))
        elif kind is int or kind is bool:
            key.append((kind, value))
        else:
            return None
    return index, tuple(key)


def _medication_of(firing: Firing, out: RuleOutput) -> str:
    if out.medication_pattern is None:
        return "unknown"  # unreachable: the checker requires a medication pattern for a separation
    return str(firing.matched[out.medication_pattern]["ingredient"])


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value

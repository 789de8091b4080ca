"""Turn the rules that fired into merged findings and a suggested plan.

Decisions that need the absence of something ("nothing caps the dose") are made here in
Python, after the rules ran, because durable_rules' negation is not truth-maintained.
What a rule contributes that does not depend on the patient (finding id, severity, sources,
message template, which fields its evidence shows, plan effects) is worked out once per
ruleset, so evaluating a record only looks values up.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

from engine.compiler import Firing, pattern_name
from engine.facts import LAB_EVIDENCE, Intake, lab_evidence
from engine.ruleset import Rule, Ruleset
from engine.vocabulary import SEVERITY_RANK

CONFIDENCE_RANK = {"V": 0, "S": 1, "U": 2}
_AS_WRITTEN_FIELDS = ("ingredient", "classes", "concept")
# Kinds of evidence item: a derived fact, a plain field, a field shown as written, the eGFR with its source,
# another lab field (with status, date and bound when reported).
_DERIVED, _PLAIN, _AS_WRITTEN, _EGFR, _LAB = range(5)


class _Values(dict[str, Any]):
    """Message values; a field the matched facts do not have reads as "unknown", never a crash."""

    def __missing__(self, key: str) -> str:
        return "unknown"


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
            shapes_plan=bool(
                caps
                or then.get("requires_physician")
                or then.get("urgent")
                or then.get("doses_per_day_min")
                or then.get("suggest_form")
                or monitoring
                or separation
            ),
        )


class Planner:
    """Findings and plan for the firings of one ruleset."""

    def __init__(self, ruleset: Ruleset):
        self.outputs = tuple(RuleOutput.of(rule) for rule in ruleset.rules)

    def findings(self, fired: list[Firing], intake: Intake) -> list[dict[str, Any]]:
        """One finding per catalogue id: the most severe rule's severity, every rule's evidence and sources."""
        return _Findings(self, fired, intake).build()

    def plan(self, fired: list[Firing], merged: list[dict[str, Any]], intake: Intake) -> dict[str, Any]:
        """The suggested plan: the strictest cap, divided doses, strictest separations, monitoring."""
        best: tuple[float, str] | None = None  # the strictest cap; equal caps: the smallest rule id
        requires_physician = any(finding["severity"] == "contraindicated" for finding in merged)
        urgent = False
        doses_min = 0
        suggested_form: str | None = None
        monitoring: list[str] = []
        separations: dict[str, dict[str, Any]] = {}
        outputs = self.outputs
        for f in fired:
            out = outputs[f.rule.index]
            if not out.shapes_plan:
                continue
            for cap in out.caps:
                if best is None or (cap, out.rule_id) < best:
                    best = (cap, out.rule_id)
            if out.requires_physician:
                requires_physician = True
            if out.urgent:
                urgent = True
            if out.doses_per_day_min > doses_min:
                doses_min = out.doses_per_day_min
            if suggested_form is None and out.suggest_form:
                suggested_form = out.suggest_form
            if out.monitoring:
                monitoring += [m for m in out.monitoring if m not in monitoring]
            if out.separation is not None:
                drug = _medication_of(f, out)
                window = separations.setdefault(
                    drug, {"drug": drug, "findings": [], "drug_before_mg_h": None, "drug_after_mg_h": None}
                )
                if out.finding and out.finding not in window["findings"]:
                    window["findings"].append(out.finding)
                for hours, out_key in zip(out.separation, ("drug_before_mg_h", "drug_after_mg_h"), strict=True):
                    if hours is not None and (window[out_key] is None or hours > window[out_key]):
                        window[out_key] = hours
        if best is None:  # no upper limit covers this patient: fail safe, a physician decides
            best = (0.0, "NO_UPPER_LIMIT")
            requires_physician = True
        cap, cap_rule = best
        if urgent:
            cap, cap_rule = 0.0, "URGENT"
        supplement = cap > 0
        requested_form = intake.patient.get("supplement_form")
        form = suggested_form or (requested_form if requested_form not in (None, "none", "unknown") else None)
        return {
            "supplement": "yes" if supplement else "no",
            "form": form if supplement else None,
            "requested_form": requested_form if requested_form != "none" else None,
            "max_elemental_mg_per_day": _number(cap),
            "cap_set_by": cap_rule,
            "requested_elemental_mg_per_day": intake.patient.get("supplement_dose_elemental_mg"),
            "doses_per_day": max(doses_min, 1) if supplement else 0,
            "separations": [
                {
                    "drug": w["drug"],
                    "finding": ", ".join(w["findings"]),
                    "drug_before_mg_h": w["drug_before_mg_h"],
                    "drug_after_mg_h": w["drug_after_mg_h"],
                }
                for w in sorted(separations.values(), key=lambda w: w["drug"])
            ],
            "monitoring": monitoring,
            "requires_physician": requires_physician or not supplement,
            "urgent": urgent,
        }


@dataclass(slots=True)
class _Merged:
    """The rules that report one finding id, merged: the most severe severity, the least sure confidence."""

    severity_rank: int
    severity: str
    confidence_rank: int
    confidence: str
    sources: list[str]
    messages: list[tuple[int, str]]
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

    def finding(self, fid: str) -> dict[str, Any]:
        """The merged finding; the most severe rules' messages make its message."""
        texts: list[str] = []
        for rank, text in self.messages:
            if rank == self.severity_rank and text not in texts:
                texts.append(text)
        return {
            "id": fid,
            "severity": self.severity,
            "message": " ".join(texts),
            "sources": self.sources,
            "evidence": self.evidence,
            "confidence": self.confidence,
            "rules": self.rules,
        }


class _Findings:
    """The findings of one evaluation; the evidence of a derived fact's cause is built once."""

    def __init__(self, planner: Planner, fired: list[Firing], intake: Intake):
        self.outputs = planner.outputs
        self.fired = fired
        self.patient = intake.patient
        self.derived_by: dict[str, Firing] = {}
        self.because: dict[int, list[dict[str, Any]]] = {}  # id(firing) -> its evidence

    def build(self) -> list[dict[str, Any]]:
        outputs = self.outputs
        derived_by = self.derived_by
        for f in self.fired:
            name = f.rule.then.get("derive")
            if name and name not in derived_by:
                derived_by[name] = f
        merged: dict[str, _Merged] = {}
        for f in self.fired:
            out = outputs[f.rule.index]
            if not out.finding:
                continue
            entry = merged.get(out.finding)
            if entry is None:
                entry = merged[out.finding] = _Merged(out)
            else:
                entry.add(out)
            entry.messages.append((out.severity_rank, _message(f, out)))
            entry.evidence.append({"rule": out.rule_id, "facts": self.evidence(f, out)})
            entry.rules.append(out.rule_id)
        return [merged[fid].finding(fid) for fid in sorted(merged, key=lambda fid: (merged[fid].severity_rank, fid))]

    def evidence(self, firing: Firing, out: RuleOutput) -> list[dict[str, Any]]:
        """The facts and thresholds that made one rule fire, with derived facts traced to their cause."""
        items: list[dict[str, Any]] = []
        matched = firing.matched
        for kind, name, field, label, op, threshold in out.evidence:
            if kind == _DERIVED:
                item: dict[str, Any] = {"fact": label, "value": True}
                cause = self.derived_by.get(field)
                if cause is not None:
                    item["derived_by"] = cause.rule.id
                    item["because"] = self._because(cause)
                items.append(item)
                continue
            fact = matched.get(name, _EMPTY)
            if kind == _AS_WRITTEN:
                item = {"fact": label, "value": fact.get(field), "as_written": fact.get("text")}
            else:
                item = {"fact": label, "value": fact.get(field)}
            item["op"] = op
            item["threshold"] = threshold
            if kind == _EGFR:
                item["egfr_source"] = self.patient.get("egfr_source")
                if "creatinine_mg_dl" in self.patient:
                    item["creatinine_mg_dl"] = self.patient["creatinine_mg_dl"]
                item.update(lab_evidence("egfr", self.patient))
            elif kind == _LAB:
                item.update(lab_evidence(LAB_EVIDENCE[field], self.patient))
            items.append(item)
        if out.unverified is not None:
            items.append({"unverified": out.unverified})
        return items

    def _because(self, cause: Firing) -> list[dict[str, Any]]:
        key = id(cause)
        found = self.because.get(key)
        if found is None:
            found = self.because[key] = self.evidence(cause, self.outputs[cause.rule.index])
        return found


_EMPTY: dict[str, Any] = {}


def _message(firing: Firing, out: RuleOutput) -> str:
    """The rule's message with its {field} placeholders filled from the matched facts (first pattern wins)."""
    if not out.placeholders:
        return out.template
    values = _Values()
    facts = [firing.matched.get(name, _EMPTY) for name in out.patterns]
    for name in out.placeholders:
        for fact in facts:
            if name in fact:
                values[name] = _display(fact[name])
                break
    return out.template.format_map(values)


def _medication_of(firing: Firing, out: RuleOutput) -> str:
    if out.medication_pattern is None:
        return "unknown"  # unreachable: the checker requires a medication pattern for a separation
    return str(firing.matched[out.medication_pattern]["ingredient"])


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value

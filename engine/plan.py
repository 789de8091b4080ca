"""Turn the rules that fired into merged findings and a suggested plan.

Decisions that need the absence of something ("nothing caps the dose") are made here in
Python, after the rules ran, because durable_rules' negation is not truth-maintained.
"""

from __future__ import annotations

import string
from typing import Any

from engine.compiler import Firing, pattern_name
from engine.facts import Intake
from engine.vocabulary import SEVERITY_RANK

CONFIDENCE_RANK = {"V": 0, "S": 1, "U": 2}


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


_PLACEHOLDERS: dict[str, list[str]] = {}


def _message(firing: Firing) -> str:
    """The rule's message with its {field} placeholders filled from the matched facts (first pattern wins)."""
    template: str = firing.rule.then["message"]
    names = _PLACEHOLDERS.get(template)
    if names is None:
        names = _PLACEHOLDERS[template] = [n for _, n, _, _ in string.Formatter().parse(template) if n]
    if not names:
        return template
    values = _Values()
    facts = [firing.matched.get(pattern_name(i), {}) for i in range(len(firing.rule.when))]
    for name in names:
        for fact in facts:
            if name in fact:
                values[name] = _display(fact[name])
                break
    return template.format_map(values)


def evidence(firing: Firing, intake: Intake, derived_by: dict[str, Firing]) -> list[dict[str, Any]]:
    """The facts and thresholds that made one rule fire, with derived facts traced to their cause."""
    out: list[dict[str, Any]] = []
    for i, pattern in enumerate(firing.rule.when):
        fact = firing.matched.get(pattern_name(i), {})
        if pattern.on == "derived":
            name = pattern.where[0].value
            cause = derived_by.get(name)
            item: dict[str, Any] = {"fact": f"derived.{name}", "value": True}
            if cause is not None:
                item["derived_by"] = cause.rule.id
                item["because"] = evidence(cause, intake, derived_by)
            out.append(item)
            continue
        for c in pattern.conditions():
            value = fact.get(c.field)
            if pattern.on != "patient" and c.field in ("ingredient", "classes", "concept"):
                value = {"value": value, "as_written": fact.get("text")}
                item = {
                    "fact": f"{pattern.on}.{c.field}",
                    "value": value["value"],
                    "as_written": value["as_written"],
                }
            else:
                item = {"fact": f"{pattern.on}.{c.field}", "value": value}
            item.update({"op": c.op, "threshold": c.value})
            if pattern.on == "patient" and c.field == "egfr_ml_min_1_73m2":
                item["egfr_source"] = intake.patient.get("egfr_source")
                if "creatinine_mg_dl" in intake.patient:
                    item["creatinine_mg_dl"] = intake.patient["creatinine_mg_dl"]
            out.append(item)
    if firing.rule.confidence == "U":
        out.append({"unverified": firing.rule.note})
    return out


def findings(fired: list[Firing], intake: Intake) -> list[dict[str, Any]]:
    """One finding per catalogue id: the most severe rule's severity, every rule's evidence and sources."""
    derived_by: dict[str, Firing] = {}
    for f in fired:
        name = f.rule.then.get("derive")
        if name and name not in derived_by:
            derived_by[name] = f
    merged: dict[str, dict[str, Any]] = {}
    for f in fired:
        then = f.rule.then
        fid = then.get("finding")
        if not fid:
            continue
        message = _message(f)
        entry = merged.setdefault(
            fid,
            {
                "id": fid,
                "severity": then["severity"],
                "messages": [],
                "sources": [],
                "evidence": [],
                "rules": [],
                "confidence": f.rule.confidence,
            },
        )
        if SEVERITY_RANK[then["severity"]] < SEVERITY_RANK[entry["severity"]]:
            entry["severity"] = then["severity"]
        if CONFIDENCE_RANK[f.rule.confidence] > CONFIDENCE_RANK[entry["confidence"]]:
            entry["confidence"] = f.rule.confidence
        entry["messages"].append((SEVERITY_RANK[then["severity"]], message))
        entry["sources"] += [s for s in f.rule.sources if s not in entry["sources"]]
        entry["evidence"].append({"rule": f.rule.id, "facts": evidence(f, intake, derived_by)})
        entry["rules"].append(f.rule.id)
    out = []
    for entry in merged.values():
        top = min(rank for rank, _ in entry["messages"])
        texts: list[str] = []
        for rank, text in entry.pop("messages"):
            if rank == top and text not in texts:
                texts.append(text)
        entry["message"] = " ".join(texts)
        out.append(entry)
    out.sort(key=lambda e: (SEVERITY_RANK[e["severity"]], e["id"]))
    return [{k: e[k] for k in ("id", "severity", "message", "sources", "evidence", "confidence", "rules")} for e in out]


def plan(fired: list[Firing], merged: list[dict[str, Any]], intake: Intake) -> dict[str, Any]:
    """The suggested plan: the strictest cap, divided doses, strictest separations, monitoring."""
    caps: list[tuple[float, str]] = []
    requires_physician = any(f["severity"] == "contraindicated" for f in merged)
    urgent = False
    doses_min = 0
    suggested_form: str | None = None
    monitoring: list[str] = []
    separations: dict[str, dict[str, Any]] = {}
    for f in fired:
        then = f.rule.then
        for key in ("ul_mg", "cap_mg"):
            if key in then:
                caps.append((float(then[key]), f.rule.id))
        requires_physician = requires_physician or bool(then.get("requires_physician"))
        urgent = urgent or bool(then.get("urgent"))
        doses_min = max(doses_min, int(then.get("doses_per_day_min", 0)))
        if suggested_form is None and then.get("suggest_form"):
            suggested_form = then["suggest_form"]
        monitoring += [m for m in then.get("monitoring", []) if m not in monitoring]
        if "separation" in then:
            drug = _medication_of(f)
            window = separations.setdefault(
                drug, {"drug": drug, "findings": [], "drug_before_mg_h": None, "drug_after_mg_h": None}
            )
            if then.get("finding") and then["finding"] not in window["findings"]:
                window["findings"].append(then["finding"])
            for key, out_key in (("before_h", "drug_before_mg_h"), ("after_h", "drug_after_mg_h")):
                hours = then["separation"][key]
                if hours is not None and (window[out_key] is None or hours > window[out_key]):
                    window[out_key] = hours
    if not caps:  # no upper limit covers this patient: fail safe, a physician decides
        caps.append((0.0, "NO_UPPER_LIMIT"))
        requires_physician = True
    cap, cap_rule = min(caps)
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


def _medication_of(firing: Firing) -> str:
    for i, pattern in enumerate(firing.rule.when):
        if pattern.on == "medication":
            return str(firing.matched[pattern_name(i)]["ingredient"])
    return "unknown"  # unreachable: the checker requires a medication pattern for a separation


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value

"""A re-imported record of a patient who already has a case: is it the same intake, and if not, what changed.

Two records are the same intake when the engine read them the same way (the normalised facts of their results),
whatever file they came in: a CSV row and a JSON line of one patient give the same facts though their bytes differ
(numbers as 42.0 against 42, lists split from one cell). What changed is the intake (facts that differ, medications
and conditions added or removed), then the result as `engine.impact.compare` sees it (findings, plan, schedule).
"""

from __future__ import annotations

from typing import Any

from engine import impact

INTAKE = "intake"


def same_intake(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two results (plain dicts, as stored) were evaluated from the same normalised record."""
    return bool(old.get("record_id") == new.get("record_id") and old.get("facts") == new.get("facts"))


def _line(text: str) -> dict[str, Any]:
    return {"kind": INTAKE, "text": text}


def _value(value: Any) -> str:
    """A fact as a change line shows it: a measured value to two decimals (0.78, not 0.781732)."""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return impact.show(value)


def _patient(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    keys = [*old, *(k for k in new if k not in old)]
    return [
        {
            "kind": INTAKE,
            "fact": key,
            "old": _value(old.get(key)),
            "new": _value(new.get(key)),
            "text": f"~ {key}: {_value(old.get(key))} -> {_value(new.get(key))}",
        }
        for key in keys
        if old.get(key) != new.get(key)
    ]


def _texts(kind: str, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    before, after = [item.get("text") for item in old], [item.get("text") for item in new]
    added = [_line(f"+ {kind} {text}") for text in after if text not in before]
    return added + [_line(f"- {kind} {text}") for text in before if text not in after]


def intake_changes(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """What differs between the normalised facts of two results: patient values, medications, conditions."""
    before, after = old.get("facts") or {}, new.get("facts") or {}
    return [
        *_patient(before.get("patient", {}), after.get("patient", {})),
        *_texts("medication", before.get("medications", []), after.get("medications", [])),
        *_texts("condition or symptom", before.get("concepts", []), after.get("concepts", [])),
    ]


def what_changed(old: dict[str, Any], new: dict[str, Any]) -> list[dict[str, Any]]:
    """Every difference a clinician would look at, intake first, each a dict with its `kind` and one-line `text`."""
    return [*intake_changes(old, new), *(c.to_dict() for c in impact.compare(old, new).changes)]

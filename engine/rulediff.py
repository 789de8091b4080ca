"""Differences between two ruleset versions, rule by rule and entry by entry, values written as JSON."""

from __future__ import annotations

import json
from typing import Any


def _keyed(items: list[dict[str, Any]], key: str = "id") -> dict[str, dict[str, Any]]:
    return {str(item.get(key)): item for item in items}


def show(value: Any) -> str:
    """A value as compact JSON (`null`, double quotes, sorted keys), never a Python repr."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def field_changes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> dict[str, tuple[Any, Any]]:
    """`field -> (old, new)` for each changed field, one level into nested objects (then.message, ...)."""
    out: dict[str, tuple[Any, Any]] = {}
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k):
            continue
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict) and not prefix:
            out.update(field_changes(a[k], b[k], f"{k}."))
        else:
            out[f"{prefix}{k}"] = (a.get(k), b.get(k))
    return out


def _compare(old: dict[str, Any], new: dict[str, Any], section: str) -> list[str]:
    lines = []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            lines.append(f"- {section} {key}")
        elif key not in old:
            lines.append(f"+ {section} {key}")
        elif old[key] != new[key]:
            a, b = old[key], new[key]
            if isinstance(a, dict) and isinstance(b, dict):
                changed = ", ".join(f"{f}: {show(x)} -> {show(y)}" for f, (x, y) in field_changes(a, b).items())
            else:
                changed = f"{show(a)} -> {show(b)}"
            lines.append(f"~ {section} {key}: {changed}")
    return lines


def marks(old: list[dict[str, Any]], new: list[dict[str, Any]], key: str = "id") -> dict[str, str]:
    """Each entry (rule, scenario) that differs: `added`, `changed` or `removed`, by its id or name."""
    a, b = _keyed(old, key), _keyed(new, key)
    out = {k: "removed" for k in a if k not in b}
    out.update({k: "added" if k not in a else "changed" for k in b if a.get(k) != b[k]})
    return out


def scenario_diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Scenarios added (`+`), removed (`-`) and changed (`~`, with the fields that changed), by name."""
    return _compare(_keyed(old, "name"), _keyed(new, "name"), "scenario")


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable lines: `+` added, `-` removed, `~` changed (with the fields that changed)."""
    lines: list[str] = []
    for key in ("version", "status", "supersedes", "change_note", "settings"):
        if old.get(key) != new.get(key):
            lines.append(f"~ {key}: {show(old.get(key))} -> {show(new.get(key))}")
    lines += _compare(_keyed(old.get("rules", [])), _keyed(new.get("rules", [])), "rule")
    lines += _compare(_keyed(old.get("upper_limits", [])), _keyed(new.get("upper_limits", [])), "upper limit")
    lines += _compare(old.get("sources", {}), new.get("sources", {}), "source")
    for section in ("drugs", "products", "concepts", "forms"):
        lines += _compare(
            old.get("vocabulary", {}).get(section, {}), new.get("vocabulary", {}).get(section, {}), section[:-1]
        )
    return lines

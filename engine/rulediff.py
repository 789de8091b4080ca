"""Differences between two ruleset versions, rule by rule and entry by entry."""

from __future__ import annotations

from typing import Any


def _keyed(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {str(item.get("id")): item for item in items}


def _changes(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """`field: old -> new` for each changed field, one level into nested objects (then.message, ...)."""
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k) == b.get(k):
            continue
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict) and not prefix:
            out += _changes(a[k], b[k], f"{k}.")
        else:
            out.append(f"{prefix}{k}: {a.get(k)!r} -> {b.get(k)!r}")
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
            changed = ", ".join(_changes(a, b)) if isinstance(a, dict) and isinstance(b, dict) else f"{a!r} -> {b!r}"
            lines.append(f"~ {section} {key}: {changed}")
    return lines


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Readable lines: `+` added, `-` removed, `~` changed (with the fields that changed)."""
    lines: list[str] = []
    for key in ("version", "status", "supersedes", "change_note", "settings"):
        if old.get(key) != new.get(key):
            lines.append(f"~ {key}: {old.get(key)!r} -> {new.get(key)!r}")
    lines += _compare(_keyed(old.get("rules", [])), _keyed(new.get("rules", [])), "rule")
    lines += _compare(_keyed(old.get("upper_limits", [])), _keyed(new.get("upper_limits", [])), "upper limit")
    lines += _compare(old.get("sources", {}), new.get("sources", {}), "source")
    for section in ("drugs", "products", "concepts", "forms"):
        lines += _compare(
            old.get("vocabulary", {}).get(section, {}), new.get("vocabulary", {}).get(section, {}), section[:-1]
        )
    return lines

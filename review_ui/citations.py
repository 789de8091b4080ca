"""Sources as a reader sees them: a full citation per tag, its marks, and its text's markdown made safe.

The `markdown` library is not installed, so citation texts use a small subset: **bold**, *italic* and `code`,
after every character has been HTML-escaped (a source text can never inject markup).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])")
_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
_ADDRESS = re.compile(r"^[\w.-]+\.[a-z]{2,}(/\S*)?$", re.IGNORECASE)


def render_markdown(text: str) -> Markup:
    """The citation text as HTML: escaped first, then **bold**, *italic* and `code` (nothing else)."""
    html = str(escape(text))
    codes: list[str] = []

    def keep(match: re.Match[str]) -> str:
        codes.append(match.group(1))
        return f"\x00{len(codes) - 1}\x00"

    html = _CODE.sub(keep, html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    html = _ITALIC.sub(r"<em>\1</em>", html)
    html = re.sub("\x00([0-9]+)\x00", lambda m: f"<code>{codes[int(m.group(1))]}</code>", html)
    return Markup(html)


def link_of(url: str | None) -> str | None:
    """The address a citation's url points to (https:// added to a bare address), or None when it is none."""
    if not url:
        return None
    if _SCHEME.match(url):
        return url
    return "https://" + url if _ADDRESS.match(url) else None


@dataclass(frozen=True)
class Citation:
    """One source of a ruleset as the sources page shows it."""

    tag: str
    title: str | None
    publisher: str | None
    year: int | None
    url: str | None
    href: str | None
    kind: str | None  # primary, secondary, project; None: a plain-text source of an older version
    verified: str | None  # V, S, U or None
    part_of: str | None
    note: str | None
    text: Markup

    @property
    def unverified(self) -> bool:
        """Neither read in the primary text (V) nor confirmed through secondary sources (S)."""
        return self.kind is not None and self.verified not in ("V", "S")

    @property
    def secondary(self) -> bool:
        """A secondary source, or a primary one known only through secondary sources."""
        return self.kind == "secondary" or (self.kind == "primary" and self.verified == "S")


def citations(entries: dict[str, dict[str, Any]]) -> list[Citation]:
    """Every source of a ruleset (`Ruleset.citations`), in the ruleset's order."""
    out = []
    for tag, entry in entries.items():
        url = entry.get("url")
        out.append(
            Citation(
                tag=tag,
                title=entry.get("title"),
                publisher=entry.get("publisher"),
                year=entry.get("year"),
                url=url,
                href=link_of(url),
                kind=entry.get("kind"),
                verified=entry.get("verified"),
                part_of=entry.get("part_of"),
                note=entry.get("note"),
                text=render_markdown(str(entry.get("text", ""))),
            )
        )
    return out

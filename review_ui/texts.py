"""Texts that are stored in one language and shown in the reader's: a refusal is audited in English, and the
page translates it when it shows it (the audit log keeps one stable language).

`N_` marks a text for the catalogue (`make translations` extracts it) without translating it; `Text` is that
English text, remembering its template and values so that `shown` can say it in the page's language.
"""

from __future__ import annotations

from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

# A draft's status in words (the stored status stays the English key).
DRAFT_STATUSES = {
    "editing": _l("editing"),
    "submitted": _l("submitted"),
    "published": _l("published"),
    "discarded": _l("discarded"),
}


def N_(text: str) -> str:  # noqa: N802  (the name gettext tools look for)
    """Mark `text` for translation where it is shown, not here."""
    return text


class Text(str):
    """English text built from a marked template and its values; `shown` gives it in the reader's language."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Text:
        made = super().__new__(cls, template % params if params else template)
        made.template, made.params = template, params
        return made


def status_text(status: str) -> str:
    """A draft's status in the reader's language."""
    return str(DRAFT_STATUSES.get(status, status))


def shown(message: str) -> str:
    """A stored message in the reader's language: a `Text` from its template, a marked fixed text from the
    catalogue; anything else (the checker's own words) as it is."""
    if isinstance(message, Text):
        params = {k: status_text(v) if k == "status" else v for k, v in message.params.items()}
        return str(gettext(message.template, **params) if params else gettext(message.template))
    return str(gettext(message)) if message else message

"""The language of each page: the signed-in user's preference, else the browser's Accept-Language; English or Dutch.

Page text is marked for translation with `_()` (templates and Python) and translated in
review_ui/translations/<language>/LC_MESSAGES/messages.po; `make setup` compiles the catalogues.
"""

from __future__ import annotations

from flask import has_request_context, request
from flask_login import current_user

LANGUAGES = ("en", "nl")
DEFAULT_LANGUAGE = "en"
# Each language named in itself, as a language choice shows it whatever the page's language.
LANGUAGE_NAMES: dict[str, str] = {"en": "English", "nl": "Nederlands"}


def select_locale() -> str:
    """The user's own choice when set, else the best of the browser's languages, else English (also outside a
    request: a workflow function called from the CLI says its messages in English)."""
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if current_user and current_user.is_authenticated:
        preferred = getattr(current_user, "language", None)
        if preferred in LANGUAGES:
            return str(preferred)
    return browser_locale()


def browser_locale() -> str:
    """The best of the browser's languages (Accept-Language), else English."""
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE

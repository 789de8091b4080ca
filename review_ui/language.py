"""The language of each page: the signed-in user's preference, else the browser's Accept-Language; English or Dutch.

Page text is marked for translation with `_()` (templates and Python) and translated in
review_ui/translations/<language>/LC_MESSAGES/messages.po; `make setup` compiles the catalogues.
"""

from __future__ import annotations

from flask import request
from flask_login import current_user

LANGUAGES = ("en", "nl")
DEFAULT_LANGUAGE = "en"


def select_locale() -> str:
    """The user's own choice when set, else the best of the browser's languages, else English."""
    if current_user and current_user.is_authenticated:
        preferred = getattr(current_user, "language", None)
        if preferred in LANGUAGES:
            return str(preferred)
    return request.accept_languages.best_match(LANGUAGES, default=DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE

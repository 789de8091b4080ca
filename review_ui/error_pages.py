"""One error page for every HTTP error status: the user reads a sentence, never a traceback."""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template
from flask_babel import lazy_gettext as _l

from review_ui.db import db

ERROR_MESSAGES = {
    400: _l("The request could not be understood."),
    403: _l("Your role does not give access to this page."),
    404: _l("There is nothing at this address."),
    413: _l("The file is too large."),
    429: _l("Too many attempts from here or for this account; wait a minute and try again."),
    500: _l("Something went wrong on our side. The error was logged; nothing you entered was half-saved."),
}


def render_error(code: int) -> Any:
    """The error page for an HTTP status, in the reader's language."""
    message = ERROR_MESSAGES.get(code) or _l("Error.")
    return render_template("error.html", code=code, message=str(message)), code


def _error(e: Any) -> Any:
    code = getattr(e, "code", 500) or 500
    if code == 500:
        db.session.rollback()
    return render_error(code)


def init_app(app: Flask) -> None:
    """Render every status of ERROR_MESSAGES with the error page."""
    for code in ERROR_MESSAGES:
        app.register_error_handler(code, _error)

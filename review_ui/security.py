"""HTTP hardening for every response: security headers, no caching of patient data, Secure cookies on https,
ids in URLs bounded to what the database can hold, malformed input answered with 4xx, not 500.

A small after_request rather than Flask-Talisman: Talisman redirects to https unless told not to (the
loopback demo and the tests are plain http), sets the session cookie's Secure flag from configuration only
(here it follows the request's scheme), and does not set Cache-Control; what is left is six headers.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy.exc import DataError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from review_ui.db import db
from review_ui.error_pages import render_error

MAX_ID = 2**31 - 1  # the largest value of an INTEGER column on PostgreSQL (and what SQLite ids stay below)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class BoundedInt(IntegerConverter):
    """`<int:id>` in a URL, at most MAX_ID: a larger number is a 404, not an OverflowError in the database."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is Secure whenever the request came over https (or SESSION_COOKIE_SECURE says so)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    if request.endpoint != "static":  # every page may carry patient data: never stored by browsers or proxies
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
    return response


def init_app(app: Flask) -> None:
    """Bound URL ids, secure the session cookie, add the headers; trust MGREVIEW_PROXIES proxies' X-Forwarded-*."""
    app.url_map.converters["int"] = BoundedInt
    app.session_interface = SessionInterface()
    app.after_request(_headers)
    proxies = int(app.config.get("MGREVIEW_PROXIES") or 0)
    if proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]

    def bad_input(e: Exception) -> Any:
        db.session.rollback()
        return render_error(400)

    app.register_error_handler(OverflowError, bad_input)
    app.register_error_handler(DataError, bad_input)

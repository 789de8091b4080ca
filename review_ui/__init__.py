"""The review UI: a Flask app where clinicians work the queue of flagged cases."""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_babel import get_locale

from audit import log as audit_log
from review_ui import language
from review_ui.db import db
from review_ui.extensions import babel, csrf, limiter, login_manager, migrate

MIN_AUDIT_KEY_LENGTH = 32


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """App factory: config from defaults < instance/config.py < MGREVIEW_* environment < test_config."""
    app = Flask(__name__, instance_relative_config=True)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "mgreview.db"),
        SECRET_KEY=None,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=30),  # idle: each request renews the cookie
        SESSION_ABSOLUTE_LIFETIME=timedelta(hours=12),  # from sign-in, whatever the activity
        LOGIN_LIMIT_PER_CLIENT="20 per minute;100 per hour",
        LOGIN_LIMIT_PER_ACCOUNT="10 per minute;30 per hour",
        RATELIMIT_STORAGE_URI="memory://",
        RATELIMIT_HEADERS_ENABLED=False,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        MGREVIEW_RULESET=None,
        MGREVIEW_JURISDICTION=None,
        MGREVIEW_AUDIT_KEY=None,
        MGREVIEW_PROXIES=0,  # reverse proxies in front whose X-Forwarded-For/-Proto are trusted
        PAGE_SIZE=50,
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
    )
    app.config.from_pyfile("config.py", silent=True)
    env = {
        "MGREVIEW_DATABASE_URL": "SQLALCHEMY_DATABASE_URI",
        "MGREVIEW_SECRET_KEY": "SECRET_KEY",
        "MGREVIEW_RULESET": "MGREVIEW_RULESET",
        "MGREVIEW_JURISDICTION": "MGREVIEW_JURISDICTION",
        "MGREVIEW_AUDIT_KEY": "MGREVIEW_AUDIT_KEY",
        "MGREVIEW_PROXIES": "MGREVIEW_PROXIES",
    }
    for var, key in env.items():
        if os.environ.get(var):
            app.config[key] = os.environ[var]
    if test_config:
        app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))
    if not app.config["MGREVIEW_AUDIT_KEY"]:
        app.config["MGREVIEW_AUDIT_KEY"] = _instance_secret(Path(app.instance_path), "audit_key")
    if len(app.config["MGREVIEW_AUDIT_KEY"]) < MIN_AUDIT_KEY_LENGTH:
        raise RuntimeError(f"MGREVIEW_AUDIT_KEY needs at least {MIN_AUDIT_KEY_LENGTH} characters")
    audit_log.use_key(_audit_key)

    from review_ui import security

    security.init_app(app)  # before the blueprints: their <int:...> rules use the bounded converter
    db.init_app(app)
    migrate.init_app(app, db)
    csrf.init_app(app)
    login_manager.init_app(app)
    limiter.init_app(app)
    babel.init_app(app, locale_selector=language.select_locale)

    _register_pages(app)
    return app


def _register_pages(app: Flask) -> None:
    """The blueprints, the error pages and the template filters."""
    from audit import log  # noqa: F401  (its table must be known to migrations)
    from engine import ruleset as rulesets
    from review_ui import (
        audit_views,
        auth,
        burden_views,
        case_views,
        cdshooks,
        error_pages,
        import_views,
        models,  # noqa: F401  (its tables must be known to migrations)
        plan_views,
        reimport,
        ruleset_views,
        triage,
    )

    for blueprint in (
        auth.bp,
        case_views.bp,
        import_views.bp,
        audit_views.bp,
        cdshooks.cds,
        ruleset_views.bp,
        burden_views.bp,
        plan_views.bp,
    ):
        app.register_blueprint(blueprint)
    csrf.exempt(cdshooks.cds)  # a JSON API for EHRs, authenticated by JWT, not a browser form
    error_pages.init_app(app)
    app.jinja_env.filters["when"] = when
    app.jinja_env.filters["case_status"] = triage.status_label  # a case status in the page's language
    app.jinja_env.globals["case_changes"] = reimport.what_changed  # what changed between two results of a patient
    app.jinja_env.globals["change_line"] = triage.change_line
    app.jinja_env.globals["page_language"] = lambda: str(get_locale())
    app.jinja_env.filters["sha256"] = lambda text: rulesets.sha256_text(text)[:16] + "…"
    app.jinja_env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, sort_keys=True)


def _instance_secret(instance: Path, name: str = "secret_key") -> str:
    """A secret kept in the instance folder (mode 600), made once, so sessions and the audit chain survive restarts."""
    path = instance / name
    if not path.exists():  # written aside, then linked in place: a concurrent reader never sees it half-written
        fd, temporary = tempfile.mkstemp(dir=instance, prefix=f".{name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(temporary, path)  # fails if another process made it first: theirs is kept
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    return path.read_text("utf-8").strip()


def _audit_key() -> bytes:
    """The audit chain's HMAC key: MGREVIEW_AUDIT_KEY, else the instance folder's `audit_key` (never the database)."""
    return str(current_app.config["MGREVIEW_AUDIT_KEY"]).encode("utf-8")


def when(moment: datetime | str | None, seconds: bool = False) -> str:
    """A stored time as people read it, always with its zone: every time is stored in UTC."""
    if moment is None:
        return "—"
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")

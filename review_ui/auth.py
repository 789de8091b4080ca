"""Signing in and out, the session's user, and the decorators that guard every page by role."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

import flask_login
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user

from review_ui import workflow
from review_ui.extensions import limiter, login_manager
from review_ui.forms import LoginForm
from review_ui.models import User

F = TypeVar("F", bound=Callable[..., Any])
bp = Blueprint("auth", __name__)


def login_required(view: F) -> F:
    """Flask-Login's `login_required`, keeping the view's type."""
    return cast(F, flask_login.login_required(view))


def roles_required(*roles: str) -> Callable[[F], F]:
    """Require login and one of `roles`; others get a 403 page."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return login_required(cast(F, wrapped))

    return decorate


def load_user(user_id: str) -> User | None:
    """Flask-Login's user loader: only for a live server-side session (not signed out, not past its lifetime)."""
    return workflow.session_user(session.get("sid"), int(user_id))


login_manager.user_loader(load_user)
# The sign-in prompt in the reader's language: flashed as plain text, translated when it is flashed.
login_manager.login_message = _l("Please sign in to continue.")
login_manager.localize_callback = str


def _account_key() -> str:
    """The throttle key of the account being signed in to (the same for unknown users)."""
    return "account:" + (request.form.get("username") or "").strip().lower()[:80]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_CLIENT"], methods=["POST"])
@limiter.limit(lambda: current_app.config["LOGIN_LIMIT_PER_ACCOUNT"], methods=["POST"], key_func=_account_key)
def login() -> Any:
    """Sign in; failures and lockouts are audited by the workflow; throttled per client and per account."""
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = workflow.authenticate(form.username.data or "", form.password.data or "")
        except workflow.WorkflowError as e:
            flash(_(e.message), "error")  # the workflow audits in English; marked texts are shown translated
        else:
            session.clear()
            session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME without activity
            session["sid"] = workflow.start_session(user, lifetime=current_app.config["SESSION_ABSOLUTE_LIFETIME"])
            login_user(user)
            return redirect(url_for(user.home_endpoint))
    return render_template("login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout() -> Any:
    """Sign out: the server-side session is revoked, so a saved cookie no longer works."""
    workflow.end_session(session.get("sid"), actor=current_user.username)
    logout_user()
    session.clear()
    flash(_("Signed out."), "info")
    return redirect(url_for("auth.login"))


@bp.route("/logout/everywhere", methods=["POST"])
@login_required
def logout_everywhere() -> Any:
    """Sign out on every browser and device: every session of this user is revoked."""
    count = workflow.end_all_sessions(current_user, actor=current_user.username)
    logout_user()
    session.clear()
    flash(_("Signed out everywhere (%(count)s session(s) ended).", count=count), "info")
    return redirect(url_for("auth.login"))

"""Shared fixtures: one compiled evaluator for the session, and an app on SQLite and on PostgreSQL per test.

Helpers that tests import (records, paths, the CLI) live in tests/helpers/."""

from __future__ import annotations

import itertools
import os

import pytest
import sqlalchemy

from engine.evaluate import Evaluator


@pytest.fixture(scope="session")
def evaluator() -> Evaluator:
    """The newest published ruleset, compiled once."""
    return Evaluator()


# --- review UI fixtures: every database test runs on SQLite and on a real PostgreSQL server ---------

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster for the session, with a migrated template database to clone per test."""
    from tests.helpers.pg import Cluster, pg_bin

    if pg_bin() is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries are required in CI")
        pytest.skip("PostgreSQL server binaries not installed")
    cluster = Cluster()
    cluster.start()
    admin = sqlalchemy.create_engine(cluster.url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text("CREATE DATABASE mgreview_template"))
    _migrate(cluster.url("mgreview_template"))
    yield cluster, admin
    admin.dispose()
    cluster.stop()


def _migrate(url: str) -> None:
    from flask_migrate import upgrade

    from review_ui import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "migrate"})
    with app.app_context():
        upgrade()
        from review_ui.db import db

        db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def app(request, tmp_path):
    """A review UI app on a fresh, migrated database of each kind."""
    from review_ui import create_app
    from review_ui.db import db

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.db'}"
        _migrate(url)
    else:
        cluster, admin = request.getfixturevalue("pg_cluster")
        name = f"t{next(_databases)}"
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE {name} TEMPLATE mgreview_template"))
        url = cluster.url(name)
    application = create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "test", "WTF_CSRF_ENABLED": False}
    )
    application.config["DB_KIND"] = request.param
    yield application
    with application.app_context():
        db.engine.dispose()
    if request.param == "postgresql":
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))


@pytest.fixture
def ctx(app):
    """An application context for calling workflow functions directly."""
    with app.app_context():
        yield app

"""Shared fixtures: one compiled evaluator for the session, and a helper to evaluate a record."""

from __future__ import annotations

import copy
import itertools
import os
from typing import Any

import pytest
import sqlalchemy

from engine.evaluate import Evaluator

BASE_RECORD: dict[str, Any] = {
    "id": "T1",
    "age_years": 45,
    "sex": "female",
    "egfr_ml_min_1_73m2": 95,
    "serum_magnesium": {"value": 0.85, "unit": "mmol/L"},
    "medications": [],
    "conditions": [],
    "symptoms": [],
    "supplement": {"form": "citrate", "dose_mg": 200, "dose_basis": "elemental"},
    "jurisdiction": "US",
}


@pytest.fixture(scope="session")
def evaluator() -> Evaluator:
    """The newest published ruleset, compiled once."""
    return Evaluator()


def record(**changes: Any) -> dict[str, Any]:
    """A healthy adult record with `changes` applied; a value of None removes the field."""
    out = copy.deepcopy(BASE_RECORD)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def finding(result: dict[str, Any], finding_id: str) -> dict[str, Any] | None:
    """The finding with this id in a result, or None."""
    return next((f for f in result.get("findings", []) if f["id"] == finding_id), None)


def ids(result: dict[str, Any]) -> set[str]:
    """Every finding id of a result."""
    return {f["id"] for f in result.get("findings", [])}


# --- review UI fixtures: every database test runs on SQLite and on a real PostgreSQL server ---------

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster for the session, with a migrated template database to clone per test."""
    from tests.pg import Cluster, pg_bin

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

"""The review UI's commands of `mgreview`: users, import, audit, database, server and demo.

The engine's command line (`engine.cli.main`, the `mgreview` script) stays free of Flask: it finds these commands
through the entry points declared in pyproject.toml and imports this module only when one of them runs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli import main
from review_ui.models import ROLES, Role

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["main"]  # the whole command line, for `python -c "from review_ui.cli import main; main()"`

DEMO_USERS = (
    ("clinician", Role.CLINICIAN, "demo-clinician-2026", "Demo Clinician"),
    ("editor", Role.RULE_EDITOR, "demo-editor-2026", "Demo Rule Editor"),
    ("approver", Role.RULE_EDITOR, "demo-approver-2026", "Demo Second Rule Editor"),
    ("admin", Role.ADMIN, "demo-admin-2026", "Demo Admin"),
)
SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "intake.jsonl"


def _app() -> Flask:
    from review_ui import create_app

    return create_app()


def _migrated_app() -> Flask:
    """The app, for a command that reads or writes the database: one line when its schema was never created."""
    from sqlalchemy import inspect

    from review_ui.db import db as database

    app = _app()
    with app.app_context():
        migrated = inspect(database.engine).has_table("alembic_version")
    if not migrated:
        raise click.ClickException("the database has no schema yet: run `mgreview db upgrade` first")
    return app


def _upgrade(app: Flask) -> None:
    """Migrate the schema and register the published ruleset versions shipped in rulesets/."""
    from flask_migrate import upgrade

    from review_ui import ruleset_versions

    with app.app_context():
        upgrade()
        for version in ruleset_versions.register_files():
            click.echo(f"registered published ruleset {version.label} (sha256 {version.sha256[:16]}…)")


@click.group()
def db() -> None:
    """Database schema (migrations)."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the newest migration."""
    app = _app()
    _upgrade(app)
    click.echo(f"database ready: {app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}")


@click.group()
def users() -> None:
    """Manage users."""


@users.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--full-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_add(username: str, role: str, full_name: str, password_stdin: bool) -> None:
    """Add a user; the password is prompted for (hidden) unless --password-stdin."""
    from review_ui import workflow

    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else click.prompt("Password", hide_input=True, confirmation_prompt=True)
    )
    app = _migrated_app()
    with app.app_context():
        try:
            workflow.add_user(username, password, role, actor="cli", full_name=full_name)
        except workflow.WorkflowError as e:
            raise click.ClickException(e.message) from None
    click.echo(f"added {role} {username}")


@click.command("import")
@click.argument("input_path", metavar="INPUT", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--actor", default="cli", show_default=True, help="Who is importing (recorded in the audit log).")
def import_command(input_path: Path, actor: str) -> None:
    """Evaluate an intake file and import its records as cases (re-importing is idempotent)."""
    report = _import(_migrated_app(), input_path, actor)
    click.echo(
        f"batch {report.batch_id}: {report.records} records, {len(report.accepted)} new cases, "
        f"{len(report.duplicates)} already imported, {len(report.rejected)} rejected"
    )
    for reject in report.rejected:
        for error in reject["errors"]:
            click.echo(
                f"  line {reject['line']} ({reject['record_id']}): {error['field']}: {error['reason']}", err=True
            )


def _import(app: Flask, path: Path, actor: str) -> Any:
    from engine.batch import read_records
    from review_ui import ruleset_versions, workflow

    with app.app_context():
        evaluator = ruleset_versions.active_evaluator()
        return workflow.import_records(read_records(path), filename=path.name, actor=actor, evaluator=evaluator)


def check_stored_versions() -> int:
    """Print each stored version that is refused (hash, publication); the number refused."""
    from sqlalchemy import inspect

    from review_ui import ruleset_versions
    from review_ui.db import db as database

    app = _app()
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        click.echo("database: none yet (`mgreview db upgrade` creates it); no stored versions to check")
        return 0
    with app.app_context():
        if not inspect(database.engine).has_table("ruleset_version"):
            click.echo("database: not migrated yet; no stored versions to check")
            return 0
        checked = ruleset_versions.check_versions()
        for version, problem in checked:
            if problem:
                click.echo(f"database: {version.label} refused: {problem}", err=True)
        refused = sum(1 for _, problem in checked if problem)
        if not refused:
            click.echo(f"database: {len(checked)} stored version(s) ok")
        database.engine.dispose()
    return refused


def newest_stored_version(name: str) -> int | None:
    """The newest version of ruleset `name` published in the configured database; None when there is no
    database yet, it cannot be reached, or it stores none (a hint for `mgreview evaluate`, never an error)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    url = _database_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    connect_args = {"connect_timeout": 3} if url.startswith("postgresql") else {}
    try:
        engine = create_engine(url, connect_args=connect_args)
        with engine.connect() as connection:
            query = text("SELECT max(version) FROM ruleset_version WHERE name = :name")
            newest = connection.execute(query, {"name": name}).scalar()
        engine.dispose()
    except (SQLAlchemyError, ImportError):
        return None
    return int(newest) if newest is not None else None


def _database_url() -> str:
    """The database create_app would use (default < instance/config.py < MGREVIEW_DATABASE_URL), without
    creating the app (which would make the instance folder and its secrets)."""
    import os

    from flask import Config, Flask

    instance = Flask("review_ui", instance_relative_config=True).instance_path
    config = Config(instance)
    config["SQLALCHEMY_DATABASE_URI"] = "sqlite:///" + os.path.join(instance, "mgreview.db")
    config.from_pyfile("config.py", silent=True)
    return os.environ.get("MGREVIEW_DATABASE_URL") or str(config["SQLALCHEMY_DATABASE_URI"])


@click.command("export")
@click.option(
    "--to",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Rulesets folder (default: the project's rulesets/).",
)
def export_rulesets(directory: Path | None) -> None:
    """Write versions published in the review UI as files (v<N>.json, scenarios, manifest) to commit."""
    from engine import ruleset
    from review_ui import ruleset_versions, workflow

    app = _migrated_app()
    with app.app_context():
        try:
            written = ruleset_versions.export_versions(directory or ruleset.RULESETS_DIR)
        except workflow.WorkflowError as e:
            raise click.ClickException(e.message) from None
    for path in written:
        click.echo(f"wrote {path}")
    if not written:
        click.echo("every published version is already a file")


@click.group()
def audit() -> None:
    """The audit log."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Also check against a checkpoint written by `audit checkpoint` (finds truncation and replacement).",
)
def audit_verify(checkpoint_path: Path | None) -> None:
    """Check the whole keyed hash chain and its head; name the first broken entry (exit status 1)."""
    import json

    from audit import log
    from review_ui.db import db as database

    point = None
    if checkpoint_path is not None:
        try:
            point = json.loads(checkpoint_path.read_text("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise click.ClickException(f"{checkpoint_path}: not a checkpoint file ({e})") from None
    app = _migrated_app()
    with app.app_context():
        result = log.verify(database.session, checkpoint=point)
    click.echo(result.message())
    if not result.ok:
        sys.exit(1)


@audit.command("checkpoint")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the checkpoint here (default: stdout). Keep it outside the database's host and backups.",
)
def audit_checkpoint(output: Path | None) -> None:
    """Export a signed checkpoint of the chain (sequence, head hash, time) for `audit verify --checkpoint`."""
    import json

    from audit import log
    from review_ui.db import db as database

    app = _migrated_app()
    with app.app_context():
        result = log.verify(database.session)
        if not result.ok:
            raise click.ClickException(f"not writing a checkpoint of a broken chain: {result.message()}")
        text = json.dumps(log.checkpoint(database.session), sort_keys=True) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, "utf-8")
        click.echo(f"checkpoint of {result.checked} entries written to {output}", err=True)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--production", is_flag=True, help="gunicorn with worker processes (use PostgreSQL).")
@click.option(
    "--workers", type=click.IntRange(1, 64), default=None, help="Worker processes (default 2 per core, <= 8)."
)
@click.option("--threads", type=click.IntRange(1, 64), default=4, show_default=True, help="Threads per worker.")
@click.option("--access-log", is_flag=True, help="Log every request to stderr.")
def serve(host: str, port: int, production: bool, workers: int | None, threads: int, access_log: bool) -> None:
    """Serve the review UI: the threaded development server, or with --production gunicorn workers."""
    from review_ui import server

    app = _app()
    if not production:
        app.run(host=host, port=port, threaded=True, request_handler=server.QuietHandler)
        return
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite"):
        click.echo("warning: serving SQLite with several workers; use PostgreSQL (MGREVIEW_DATABASE_URL)", err=True)
    with app.app_context():
        from review_ui.db import db as database

        database.engine.dispose()  # nothing opened here may be shared with the forked workers
    options = server.production_options(host, port, workers or server.default_workers(), threads, access_log)
    click.echo(f"serving on http://{host}:{port}/ with {options['workers']} workers x {threads} threads", err=True)
    server.serve_production(options)


def _allow_anonymous_cds_hooks(app: Flask) -> None:
    """The demo only: CDS Hooks calls without a JWT get cards (nothing is written), and it says so."""
    if not app.config.get("CDS_HOOKS_JWT_KEYS"):
        app.config["CDS_HOOKS_ALLOW_ANONYMOUS"] = True
        click.echo(
            "CDS Hooks: DEMO MODE, anonymous calls allowed (CDS_HOOKS_ALLOW_ANONYMOUS): cards only, no cases, "
            "no audit entries; set CDS_HOOKS_JWT_KEYS for real use"
        )


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--no-serve", is_flag=True, help="Set up only; do not start the server.")
def demo(host: str, port: int, no_serve: bool) -> None:
    """Set up the database, demo users and the sample cases, then serve the review UI."""
    from sqlalchemy import select

    from review_ui import workflow
    from review_ui.db import db as database
    from review_ui.models import User

    app = _app()
    _allow_anonymous_cds_hooks(app)
    _upgrade(app)
    with app.app_context():
        for username, role, password, name in DEMO_USERS:
            if database.session.execute(select(User).where(User.username == username)).scalar_one_or_none() is None:
                workflow.add_user(username, password, role, actor="demo", full_name=name)
    report = _import(app, SAMPLE, "demo")
    click.echo(
        f"sample cases: {len(report.accepted)} new, {len(report.duplicates)} already there, "
        f"{len(report.rejected)} rejected records listed on the batch page"
    )
    click.echo(f"database: {app.config['SQLALCHEMY_DATABASE_URI']}")
    click.echo(f"review UI: http://{host}:{port}/  sign in as one of:")
    for username, role, password, _ in DEMO_USERS:
        click.echo(f"  {username:10} password {password:22} ({role})")
    if not no_serve:
        from review_ui import server

        app.run(host=host, port=port, threaded=True, request_handler=server.QuietHandler)

"""The review commands of the `mgreview` CLI, run as a user would, on a fresh SQLite database."""

import os
import sqlite3
import subprocess
import sys

from engine import ruleset as rs
from tests.helpers import ROOT

SAMPLE = ROOT / "samples" / "intake.jsonl"


AUDIT_KEY = "k" * 40


def mgreview(db, *args, stdin=None, audit_key=AUDIT_KEY):
    env = {
        **os.environ,
        "MGREVIEW_DATABASE_URL": f"sqlite:///{db}",
        "MGREVIEW_SECRET_KEY": "test",
        "MGREVIEW_AUDIT_KEY": audit_key,
    }
    return subprocess.run(
        [sys.executable, "-c", "from review_ui.cli import main; main()", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
    )


def test_users_import_and_audit_verify(tmp_path):
    db = tmp_path / "cli.db"
    upgraded = mgreview(db, "db", "upgrade")
    shipped_files = rs.ruleset_files()
    assert upgraded.returncode == 0
    assert all(
        f"registered published ruleset magnesium v{rs.load(f).version}" in upgraded.stdout for f in shipped_files
    )
    added = mgreview(
        db, "users", "add", "dana", "--role", "clinician", "--password-stdin", stdin="long enough password\n"
    )
    assert added.returncode == 0 and "added clinician dana" in added.stdout
    short = mgreview(db, "users", "add", "eve", "--role", "clinician", "--password-stdin", stdin="short\n")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    imported = mgreview(db, "import", str(SAMPLE), "--actor", "dana")
    assert "64 records, 60 new cases, 0 already imported, 4 rejected" in imported.stdout
    assert "line 61 (P0061): age_years: expected a number" in imported.stderr
    again = mgreview(db, "import", str(SAMPLE), "--actor", "dana")
    assert "0 new cases, 60 already imported" in again.stdout
    verified = mgreview(db, "audit", "verify")
    assert (
        verified.returncode == 0 and f"audit log intact: {3 + len(shipped_files)} entries verified" in verified.stdout
    )
    other_key = mgreview(db, "audit", "verify", audit_key="another key of forty characters, not ours")
    assert other_key.returncode == 1 and "not this log's key" in other_key.stdout
    exported = mgreview(db, "rulesets", "export", "--to", str(tmp_path / "rulesets"))
    for shipped in shipped_files:
        assert exported.returncode == 0 and f"magnesium/{shipped.name}" in exported.stdout
        assert (tmp_path / "rulesets" / "magnesium" / shipped.name).read_bytes() == shipped.read_bytes()


def test_audit_verify_names_the_tampered_entry(tmp_path):
    db = tmp_path / "cli.db"
    mgreview(db, "db", "upgrade")
    for name in ("ann", "ben", "cat"):
        mgreview(db, "users", "add", name, "--role", "clinician", "--password-stdin", stdin="long enough password\n")
    with sqlite3.connect(db) as conn:  # someone with database access removes the guard and edits entry 2
        conn.execute("DROP TRIGGER audit_entry_no_update")
        conn.execute("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 2")
    result = mgreview(db, "audit", "verify")
    assert result.returncode == 1
    assert "audit log BROKEN at entry 2: content does not match its keyed hash (edited or forged" in result.stdout


def test_a_checkpoint_finds_a_rolled_back_log(tmp_path):
    db = tmp_path / "cli.db"
    mgreview(db, "db", "upgrade")
    with sqlite3.connect(db) as conn:
        saved = conn.execute("SELECT seq, hash, mac FROM audit_head").fetchone()
    for name in ("ann", "ben"):
        mgreview(db, "users", "add", name, "--role", "clinician", "--password-stdin", stdin="long enough password\n")
    point = tmp_path / "checkpoint.json"
    written = mgreview(db, "audit", "checkpoint", "-o", str(point))
    entries = 2 + len(rs.ruleset_files())  # a registration per shipped version, then the two users
    assert written.returncode == 0 and f"checkpoint of {entries} entries written" in written.stderr
    assert mgreview(db, "audit", "verify", "--checkpoint", str(point)).returncode == 0
    with sqlite3.connect(db) as conn:  # back to the copy of the head taken before the two users were added
        for trigger in ("audit_entry_no_delete", "audit_head_forward_only"):
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("DELETE FROM audit_entry WHERE seq > ?", (saved[0],))
        conn.execute("UPDATE audit_head SET seq = ?, hash = ?, mac = ?", saved)
    assert mgreview(db, "audit", "verify").returncode == 0
    result = mgreview(db, "audit", "verify", "--checkpoint", str(point))
    assert result.returncode == 1
    assert f"the checkpoint has {entries} entries but the chain ends at {entries - 2} (truncated)" in result.stdout


def test_rulesets_check_covers_the_database(tmp_path):
    db = tmp_path / "cli.db"
    mgreview(db, "db", "upgrade")
    shipped, forged = len(rs.ruleset_files()), rs.load().version + 1
    assert f"database: {shipped} stored version(s) ok" in mgreview(db, "rulesets", "check").stdout
    with sqlite3.connect(db) as conn:  # a forged next version, inserted with the triggers in place
        conn.execute(
            "INSERT INTO ruleset_version (name, version, sha256, content, scenarios, supersedes, change_note, origin,"
            " authors, approver, published_at, audit_seq) SELECT name, ?, 'f00d', content, scenarios, ?, 'x',"
            " 'published', '[]', 'peter', published_at, audit_seq FROM ruleset_version WHERE version = 1",
            (forged, forged - 1),
        )
    result = mgreview(db, "rulesets", "check")
    assert result.returncode == 1
    assert f"database: magnesium v{forged} refused: its stored text does not match its sha256" in result.stderr


def test_serve_production_runs_gunicorn_workers_without_a_version_header(tmp_path):
    import socket
    import time
    import urllib.request

    db = tmp_path / "cli.db"
    mgreview(db, "db", "upgrade")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MGREVIEW_DATABASE_URL": f"sqlite:///{db}", "MGREVIEW_AUDIT_KEY": AUDIT_KEY}
    command = [sys.executable, "-c", "from review_ui.cli import main; main()", "serve", "--production"]
    server = subprocess.Popen(
        [*command, "--workers", "2", "--port", str(port)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        for _ in range(100):
            try:
                response = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        assert response.status == 200 and response.headers["Server"] == "gunicorn"
        assert response.headers["Cache-Control"] == "no-store"
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "with 2 workers x 4 threads" in stderr and "use PostgreSQL" in stderr


def test_a_database_without_schema_is_one_line(tmp_path):
    db = tmp_path / "fresh.db"
    for args in (("import", str(SAMPLE)), ("audit", "verify")):
        result = mgreview(db, *args)
        assert result.returncode == 1
        assert result.stderr == "Error: the database has no schema yet: run `mgreview db upgrade` first\n"

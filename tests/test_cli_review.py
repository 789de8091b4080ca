"""The review commands of the `mgreview` CLI, run as a user would, on a fresh SQLite database."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from engine import ruleset as rs

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "intake.jsonl"


def mgreview(db, *args, stdin=None):
    env = {**os.environ, "MGREVIEW_DATABASE_URL": f"sqlite:///{db}", "MGREVIEW_SECRET_KEY": "test"}
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
    assert "audit log BROKEN at entry 2: content does not match its hash (edited)" in result.stdout

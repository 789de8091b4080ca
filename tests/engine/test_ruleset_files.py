"""Files and database agree: what `rulesets check` and `evaluate` say about the ruleset files they use."""

import json
import os
import sqlite3
import subprocess
import sys

from engine import ruleset as rs
from tests.helpers import ROOT, RULESETS, SAMPLE, mgreview

NEWEST = 3  # the newest published file; the review UI publishes the next one


def _exported_next(folder):
    """A rulesets folder as `mgreview rulesets export --to DIR` writes it: magnesium/v4.json and its manifest."""
    doc = json.loads((RULESETS / f"v{NEWEST}.json").read_text("utf-8"))
    doc.update(version=NEWEST + 1, supersedes=NEWEST, change_note="published in the review UI")
    (folder / "magnesium").mkdir(parents=True)
    path = folder / "magnesium" / f"v{NEWEST + 1}.json"
    path.write_text(rs.dump(doc), "utf-8")
    scenarios = (RULESETS / f"v{NEWEST}.scenarios.json").read_text("utf-8")
    (folder / "magnesium" / f"v{NEWEST + 1}.scenarios.json").write_text(scenarios)
    return path


def test_check_reads_the_manifest_beside_an_exported_file(tmp_path):
    path = _exported_next(tmp_path)
    missing = mgreview("rulesets", "check", "--no-db", str(path))
    assert missing.returncode == 1
    assert (
        f"{path}: magnesium/v4.json: published version is not recorded in {ROOT / 'rulesets' / 'published.json'}"
        in missing.stderr
    )
    (tmp_path / "published.json").write_text(json.dumps({"magnesium/v4.json": rs.sha256_of(path)}), "utf-8")
    ok = mgreview("rulesets", "check", "--no-db", str(path))
    assert ok.returncode == 0, ok.stderr
    sha = rs.sha256_of(path)[:16]
    assert (
        ok.stdout == f"{path}: ok (74 rules + 16 from the upper-limit table, 142 scenarios, published, sha256 {sha}…)\n"
    )


def test_check_still_refuses_a_changed_file_beside_its_manifest(tmp_path):
    path = _exported_next(tmp_path)
    (tmp_path / "published.json").write_text(json.dumps({"magnesium/v4.json": "0" * 64}), "utf-8")
    changed = mgreview("rulesets", "check", "--no-db", str(path))
    assert changed.returncode == 1
    assert f"published version changed: sha256 {rs.sha256_of(path)} but {'0' * 64} was published" in changed.stderr


def test_check_counts_rules_and_scenarios_apart():
    done = mgreview("rulesets", "check", "--no-db")
    assert done.returncode == 0, done.stderr
    v1, v2, v3 = (rs.sha256_of(RULESETS / f"v{n}.json")[:16] for n in (1, 2, 3))
    table = "from the upper-limit table"
    assert done.stdout.splitlines() == [
        f"{RULESETS / 'v1.json'}: ok (68 rules + 8 {table}, 76 scenarios, published, sha256 {v1}…)",
        f"{RULESETS / 'v2.json'}: ok (74 rules + 16 {table}, 139 scenarios, published, sha256 {v2}…)",
        f"{RULESETS / 'v3.json'}: ok (74 rules + 16 {table}, 142 scenarios, published, sha256 {v3}…)",
    ]


def _evaluate(tmp_path, *args, database=None):
    env = {**os.environ, "MGREVIEW_CHECK_DATABASE": "1" if database else "0"}
    if database:
        env["MGREVIEW_DATABASE_URL"] = f"sqlite:///{database}"
    return subprocess.run(
        [sys.executable, "-m", "engine", "evaluate", str(SAMPLE), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )


def _database_with(tmp_path, versions):
    """A database whose ruleset_version table holds these magnesium versions (the columns the look-up reads)."""
    path = tmp_path / "review.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE ruleset_version (name TEXT, version INTEGER)")
        db.executemany("INSERT INTO ruleset_version VALUES ('magnesium', ?)", [(v,) for v in versions])
    return path


def test_evaluate_names_the_ruleset_file_it_uses(tmp_path):
    done = _evaluate(tmp_path)
    sha = rs.sha256_of(RULESETS / "v3.json")[:16]
    assert done.stderr.splitlines()[0] == f"ruleset magnesium v3 (rulesets/magnesium/v3.json, sha256 {sha}…)"
    v1 = _evaluate(tmp_path, "--ruleset", "rulesets/magnesium/v1.json")
    sha1 = rs.sha256_of(RULESETS / "v1.json")[:16]
    assert v1.stderr.splitlines()[0] == f"ruleset magnesium v1 (rulesets/magnesium/v1.json, sha256 {sha1}…)"


def test_evaluate_says_how_to_use_a_newer_version_the_database_published(tmp_path):
    plain = _evaluate(tmp_path)
    newer = _evaluate(tmp_path, database=_database_with(tmp_path, [1, 2, 3, 4]))
    assert newer.stderr.splitlines()[1] == (
        "the database has magnesium v4, published after this file: write it with "
        "`mgreview rulesets export --to DIR`, then evaluate with `--ruleset DIR/magnesium/v4.json`"
    )
    assert newer.stdout == plain.stdout  # results unchanged, byte for byte
    assert newer.stderr.splitlines()[0] == plain.stderr.splitlines()[0]


def test_evaluate_is_quiet_when_the_files_are_the_newest(tmp_path):
    same = _evaluate(tmp_path, database=_database_with(tmp_path, [1, 2, 3]))
    assert "the database has" not in same.stderr
    absent = _evaluate(tmp_path, database=tmp_path / "never-made.db")
    assert "the database has" not in absent.stderr and absent.returncode == same.returncode == 1  # 4 rejects

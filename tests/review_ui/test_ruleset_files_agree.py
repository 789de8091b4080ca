"""Files and database agree: a version published in the UI, exported, checks clean beside its own manifest, and
`mgreview evaluate` on the older files says how to use it; on SQLite and PostgreSQL."""

import json
import os
import subprocess
import sys

import pytest
from flask import current_app

from engine import ruleset as rs
from review_ui import ruleset_versions, workflow
from tests.helpers import ROOT, SAMPLE
from tests.review_ui.test_governance import NEWEST, NEXT, PASSWORD, lowered_draft, publish


@pytest.fixture
def people(ctx):
    return {
        "author": workflow.add_user("rita", PASSWORD, "rule_editor", actor="test"),
        "approver": workflow.add_user("peter", PASSWORD, "rule_editor", actor="test"),
    }


def _mgreview(*args, database=None):
    env = {**os.environ, "MGREVIEW_CHECK_DATABASE": "1"}
    if database:
        env["MGREVIEW_DATABASE_URL"] = database
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True, env=env)


def test_an_exported_version_checks_clean_and_evaluate_points_to_it(people, tmp_path):
    version = publish(lowered_draft(people), people)
    folder = tmp_path / "exported"
    written = ruleset_versions.export_versions(folder)
    newest = folder / "magnesium" / f"v{NEXT}.json"
    assert newest in written
    checked = _mgreview("rulesets", "check", "--no-db", str(newest))
    assert checked.returncode == 0, checked.stderr
    scenario_count = len(json.loads((folder / "magnesium" / f"v{NEXT}.scenarios.json").read_text("utf-8")))
    assert checked.stdout.startswith(
        f"{newest}: ok (74 rules + 16 from the upper-limit table, {scenario_count} scenarios, "
    )

    database = current_app.config["SQLALCHEMY_DATABASE_URI"]
    old = _mgreview("evaluate", str(SAMPLE), database=database)
    shipped = rs.sha256_of(rs.latest_published())[:16]
    assert old.stderr.splitlines()[:2] == [
        f"ruleset magnesium v{NEWEST} (rulesets/magnesium/v{NEWEST}.json, sha256 {shipped}…)",
        f"the database has magnesium v{NEXT}, published after this file: write it with "
        f"`mgreview rulesets export --to DIR`, then evaluate with `--ruleset DIR/magnesium/v{NEXT}.json`",
    ]
    new = _mgreview("evaluate", str(SAMPLE), "--ruleset", str(newest), database=database)
    assert new.stderr.splitlines()[0] == f"ruleset magnesium v{NEXT} ({newest}, sha256 {version.sha256[:16]}…)"
    assert "the database has" not in new.stderr

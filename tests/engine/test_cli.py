"""The engine's command line at its edge: a bad file is one line on stderr and an exit status, never a traceback."""

import subprocess
import sys
from importlib.metadata import entry_points

import pytest
from click.testing import CliRunner

from engine import cli
from tests.helpers import ROOT

V1 = ROOT / "rulesets" / "magnesium" / "v1.json"
SAMPLE = ROOT / "samples" / "intake.jsonl"


@pytest.fixture
def files(tmp_path):
    """Ruleset files a user might pass by mistake."""
    (tmp_path / "bad.json").write_text("not json", "utf-8")
    (tmp_path / "list.json").write_text("[1, 2]", "utf-8")
    (tmp_path / "utf16.json").write_bytes("{}".encode("utf-16"))
    return tmp_path


@pytest.mark.parametrize(
    "args, code, line",
    [
        (("rulesets", "diff", "bad.json", V1), 2, "Error: bad.json: not valid JSON: line 1 column 1: Expecting value"),
        (("rulesets", "diff", V1, "list.json"), 2, "Error: list.json: a ruleset is a JSON object"),
        (("rulesets", "diff", "utf16.json", V1), 2, "Error: utf16.json: not UTF-8 text (byte 0)"),
        (
            ("rulesets", "diff", "missing.json", V1),
            2,
            "Error: Invalid value for 'OLD': File 'missing.json' does not exist.",
        ),
        (("rulesets", "check", "--no-db", "list.json"), 1, "list.json: list.json: a ruleset is a JSON object"),
        (("rulesets", "check", "--no-db", "utf16.json"), 1, "utf16.json: utf16.json: not UTF-8 text (byte 0)"),
        (("rulesets", "impact", "utf16.json", V1, SAMPLE), 2, "Error: utf16.json: not UTF-8 text (byte 0)"),
        (("rulesets", "impact", "list.json", V1, SAMPLE), 2, "Error: list.json: a ruleset is a JSON object"),
        (
            ("evaluate", "--ruleset", "bad.json", SAMPLE),
            2,
            "Error: bad.json: not valid JSON: line 1 column 1: Expecting value",
        ),
        (("evaluate", "--ruleset", "utf16.json", SAMPLE), 2, "Error: utf16.json: not UTF-8 text (byte 0)"),
        (
            ("evaluate", "utf16.json"),
            2,
            "Error: utf16.json: the file is UTF-16 text; save it as UTF-8 (JSON Lines or CSV)",
        ),
    ],
)
def test_a_bad_file_is_one_line_and_an_exit_status(files, monkeypatch, args, code, line):
    monkeypatch.chdir(files)
    result = CliRunner().invoke(cli.main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code
    assert line in result.stderr.splitlines()
    assert "Traceback" not in result.output


def test_an_unwritable_output_is_one_line(files, monkeypatch):
    monkeypatch.chdir(files)
    (files / "taken").write_text("", "utf-8")
    result = CliRunner().invoke(cli.main, ["evaluate", str(SAMPLE), "-o", "taken/out.jsonl"], catch_exceptions=False)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1].startswith("Error: taken: ")


def test_evaluate_does_not_import_flask(tmp_path):
    code = (
        "import contextlib, sys\n"
        "from engine.cli import main\n"
        "for args in sys.argv[1:]:\n"
        "    with contextlib.suppress(SystemExit):\n"
        "        main(args.split('|'))\n"
        "assert 'flask' not in sys.modules, 'flask was imported'\n"
    )
    evaluate = f"evaluate|{SAMPLE}|-o|{tmp_path / 'out.jsonl'}"
    done = subprocess.run(
        [sys.executable, "-c", code, "evaluate|--help", evaluate], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out.jsonl").read_text("utf-8").count("\n") == 64


def test_the_review_ui_adds_commands_without_shadowing_the_engines():
    for group, engine_group in ((cli.COMMANDS_GROUP, cli.main), (cli.RULESETS_COMMANDS_GROUP, cli.rulesets)):
        added = {entry.name for entry in entry_points(group=group)}
        assert added, f"no commands installed for {group} (pip install -e .)"
        assert not added & set(engine_group.commands)
    assert {"db", "users", "import", "audit", "serve", "demo"} <= set(cli.main.list_commands(None))  # type: ignore[arg-type]

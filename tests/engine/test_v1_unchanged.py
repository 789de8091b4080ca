"""v1 is published: it must evaluate exactly as it did on main (results recorded there, by tests/data/README)."""

import json

import pytest

from engine import ruleset as rs
from engine.evaluate import Evaluator, to_json_line
from tests.helpers import DATA

RECORDED = DATA / "v1_results_on_main.jsonl"
CASES = [json.loads(line) for line in RECORDED.read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def v1() -> Evaluator:
    return Evaluator(rs.RULESETS_DIR / "magnesium" / "v1.json")


@pytest.mark.parametrize("case", CASES, ids=[str(c["record"].get("id")) for c in CASES])
def test_v1_evaluates_as_on_main(v1, case):
    assert to_json_line(v1.evaluate(case["record"]).to_dict()) == to_json_line(case["result"])


def test_the_recording_covers_magnesium_taken_and_the_plan_contract():
    texts = {m for c in CASES for m in c["record"].get("medications", []) if isinstance(m, str)}
    assert {"multivitamine (100 mg magnesium) 1dd", "spironolacton 25 mg 1dd", "Maalox 3dd10ml"} <= texts

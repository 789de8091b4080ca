"""One golden case (or more) per catalogue finding, written from REFERENCE.md; cases are data."""

import json
from pathlib import Path

import pytest

from engine.vocabulary import FINDING_IDS
from tests.conftest import finding, ids, record

CASES = json.loads((Path(__file__).parent / "data" / "golden_cases.json").read_text("utf-8"))


def test_every_catalogue_finding_has_a_golden_case():
    covered = {fid for case in CASES for fid in case["expect"]["findings"]}
    assert set(FINDING_IDS) - covered == set()


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_case(evaluator, case):
    result = evaluator.evaluate(record(**case["record"]))
    assert result["status"] == "ok", result.get("errors")
    expect = case["expect"]
    for fid, severity in expect["findings"].items():
        got = finding(result, fid)
        assert got is not None, f"{fid} missing; got {sorted(ids(result))}"
        assert got["severity"] == severity
        assert got["sources"] and got["message"] and got["evidence"]
    for fid in expect.get("absent", []):
        assert fid not in ids(result)
    for key, value in expect.get("plan", {}).items():
        assert result["plan"][key] == value, key
    windows = {s["drug"]: [s["drug_before_mg_h"], s["drug_after_mg_h"]] for s in result["plan"]["separations"]}
    for drug, window in expect.get("separations", {}).items():
        assert windows.get(drug) == window, windows

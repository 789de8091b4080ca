"""The ruleset's scenarios: one golden case (or more) per catalogue finding, written from REFERENCE.md."""

import pytest

from engine import ruleset as rs
from engine import scenarios
from engine.vocabulary import FINDING_IDS

SCENARIOS = scenarios.load(scenarios.path_for(rs.latest_published()))


def test_every_catalogue_finding_has_a_golden_case():
    covered = {fid for case in SCENARIOS for fid in case["expect"].get("findings", {})}
    assert set(FINDING_IDS) - covered == set()


@pytest.mark.parametrize("case", SCENARIOS, ids=[c["name"] for c in SCENARIOS])
def test_golden_case(evaluator, case):
    assert scenarios.check(case, evaluator.evaluate(case["record"])) == []


def test_a_changed_rule_fails_its_scenario(tmp_path):
    import json

    from engine.evaluate import Evaluator

    doc = json.loads(rs.latest_published().read_text("utf-8"))
    doc["status"] = "draft"
    rule = next(r for r in doc["rules"] if r["id"] == "FLUOROQUINOLONE_CIPROFLOXACIN")
    rule["then"]["separation"]["after_h"] = 4  # a wrong window for ciprofloxacin
    rule["description"] = rule["description"].replace("6 h after", "4 h after")  # its wording follows
    rule["then"]["message"] = rule["then"]["message"].replace("6 h after", "4 h after")
    if "message_nl" in rule["then"]:  # the Dutch follows the English (the checker compares their numbers)
        rule["description_nl"] = rule["description_nl"].replace("6 uur na", "4 uur na")
        rule["then"]["message_nl"] = rule["then"]["message_nl"].replace("6 uur na", "4 uur na")
    draft = tmp_path / "v2.json"
    draft.write_text(json.dumps(doc), "utf-8")
    failures = scenarios.run(Evaluator(draft), SCENARIOS)
    assert [str(f) for f in failures] == [
        "ciprofloxacin: separation ciprofloxacin: expected [2, 6], got [2, 4]",
        "drug given by RxNorm code only: separation ciprofloxacin: expected [2, 6], got [2, 4]",
    ]

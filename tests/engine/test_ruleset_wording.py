"""Stale wording: a number a rule's text states must be the rule's own, or come from a {threshold:...} placeholder."""

import copy
import json

import pytest

from engine import ruleset as rs
from engine import ruleset_check
from tests.helpers import RULESETS


@pytest.fixture(scope="module")
def v2():
    return json.loads((RULESETS / "v2.json").read_text("utf-8"))


def _rule(doc, rule_id):
    return next(r for r in doc["rules"] if r["id"] == rule_id)


def _lowered(doc):
    """v2 with the HYPOMAGNESEMIA threshold changed 0.75 -> 0.70 (as through the structured form), text untouched."""
    doc = copy.deepcopy(doc)
    rule = _rule(doc, "HYPOMAGNESEMIA")
    assert rule["when"][0]["where"][1] == ["serum_mg_mmol_l", "<", 0.75]
    rule["when"][0]["where"][1][2] = 0.70
    return doc


def problems(doc):
    return [str(e) for e in ruleset_check.check_data(doc)]


@pytest.mark.parametrize("name", ["v1.json", "v2.json"])
def test_the_published_versions_have_no_stale_wording(name):
    assert problems(json.loads((RULESETS / name).read_text("utf-8"))) == []


def test_a_changed_threshold_with_its_old_number_in_the_text_is_flagged(v2):
    assert problems(_lowered(v2)) == [
        "magnesium v2, rule HYPOMAGNESEMIA, description: says 0.75 mmol/L but the rule tests "
        "serum_mg_mmol_l >= 0.5 and < 0.7",
        "magnesium v2, rule HYPOMAGNESEMIA, then.message: says 0.75 mmol/L but the rule tests "
        "serum_mg_mmol_l >= 0.5 and < 0.7",
    ]


def test_the_same_change_with_the_text_updated_is_not_flagged(v2):
    doc = _lowered(v2)
    rule = _rule(doc, "HYPOMAGNESEMIA")
    rule["description"] = rule["description"].replace("0.75", "0.7")
    rule["then"]["message"] = rule["then"]["message"].replace("0.75 mmol/L", "0.70 mmol/L")
    assert problems(doc) == []


def test_a_changed_window_with_its_old_hours_in_the_text_is_flagged(v2):
    doc = copy.deepcopy(v2)
    _rule(doc, "MYCOPHENOLATE")["then"]["separation"] = {"before_h": 3, "after_h": 3}
    assert problems(doc) == [
        "magnesium v2, rule MYCOPHENOLATE, description: says 2 h but the rule separates before_h 3, after_h 3",
        "magnesium v2, rule MYCOPHENOLATE, then.message: says 2 h but the rule separates before_h 3, after_h 3",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "EU SmPC stricter: 3-4 h",  # a span another source gives, not the rule's window
        "keep 2 h (a hospital leaflet says 2 h / 4 h [S16b])",  # an aside citing another source
        "every 3-6 months",  # a unit of no field the rule tests
    ],
)
def test_numbers_that_are_no_claim_about_the_rule_are_not_flagged(v2, text):
    doc = copy.deepcopy(v2)
    _rule(doc, "MYCOPHENOLATE")["description"] = text
    assert problems(doc) == []


def test_a_threshold_placeholder_is_filled_from_the_rule_when_it_loads(v2):
    doc = _lowered(v2)
    rule = _rule(doc, "HYPOMAGNESEMIA")
    rule["description"] = "{threshold:serum_mg_mmol_l:lower} <= Mg < {threshold:serum_mg_mmol_l:upper} mmol/L"
    rule["then"]["message"] = rule["then"]["message"].replace("0.75", "{threshold:serum_mg_mmol_l:upper}")
    _rule(doc, "HYPOMAGNESEMIA_SEVERE")["then"]["message"] = "below {threshold:serum_mg_mmol_l} mmol/L"
    text = rs.dump(doc)
    assert problems(doc) == []
    loaded = {r.id: r for r in rs.load_text(text).rules}
    assert loaded["HYPOMAGNESEMIA"].description == "0.5 <= Mg < 0.7 mmol/L"
    assert "is below the reference range (0.7 mmol/L)" in loaded["HYPOMAGNESEMIA"].then["message"]
    assert loaded["HYPOMAGNESEMIA_SEVERE"].then["message"] == "below 0.5 mmol/L"
    stored = _rule(json.loads(text), "HYPOMAGNESEMIA")  # the text keeps the placeholder: an edit changes the number
    assert "{threshold:serum_mg_mmol_l:upper}" in stored["then"]["message"]


def test_a_filled_message_reaches_the_finding(v2, tmp_path):
    from engine.evaluate import Evaluator
    from tests.helpers import finding, record

    doc = _lowered(v2)
    doc["status"] = "draft"
    rule = _rule(doc, "HYPOMAGNESEMIA")
    rule["description"] = rule["description"].replace("0.75", "{threshold:serum_mg_mmol_l:upper}")
    rule["then"]["message"] = rule["then"]["message"].replace("0.75", "{threshold:serum_mg_mmol_l:upper}")
    path = tmp_path / "v3.json"
    path.write_text(rs.dump(doc), "utf-8")
    result = Evaluator(path).evaluate(record(serum_magnesium={"value": 0.6, "unit": "mmol/L"})).to_dict()
    message = finding(result, "HYPOMAGNESEMIA")["message"]
    assert "Serum magnesium 0.6 mmol/L is below the reference range (0.7 mmol/L)" in message


@pytest.mark.parametrize(
    "placeholder, problem",
    [
        (
            "{threshold:egfr_ml_min_1_73m2}",
            "placeholder {threshold:egfr_ml_min_1_73m2}: the rule does not test egfr_ml_min_1_73m2",
        ),
        (
            "{threshold:serum_mg_mmol}",
            "placeholder {threshold:serum_mg_mmol}: the rule does not test serum_mg_mmol "
            "(did you mean 'serum_mg_mmol_l'?)",
        ),
        (
            "{threshold:serum_mg_mmol_l}",
            "placeholder {threshold:serum_mg_mmol_l}: the rule tests serum_mg_mmol_l >= 0.5 and < 0.75: "
            "write {threshold:serum_mg_mmol_l:lower} or {threshold:serum_mg_mmol_l:upper}",
        ),
    ],
)
def test_a_placeholder_naming_a_field_the_rule_does_not_test_is_refused(v2, placeholder, problem):
    doc = copy.deepcopy(v2)
    rule = _rule(doc, "HYPOMAGNESEMIA")
    rule["then"]["message"] = f"Serum magnesium below {placeholder} mmol/L."
    assert problems(doc) == [f"magnesium v2, rule HYPOMAGNESEMIA, then.message: {problem}"]

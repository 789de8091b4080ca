"""Findings of the planner (engine/plan.py): filled messages in both languages, the cache of filled messages."""

import pytest

from engine.evaluate import Evaluator
from engine.plan import _message_key, _Messages
from engine.results import Firing
from tests.helpers import RULESETS, finding, record


@pytest.fixture(scope="module")
def v3() -> Evaluator:
    return Evaluator(RULESETS / "v3.json")


def fired(evaluator: Evaluator, rule_id: str, fact: dict) -> tuple[Firing, object]:
    """A firing of a one-pattern rule on `fact`, and the rule's prepared output."""
    rule = next(r for r in evaluator.ruleset.rules if r.id == rule_id)
    out = evaluator.planner.outputs[rule.index]
    assert out.patterns == ("m0",)
    return Firing(rule, {"m0": fact}), out


def test_each_record_gets_its_own_values_in_both_languages(v3):
    first = finding(v3.evaluate(record(medications=["omeprazole 20 mg"])).to_dict(), "PPI_LONG_TERM")
    second = finding(v3.evaluate(record(medications=["pantoprazol 40 mg"])).to_dict(), "PPI_LONG_TERM")
    again = finding(v3.evaluate(record(medications=["omeprazole 20 mg"])).to_dict(), "PPI_LONG_TERM")
    assert first["message"].startswith("omeprazole ('omeprazole 20 mg') taken long-term")
    assert first["message_nl"].startswith("omeprazole ('omeprazole 20 mg') kan bij langdurig gebruik")
    assert second["message"].startswith("pantoprazole ('pantoprazol 40 mg') taken long-term")
    assert second["message_nl"].startswith("pantoprazole ('pantoprazol 40 mg') kan bij langdurig gebruik")
    assert again == first


def test_a_result_changed_by_its_reader_leaves_the_next_result_as_it_was(v3):
    changes = {"medications": ["omeprazole 20 mg"]}
    mine = v3.evaluate(record(**changes)).findings
    before = [f.to_dict() for f in v3.evaluate(record(**changes)).findings]
    for f in mine:  # a reader (the review UI, _explain_other_mg) may change what it was given
        f.sources.append("MINE")
        f.rules.append("MINE")
        f.evidence[0]["facts"].append({"note": "MINE"})
        f.evidence[0]["facts"][0]["value"] = "MINE"
    assert [f.to_dict() for f in v3.evaluate(record(**changes)).findings] == before


@pytest.mark.parametrize(
    "age, english, dutch",
    [
        (7.0, "Patient is 7 years old", "Patiënt is 7 jaar"),
        (7.25, "Patient is 7.25 years old", "Patiënt is 7,25 jaar"),
        (-0.0, "Patient is -0 years old", "Patiënt is -0 jaar"),  # equal to 0.0, printed otherwise: its own key
        (0.0, "Patient is 0 years old", "Patiënt is 0 jaar"),
        (True, "Patient is True years old", "Patiënt is True jaar"),  # equal to 1, printed otherwise
        (1, "Patient is 1 years old", "Patiënt is 1 jaar"),
        ([1, 2], "Patient is 1, 2 years old", "Patiënt is 1, 2 jaar"),  # no key: filled each time
        (None, "Patient is None years old", "Patiënt is None jaar"),
    ],
)
def test_a_value_fills_the_message_by_its_own_type_whatever_came_before(v3, age, english, dutch):
    messages = v3.planner.messages
    for value in (age, 0.0, -0.0, 1, True, 7.0, 7.25, [1, 2], None, age):  # the value again after the others
        messages.of(*fired(v3, "PEDIATRIC", {"age_years": value}))
    message, message_nl = messages.of(*fired(v3, "PEDIATRIC", {"age_years": age}))
    assert message.startswith(english) and message_nl.startswith(dutch)


def test_a_placeholder_no_matched_fact_has_reads_as_unknown(v3):
    message, message_nl = v3.planner.messages.of(*fired(v3, "PEDIATRIC", {}))
    assert message.startswith("Patient is unknown years old")
    assert message_nl.startswith("Patiënt is onbekend jaar")


def test_message_keys_tell_apart_values_that_are_equal_but_print_differently():
    keys = [_message_key(0, (v,)) for v in ("1", 1, 1.0, True, 0.0, -0.0, None)]
    assert len(set(keys)) == len(keys)
    assert _message_key(0, ([1, 2],)) is None  # a list is no key
    assert _message_key(0, ("a",)) != _message_key(1, ("a",))  # each rule its own texts


def test_the_cache_of_filled_messages_is_bounded(v3):
    messages = _Messages(v3.planner.dutch)
    messages.SIZE = 10
    for n in range(25):
        message, _ = messages.of(*fired(v3, "PEDIATRIC", {"age_years": float(n)}))
        assert message.startswith(f"Patient is {n} years old")
        assert len(messages.filled) <= 10
    assert 0 < len(messages.filled) <= 10


def test_a_ruleset_without_dutch_fills_no_dutch():
    v2 = Evaluator(RULESETS / "v2.json")
    found = finding(v2.evaluate(record(medications=["omeprazole 20 mg"])).to_dict(), "PPI_LONG_TERM")
    assert found["message"].startswith("omeprazole ('omeprazole 20 mg') taken long-term")
    assert "message_nl" not in found

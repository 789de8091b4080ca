"""Effects declare their value types once (engine.vocabulary): the checker, the planner and the editor read them."""

import copy
import json

import pytest

from engine import ruleset as rs
from engine import ruleset_check, upper_limits
from engine import vocabulary as vocab

V2 = json.loads((rs.RULESETS_DIR / "magnesium" / "v2.json").read_text("utf-8"))


def problems_of(rule_id, effect, value):
    doc = copy.deepcopy(V2)
    rule = next(r for r in doc["rules"] if r["id"] == rule_id)
    rule["then"][effect] = value
    return [str(e) for e in ruleset_check.check_data(doc) if e.rule_id == rule_id]


@pytest.mark.parametrize(
    "rule_id, effect, value, message",
    [
        ("RENAL_SEVERE", "cap_mg", "zero", "cap_mg must be a number >= 0"),
        ("RENAL_SEVERE", "cap_mg", -5, "cap_mg must be a number >= 0"),
        ("RENAL_SEVERE", "cap_mg", True, "cap_mg must be a number >= 0"),
        ("RENAL_SEVERE", "requires_physician", "yes", "requires_physician must be true or false"),
        ("RED_FLAG_SYMPTOMS", "urgent", 1, "urgent must be true or false"),
        ("SPLIT_DOSE", "doses_per_day_min", 2.5, "doses_per_day_min must be a whole number from 1 to 8"),
        ("SPLIT_DOSE", "doses_per_day_min", 0, "doses_per_day_min must be a whole number from 1 to 8"),
        ("RENAL_SEVERE", "monitoring", "serum Mg", "monitoring must be a list of strings"),
        ("SPLIT_DOSE", "monitoring_on_magnesium", [1], "monitoring_on_magnesium must be a list of strings"),
    ],
)
def test_a_wrongly_typed_effect_is_refused_naming_the_rule_and_the_effect(rule_id, effect, value, message):
    assert f"magnesium v2, rule {rule_id}, then.{effect}: {message}" in problems_of(rule_id, effect, value)


def test_every_effect_declares_a_value_type_and_the_published_rulesets_keep_them():
    assert all(effect.type for effect in vocab.EFFECTS.values())
    for path in rs.ruleset_files():
        assert list(ruleset_check.check_data(json.loads(path.read_text("utf-8")))) == []


def test_the_planner_reads_which_effects_shape_the_plan_from_the_vocabulary():
    assert set(vocab.PLAN_EFFECTS) == {
        "cap_mg",
        "ul_mg",
        "requires_physician",
        "urgent",
        "doses_per_day_min",
        "suggest_form",
        "monitoring",
        "separation",
    }


def test_upper_limit_rules_report_the_declared_upper_limit_findings():
    made = {r["then"].get("finding") for r in upper_limits.expand(V2["upper_limits"], True)} - {None}
    assert made == vocab.UPPER_LIMIT_FINDINGS
    assert all(vocab.is_upper_limit_finding(f) for f in made)
    assert not vocab.is_upper_limit_finding("DOSE_BASIS_SALT")

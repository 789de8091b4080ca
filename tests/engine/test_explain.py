"""engine.explain: why a finding applies and what would change it, read from the ruleset, never written by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine import explain
from engine import ruleset as rulesets
from engine.evaluate import Evaluator
from tests.helpers import record

RULESET_FILE = rulesets.latest_published()
RAW: dict[str, Any] = json.loads(RULESET_FILE.read_text("utf-8"))


def _rule(rule_id: str) -> dict[str, Any]:
    return next(r for r in RAW["rules"] if r["id"] == rule_id)


def _threshold(rule_id: str, field: str, op: str) -> float:
    """The number a rule of the ruleset file compares `field` with using `op`."""
    for pattern in _rule(rule_id)["when"]:
        for name, o, value in pattern.get("where", []) + pattern.get("where_any", []):
            if name == field and o == op:
                return float(value)
    raise LookupError(f"{rule_id}: no condition {field} {op}")


def _file_thresholds(field: str) -> list[float]:
    """Every number any rule of the ruleset file compares `field` with."""
    found = set()
    for rule in RAW["rules"]:
        for pattern in rule["when"]:
            for name, op, value in pattern.get("where", []) + pattern.get("where_any", []):
                if name == field and op in ("<", "<=", ">", ">="):
                    found.add(float(value))
    return sorted(found)


def _eu_ul_mg() -> float:
    return float(next(u["ul_mg"] for u in RAW["upper_limits"] if u["id"] == "UL_EU_4_PLUS"))


def _explained(evaluator: Evaluator, rec: dict[str, Any]) -> dict[str, explain.FindingExplained]:
    result = evaluator.evaluate(rec)
    return {f.finding: f for f in explain.explain_findings(evaluator.ruleset, result)}


def _changes(f: explain.FindingExplained) -> set[tuple[tuple[str, str, Any], ...]]:
    return {tuple((c.fact, c.op, c.value) for c in w.all_of) for w in f.would_not_apply_if}


EGFR = "patient.egfr_ml_min_1_73m2"
MG = "patient.serum_mg_mmol_l"


def test_renal_moderate_names_both_bounds_with_the_value_and_its_date(evaluator):
    rec = record(egfr_ml_min_1_73m2=52, labs={"egfr": {"date": "2025-01-15", "status": "final"}})
    got = _explained(evaluator, rec)["RENAL_MODERATE"]
    low = _threshold("RENAL_MODERATE", "egfr_ml_min_1_73m2", ">=")
    high = _threshold("RENAL_MODERATE", "egfr_ml_min_1_73m2", "<")
    assert _changes(got) == {((EGFR, ">=", high),), ((EGFR, "<", low),)}
    (rule,) = got.rules
    assert rule.rule == "RENAL_MODERATE"
    assert {(c.fact, c.op, c.threshold, c.value) for c in rule.conditions} == {
        (EGFR, ">=", low, 52),
        (EGFR, "<", high, 52),
    }
    context = rule.conditions[0].context
    assert (context["source"], context["date"], context["status"]) == ("lab", "2025-01-15", "final")


def test_an_egfr_from_creatinine_says_so_and_carries_the_creatinine_date(evaluator):
    rec = record(
        egfr_ml_min_1_73m2=None,
        age_years=70,
        serum_creatinine={"value": 1.2, "unit": "mg/dL"},
        labs={"serum_creatinine": {"date": "2025-01-15"}},
    )
    got = _explained(evaluator, rec)["RENAL_MODERATE"]
    condition = got.rules[0].conditions[0]
    assert condition.context["source"] == "ckd_epi_2021"
    assert condition.context["computed_from_creatinine"]["date"] == "2025-01-15"
    assert 30 <= condition.value < 60


@pytest.mark.parametrize(
    ("mg_mmol_l", "finding", "rule_id"),
    [
        (0.6, "HYPOMAGNESEMIA", "HYPOMAGNESEMIA"),
        (0.4, "HYPOMAGNESEMIA_SEVERE", "HYPOMAGNESEMIA_SEVERE"),
        (1.9, "HYPERMAGNESEMIA_TOXIC", "HYPERMAGNESEMIA_TOXIC"),
    ],
)
def test_magnesium_findings_negate_the_thresholds_of_their_rule(evaluator, mg_mmol_l, finding, rule_id):
    got = _explained(evaluator, record(serum_magnesium={"value": mg_mmol_l, "unit": "mmol/L"}))[finding]
    negated = {"<": ">=", ">=": "<", ">": "<=", "<=": ">"}
    expected = {((MG, negated[op], float(v)),) for p in _rule(rule_id)["when"] for _, op, v in p["where"]}
    assert _changes(got) == expected
    assert all(c.value == mg_mmol_l for c in got.rules[0].conditions)


def test_hypomagnesemia_reads_both_thresholds_from_the_ruleset(evaluator):
    got = _explained(evaluator, record(serum_magnesium={"value": 0.6, "unit": "mmol/L"}))["HYPOMAGNESEMIA"]
    assert _changes(got) == {
        ((MG, "<", _threshold("HYPOMAGNESEMIA", "serum_mg_mmol_l", ">=")),),
        ((MG, ">=", _threshold("HYPOMAGNESEMIA", "serum_mg_mmol_l", "<")),),
    }


@pytest.mark.parametrize(
    ("medication", "finding", "ingredient"),
    [
        ("doxycycline 100 mg 1dd", "TETRACYCLINE_SEPARATION", "doxycycline"),
        ("levothyroxine 100 mcg", "LEVOTHYROXINE_SEPARATION", "levothyroxine"),
        ("ciprofloxacin 500 mg", "FLUOROQUINOLONE_SEPARATION", "ciprofloxacin"),
    ],
)
def test_a_drug_separation_names_the_drug_as_written(evaluator, medication, finding, ingredient):
    got = _explained(evaluator, record(medications=[medication]))[finding]
    assert _changes(got) == {(("medication.ingredient", explain.WITHOUT, ingredient),)}
    (condition,) = got.rules[0].conditions
    assert (condition.value, condition.as_written) == (ingredient, medication)


def test_a_derived_finding_is_traced_to_the_rule_that_derived_it(evaluator):
    got = _explained(evaluator, record(egfr_ml_min_1_73m2=20))["RENAL_SEVERE"]
    (condition,) = got.rules[0].conditions
    assert (condition.fact, condition.derived_by) == ("derived.renal_severe", ("RENAL_SEVERE_BY_EGFR",))
    assert _changes(got) == {((EGFR, ">=", _threshold("RENAL_SEVERE_BY_EGFR", "egfr_ml_min_1_73m2", "<")),)}


def test_where_any_alternatives_are_negated_together(evaluator):
    rec = record(
        jurisdiction="EU", pregnant=True, supplement={"form": "threonate", "dose_mg": 100, "dose_basis": "elemental"}
    )
    got = _explained(evaluator, rec)["THREONATE_PREG_LACT"]
    both = (("patient.pregnant", "!=", True), ("patient.lactating", "!=", True))
    assert both in _changes(got)
    assert (("patient.jurisdiction", "!=", "EU"),) in _changes(got)


def test_a_changed_threshold_changes_the_explanation():
    data = json.loads(RULESET_FILE.read_text("utf-8"))
    for rule in data["rules"]:
        if rule["id"] == "RENAL_MODERATE":
            rule["when"][0]["where"] = [["egfr_ml_min_1_73m2", ">=", 30], ["egfr_ml_min_1_73m2", "<", 55]]
    data["status"] = "draft"
    changed = rulesets.load_text(rulesets.dump(data), "<changed RENAL_MODERATE>")
    evaluator = Evaluator(changed, backend="python")
    got = _explained(evaluator, record(egfr_ml_min_1_73m2=52))["RENAL_MODERATE"]
    assert ((EGFR, ">=", 55),) in _changes(got)
    assert ((EGFR, ">=", 60),) not in _changes(got)
    (missing,) = explain.settle_missing(evaluator, changed, record(egfr_ml_min_1_73m2=None))
    assert 55.0 in missing.thresholds


def test_renal_data_missing_gives_the_egfr_intervals_and_the_caps_they_decide(evaluator):
    rec = record(egfr_ml_min_1_73m2=None, jurisdiction="EU")
    (missing,) = explain.settle_missing(evaluator, evaluator.ruleset, rec)
    assert missing.findings == ("RENAL_DATA_MISSING",)
    assert missing.fact == "egfr_ml_min_1_73m2"
    assert list(missing.thresholds) == _file_thresholds("egfr_ml_min_1_73m2")
    severe = _threshold("RENAL_SEVERE_BY_EGFR", "egfr_ml_min_1_73m2", "<")
    moderate_high = _threshold("RENAL_MODERATE", "egfr_ml_min_1_73m2", "<")
    by_range = {(i.low, i.high): i.outcome for i in missing.intervals}
    assert by_range[(None, severe)].cap_mg_per_day == 0
    assert by_range[(None, severe)].physician == "decides"
    assert "RENAL_SEVERE" in by_range[(None, severe)].findings
    assert by_range[(severe, moderate_high)].cap_mg_per_day == _eu_ul_mg()
    assert "RENAL_MODERATE" in by_range[(severe, moderate_high)].findings
    assert by_range[(moderate_high, None)].cap_mg_per_day == _eu_ul_mg()
    assert missing.caps == (0.0, _eu_ul_mg())
    assert all("RENAL_DATA_MISSING" not in i.outcome.findings for i in missing.intervals)


def test_mg_lab_missing_gives_the_magnesium_intervals_and_the_caps_they_decide(evaluator):
    rec = record(serum_magnesium=None, jurisdiction="EU")
    (missing,) = explain.settle_missing(evaluator, evaluator.ruleset, rec)
    assert (missing.findings, missing.record_field, missing.unit) == (("MG_LAB_MISSING",), "serum_magnesium", "mmol/L")
    assert list(missing.thresholds) == _file_thresholds("serum_mg_mmol_l")
    severe = _threshold("HYPOMAGNESEMIA_SEVERE", "serum_mg_mmol_l", "<")
    above = _threshold("MG_ABOVE_RANGE", "serum_mg_mmol_l", ">")
    for interval in missing.intervals:
        assert interval.low is None or interval.low <= interval.tried
        assert interval.high is None or interval.tried <= interval.high
        inside_safe = interval.low is not None and interval.low >= severe and interval.high is not None
        inside_safe = inside_safe and interval.high <= above
        assert interval.outcome.cap_mg_per_day == (_eu_ul_mg() if inside_safe else 0)
    # the threshold above the range belongs below it (`> 0.95`), the severe one above it (`< 0.5`)
    assert any(i.high == above and i.high_inclusive for i in missing.intervals)
    assert any(i.low == severe and i.low_inclusive for i in missing.intervals)
    assert missing.caps == (0.0, _eu_ul_mg())


@pytest.mark.parametrize(
    ("positive", "finding"),
    [
        ({"egfr_ml_min_1_73m2": 52}, "RENAL_MODERATE"),
        ({"serum_magnesium": {"value": 0.6, "unit": "mmol/L"}}, "HYPOMAGNESEMIA"),
        ({"medications": ["doxycycline 100 mg"]}, "TETRACYCLINE_SEPARATION"),
        ({"egfr_ml_min_1_73m2": None}, "RENAL_DATA_MISSING"),
        ({"serum_magnesium": None}, "MG_LAB_MISSING"),
    ],
)
def test_each_true_positive_beside_a_healthy_record(evaluator, positive, finding):
    assert finding in _explained(evaluator, record(**positive))
    healthy = _explained(evaluator, record())
    assert finding not in healthy
    # the healthy record's findings rest on no patient value, so nothing would change them
    for explained in healthy.values():
        assert explained.would_not_apply_if == ()
        assert all(not c.fact.startswith(("medication.", "derived.")) for r in explained.rules for c in r.conditions)
    assert explain.settle_missing(evaluator, evaluator.ruleset, record()) == ()


def test_a_rejected_record_is_explained_as_nothing(evaluator):
    rejected = record(age_years=None)
    assert explain.explain_findings(evaluator.ruleset, evaluator.evaluate(rejected)) == ()
    assert explain.settle_missing(evaluator, evaluator.ruleset, rejected) == ()


def test_to_dict_is_plain_json(evaluator):
    rec = record(egfr_ml_min_1_73m2=None, medications=["doxycycline 100 mg"])
    explained = explain.explain_findings(evaluator.ruleset, evaluator.evaluate(rec))
    missing = explain.settle_missing(evaluator, evaluator.ruleset, rec)
    text = json.dumps([e.to_dict() for e in explained] + [m.to_dict() for m in missing])
    assert "doxycycline" in text and "egfr_ml_min_1_73m2" in text


def test_a_typed_evaluation_and_its_dict_explain_alike(evaluator):
    result = evaluator.evaluate(record(egfr_ml_min_1_73m2=52))
    assert explain.explain_findings(evaluator.ruleset, result) == explain.explain_findings(
        evaluator.ruleset, result.to_dict()
    )
    with pytest.raises(TypeError):
        explain.evaluation_dict(42)


def test_two_firings_behind_one_finding_are_stopped_only_together(evaluator):
    got = _explained(evaluator, record(medications=["doxycycline 100 mg", "minocycline 50 mg"]))
    finding = got["TETRACYCLINE_SEPARATION"]
    assert len(finding.rules) == 2
    assert _changes(finding) == {
        (
            ("medication.ingredient", explain.WITHOUT, "doxycycline"),
            ("medication.ingredient", explain.WITHOUT, "minocycline"),
        )
    }


def test_a_fact_derived_twice_is_stopped_only_by_removing_both_causes(evaluator):
    got = _explained(evaluator, record(egfr_ml_min_1_73m2=20, conditions=["dialysis"]))["RENAL_SEVERE"]
    (condition,) = got.rules[0].conditions
    assert set(condition.derived_by) == {"RENAL_SEVERE_BY_EGFR", "RENAL_SEVERE_BY_CONDITION"}
    (change,) = _changes(got)
    assert set(change) == {
        (EGFR, ">=", _threshold("RENAL_SEVERE_BY_EGFR", "egfr_ml_min_1_73m2", "<")),
        ("concept.concept", explain.WITHOUT, "dialysis"),
    }

"""Property-based tests over generated and mutated intake records.

1. The engine never crashes: every record ends as a result or a reject with a reason.
2. Differential: a plain-Python interpreter of the same ruleset file agrees with durable_rules.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import ruleset as rs
from engine.evaluate import Evaluator, to_json_line
from engine.facts import FIELDS

VOC = rs.load().vocabulary
DRUG_NAMES = sorted({n for d in VOC.drugs.values() for n in d["names"]} | set(VOC.drugs) | set(VOC.products))
CONCEPT_NAMES = sorted({n for c in VOC.concepts.values() for n in c["names"]})
FORM_NAMES = sorted({n for f in VOC.forms.values() for n in f["names"]})
RXNORM = sorted({c for d in VOC.drugs.values() for c in d["rxnorm"]})
ATC = sorted({c for d in VOC.drugs.values() for c in d["atc"]})

# Values near every threshold of the ruleset, plus ordinary ones.
ages = st.one_of(st.sampled_from([0, 0.5, 0.99, 1, 3.99, 4, 8.99, 9, 17.99, 18, 45, 99]), st.floats(0, 120))
egfrs = st.one_of(st.sampled_from([14.99, 15, 29.96, 29.999, 30, 44.99, 45, 59.99, 60, 90]), st.floats(0, 200))
mg_values = st.one_of(st.sampled_from([0.49, 0.5, 0.749, 0.75, 0.95, 0.951, 1.739, 1.74]), st.floats(0.05, 5))
units = st.sampled_from(["mmol/L", "mg/dL", "mEq/L", "mg/L", "MMOL/L"])
medication = st.one_of(
    st.sampled_from(DRUG_NAMES).map(lambda n: n.title()),
    st.builds(lambda n, dose: f"{n} {dose} mg 1dd", st.sampled_from(DRUG_NAMES), st.integers(1, 1000)),
    st.builds(lambda c: {"rxnorm": c}, st.sampled_from(RXNORM)),
    st.builds(lambda c, n: {"name": n, "atc": c}, st.sampled_from(ATC), st.text(min_size=1, max_size=12)),
    st.text(min_size=1, max_size=30).filter(str.strip),
)
concept_text = st.one_of(
    st.sampled_from(CONCEPT_NAMES),
    st.builds(lambda n: f"geen {n}", st.sampled_from(CONCEPT_NAMES)),
    st.text(min_size=1, max_size=40).filter(str.strip),
)


@st.composite
def records(draw: Any) -> dict[str, Any]:
    """A plausible intake record: every field optional, values near thresholds."""
    rec: dict[str, Any] = {"id": draw(st.text(min_size=1, max_size=8).filter(str.strip)), "age_years": draw(ages)}
    sex = draw(st.sampled_from(["female", "male", None]))
    if sex:
        rec["sex"] = sex
        if sex == "female":
            rec["pregnant"] = draw(st.booleans())
            rec["lactating"] = draw(st.booleans())
    if draw(st.booleans()):
        rec["egfr_ml_min_1_73m2"] = draw(egfrs)
    if draw(st.booleans()):
        rec["serum_creatinine"] = {
            "value": draw(st.floats(0.3, 10)),
            "unit": draw(st.sampled_from(["mg/dL", "umol/L"])),
        }
    if draw(st.booleans()):
        value, unit = draw(mg_values), draw(units)
        factor = {"mg/dL": 2.4305, "mEq/L": 2.0}.get(unit, 1.0)
        rec["serum_magnesium"] = {"value": round(value * factor, 6), "unit": unit}
    rec["medications"] = draw(st.lists(medication, max_size=6))
    rec["conditions"] = draw(st.lists(concept_text, max_size=3))
    rec["symptoms"] = draw(st.lists(concept_text, max_size=3))
    if draw(st.booleans()):
        rec["supplement"] = {
            "form": draw(st.one_of(st.sampled_from(FORM_NAMES), st.text(max_size=10))),
            "dose_mg": draw(st.floats(1, 3000)),
            "dose_basis": draw(st.sampled_from(["elemental", "salt"])),
        }
    if draw(st.booleans()):
        rec["jurisdiction"] = draw(st.sampled_from(["US", "EU"]))
    return rec


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers()),
)


@st.composite
def mutated(draw: Any) -> Any:
    """A generated record with one to three fields replaced by junk, removed, or the record replaced whole."""
    rec = draw(records())
    if draw(st.integers(0, 20)) == 0:
        return draw(junk)
    fields = [*FIELDS, "unknown_field"]
    for name in draw(st.lists(st.sampled_from(fields), min_size=1, max_size=3)):
        if draw(st.booleans()):
            rec[name] = draw(junk)
        else:
            rec.pop(name, None)
    return rec


@pytest.fixture(scope="module")
def durable() -> Evaluator:
    return Evaluator()


@pytest.fixture(scope="module")
def python() -> Evaluator:
    return Evaluator(backend="python")


def _refuse(constant: str) -> None:
    raise AssertionError(f"non-standard JSON constant {constant} in a result line")


def _check_outcome(result: dict[str, Any]) -> None:
    assert result["status"] in ("ok", "rejected")
    if result["status"] == "rejected":
        assert result["errors"] and all(e["field"] and e["reason"] for e in result["errors"])
    else:
        assert result["plan"]["max_elemental_mg_per_day"] >= 0
        json.loads(to_json_line(result), parse_constant=_refuse)  # standard JSON: no NaN or Infinity


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(mutated())
def test_engine_never_crashes_on_mutated_records(durable, rec):
    _check_outcome(durable.evaluate(rec).to_dict())


@FUZZ
@given(records())
def test_durable_rules_and_plain_python_interpreter_agree(durable, python, rec):
    a, b = durable.evaluate(rec).to_dict(), python.evaluate(rec).to_dict()
    assert a["status"] == b["status"]
    if a["status"] != "ok":
        return
    fired_a = sorted(json.dumps(t, sort_keys=True) for t in a["trace"])
    fired_b = sorted(json.dumps(t, sort_keys=True) for t in b["trace"])
    assert fired_a == fired_b
    assert a["findings"] == b["findings"]
    assert a["plan"] == b["plan"]


def test_thousands_of_medications(durable):
    result = durable.evaluate(
        {"id": "M", "age_years": 50, "medications": [f"drug{i} 5 mg" for i in range(3000)]}
    ).to_dict()
    assert result["status"] == "ok"
    unrecognized = next(f for f in result["findings"] if f["id"] == "UNRECOGNIZED_MEDICATION")
    assert len(unrecognized["evidence"]) == 3000


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 10**30, -1e-300, "", "١٢"])
def test_extreme_numbers_are_rejected_with_a_reason(durable, value):
    result = durable.evaluate({"id": "X", "age_years": value}).to_dict()
    assert result["status"] == "rejected" and result["errors"][0]["field"] == "age_years"

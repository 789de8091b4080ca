"""Evaluator (engine/evaluate.py): typed results, rejected results naming the field, both backends alike."""

import dataclasses
import json
import subprocess
import sys

import pytest

from engine.evaluate import Evaluator
from engine.lines import Unreadable, result_of
from engine.results import Evaluation, Rejected, to_json_line
from tests.helpers import record


@pytest.fixture(scope="module")
def python_evaluator() -> Evaluator:
    return Evaluator(backend="python")


# (record changes, the field a rejected result names, its reason); each beside a record that is evaluated
REJECTED = [
    ({"age_years": "forty"}, "age_years", "expected a number"),
    ({"age_years": 40}, None, None),
]


@pytest.mark.parametrize("changes, field, reason", REJECTED)
def test_a_rejected_result_names_the_field(evaluator, changes, field, reason):
    result = evaluator.evaluate(record(**changes))
    if field is None:
        assert isinstance(result, Evaluation) and result.status == "ok"
        return
    assert isinstance(result, Rejected) and result.status == "rejected"
    assert [(e["field"], e["reason"]) for e in result.errors] == [(field, reason)]
    assert result.severities() == []
    assert "findings" not in result.to_dict()


def test_findings_are_typed_and_sorted_by_severity_then_id(evaluator):
    result = evaluator.evaluate(record(medications=["ciprofloxacin"]))
    assert isinstance(result, Evaluation)
    assert [(f.id, f.severity) for f in result.findings] == [
        ("FLUOROQUINOLONE_SEPARATION", "major"),
        ("FOLLOW_UP", "info"),
        ("SPLIT_DOSE", "info"),
    ]
    assert result.severities() == ["major", "info", "info"]
    assert result.findings[0].rules and result.findings[0].sources


BACKEND_CASES = [
    {},
    {"egfr_ml_min_1_73m2": 20},
    {"medications": ["ciprofloxacin", "spironolactone"]},
    {"age_years": "x"},
]


@pytest.mark.parametrize("changes", BACKEND_CASES)
def test_both_backends_give_the_same_findings_and_plan(evaluator, python_evaluator, changes):
    rec = record(**changes)
    durable, python = evaluator.evaluate(rec).to_dict(), python_evaluator.evaluate(rec).to_dict()
    durable.pop("trace", None), python.pop("trace", None)  # the trace is in each engine's firing order
    assert to_json_line(durable) == to_json_line(python)


@pytest.mark.parametrize(
    "raw, has_input, echoed",
    [
        ('{"id": "A", "age_years": "x"}', True, {"id": "A", "age_years": "x"}),  # rejected: the record is echoed
        ("null", True, None),  # a JSON null is echoed as null, not left out
        ("{not json", True, "{not json"),
        (Unreadable("caf\ufffd", "not valid UTF-8"), True, "caf\ufffd"),
        (json.dumps(record()), False, None),  # evaluated: nothing echoed
    ],
)
def test_a_line_result_names_its_line_and_echoes_a_rejected_input(evaluator, raw, has_input, echoed):
    written = result_of(evaluator, (7, raw)).to_dict()
    assert written["line"] == 7
    assert ("input" in written) is has_input
    if has_input:
        assert written["input"] == echoed


def test_the_python_backend_never_loads_durable_rules():
    code = (
        "import sys\n"
        "from engine.evaluate import Evaluator\n"
        "from tests.helpers import record\n"
        "result = Evaluator(backend='python').evaluate(record())\n"
        "assert result.status == 'ok', result\n"
        "loaded = sorted(m for m in sys.modules if 'durable' in m or m == 'engine.compiler')\n"
        "print(loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_at_line_keeps_every_field_as_replace_would(evaluator):
    """at_line builds the result directly (not by dataclasses.replace): a field added later must not be lost."""
    evaluation = evaluator.evaluate(record(medications=["ciprofloxacin"]))
    assert isinstance(evaluation, Evaluation)
    assert evaluation.at_line(7) == dataclasses.replace(evaluation, line=7)
    rejected = evaluator.evaluate(record(age_years="forty"))
    assert isinstance(rejected, Rejected)
    assert rejected.at_line(3, {"id": "x"}) == dataclasses.replace(rejected, line=3, input={"id": "x"})
    assert rejected.at_line(3) == dataclasses.replace(rejected, line=3)

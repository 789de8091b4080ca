"""The durable_rules wrapper: no silent failures, no leaked sessions, safe under threads."""

import json
import threading

import pytest

from engine import compiler
from engine.errors import EngineError
from engine.evaluate import Evaluator, to_json_line
from tests.conftest import ids, record


def test_more_evaluations_than_durable_live_session_limit(evaluator):
    # durable_rules fails past 1,024 live sessions per ruleset: each evaluation must delete its own
    for i in range(1100):
        result = evaluator.evaluate(record(id=f"S{i}", age_years=20 + i % 60))
        assert result["status"] == "ok"


def test_an_action_that_raises_rejects_the_record_loudly(monkeypatch):
    ev = Evaluator()
    original = compiler.Firing

    def broken(rule, matched):
        if rule.id == "PPI":
            raise RuntimeError("boom")
        return original(rule, matched)

    monkeypatch.setattr(compiler, "Firing", broken)
    result = ev.evaluate(record(medications=["omeprazole 20 mg"]))
    assert result["status"] == "rejected"
    assert "rule PPI: RuntimeError: boom" in result["errors"][0]["reason"]
    monkeypatch.setattr(compiler, "Firing", original)
    assert ev.evaluate(record(medications=["omeprazole 20 mg"]))["status"] == "ok"
    ev.close()


def test_durable_core_error_is_raised_not_swallowed(evaluator):
    with pytest.raises(EngineError, match="durable_rules"):
        # a float written with an exponent is refused by durable's JSON parser (error 204)
        evaluator.compiled.evaluate([{"t": "patient", "age_years": 1e-07}], "R1")


def test_derived_facts_chain_forward(evaluator):
    # dialysis (concept) -> renal_severe (derived) -> RENAL_SEVERE and, with spironolactone, K_SPARING major
    result = evaluator.evaluate(record(conditions=["hemodialysis"], medications=["spironolactone 25 mg"]))
    fired = [t["rule"] for t in result["trace"]]
    assert fired.index("RENAL_SEVERE_BY_CONDITION") < fired.index("RENAL_SEVERE")
    k_sparing = next(f for f in result["findings"] if f["id"] == "K_SPARING_DIURETIC")
    assert k_sparing["severity"] == "major"
    renal = next(f for f in result["findings"] if f["id"] == "RENAL_SEVERE")
    because = renal["evidence"][0]["facts"][0]
    assert because["derived_by"] == "RENAL_SEVERE_BY_CONDITION"
    assert because["because"][0]["as_written"] == "hemodialysis"


def test_evaluation_is_thread_safe():
    ev = Evaluator()
    records = [
        record(
            id=f"T{i}",
            age_years=10 + i % 70,
            medications=["omeprazole", "furosemide"][: i % 3],
            egfr_ml_min_1_73m2=10 + (i * 7) % 100,
        )
        for i in range(200)
    ]
    expected = [to_json_line(ev.evaluate(r)) for r in records]
    got: dict[int, str] = {}

    def work(offset):
        for i in range(offset, len(records), 4):
            got[i] = to_json_line(ev.evaluate(records[i]))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(records))] == expected
    ev.close()


def test_same_input_gives_byte_identical_output():
    first, second = Evaluator(), Evaluator()
    rec = record(medications=["Doxycyclin 100mg", "Omeprazol 20 mg 1dd", "Zyxorin"], conditions=["hartfalen"])
    assert to_json_line(first.evaluate(rec)) == to_json_line(second.evaluate(rec))
    first.close()
    second.close()


def test_result_names_ruleset_version_and_hash(evaluator):
    result = evaluator.evaluate(record())
    assert set(result["ruleset"]) == {"id", "version", "sha256"}
    assert len(result["ruleset"]["sha256"]) == 64
    assert result["engine_version"]
    json.dumps(result)  # serialisable


def test_no_contraindication_is_decided_after_the_rules(evaluator):
    healthy = evaluator.evaluate(record())
    assert healthy["plan"]["supplement"] == "yes"
    assert healthy["plan"]["max_elemental_mg_per_day"] == 350
    assert ids(healthy) == {"SPLIT_DOSE", "FOLLOW_UP"}


def test_where_any_with_two_true_branches_fires_once(evaluator):  # found by the differential test
    result = evaluator.evaluate(
        record(
            pregnant=True,
            lactating=True,
            jurisdiction="EU",
            supplement={"form": "threonate", "dose_mg": 100, "dose_basis": "elemental"},
        )
    )
    assert [t["rule"] for t in result["trace"]].count("THREONATE_PREG_LACT") == 1

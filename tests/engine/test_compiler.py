"""The durable_rules wrapper: no silent failures, no leaked sessions, safe under threads."""

import json
import re
import threading
from importlib import metadata

import durable_rules_engine
import pytest

from engine import compiler
from engine.errors import EngineError
from engine.evaluate import Evaluator, to_json_line
from tests.helpers import ROOT, ids, record


def test_more_evaluations_than_durable_live_session_limit(evaluator):
    # durable_rules fails past 1,024 live sessions per ruleset: each evaluation must delete its own
    for i in range(1100):
        result = evaluator.evaluate(record(id=f"S{i}", age_years=20 + i % 60)).to_dict()
        assert result["status"] == "ok"


def test_an_action_that_raises_rejects_the_record_loudly(monkeypatch):
    ev = Evaluator()
    original = compiler.Firing

    def broken(rule, matched):
        if rule.id == "PPI":
            raise RuntimeError("boom")
        return original(rule, matched)

    monkeypatch.setattr(compiler, "Firing", broken)
    result = ev.evaluate(record(medications=["omeprazole 20 mg"])).to_dict()
    assert result["status"] == "rejected"
    assert "rule PPI: RuntimeError: boom" in result["errors"][0]["reason"]
    monkeypatch.setattr(compiler, "Firing", original)
    assert ev.evaluate(record(medications=["omeprazole 20 mg"])).to_dict()["status"] == "ok"
    ev.close()


def test_durable_core_error_is_raised_not_swallowed(evaluator):
    with pytest.raises(EngineError, match="durable_rules"):
        # a float written with an exponent is refused by durable's JSON parser (error 204)
        evaluator.compiled.evaluate([{"t": "patient", "age_years": 1e-07}], "R1")


def test_derived_facts_chain_forward(evaluator):
    # dialysis (concept) -> renal_severe (derived) -> RENAL_SEVERE and, with spironolactone, K_SPARING major
    result = evaluator.evaluate(record(conditions=["hemodialysis"], medications=["spironolactone 25 mg"])).to_dict()
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
    expected = [to_json_line(ev.evaluate(r).to_dict()) for r in records]
    got: dict[int, str] = {}

    def work(offset):
        for i in range(offset, len(records), 4):
            got[i] = to_json_line(ev.evaluate(records[i]).to_dict())

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
    assert to_json_line(first.evaluate(rec).to_dict()) == to_json_line(second.evaluate(rec).to_dict())
    first.close()
    second.close()


def test_result_names_ruleset_version_and_hash(evaluator):
    result = evaluator.evaluate(record()).to_dict()
    assert set(result["ruleset"]) == {"id", "version", "sha256"}
    assert len(result["ruleset"]["sha256"]) == 64
    assert result["engine_version"]
    json.dumps(result)  # serialisable


def test_no_contraindication_is_decided_after_the_rules(evaluator):
    healthy = evaluator.evaluate(record()).to_dict()
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
    ).to_dict()
    assert [t["rule"] for t in result["trace"]].count("THREONATE_PREG_LACT") == 1


# --- the driver over durable's C core: every result code and error of a C call reaches the caller -------------

CKD_WITH_SPIRONOLACTONE = {"conditions": ["hemodialysis"], "medications": ["spironolactone 25 mg"]}


@pytest.fixture()
def fresh():
    ev = Evaluator()
    yield ev
    ev.close()


def _wrap(monkeypatch, name, change):
    """Replace durable_rules_engine.<name> by change(original, *args)."""
    original = getattr(durable_rules_engine, name)
    monkeypatch.setattr(durable_rules_engine, name, lambda *args: change(original, *args))


@pytest.mark.parametrize("code", [compiler.DEFERRED, 7])
def test_unexpected_assert_result_code_rejects_the_record(monkeypatch, fresh, code):
    _wrap(monkeypatch, "assert_fact", lambda original, handle, fact: (code, original(handle, fact)[1]))
    result = fresh.evaluate(record()).to_dict()
    assert result["status"] == "rejected"
    assert f"error code: {code}" in result["errors"][0]["reason"]


def test_error_while_asserting_a_derived_fact_rejects_the_record(monkeypatch, fresh):
    def refuse_derived(original, handle, fact):
        if '"t":"derived"' in fact:
            raise durable_rules_engine.error("Could not assert fact, error code: 303")
        return original(handle, fact)

    _wrap(monkeypatch, "assert_fact", refuse_derived)
    result = fresh.evaluate(record(**CKD_WITH_SPIRONOLACTONE)).to_dict()
    assert result["status"] == "rejected"
    assert "error code: 303" in result["errors"][0]["reason"]


@pytest.mark.parametrize("call", ["start_action_for_state", "complete_and_start_action"])
def test_error_while_pulling_activations_rejects_the_record_and_frees_the_session(monkeypatch, fresh, call):
    deleted = []
    _wrap(monkeypatch, "delete_state", lambda original, handle, sid: deleted.append(sid) or original(handle, sid))

    calls = []

    def fail_once(original, *args):
        calls.append(args)
        if len(calls) == 1:
            raise durable_rules_engine.error("Could not start action, error code: 307")
        return original(*args)

    _wrap(monkeypatch, call, fail_once)
    result = fresh.evaluate(record(**CKD_WITH_SPIRONOLACTONE)).to_dict()
    assert result["status"] == "rejected" and "error code: 307" in result["errors"][0]["reason"]
    assert len(deleted) == 1
    monkeypatch.undo()
    for i in range(1100):  # no session left behind: more evaluations than durable's 1,024 live sessions
        assert fresh.evaluate(record(id=f"S{i}")).to_dict()["status"] == "ok"


def test_delete_state_error_other_than_sid_not_found_is_raised(monkeypatch, fresh):
    def fail(original, handle, sid):
        original(handle, sid)
        raise durable_rules_engine.error("Could not delete state, error code: 307")

    fresh.compiled.evaluate([{"t": "patient", "age_years": 40}], "R1")  # its emptied session waits for the next
    _wrap(monkeypatch, "delete_state", fail)
    with pytest.raises(EngineError, match="could not delete session"):
        fresh.compiled.close()


def test_session_whose_first_assert_failed_is_not_an_error_to_delete(fresh):
    # error 309 (no state was ever created) is the only delete failure that is expected
    with pytest.raises(EngineError, match="error code: 204"):
        fresh.compiled.evaluate([{"t": "patient", "age_years": 1e16}], "R1")
    assert fresh.evaluate(record()).to_dict()["status"] == "ok"


def test_installed_durable_rules_is_the_pinned_version():
    # The driver relies on durable_rules_engine's calls and result codes as they are in this version
    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    assert f'"durable-rules=={compiler.DURABLE_RULES_VERSION}"' in pyproject
    assert metadata.version("durable-rules") == compiler.DURABLE_RULES_VERSION


def test_sessions_whose_facts_match_nothing_are_freed(fresh):
    # no action ever starts in such a session; durable must still free it (1,100 > its 1,024 live sessions)
    for i in range(1100):
        assert fresh.compiled.evaluate([{"t": "concept", "concept": f"nothing {i}", "text": "x"}]) == []
    assert fresh.evaluate(record()).to_dict()["status"] == "ok"


def _named(compiled, fact):
    """A fact as durable was sent it, with the rules' field names in place of the short ones it was sent (a flag
    as "field contains value")."""
    names = {short: name for name, short in compiled._names.fields.items()}
    names.update({short: f"{name} contains {value}" for (name, value), short in compiled._names.flags.items()})
    return {names.get(key, key): value for key, value in fact.items()}


def test_durable_is_sent_short_field_names_only(monkeypatch, fresh):
    sent = []
    _wrap(monkeypatch, "assert_fact", lambda original, handle, fact: sent.append(fact) or original(handle, fact))
    fresh.evaluate(record(medications=["Omeprazol 20 mg 1dd"], egfr_ml_min_1_73m2=25))
    keys = {key for fact in sent for key in json.loads(fact)}
    assert {"t", "sid", "id"} <= keys
    assert all(re.fullmatch(r"f\d+", key) for key in keys - {"t", "sid", "id"})
    assert len(keys) > 10 and "egfr_ml_min_1_73m2" not in "".join(sent)


def test_durable_is_sent_only_the_fields_rules_test(monkeypatch, fresh):
    sent = []
    _wrap(
        monkeypatch,
        "assert_fact",
        lambda original, handle, fact: sent.append(_named(fresh.compiled, json.loads(fact))) or original(handle, fact),
    )
    result = fresh.evaluate(record(medications=["Omeprazol 20 mg 1dd"])).to_dict()
    assert "PPI" in [t["rule"] for t in result["trace"]]
    medication = next(f for f in sent if f["t"] == "medication")
    assert "text" not in medication and medication["classes"] == ["ppi"]
    patient = next(f for f in sent if f["t"] == "patient")
    assert "supplement_form_text" not in patient and patient["age_years"] == 45
    # the trace and evidence still show the facts as given
    assert any(m.get("text") == "Omeprazol 20 mg 1dd" for t in result["trace"] for m in t["matched"])


def test_a_class_a_rule_tests_with_contains_is_sent_as_a_flag(monkeypatch, fresh):
    sent = []
    _wrap(
        monkeypatch,
        "assert_fact",
        lambda original, handle, fact: sent.append(_named(fresh.compiled, json.loads(fact))) or original(handle, fact),
    )
    ppi = fresh.evaluate(record(medications=["Omeprazol 20 mg 1dd"])).to_dict()
    medication = next(f for f in sent if f["t"] == "medication")
    assert medication["classes contains ppi"] is True and medication["classes"] == ["ppi"]
    assert not any(key.startswith("classes contains") and key != "classes contains ppi" for key in medication)
    assert "PPI" in [t["rule"] for t in ppi["trace"]]
    # the false alarm beside it: a drug without the class fires no PPI rule, and a list that is not one never matches
    sent.clear()
    other = fresh.evaluate(record(medications=["metformine 500 mg"])).to_dict()
    assert "PPI" not in [t["rule"] for t in other["trace"]]
    assert not any(key.startswith("classes contains") for f in sent for key in f)
    assert fresh.compiled.evaluate([{"t": "medication", "ingredient": "x", "text": "x", "classes": "ppi"}]) == []


def test_a_fact_no_rule_matches_is_not_sent_again(monkeypatch, fresh):
    sent = []
    _wrap(
        monkeypatch,
        "assert_fact",
        lambda original, handle, fact: sent.append(_named(fresh.compiled, json.loads(fact))) or original(handle, fact),
    )
    rec = record(medications=["metformine 500 mg", "omeprazole"])
    first = fresh.evaluate(rec).to_dict()
    assert [f.get("ingredient") for f in sent if f["t"] == "medication"] == ["metformin", "omeprazole"]
    sent.clear()
    second = fresh.evaluate(rec).to_dict()
    assert [f.get("ingredient") for f in sent if f["t"] == "medication"] == ["omeprazole"]
    assert to_json_line(first) == to_json_line(second)


# --- one session, emptied between patients: isolation checked, not assumed --------------------------------------

DIALYSIS = {"id": "D", "conditions": ["hemodialysis"]}  # derives renal_severe
SPIRONOLACTONE = {"id": "S", "medications": ["spironolactone 25 mg"]}  # K_SPARING moderate; major with renal_severe


def _k_sparing(result):
    return next(f["severity"] for f in result["findings"] if f["id"] == "K_SPARING_DIURETIC")


def _sids(monkeypatch):
    seen: list[str] = []
    _wrap(
        monkeypatch,
        "assert_fact",
        lambda original, handle, fact: seen.append(json.loads(fact)["sid"]) or original(handle, fact),
    )
    return seen


def test_patients_are_evaluated_one_after_another_in_one_emptied_session(monkeypatch, fresh):
    sids = _sids(monkeypatch)
    for rec in (DIALYSIS, SPIRONOLACTONE, DIALYSIS):
        assert fresh.evaluate(record(**rec)).to_dict()["status"] == "ok"
        assert durable_rules_engine.get_facts(fresh.compiled._handle, sids[-1]) == "[]"  # nothing left behind
    assert len(set(sids)) == 1


def test_the_next_patient_sees_nothing_of_the_last(fresh):
    alone = Evaluator()
    expected = to_json_line(alone.evaluate(record(**SPIRONOLACTONE)))
    alone.close()
    fresh.evaluate(record(**DIALYSIS))
    after = fresh.evaluate(record(**SPIRONOLACTONE))
    assert _k_sparing(after.to_dict()) == "moderate"  # the last patient's renal_severe is gone
    assert to_json_line(after) == expected


def test_a_session_that_is_not_empty_afterwards_is_deleted_and_replaced(monkeypatch, fresh):
    sids = _sids(monkeypatch)
    deleted: list[str] = []
    _wrap(monkeypatch, "delete_state", lambda original, handle, sid: deleted.append(sid) or original(handle, sid))
    _wrap(monkeypatch, "retract_facts", lambda original, handle, facts: (0, 0))  # retracts nothing
    fresh.evaluate(record(**DIALYSIS))
    assert deleted == [sids[-1]]  # facts were left: the session went
    after = fresh.evaluate(record(**SPIRONOLACTONE)).to_dict()
    assert sids[-1] != deleted[0]
    assert after["status"] == "ok" and _k_sparing(after) == "moderate"


def test_a_firing_on_a_fact_of_another_evaluation_rejects_the_record(monkeypatch, fresh):
    # the emptiness check fooled as well: the stamp on every fact still catches the stale derived fact
    _wrap(monkeypatch, "retract_facts", lambda original, handle, facts: (0, 0))
    _wrap(monkeypatch, "get_facts", lambda original, handle, sid: "[]")
    fresh.evaluate(record(**DIALYSIS))
    stale = fresh.evaluate(record(**SPIRONOLACTONE)).to_dict()
    assert stale["status"] == "rejected"
    assert "a fact of another evaluation" in stale["errors"][0]["reason"]
    monkeypatch.undo()
    after = fresh.evaluate(record(**SPIRONOLACTONE)).to_dict()  # in a new session
    assert after["status"] == "ok" and _k_sparing(after) == "moderate"


def test_an_activation_is_read_as_parsing_its_whole_message_would(monkeypatch, fresh):
    # one-pattern rules have the fact id read off the message's end; the result must equal a full parse
    messages: list[str] = []
    original = compiler.CompiledRuleset._fire
    monkeypatch.setattr(
        compiler.CompiledRuleset, "_fire", lambda self, run, m: messages.append(m) or original(self, run, m)
    )
    fresh.evaluate(record(**CKD_WITH_SPIRONOLACTONE, egfr_ml_min_1_73m2=20))
    tricky = '{"K_SPARING":{"m0":{"t":"medication","ingredient":"x \\",\\"id\\":7}}}","sid":"1","id":1048577}}}'
    assert any('"m1"' in m for m in messages)  # two-pattern rules are parsed
    for message in [*messages, tricky]:
        ((rule_id, frame),) = json.loads(message).items()
        action, ids = fresh.compiled._activation(message)
        assert (action.rule.id, ids) == (rule_id, {name: m["id"] for name, m in frame.items()})

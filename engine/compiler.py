"""Compile a checked ruleset into durable_rules and run one patient through it.

The only module that imports durable. It drives durable's C core (`durable_rules_engine`)
directly, without durable's Python `Host`: per fired action the Host builds a Closure, dumps
and re-parses the session state as JSON and writes it back (`update_state`), work that only
serves state kept in durable, and we keep none. The driver designs around the traps recorded
in DURABLE_RULES.md: facts not events; no timer threads (there is no Host to start them); every
return code of the C calls checked and exceptions inside actions raised as a rejected record,
never swallowed; a derived fact asserted once per name; unmatched facts are not errors; calls
serialised by a lock.

Patients are evaluated one after another in one durable session, emptied between them: creating
a session costs durable more than everything else a patient does in it (it allocates and clears
per-rule memory), while retracting a patient's few facts costs little. Isolation is checked, not
assumed: every fact's id is unique to its evaluation (durable keeps one fact per id in a session),
and a firing that matched a fact of another evaluation rejects the record; after each patient the
session must hold no fact and no pending activation (`get_facts` is "[]"), else it is deleted and
the next patient gets a new one; after any error the session is deleted in `finally`.
"""

from __future__ import annotations

import functools
import itertools
import json
import threading
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import durable_rules_engine
import orjson

from engine.errors import EngineError
from engine.results import Firing, fact_identity, pattern_name
from engine.ruleset import Condition, Pattern, Rule, Ruleset

_names = itertools.count(1)

# The driver calls durable_rules_engine directly, so it relies on the C calls and result codes of this
# release (pinned in pyproject.toml; the package has had no release since 2020).
DURABLE_RULES_VERSION = "2.0.28"

# Result codes of durable_rules_engine.assert_fact (rules.h of durable-rules 2.0.28): any other
# outcome is raised by the C extension as durable_rules_engine.error, whose message names the code.
ASSERTED = 0  # the fact matched at least one pattern
NOT_HANDLED = 1  # no pattern tests this fact (a drug without interactions): not an error
OBSERVED = 2  # the same fact is already in the session: adds nothing
DEFERRED = 3  # only with a queue callback, which we never set: an error here
SID_NOT_FOUND = 309  # delete_state of a session never created (its first assert failed)
# durable's createStateNode leaves a new session's action context (two malloc'd strings) uninitialised
# until an action is started in it, and delete_state frees them: deleting a session in which no action
# ever started can crash the process. A session fact of our own, tested by one internal rule, lets the
# driver start (and abandon) an action before such a delete; it is asserted only in that case.
_SESSION_RULE = "mgreview_session"
_SESSION_FACT = "mgreview_session"


@dataclass
class _Session:
    """The durable session patients are evaluated in, one after another (emptied between them)."""

    sid: str
    started: bool = False  # whether durable ever handed out an action in it (see _SESSION_RULE)


@dataclass
class _Run:
    session: _Session
    first_id: int  # the id durable is sent for facts[0]: facts[i] is sent as first_id + i
    facts: list[dict[str, Any]]  # the patient's facts as given, derived ones last
    fired: list[Firing] = field(default_factory=list)
    activations: set[tuple[Any, ...]] = field(default_factory=set)
    derived: dict[str, str] = field(default_factory=dict)  # derived name -> rule that derived it
    errors: list[str] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)  # the facts durable stored (as sent), retracted afterwards

    @property
    def sid(self) -> str:
        return self.session.sid


def _condition(c: Condition, names: _Names) -> dict[str, Any]:
    if c.op == "contains":  # sent as a flag of its own (see _Names)
        return {names.flags[c.field, c.value]: True}
    f, v = names.fields[c.field], c.value
    if c.op == "==":
        return {f: v}
    if c.op == "!=":
        return {"$neq": {f: v}}
    if c.op in ("<", "<=", ">", ">="):
        op = {"<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}[c.op]
        return {op: {f: v}}
    if c.op == "in":
        return {"$or": [{f: x} for x in v]}
    if c.op == "contains_any":
        return {"$iany": {f: {"$or": [{"$i": x} for x in v]}}}
    raise ValueError(f"operator {c.op!r}")  # unreachable: the checker allows only the above


def _pattern(p: Pattern, names: _Names) -> dict[str, Any]:
    terms: list[dict[str, Any]] = [{"t": p.on}, *(_condition(c, names) for c in p.where)]
    if p.where_any:
        terms.append({"$or": [_condition(c, names) for c in p.where_any]})
    return {"$and": terms}


@dataclass(frozen=True)
class _Sent:
    """What durable is sent of facts of one type: (field, short name) as they are, and (list field, {value: short
    name of its flag}) for the values `contains` conditions test."""

    fields: tuple[tuple[str, str], ...]
    flags: tuple[tuple[str, dict[str, str]], ...]


@dataclass(frozen=True)
class _Names:
    """The short names durable knows the tested fields by ("f0", "f1", ...), in the definition and in every fact.

    Durable parses and hashes every name of every fact it is sent, retracts or hands back in an activation, so
    long field names cost it time (2.5 % of an evaluation's instructions), and a short name cannot clash with the
    names durable reserves (sid, id) or with "t". A value a `contains` condition tests in a list field (a drug
    class) is sent as a flag of its own, `true` when the list holds it: durable then tests it as it tests any
    value, where `$iany` scanned the list once per rule (3 % of an evaluation). `contains_any` keeps `$iany`: as
    an `$or` of flags durable would activate its rule once per class the drug has.
    """

    fields: dict[str, str]  # field -> its short name
    flags: dict[tuple[str, str], str]  # (list field, value) -> the short name of its flag
    types: dict[str, tuple[dict[str, None], dict[str, dict[str, None]]]]  # type -> (its fields, its flagged values)

    @classmethod
    def of(cls, ruleset: Ruleset) -> _Names:
        types: dict[str, tuple[dict[str, None], dict[str, dict[str, None]]]] = {}
        for rule in ruleset.rules:
            for p in rule.when:
                fields, flagged = types.setdefault(p.on, ({}, {}))
                for c in p.conditions():
                    if c.op == "contains":
                        flagged.setdefault(c.field, {})[c.value] = None
                    else:
                        fields[c.field] = None
        count = itertools.count()
        names = {name: f"f{next(count)}" for fields, _ in types.values() for name in fields}
        flags = {
            (name, value): f"f{next(count)}"
            for _, flagged in types.values()
            for name, values in flagged.items()
            for value in values
        }
        return cls(names, flags, types)

    def by_type(self) -> dict[str, _Sent]:
        """What durable is sent of each type of fact some pattern tests."""
        return {
            on: _Sent(
                tuple((name, self.fields[name]) for name in fields),
                tuple((name, {v: self.flags[name, v] for v in values}) for name, values in flagged.items()),
            )
            for on, (fields, flagged) in self.types.items()
        }


_FIRST_PATTERN = pattern_name(0)
_ONE_FACT = f'":{{"{_FIRST_PATTERN}":{{'  # what follows the rule id in a one-pattern rule's activation

_UNMATCHED_KEPT = 10_000  # distinct unmatched facts remembered; then forgotten all at once


_IDS_PER_EVALUATION = 1 << 20  # fact ids of the n-th evaluation: n * _IDS_PER_EVALUATION + its fact's index


def _with_session(sent: str, run: _Run, index: int) -> str:
    """A fact's JSON with the session it goes to and its id (unique to the evaluation, from its index)."""
    return f'{sent[:-1]},"sid":"{run.session.sid}","id":{run.first_id + index}}}'


@functools.cache
def _check_durable_version() -> None:
    installed = metadata.version("durable-rules")
    if installed != DURABLE_RULES_VERSION:
        raise EngineError(None, f"durable-rules {installed} installed; the driver needs {DURABLE_RULES_VERSION}")


class _StaleFact(Exception):
    """A firing matched a fact of another evaluation: the session was not empty (the record is rejected)."""


@dataclass(frozen=True)
class _Action:
    """What the driver needs of a rule when durable activates it, prepared once per ruleset."""

    rule: Rule
    derive: str | None
    may_repeat: bool  # durable activates a rule once per true branch of an $or (where_any)
    one_pattern: bool  # its activation message holds one fact (pattern m0)


class CompiledRuleset:
    """A ruleset registered once in durable's C core, ready to evaluate patients one session each."""

    def __init__(self, ruleset: Ruleset):
        _check_durable_version()
        self.ruleset = ruleset
        self._lock = threading.Lock()
        self._closed = False
        self._sids = itertools.count(1)
        self._evaluations = itertools.count(1)
        self._session: _Session | None = None  # the session the next patient is evaluated in
        self._name = f"{ruleset.name}_v{ruleset.version}_{ruleset.sha256[:12]}_{next(_names)}"
        self._actions = {
            rule.id: _Action(rule, rule.then.get("derive"), any(p.where_any for p in rule.when), len(rule.when) == 1)
            for rule in ruleset.rules
        }
        # What durable is sent of a fact: its type and the fields some pattern on that type tests, by short
        # names (see _Names). The rete looks at nothing else, and the firings refer back to the facts as given.
        self._names = _Names.of(ruleset)
        self._tested = self._names.by_type()
        self._unmatched: set[str] = set()  # facts (as sent) durable answered NOT_HANDLED: no pattern matches
        definition = self.definition()
        if _SESSION_RULE in definition:
            raise EngineError(None, f"rule id {_SESSION_RULE!r} is reserved by the durable_rules driver")
        definition[_SESSION_RULE] = {"all": [{pattern_name(0): {"t": _SESSION_FACT}}]}  # last: fires last
        try:
            self._handle: int = durable_rules_engine.create_ruleset(
                self._name, json.dumps(definition, ensure_ascii=False)
            )
        except (durable_rules_engine.error, MemoryError) as e:  # error carries durable's numeric code
            raise EngineError(None, f"durable_rules refused the compiled ruleset: {e}") from e

    def definition(self) -> dict[str, Any]:
        """The durable JSON definition: rule id -> its patterns, in ruleset order (durable's firing order)."""
        return {
            rule.id: {"all": [{pattern_name(i): _pattern(p, self._names)} for i, p in enumerate(rule.when)]}
            for rule in self.ruleset.rules
        }

    def evaluate(self, facts: list[dict[str, Any]], record_id: str | None = None) -> list[Firing]:
        """Assert one patient's facts in the (empty) session; return the rules that fired, in order.

        Each fact is asserted and its activations run before the next fact is asserted, as durable's
        Host did: durable fires the pending activation of the lowest rule index first, so asserting
        all facts in one `assert_facts` call would fire the same rules in another order (the trace)
        and could change which rule a derived fact is attributed to.
        """
        if self._closed:
            raise EngineError(record_id, "the compiled ruleset was closed")
        if len(facts) + len(self._actions) >= _IDS_PER_EVALUATION:  # derived facts: at most one per rule
            raise EngineError(record_id, f"{len(facts)} facts: more than one evaluation can take")
        with self._lock:
            session = self._session or _Session(str(next(self._sids)))
            self._session = None  # back only once emptied
            run = _Run(session, next(self._evaluations) * _IDS_PER_EVALUATION, list(facts))
            try:
                unmatched = self._unmatched
                for index, fact in enumerate(facts):
                    sent = self._sent(fact)
                    if sent is None or sent in unmatched:
                        continue  # durable would answer NOT_HANDLED: no pattern can match this fact
                    if self._assert(run, _with_session(sent, run, index)) == NOT_HANDLED:
                        if len(unmatched) >= _UNMATCHED_KEPT:
                            unmatched.clear()
                        unmatched.add(sent)
                if not run.errors and self._emptied(run):
                    self._session = session
            except durable_rules_engine.error as e:
                raise EngineError(record_id, f"durable_rules: {e}") from e
            except MemoryError as e:  # the C core is out of sessions or memory
                raise EngineError(record_id, f"durable_rules: {type(e).__name__}: {e}") from e
            finally:
                if self._session is None:
                    self._delete(session)
        if run.errors:
            raise EngineError(record_id, "; ".join(run.errors))
        return run.fired

    def _sent(self, fact: dict[str, Any]) -> str | None:
        """The JSON durable is sent of a fact (its tested fields by their short names, without sid and id), or None
        when no pattern tests its type."""
        kind = str(fact.get("t"))
        fields = self._tested.get(kind)
        if fields is None:
            return None
        sent: dict[str, Any] = {"t": kind}
        for name, short in fields.fields:
            if name in fact:
                sent[short] = fact[name]
        for name, flags in fields.flags:  # a list's values tested by `contains`, each as a flag
            items = fact.get(name)
            if type(items) is list:
                for item in items:
                    if type(item) is str and item in flags:
                        sent[flags[item]] = True
        return orjson.dumps(sent).decode()

    def _assert(self, run: _Run, fact: str) -> int:
        """Assert one fact, then run every activation it queued (derived facts asserted on the way)."""
        handle = self._handle
        code: int
        state: int
        code, state = durable_rules_engine.assert_fact(handle, fact)
        if code not in (ASSERTED, NOT_HANDLED, OBSERVED):
            raise durable_rules_engine.error(f"unexpected result of assert_fact, error code: {code}")
        if code != ASSERTED:
            return code
        run.stored.append(fact)
        started = durable_rules_engine.start_action_for_state(handle, state)
        if started is None:
            return code
        run.session.started = True
        message: str | None = started[1]
        try:
            while message is not None:
                self._fire(run, message)
                message = durable_rules_engine.complete_and_start_action(handle, state)
        except BaseException:
            durable_rules_engine.abandon_action(handle, state)  # free the action durable handed out
            raise
        return code

    def _fire(self, run: _Run, message: str) -> None:
        """One activation: record the firing once, and assert the rule's derived fact once per name."""
        rule_id = "?"
        try:
            action, ids = self._activation(message)
            rule_id = action.rule.id
            matched = self._matched(run, ids)
            if action.may_repeat:
                key = (rule_id, *(fact_identity(matched[n]) for n in sorted(matched)))
                if key in run.activations:
                    return
                run.activations.add(key)
            run.fired.append(Firing(action.rule, matched))
            derive = action.derive
            if derive and derive not in run.derived:
                run.derived[derive] = rule_id
                fact = {"t": "derived", "name": derive, "by": rule_id}
                run.facts.append(fact)
                sent = self._sent(fact)
                if sent is not None:  # None: no rule consumes derived facts (the checker refuses that)
                    self._assert_derived(run, _with_session(sent, run, len(run.facts) - 1))
        except (durable_rules_engine.error, MemoryError):
            raise
        except Exception as e:  # an error in our own action code: the record is rejected naming the rule
            run.errors.append(f"rule {rule_id}: {type(e).__name__}: {e}")

    def _activation(self, message: str) -> tuple[_Action, dict[str, int]]:
        """The rule of an activation message and the id of the fact each of its patterns matched.

        durable writes '{"RULE":{"m0":{<the fact as sent>},"m1":{...}}}', each fact as it was sent, so
        ending in its id. Most rules have one pattern: the id is read off the message's end instead of
        parsing the whole fact (about a microsecond a firing for the patient fact); anything else is parsed.
        """
        end = message.find('"', 2)
        action = self._actions.get(message[2:end])
        if action is not None and action.one_pattern and message.startswith(_ONE_FACT, end):
            tail = message[message.rfind('"id":') + 5 :]
            if tail.endswith("}}}") and tail[:-3].isdigit():
                return action, {_FIRST_PATTERN: int(tail[:-3])}
        ((rule_id, frame),) = orjson.loads(message).items()
        return self._actions[rule_id], {name: m["id"] for name, m in frame.items()}

    @staticmethod
    def _matched(run: _Run, ids: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Pattern name -> the fact as given (not re-parsed), found by its id; a fact of another evaluation
        (left in the session) is refused."""
        facts, first = run.facts, run.first_id
        matched = {}
        for name, fact_id in ids.items():
            index = fact_id - first
            if not 0 <= index < len(facts):
                raise _StaleFact(f"durable matched a fact of another evaluation (id {fact_id}) in session {run.sid}")
            matched[name] = facts[index]
        return matched

    def _assert_derived(self, run: _Run, fact: str) -> None:
        # Asserted inside the running action: its activations are queued in the same session and
        # handed out by the driver's complete_and_start_action loop. The checker makes sure every
        # derived fact has a consuming rule, so NOT_HANDLED does not occur for a checked ruleset.
        code, _ = durable_rules_engine.assert_fact(self._handle, fact)
        if code not in (ASSERTED, NOT_HANDLED, OBSERVED):
            raise durable_rules_engine.error(f"unexpected result of assert_fact, error code: {code}")
        if code == ASSERTED:
            run.stored.append(fact)

    def _emptied(self, run: _Run) -> bool:
        """Retract the patient's facts; whether the session is then verifiably empty, ready for the next.

        False (the session is then deleted) when durable still holds a fact or a pending activation.
        A patient of whom durable stored nothing (every fact NOT_HANDLED) left the session as it was.
        """
        if not run.stored:
            return True
        handle = self._handle
        code, state = durable_rules_engine.retract_facts(handle, f"[{','.join(run.stored)}]")  # one call for all
        if code != ASSERTED:  # 0 is durable's RULES_OK for a retraction too
            return False
        if durable_rules_engine.start_action_for_state(handle, state) is not None:
            durable_rules_engine.abandon_action(handle, state)
            return False
        return bool(durable_rules_engine.get_facts(handle, run.sid) == "[]")

    def _delete(self, session: _Session) -> None:
        """Free a session. One in which no action ever started is primed first (see _SESSION_RULE):
        an assert may have created it and then failed, so this is done whenever nothing started."""
        handle = self._handle
        try:
            if not session.started:
                fact = orjson.dumps({"t": _SESSION_FACT, "sid": session.sid}).decode()
                _, state = durable_rules_engine.assert_fact(handle, fact)  # creates the session if need be
                if durable_rules_engine.start_action_for_state(handle, state) is None:
                    raise durable_rules_engine.error(f"no action could be started in session {session.sid}")
                durable_rules_engine.abandon_action(handle, state)
            durable_rules_engine.delete_state(handle, session.sid)
        except durable_rules_engine.error as e:
            if str(SID_NOT_FOUND) not in str(e):  # 309: there was no session to delete
                raise EngineError(None, f"durable_rules could not delete session {session.sid}: {e}") from e

    def close(self) -> None:
        """Delete the session and mark the compiled ruleset closed; later evaluations raise instead of
        touching the C core.

        The C ruleset is deliberately not freed: durable's private delete_ruleset left the core in a
        state where a later create_ruleset failed now and then with error 102 (unexpected type) in
        our test suite. A process compiles one ruleset per version it uses (about 0.5 MB each).
        """
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
            if session is not None:
                self._delete(session)

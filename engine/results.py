"""What an evaluation produces: the rules that fired, findings, plan, and the result of one record.

Shared by the durable_rules driver, the plain-Python interpreter, the planner and the writers, and
importing none of them: the plain-Python backend never loads durable_rules. A result becomes a
plain dict once, in `to_dict`, for the writer (`to_json_line`), the FHIR mapping and the review UI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

import orjson

from engine.schedule import Conflict, Schedule

if TYPE_CHECKING:
    from engine.ruleset import Rule


@dataclass(slots=True)
class Firing:
    """One rule that fired, with the facts its patterns matched (pattern name -> fact)."""

    rule: Rule
    matched: dict[str, dict[str, Any]]


def fact_identity(fact: dict[str, Any]) -> tuple[str, str, str]:
    """What makes a fact distinct: its type, what it names, and the text it came from."""
    name = fact.get("ingredient") or fact.get("concept") or fact.get("name") or ""
    return str(fact.get("t")), str(name), str(fact.get("text", ""))


def pattern_name(i: int) -> str:
    """Name of the i-th pattern of a rule in durable's definition."""
    return f"m{i}"


class _Absent:
    """The marker of a key a result line does not have (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


@dataclass(slots=True)
class Finding:
    """One catalogue finding of a record: the most severe rule's severity, every rule's evidence and sources.

    Not frozen, though nothing assigns its fields once built: a frozen dataclass sets each field through
    object.__setattr__, which made building a record's findings about a quarter of the findings stage.
    """

    id: str
    severity: str
    message: str
    sources: list[str]
    evidence: list[dict[str, Any]]  # per rule: {"rule": id, "facts": [fact, op, threshold, value, ...]}
    confidence: str
    rules: list[str]
    message_nl: str | None = None  # the message in Dutch (rulesets from BILINGUAL_SINCE_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output; `message_nl` only when the ruleset carries the Dutch."""
        out = {
            "id": self.id,
            "severity": self.severity,
            "message": self.message,
            "sources": self.sources,
            "evidence": self.evidence,
            "confidence": self.confidence,
            "rules": self.rules,
        }
        if self.message_nl is not None:
            out["message_nl"] = self.message_nl
        return out


@dataclass(frozen=True, slots=True)
class Separation:
    """How long to keep a drug apart from magnesium (hours; None: no window on that side)."""

    drug: str
    finding: str  # the findings asking for it, comma-separated
    drug_before_mg_h: float | None
    drug_after_mg_h: float | None
    # the output, written once: the planner shares a Separation between plans, so it is written for many
    _written: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        written = {
            "drug": self.drug,
            "finding": self.finding,
            "drug_before_mg_h": self.drug_before_mg_h,
            "drug_after_mg_h": self.drug_after_mg_h,
        }
        object.__setattr__(self, "_written", written)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output (a copy of the output written once)."""
        return self._written.copy()


@dataclass(frozen=True, slots=True)
class ContractTerms:
    """What the plan contract (rulesets from PLAN_CONTRACT_SINCE_VERSION) adds to a plan."""

    physician: str  # "decides", "approves" or "none"
    physician_decides_because: tuple[str, ...]  # a tuple: the planner shares one ContractTerms between plans
    ceiling_if_physician_agrees_mg_per_day: int | float | None
    ceiling_reason: str | None
    other_mg_elemental_mg_per_day: Any  # as read from the record (None when not given)
    cap_arithmetic: str | None
    cap_assumes: str | None
    dutch: bool = False  # rulesets from BILINGUAL_SINCE_VERSION write ceiling_reason_nl beside ceiling_reason
    ceiling_reason_nl: str | None = None
    # the output, written once: the planner shares a ContractTerms between plans, so it is written for many (its
    # physician_decides_because is the tuple: every output gets a list of its own in its place)
    _written: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        written = {
            "physician": self.physician,
            "physician_decides_because": self.physician_decides_because,
            "ceiling_if_physician_agrees_mg_per_day": self.ceiling_if_physician_agrees_mg_per_day,
            "ceiling_reason": self.ceiling_reason,
            "other_mg_elemental_mg_per_day": self.other_mg_elemental_mg_per_day,
            "cap_arithmetic": self.cap_arithmetic,
            "cap_assumes": self.cap_assumes,
        }
        if self.dutch:
            written["ceiling_reason_nl"] = self.ceiling_reason_nl
        object.__setattr__(self, "_written", written)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output: a copy of the output written once, with a list of its own."""
        return {**self._written, "physician_decides_because": list(self.physician_decides_because)}


@dataclass(slots=True)
class Plan:
    """The suggested plan: whether to supplement, the cap and who set it, doses, separations, monitoring.

    Not frozen, like Finding and Evaluation: one is built per record and nothing assigns its fields afterwards,
    and a frozen dataclass sets each of its 14 fields through object.__setattr__ (about 2 µs a record).
    """

    supplement: bool
    form: str | None
    requested_form: str | None
    max_elemental_mg_per_day: int | float  # an int when whole, as written in the output
    cap_set_by: str  # a rule id, URGENT or NO_UPPER_LIMIT
    requested_elemental_mg_per_day: Any  # as read from the record (None when not given)
    doses_per_day: int
    separations: list[Separation]
    monitoring: list[str]
    requires_physician: bool
    urgent: bool
    contract: ContractTerms | None = None  # None: a ruleset from before the plan contract
    schedule: Schedule | Conflict | None = None  # None: no magnesium proposed, or a ruleset before the schedule
    carries_schedule: bool = False  # rulesets from DAILY_SCHEDULE_SINCE_VERSION write the key (null when none)
    monitoring_nl: list[str] | None = None  # the monitoring lines in Dutch (rulesets from BILINGUAL_SINCE_VERSION)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output; the contract's keys only when the ruleset has the plan contract."""
        out = {
            "supplement": "yes" if self.supplement else "no",
            "form": self.form,
            "requested_form": self.requested_form,
            "max_elemental_mg_per_day": self.max_elemental_mg_per_day,
            "cap_set_by": self.cap_set_by,
            "requested_elemental_mg_per_day": self.requested_elemental_mg_per_day,
            "doses_per_day": self.doses_per_day,
            "separations": [s._written.copy() for s in self.separations],  # as Separation.to_dict, without a call
            "monitoring": self.monitoring,
            "requires_physician": self.requires_physician,
            "urgent": self.urgent,
        }
        if self.monitoring_nl is not None:
            out["monitoring_nl"] = self.monitoring_nl
        if self.contract is not None:
            out.update(self.contract._written)
            out["physician_decides_because"] = list(self.contract.physician_decides_because)
        if self.carries_schedule:
            out["schedule"] = self.schedule.to_dict() if self.schedule is not None else None
        return out


@dataclass(slots=True)
class Evaluation:
    """The result of a record that was evaluated: findings, plan, the facts read, and the rules' trace.

    Not frozen (see Plan); `at_line` still returns a copy rather than changing this one.
    """

    record_id: str
    findings: list[Finding]
    plan: Plan
    facts: dict[str, Any]
    trace: list[dict[str, Any]]
    ruleset: dict[str, Any]
    engine_version: str
    line: int | None = None  # the input line, when read from a file

    status: ClassVar[Literal["ok"]] = "ok"

    def at_line(self, line: int) -> Evaluation:
        """The same result, naming the input line it was read from."""
        # Built directly rather than by dataclasses.replace (a few µs a record); tests check it keeps every field.
        return Evaluation(
            self.record_id, self.findings, self.plan, self.facts, self.trace, self.ruleset, self.engine_version, line
        )

    def severities(self) -> list[str]:
        """The severity of each finding, in finding order."""
        return [f.severity for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output (the writer sorts its keys)."""
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "status": "ok",
            "findings": [f.to_dict() for f in self.findings],
            "plan": self.plan.to_dict(),
            "facts": self.facts,
            "trace": self.trace,
            "ruleset": self.ruleset,
            "engine_version": self.engine_version,
        }
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass(frozen=True, slots=True)
class Rejected:
    """The result of a record that could not be evaluated, with an error per field."""

    record_id: Any  # as given by the record (None when it has none)
    errors: list[dict[str, Any]]  # {"field", "reason", ...} per error
    ruleset: dict[str, Any]
    engine_version: str
    line: int | None = None  # the input line, when read from a file
    input: Any = field(default=ABSENT)  # the record or text as read, echoed back when read from a file

    status: ClassVar[Literal["rejected"]] = "rejected"

    def at_line(self, line: int, given: Any = ABSENT) -> Rejected:
        """The same result, naming the input line it was read from and echoing what was read."""
        return Rejected(self.record_id, self.errors, self.ruleset, self.engine_version, line, given)

    def severities(self) -> list[str]:
        """No findings: an empty list."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output (the writer sorts its keys)."""
        out: dict[str, Any] = {
            "record_id": self.record_id,
            "status": "rejected",
            "errors": self.errors,
            "ruleset": self.ruleset,
            "engine_version": self.engine_version,
        }
        if self.input is not ABSENT:
            out["input"] = self.input
        if self.line is not None:
            out["line"] = self.line
        return out


Result = Evaluation | Rejected


def to_json_bytes(result: Result | dict[str, Any]) -> bytes:
    """The canonical serialisation, UTF-8: same input and ruleset, byte-identical line (sorted keys)."""
    data = result if isinstance(result, dict) else result.to_dict()
    try:
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # e.g. an integer beyond 64 bits echoed from a rejected record
        return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode()


def to_json_line(result: Result | dict[str, Any]) -> str:
    """`to_json_bytes` as text."""
    return to_json_bytes(result).decode("utf-8")

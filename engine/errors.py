"""One error tree for the engine; every error names what it is about."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any


class MgReviewError(Exception):
    """Base of every error the engine raises on purpose."""


@dataclass
class FieldError:
    """One problem with one field of one intake record."""

    field: str
    reason: str
    value: Any = None
    expected: list[str] = dataclass_field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        out: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.value is not None:
            out["value"] = self.value if _jsonable(self.value) else repr(self.value)
        if self.expected:
            out["expected"] = self.expected
        return out

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


def _jsonable(value: Any) -> bool:
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    return isinstance(value, str | int | bool | list | dict)


class RecordError(MgReviewError):
    """An intake record that cannot be evaluated; carries every field problem found."""

    def __init__(self, record_id: str | None, errors: list[FieldError]):
        self.record_id = record_id
        self.errors = errors
        where = f"record {record_id}" if record_id else "record"
        super().__init__(f"{where}: " + "; ".join(str(e) for e in errors))


class RulesetError(MgReviewError):
    """A ruleset file that cannot be loaded or compiled."""

    def __init__(
        self,
        message: str,
        *,
        ruleset: str | None = None,
        rule_id: str | None = None,
        path: str | None = None,
        suggestion: str | None = None,
        field: str | None = None,
    ):
        self.ruleset = ruleset
        self.field = field
        self.rule_id = rule_id
        self.path = path
        self.suggestion = suggestion
        self.reason = message
        parts = [p for p in (ruleset, f"rule {rule_id}" if rule_id else None, path, field) if p]
        text = (", ".join(parts) + ": " if parts else "") + message
        if suggestion:
            text += f" (did you mean {suggestion!r}?)"
        super().__init__(text)

    @property
    def hint(self) -> str:
        """The reason with its did-you-mean, without the location (for a message beside a form field)."""
        return self.reason + (f" (did you mean {self.suggestion!r}?)" if self.suggestion else "")


class EngineError(MgReviewError):
    """durable_rules failed or an action raised while evaluating one record: never silent."""

    def __init__(self, record_id: str | None, message: str):
        self.record_id = record_id
        super().__init__(f"record {record_id}: engine failure: {message}")

"""One input line to one result: the per-record step of a batch, shared by local workers and Dask.

An input item is (line number, raw JSON text, a CSV record dict or an `Unreadable` line). Its result
is typed (`result_of`); `evaluate_one` writes it as the batch's output line, JSON or a FHIR Bundle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from engine import fhir
from engine.detected_issue import as_bundle
from engine.errors import RecordError
from engine.evaluate import Evaluator
from engine.results import Rejected, Result, to_json_bytes


@dataclass(frozen=True)
class Unreadable:
    """An input line that is not valid UTF-8: it becomes a reject naming the line, the batch goes on."""

    text: str
    reason: str


def result_of(evaluator: Evaluator, item: tuple[int, Any]) -> Result:
    """The result of one (line, record) item, naming its line; a rejected record echoes what was read."""
    line_number, raw = item
    if isinstance(raw, Unreadable):
        return evaluator.rejected(None, [{"field": "line", "reason": raw.reason}]).at_line(line_number, raw.text)
    if isinstance(raw, str):
        try:
            record = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            reason = f"not valid JSON: {e.msg}" if e.msg else "not valid JSON"
            rejected = evaluator.rejected(None, [{"field": "line", "reason": reason}])
            return rejected.at_line(line_number, raw.rstrip("\n"))
    else:
        record = raw
    if fhir.is_bundle(record):  # a FHIR R4 Bundle per line: map it to an intake record first
        try:
            record = fhir.bundle_to_record(record, ruleset=evaluator.ruleset)  # its vocabulary reads the Bundle
        except RecordError as e:
            return evaluator.rejected(e.record_id, [err.to_dict() for err in e.errors]).at_line(line_number)
    result = evaluator.evaluate(record)
    if isinstance(result, Rejected):
        return result.at_line(line_number, record)
    return result.at_line(line_number)


def evaluate_one(
    evaluator: Evaluator, item: tuple[int, Any], output_format: str = "json"
) -> tuple[str, bytes, list[str]]:
    """(status, output line in UTF-8, finding severities) for one input record; output_format "json" or "fhir".

    Bytes, written as they are: a line is about 7 KB, and decoding it to text to encode it again for the
    file (or pickling it between processes as text, twice its size when it holds Dutch) costs more than
    the rest of the writing.
    """
    result = result_of(evaluator, item)
    if output_format == "fhir":
        bundle = as_bundle(result)
        bundle["id"] = f"line-{result.line}"  # resume reads the input line back from here
        return result.status, to_json_bytes(bundle), result.severities()
    return result.status, to_json_bytes(result), result.severities()


def evaluate_lines(
    evaluator: Evaluator, items: Iterable[tuple[int, Any]], output_format: str = "json"
) -> list[tuple[str, bytes, list[str]]]:
    """`evaluate_one` for every item of a chunk, in order."""
    return [evaluate_one(evaluator, item, output_format) for item in items]

"""Evaluate many intake records: JSONL or CSV in, JSONL out, in order, in one or more processes.

A bad record never stops the batch and is never dropped: every input record ends as exactly
one result line or one reject line, each naming its input line.
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import IO, Any

from engine.errors import MgReviewError
from engine.evaluate import Evaluator
from engine.lines import Unreadable, evaluate_lines, evaluate_one
from engine.vocabulary import SEVERITIES

LIST_FIELDS = ("medications", "conditions", "symptoms")
BOOLEAN_FIELDS = ("pregnant", "lactating")
NUMBER_FIELDS = (
    "age_years",
    "weight_kg",
    "egfr_ml_min_1_73m2",
    "serum_creatinine.value",
    "serum_magnesium.value",
    "serum_magnesium.upper_limit",
    "supplement.dose_mg",
)
CSV_LIST_SEPARATOR = " | "
CHUNK_SIZE = 256  # records per task sent to a worker process
IN_FLIGHT_PER_WORKER = 3  # chunks queued per worker: enough to keep it busy, memory stays bounded


@dataclass
class Summary:
    """What a batch did: counts of records, results, rejects and findings by severity."""

    records: int = 0
    ok: int = 0
    rejected: int = 0
    findings_by_severity: Counter[str] = field(default_factory=Counter)

    def add(self, status: str, severities: list[str]) -> None:
        """Count one evaluated record."""
        self.records += 1
        if status == "ok":
            self.ok += 1
        else:
            self.rejected += 1
        self.findings_by_severity.update(severities)

    def merge(self, other: Summary) -> None:
        """Add the counts of another summary (one chunk's)."""
        self.records += other.records
        self.ok += other.ok
        self.rejected += other.rejected
        self.findings_by_severity.update(other.findings_by_severity)

    def lines(self) -> list[str]:
        """The closing summary as printed by the CLI."""
        by_severity = ", ".join(f"{s} {self.findings_by_severity.get(s, 0)}" for s in SEVERITIES)
        return [
            f"records: {self.records}  ok: {self.ok}  rejected: {self.rejected}",
            f"findings by severity: {by_severity}",
        ]


class InputError(MgReviewError):
    """An input file that cannot be read as records at all (binary, UTF-16, unreadable): one clear message."""


class OutputError(MgReviewError):
    """A result or reject line could not be written (disk full, closed pipe): the batch stops; --resume finishes."""


_SNIFF_BYTES = 8192
_UTF8_BOM = b"\xef\xbb\xbf"
_OTHER_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def read_records(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, raw JSON text or CSV record dict) for every record of a JSONL or CSV file.

    A line that is not UTF-8 becomes an `Unreadable` item (a reject naming the line); a file that is
    not text at all (binary, UTF-16) raises one InputError before any record is read.
    """
    try:
        with path.open("rb") as f:
            yield from read_stream(f, path.name)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None


def read_stream(data: IO[bytes], name: str) -> Iterator[tuple[int, Any]]:
    """The records of an open binary stream; CSV when `name` ends in .csv. The CLI and the UI both read here."""
    head = data.read(_SNIFF_BYTES)
    _refuse_non_text(head, name)
    stream = io.BufferedReader(_Prefixed(head, data), buffer_size=1 << 16)
    if name.lower().endswith(".csv"):
        yield from _csv_items(stream, name)
        return
    for number, raw in enumerate(stream, start=1):
        line = raw[len(_UTF8_BOM) :] if number == 1 and raw.startswith(_UTF8_BOM) else raw
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as e:
            yield number, Unreadable(line.decode("utf-8", "replace").rstrip("\r\n"), _decode_reason(line, e.start))
            continue
        if text.strip():
            yield number, text


def _refuse_non_text(head: bytes, name: str) -> None:
    for bom, encoding in _OTHER_BOMS.items():
        if head.startswith(bom):
            raise InputError(f"{name}: the file is {encoding} text; save it as UTF-8 (JSON Lines or CSV)")
    if b"\x00" in head:
        raise InputError(f"{name}: the file is binary (it holds NUL bytes), not JSON Lines or CSV text")


def _decode_reason(line: bytes, start: int) -> str:
    return f"not valid UTF-8: byte 0x{line[start]:02x} at column {start + 1} (save the file as UTF-8)"


def _csv_items(stream: IO[bytes], name: str) -> Iterator[tuple[int, Any]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.DictReader(text)
    stuck_at = -1
    while True:
        line = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            if line == stuck_at:  # a second error without moving on: nothing more can be read
                raise InputError(f"{name}: line {line + 1}: not readable as CSV ({e})") from None
            stuck_at = line
            yield line + 1, Unreadable("", f"not readable as CSV: {e}")
            continue
        bad = next((cell for cell in (*row.values(), *row.keys()) if isinstance(cell, str) and _escaped(cell)), None)
        if bad is not None:
            raw = bad.encode("utf-8", "surrogateescape")
            start = next(i for i, ch in enumerate(bad) if "\udc80" <= ch <= "\udcff")
            yield (
                reader.line_num,
                Unreadable(
                    raw.decode("utf-8", "replace"),
                    _decode_reason(raw, len(bad[:start].encode("utf-8", "surrogateescape"))),
                ),
            )
            continue
        yield reader.line_num, csv_record(row)


def _escaped(cell: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


class _Prefixed(io.RawIOBase):
    """A binary stream that first yields bytes already read (the sniffed head), then the rest."""

    def __init__(self, head: bytes, rest: IO[bytes]):
        self._head, self._rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n], self._head = self._head[:n], self._head[n:]
            return n
        chunk = self._rest.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def csv_record(row: dict[str, str | None]) -> dict[str, Any]:
    """One CSV row as an intake record: dotted columns nested, lists split on ' | ', types restored."""
    record: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell.strip() == "":
            continue
        value: Any = cell.strip()
        if column in LIST_FIELDS:
            value = [item.strip() for item in value.split(CSV_LIST_SEPARATOR.strip()) if item.strip()]
        elif column in BOOLEAN_FIELDS:
            value = {"true": True, "false": False, "yes": True, "no": False}.get(value.lower(), value)
        elif column in NUMBER_FIELDS:
            value = _number(value)
        target = record
        *parents, leaf = column.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return record


def _number(text: str) -> float | str:
    """A CSV cell as a number (a decimal comma is accepted); text that is no number stays text."""
    try:
        return float(text.replace(",", ".")) if text.count(",") <= 1 and "." not in text else float(text)
    except ValueError:
        return text


_worker: Evaluator | None = None


_format = "json"


def _init_worker(
    ruleset_path: str | None,
    jurisdiction: str | None,
    output_format: str = "json",
    parent: int | None = None,
    inherited: Evaluator | None = None,
) -> None:
    """Set up a worker process: its evaluator (`inherited` from a forking parent, else built here)."""
    global _worker, _format
    _worker = inherited if inherited is not None else Evaluator(ruleset_path, jurisdiction)
    _format = output_format
    # the parent's pid as the parent saw it: one killed before this initializer ran is already gone
    _exit_with_parent(os.getppid() if parent is None else parent)


def _exit_with_parent(parent: int, every_s: float = 0.5) -> None:
    """End this worker when its parent is gone (a killed batch must not leave workers waiting forever).

    An executor's workers wait on a queue whose write end they hold themselves, so a parent killed with
    SIGKILL would leave them blocked for good; a daemon thread notices the new parent and exits.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclass
class _Block:
    """The output of consecutive records, in input order: result lines, reject lines, and what they counted.

    A worker sends back one block per chunk rather than a line per record: the parent, which shares
    the machine's cores with its workers, then unpickles three objects and writes twice per chunk.
    """

    text: bytes  # result lines (and reject lines, when rejects are not separated), each ending in a newline
    rejects: bytes  # reject lines, when they go to their own file
    summary: Summary


def _block(results: Iterable[tuple[str, bytes, list[str]]], separate_rejects: bool) -> _Block:
    lines: list[bytes] = []
    rejects: list[bytes] = []
    summary = Summary()
    for status, line, severities in results:
        (rejects if separate_rejects and status != "ok" else lines).append(line)
        summary.add(status, severities)
    return _Block(_joined(lines), _joined(rejects), summary)


def _joined(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n" if lines else b""


def _evaluate_chunk(items: list[tuple[int, Any]], separate_rejects: bool) -> _Block:
    assert _worker is not None, "worker used before its initializer ran"
    worker, output_format = _worker, _format
    return _block(evaluate_lines(worker, items, output_format), separate_rejects)


def _chunks(items: Iterable[tuple[int, Any]], size: int) -> Iterator[list[tuple[int, Any]]]:
    source = iter(items)
    while chunk := list(islice(source, size)):
        yield chunk


def run(
    items: Iterable[tuple[int, Any]],
    out: IO[bytes],
    rejects: IO[bytes] | None = None,
    *,
    workers: int = 1,
    ruleset_path: str | None = None,
    jurisdiction: str | None = None,
    progress: bool | None = None,
    total: int | None = None,
    dask: str | None = None,
    output_format: str = "json",
) -> Summary:
    """Evaluate every item and write result lines (UTF-8) to `out`, rejects to `rejects` when given, in input order.

    Each write is flushed: a line (one process) or a chunk's lines (workers) reaches the file in one write,
    so a killed batch leaves whole lines but for a torn last one, which --resume cuts off.
    """
    from tqdm import tqdm

    summary = Summary()
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=total, unit="rec", disable=not show, file=sys.stderr, dynamic_ncols=True)
    try:
        if workers > 1 and not dask:
            for block in _in_workers(items, workers, ruleset_path, jurisdiction, output_format, rejects is not None):
                if block.text:
                    _write(out, block.text, summary)
                if block.rejects and rejects is not None:
                    _write(rejects, block.rejects, summary)
                summary.merge(block.summary)
                bar.update(block.summary.records)
            return summary
        if dask:
            from engine import distributed

            stream = distributed.results(items, dask, ruleset_path, jurisdiction, output_format=output_format)
        else:
            stream = _in_process(items, ruleset_path, jurisdiction, output_format)
        for status, line, severities in stream:
            _write(rejects if status != "ok" and rejects is not None else out, line + b"\n", summary)
            summary.add(status, severities)
            bar.update(1)
    finally:
        bar.close()
    return summary


def _write(target: IO[bytes], data: bytes, summary: Summary) -> None:
    """Write and flush; a full disk or closed pipe becomes one clear message naming what was written."""
    try:
        target.write(data)
        target.flush()
    except OSError as e:
        name = getattr(target, "name", "the output")
        raise OutputError(
            f"cannot write {name}: {e.strerror or e}; {summary.records} records were written before it, "
            "free the space and run again with --resume to finish"
        ) from None


def _in_process(
    items: Iterable[tuple[int, Any]], ruleset_path: str | None, jurisdiction: str | None, output_format: str
) -> Iterator[tuple[str, bytes, list[str]]]:
    evaluator = Evaluator(ruleset_path, jurisdiction)
    try:
        for item in items:
            yield evaluate_one(evaluator, item, output_format)
    finally:
        evaluator.close()


def _in_workers(
    items: Iterable[tuple[int, Any]],
    workers: int,
    ruleset_path: str | None,
    jurisdiction: str | None,
    output_format: str,
    separate_rejects: bool,
) -> Iterator[_Block]:
    # A process pool with a bounded window of chunks in flight, results in input order. Not
    # multiprocessing.Pool: its worker-handler thread wakes on every result waiting in the pipe and
    # spins while a large result is being read (measured: ~7-20 % of a core in the parent, taken from the
    # workers on a 2-core machine). The executor's one manager thread reads each result when it arrives.
    context = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    # Forked workers inherit an evaluator compiled once here (its arguments are not pickled under fork):
    # one build of CPU instead of one per worker, and a ruleset that cannot be compiled fails here, by name.
    inherited = Evaluator(ruleset_path, jurisdiction) if context.get_start_method() == "fork" else None
    try:
        with ProcessPoolExecutor(
            workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(ruleset_path, jurisdiction, output_format, os.getpid(), inherited),
        ) as pool:
            yield from _in_order(pool, _chunks(items, CHUNK_SIZE), IN_FLIGHT_PER_WORKER * workers, separate_rejects)
    finally:
        if inherited is not None:
            inherited.close()


def _in_order(
    pool: ProcessPoolExecutor, chunks: Iterator[list[tuple[int, Any]]], window: int, separate_rejects: bool
) -> Iterator[_Block]:
    """Each chunk's block, in input order, with at most `window` + 1 chunks in flight."""
    pending: deque[Future[_Block]] = deque()
    try:
        for chunk in chunks:
            pending.append(pool.submit(_evaluate_chunk, chunk, separate_rejects))
            if len(pending) > window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # stopped early (an error, a closed generator): do not wait for chunks nobody will read
        for future in pending:
            future.cancel()


def completed_lines(*paths: Path) -> set[int]:
    """Input line numbers already written to result/reject files; a torn last line is cut off first.

    A batch killed mid-write can leave a partial last line. It is truncated away (the record it
    belonged to is evaluated again), so a resumed batch ends with every record exactly once.
    """
    done: set[int] = set()
    for path in paths:
        if not path.exists():
            continue
        data = path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            with path.open("r+b") as f:
                f.truncate(complete)
        for number, line in enumerate(data[:complete].splitlines(), start=1):
            try:
                parsed = json.loads(line)
                done.add(int(parsed["line"] if "line" in parsed else str(parsed["id"]).removeprefix("line-")))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}: line {number} is not a result line of mgreview ({e}); cannot resume") from e
    return done


def count_records(path: Path) -> int:
    """How many records a file holds (for the progress bar's total)."""
    return sum(1 for _ in read_records(path))

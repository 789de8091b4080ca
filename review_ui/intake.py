"""The engine as the pages use it: the active evaluator, and intake files uploaded through a form."""

from __future__ import annotations

from typing import Any

from engine.batch import InputError, read_stream
from engine.evaluate import Evaluator
from review_ui import ruleset_versions
from review_ui.workflow import WorkflowError


def evaluator() -> Evaluator:
    """The app's evaluator: the newest published ruleset version (or the pinned file), compiled once."""
    return ruleset_versions.active_evaluator()


def uploaded_items(storage: Any) -> list[tuple[int, Any]]:
    """(line, record) items of an uploaded intake file, read exactly as the CLI reads a file (engine.batch)."""
    try:
        return list(read_stream(storage.stream, storage.filename or "upload"))
    except InputError as e:
        raise WorkflowError(str(e), "file") from None

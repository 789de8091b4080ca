"""How the workflow writes: the errors it refuses with, one commit per change, and the optimistic lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, update
from sqlalchemy.orm import InstrumentedAttribute

from review_ui.db import db
from review_ui.models import utcnow


class WorkflowError(Exception):
    """A request the workflow refuses, with the message a user reads and the field it concerns."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ConflictError(WorkflowError):
    """Someone else changed the row first; nothing was overwritten."""


def commit_or_rollback() -> None:
    """Commit the session's transaction; roll it back when the commit fails."""
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE changed (the execute of a DML statement returns a CursorResult)."""
    return cast(CursorResult[Any], result).rowcount


def update_if_unchanged(
    lock: InstrumentedAttribute[int],
    row_id: int,
    expected: int,
    *,
    conflict: str | Callable[[], str],
    where: tuple[ColumnElement[bool], ...] = (),
    **values: Any,
) -> None:
    """Write `values` to one row only if its `lock` column still holds `expected` (and `where` holds), bumping it.

    Otherwise roll the transaction back and raise a ConflictError with the `conflict` message
    (a callable is asked after the rollback, so it can say what the row holds now).
    """
    entity = lock.class_
    statement = (
        update(entity)
        .where(entity.id == row_id, lock == expected, *where)
        .values({lock.key: lock + 1, "updated_at": utcnow(), **values})
        .execution_options(synchronize_session=False)
    )
    if rowcount(db.session.execute(statement)) != 1:
        db.session.rollback()
        raise ConflictError(conflict if isinstance(conflict, str) else conflict())

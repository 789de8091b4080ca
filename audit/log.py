"""The audit log: append and read, nothing else. Each entry carries the hash of the one before.

The caller's transaction holds both the change and its entry: `append` never commits, so a
decision without its entry (or an entry without its decision) cannot be stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from audit.db import Base

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEvent:
    """What happened: who did what to which target, the state before and after, and why."""

    actor: str
    action: str
    target_type: str
    target_id: str
    before: Any = None
    after: Any = None
    reason: str = ""
    ruleset: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class AuditEntry(Base):
    """One stored event with its place in the chain. Rows are never updated or deleted."""

    __tablename__ = "audit_entry"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(32), index=True)  # ISO 8601 UTC, kept as text so the hash is exact
    actor: Mapped[str] = mapped_column(String(120), index=True)
    action: Mapped[str] = mapped_column(String(60), index=True)
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(120), index=True)
    before: Mapped[str] = mapped_column(Text)  # canonical JSON text
    after: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    ruleset: Mapped[str] = mapped_column(String(120))
    details: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    def content(self) -> dict[str, Any]:
        """Every hashed field of the entry."""
        return {k: getattr(self, k) for k in HASHED_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        """The entry for display and export, with JSON fields decoded."""
        out = self.content()
        for key in ("before", "after", "details"):
            out[key] = json.loads(out[key])
        out["hash"] = self.hash
        return out


class AuditHead(Base):
    """The chain's newest seq and hash: one row, locked while appending so appends never fork."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


HASHED_FIELDS = (
    "seq",
    "at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "reason",
    "ruleset",
    "details",
    "prev_hash",
)


def canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(content: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of an entry's hashed fields."""
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


def now() -> str:
    """The current UTC time as ISO 8601 text with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def append(session: Session, event: AuditEvent) -> AuditEntry:
    """Add one entry to the chain inside the caller's transaction (the caller commits)."""
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:
        head = AuditHead(id=1, seq=0, hash=GENESIS)
        session.add(head)
    entry = AuditEntry(
        seq=head.seq + 1,
        at=now(),
        actor=event.actor,
        action=event.action,
        target_type=event.target_type,
        target_id=str(event.target_id),
        before=canonical(event.before),
        after=canonical(event.after),
        reason=event.reason,
        ruleset=event.ruleset,
        details=canonical(event.details),
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry.content())
    session.add(entry)
    head.seq, head.hash = entry.seq, entry.hash
    session.flush()
    return entry


def read(
    session: Session,
    *,
    target_type: str | None = None,
    target_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int | None = None,
    newest_first: bool = True,
) -> list[AuditEntry]:
    """Entries matching the filters."""
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.target_type, target_type),
        (AuditEntry.target_id, target_id),
        (AuditEntry.action, action),
        (AuditEntry.actor, actor),
    ):
        if value:
            query = query.where(column == value)
    query = query.order_by(AuditEntry.seq.desc() if newest_first else AuditEntry.seq)
    if limit:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


@dataclass(frozen=True)
class Verification:
    """The result of checking the whole chain."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str = ""

    def message(self) -> str:
        """One line for the CLI and the UI."""
        if self.ok:
            return f"audit log intact: {self.checked} entries verified"
        return f"audit log BROKEN at entry {self.broken_seq}: {self.problem}"


def _walk(session: Session) -> Iterator[AuditEntry]:
    yield from session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)).scalars()


def verify(session: Session) -> Verification:
    """Recompute every hash and link; name the first entry that was edited, removed or moved."""
    expected_seq, prev, checked = 1, GENESIS, 0
    for entry in _walk(session):
        if entry.seq != expected_seq:
            return Verification(False, checked, expected_seq, f"entry {expected_seq} is missing (next is {entry.seq})")
        if entry.prev_hash != prev:
            return Verification(False, checked, entry.seq, "does not link to the entry before it (moved or replaced)")
        if entry_hash(entry.content()) != entry.hash:
            return Verification(False, checked, entry.seq, "content does not match its hash (edited)")
        prev, expected_seq, checked = entry.hash, expected_seq + 1, checked + 1
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != checked or head.hash != prev):
        return Verification(False, checked, head.seq, f"the chain ends at entry {checked} but {head.seq} were written")
    return Verification(True, checked)

"""The audit log: append and read, nothing else. Each entry carries the keyed hash of the one before.

The caller's transaction holds both the change and its entry: `append` never commits, so a
decision without its entry (or an entry without its decision) cannot be stored.

Every hash is an HMAC-SHA256 under a key that lives outside the database (the instance folder or
MGREVIEW_AUDIT_KEY), so someone who can write to the database cannot forge, edit and re-chain,
renumber or replace entries without it being found. The head row (newest seq and hash) carries its
own keyed MAC, so a truncated tail with the head rewound is found too; a rollback of the whole
database to an earlier copy is found against an exported checkpoint (`checkpoint`, `verify(...,
checkpoint=...)`). Entries written before the key existed (plain sha256) are sealed by the first keyed
entry, `audit.keyed`, which names how many there were and the hash of the last one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Integer, String, Text, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, scoped_session

from audit.db import Base
from audit.events import AuditEvent as AuditEvent
from audit.events import Event

# A session, or the scoped session of a web app (Flask-SQLAlchemy's db.session), which proxies one.
DbSession = Session | scoped_session[Any]
GENESIS = "0" * 64
SEAL_ACTION = "audit.keyed"  # the first keyed entry of a log that had unkeyed (legacy) entries before it


class AuditKeyMissing(RuntimeError):
    """No audit key was configured: the log cannot be written or checked."""


class AuditChainError(RuntimeError):
    """The chain cannot be appended to (its head row is gone): writes stop until someone looks."""


_key_source: Callable[[], bytes] | None = None


def use_key(source: Callable[[], bytes]) -> None:
    """Tell the log where its key comes from (the review UI: the app's instance key or MGREVIEW_AUDIT_KEY)."""
    global _key_source
    _key_source = source


def current_key(key: bytes | None = None) -> bytes:
    """`key` when given, else the configured key."""
    if key is not None:
        return key
    if _key_source is None:
        raise AuditKeyMissing("no audit key configured (audit.log.use_key)")
    return _key_source()


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

    def is_authentic(self, key: bytes | None = None) -> bool:
        """Whether this entry's hash is the keyed hash of its content (written by a holder of the key)."""
        return hmac.compare_digest(entry_hash(self.content(), current_key(key)), self.hash)


class AuditHead(Base):
    """The chain's newest seq and hash, with a keyed MAC: one row, locked while appending so appends never fork."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    mac: Mapped[str] = mapped_column(String(64), default="")


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
# Column lengths of the short text fields: a longer value (a 500-character failed-login username) is
# clipped with a marker rather than failing the transaction it belongs to on PostgreSQL.
_CLIPPED = {"actor": 120, "action": 60, "target_type": 40, "target_id": 120, "ruleset": 120}


def canonical(value: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def entry_hash(content: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 under the audit key over the canonical JSON of an entry's hashed fields."""
    return _mac(key, canonical(content))


def legacy_hash(content: dict[str, Any]) -> str:
    """The unkeyed sha256 of entries written before the log was keyed."""
    return hashlib.sha256(canonical(content).encode("utf-8")).hexdigest()


def head_mac(key: bytes, seq: int, head_hash: str) -> str:
    """The keyed MAC of the head row, so a rewound head is found."""
    return _mac(key, f"head|{seq}|{head_hash}")


def now() -> str:
    """The current UTC time as ISO 8601 text with microseconds."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _clip(name: str, value: str) -> str:
    limit = _CLIPPED[name]
    return value if len(value) <= limit else value[: limit - 1] + "…"


def append(session: DbSession, event: Event, *, key: bytes | None = None) -> AuditEntry:
    """Add one entry to the chain inside the caller's transaction (the caller commits)."""
    secret = current_key(key)
    stored = event.record()
    head = session.execute(select(AuditHead).where(AuditHead.id == 1).with_for_update()).scalar_one_or_none()
    if head is None:  # the migration writes it: a missing head means someone removed it
        raise AuditChainError("the audit chain's head row is missing (the log was emptied or replaced); not appending")
    entry = AuditEntry(
        seq=head.seq + 1,
        at=now(),
        actor=_clip("actor", stored.actor),
        action=_clip("action", stored.action),
        target_type=_clip("target_type", stored.target_type),
        target_id=_clip("target_id", str(stored.target_id)),
        before=canonical(stored.before),
        after=canonical(stored.after),
        reason=stored.reason,
        ruleset=_clip("ruleset", stored.ruleset),
        details=canonical(stored.details),
        prev_hash=head.hash,
    )
    entry.hash = entry_hash(entry.content(), secret)
    session.add(entry)
    head.seq, head.hash, head.mac = entry.seq, entry.hash, head_mac(secret, entry.seq, entry.hash)
    session.flush()
    return entry


def read(
    session: DbSession,
    *,
    target_type: str | None = None,
    target_types: tuple[str, ...] | None = None,
    target_id: str | None = None,
    action: str | None = None,
    actor: str | None = None,
    limit: int | None = None,
    newest_first: bool = True,
) -> list[AuditEntry]:
    """Entries matching the filters (`target_types`: only entries about these kinds of target)."""
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.target_type, target_type),
        (AuditEntry.target_id, target_id),
        (AuditEntry.action, action),
        (AuditEntry.actor, actor),
    ):
        if value:
            query = query.where(column == value)
    if target_types is not None:
        query = query.where(AuditEntry.target_type.in_(target_types))
    query = query.order_by(AuditEntry.seq.desc() if newest_first else AuditEntry.seq)
    if limit:
        query = query.limit(limit)
    return list(session.execute(query).scalars())


def entry_at(session: DbSession, seq: int) -> AuditEntry | None:
    """The entry with this sequence number, or None."""
    return session.get(AuditEntry, seq)


def key_existing_log(connection: Connection, key: bytes) -> str:
    """Key a log (run by the migration): write the head's MAC, and seal unkeyed entries with one keyed entry."""
    head = connection.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    last = connection.execute(select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)).first()
    seq, head_hash = (last.seq, last.hash) if last is not None else (0, GENESIS)
    if head is not None:
        seq, head_hash = max((head.seq, head.hash), (seq, head_hash))
    message = "audit log keyed: empty"
    if seq:
        content: dict[str, Any] = {
            "seq": seq + 1,
            "at": now(),
            "actor": "system",
            "action": SEAL_ACTION,
            "target_type": "audit",
            "target_id": "chain",
            "before": canonical(None),
            "after": canonical(None),
            "reason": "entries written before the log was keyed (plain sha256) are sealed by this keyed entry",
            "ruleset": "",
            "details": canonical({"legacy_entries": seq, "legacy_head": head_hash}),
            "prev_hash": head_hash,
        }
        seq, head_hash = seq + 1, entry_hash(content, key)
        connection.execute(insert(AuditEntry).values(**content, hash=head_hash))
        message = f"audit log keyed: {seq - 1} unkeyed entries sealed by entry {seq}"
    values = {"seq": seq, "hash": head_hash, "mac": head_mac(key, seq, head_hash)}
    if head is None:
        connection.execute(insert(AuditHead).values(id=1, **values))
    else:
        connection.execute(update(AuditHead).where(AuditHead.id == 1).values(**values))
    return message


# --- checkpoints ----------------------------------------------------------------------------------


def checkpoint(session: DbSession, *, key: bytes | None = None) -> dict[str, Any]:
    """A signed checkpoint of the chain's head (sequence, head hash, time) to keep outside the database."""
    secret = current_key(key)
    head = session.get(AuditHead, 1)
    seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    point = {"seq": seq, "hash": head_hash, "at": now()}
    return {**point, "mac": _mac(secret, "checkpoint|" + canonical(point))}


def checkpoint_problem(point: Any, *, key: bytes | None = None) -> str | None:
    """Why a checkpoint document is not one this key signed, or None when it is."""
    if not isinstance(point, dict) or not {"seq", "hash", "at", "mac"} <= point.keys():
        return "the checkpoint is not a checkpoint file of mgreview (needs seq, hash, at, mac)"
    body = {k: point[k] for k in ("seq", "hash", "at")}
    if not isinstance(point["seq"], int) or not isinstance(point["mac"], str):
        return "the checkpoint's seq or mac has the wrong type"
    if not hmac.compare_digest(_mac(current_key(key), "checkpoint|" + canonical(body)), point["mac"]):
        return "the checkpoint's signature does not match (edited, or signed with another key)"
    return None


# --- verification ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    """The result of checking the whole chain."""

    ok: bool
    checked: int
    broken_seq: int | None = None
    problem: str = ""
    legacy: int = 0  # unkeyed entries from before the log was keyed, sealed by the first keyed entry
    checkpoint_seq: int | None = None

    def message(self) -> str:
        """One line for the CLI and the UI."""
        if self.ok:
            extra = f" (the first {self.legacy} unkeyed, sealed by entry {self.legacy + 1})" if self.legacy else ""
            against = f"; checkpoint at entry {self.checkpoint_seq} matches" if self.checkpoint_seq is not None else ""
            return f"audit log intact: {self.checked} entries verified{extra}{against}"
        return f"audit log BROKEN at entry {self.broken_seq}: {self.problem}"


def _walk(session: DbSession) -> Iterator[AuditEntry]:
    yield from session.execute(select(AuditEntry).order_by(AuditEntry.seq).execution_options(yield_per=1000)).scalars()


def _seal_vouches(entry: AuditEntry, legacy: int, prev: str) -> bool:
    """Whether a keyed `audit.keyed` entry names exactly the unkeyed entries before it."""
    if entry.action != SEAL_ACTION:
        return False
    try:
        details = json.loads(entry.details)
    except ValueError:
        return False
    return isinstance(details, dict) and details.get("legacy_entries") == legacy and details.get("legacy_head") == prev


_UNSEALED = "entries 1-{} are unkeyed and no keyed seal vouches for them"
_MISMATCH = "content does not match its keyed hash (edited or forged, or the audit key is not this log's key)"


@dataclass
class _Walk:
    """How far the chain checked out: the next expected seq, the last hash, the counts so far."""

    expected_seq: int = 1
    prev: str = GENESIS
    checked: int = 0
    legacy: int = 0
    keyed_seen: bool = False

    def broken(self, seq: int | None, problem: str) -> Verification:
        """The verdict for a break found at `seq`."""
        return Verification(False, self.checked, seq, problem)


def _check_entry(walk: _Walk, entry: AuditEntry, secret: bytes) -> Verification | None:
    """Check one entry's place, link and hash, advancing `walk`; a broken verdict, or None when it holds."""
    if entry.seq != walk.expected_seq:
        return walk.broken(walk.expected_seq, f"entry {walk.expected_seq} is missing (next is {entry.seq})")
    if entry.prev_hash != walk.prev:
        return walk.broken(entry.seq, "does not link to the entry before it (moved or replaced)")
    if hmac.compare_digest(entry_hash(entry.content(), secret), entry.hash):
        if not walk.keyed_seen and walk.legacy and not _seal_vouches(entry, walk.legacy, walk.prev):
            return walk.broken(1, _UNSEALED.format(walk.legacy))
        walk.keyed_seen = True
    elif not walk.keyed_seen and legacy_hash(entry.content()) == entry.hash:
        walk.legacy += 1  # written before the log was keyed: valid only if the first keyed entry seals it
    else:
        return walk.broken(entry.seq, _MISMATCH)
    walk.prev, walk.expected_seq, walk.checked = entry.hash, walk.expected_seq + 1, walk.checked + 1
    return None


def _check_head(session: DbSession, walk: _Walk, secret: bytes) -> Verification | None:
    """The head row must carry its keyed MAC and name the last entry walked."""
    head = session.get(AuditHead, 1)
    if head is None:
        return walk.broken(walk.checked, "the chain's head row is missing (the log was emptied)")
    if not hmac.compare_digest(head_mac(secret, head.seq, head.hash), head.mac or ""):
        return walk.broken(head.seq, "the chain's head was rewritten (its keyed MAC does not match)")
    if head.seq != walk.checked or head.hash != walk.prev:
        return walk.broken(head.seq, f"the chain ends at entry {walk.checked} but {head.seq} were written")
    return None


def _check_checkpoint(session: DbSession, walk: _Walk, point: dict[str, Any], secret: bytes) -> Verification:
    """The chain must still hold the checkpoint's entry with the same hash."""
    problem = checkpoint_problem(point, key=secret)
    if problem:
        return walk.broken(None, problem)
    seq = point["seq"]
    if seq > walk.checked:
        return walk.broken(seq, f"the checkpoint has {seq} entries but the chain ends at {walk.checked} (truncated)")
    if seq:
        found = session.get(AuditEntry, seq)
        if found is None or found.hash != point["hash"]:
            return walk.broken(seq, "differs from the checkpoint's entry (the log was replaced)")
    return Verification(True, walk.checked, legacy=walk.legacy, checkpoint_seq=seq)


def verify(session: DbSession, *, key: bytes | None = None, checkpoint: dict[str, Any] | None = None) -> Verification:
    """Recompute every keyed hash, link and the head's MAC; name the first entry edited, removed, moved or forged.

    With `checkpoint` (from `checkpoint`, kept outside the database), also require that the chain still
    holds the checkpoint's entry with the same hash: a truncated or replaced log is found even when its
    head was rewound to a consistent earlier state.
    """
    secret = current_key(key)
    walk = _Walk()
    for entry in _walk(session):
        broken = _check_entry(walk, entry, secret)
        if broken is not None:
            return broken
    if walk.legacy and not walk.keyed_seen:
        return walk.broken(1, _UNSEALED.format(walk.legacy))
    broken = _check_head(session, walk, secret)
    if broken is not None:
        return broken
    if checkpoint is not None:
        return _check_checkpoint(session, walk, checkpoint, secret)
    return Verification(True, walk.checked, legacy=walk.legacy)

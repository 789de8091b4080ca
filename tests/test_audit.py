"""The hash-chained audit log: appends link up, tampering is found and named, the database refuses changes."""

import pytest
import sqlalchemy
from sqlalchemy import text

from audit import log as audit
from review_ui.db import db


def write(n):
    for i in range(n):
        audit.append(
            db.session,
            audit.AuditEvent(
                "alice", "test.event", "case", str(i), before={"i": i}, after={"i": i + 1}, reason=f"reason {i}"
            ),
        )
    db.session.commit()


def drop_guards(app):
    """What an attacker with database rights would do first: remove the append-only triggers."""
    if app.config["DB_KIND"] == "postgresql":
        db.session.execute(text("DROP TRIGGER audit_entry_no_update_delete ON audit_entry"))
    else:
        db.session.execute(text("DROP TRIGGER audit_entry_no_update"))
        db.session.execute(text("DROP TRIGGER audit_entry_no_delete"))
    db.session.commit()


def test_entries_chain_and_verify(ctx):
    write(5)
    entries = audit.read(db.session, newest_first=False)
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))
    result = audit.verify(db.session)
    assert result.ok and result.checked == 5
    assert result.message() == "audit log intact: 5 entries verified"


def test_database_refuses_update_and_delete(ctx):
    write(2)
    for statement in ("UPDATE audit_entry SET reason = 'x' WHERE seq = 1", "DELETE FROM audit_entry WHERE seq = 2"):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
    assert audit.verify(db.session).ok


def test_edited_entry_is_named(ctx):
    write(5)
    drop_guards(ctx)
    db.session.execute(text("UPDATE audit_entry SET reason = 'nothing happened' WHERE seq = 3"))
    db.session.commit()
    result = audit.verify(db.session)
    assert not result.ok and result.broken_seq == 3
    assert "edited" in result.message()


def test_deleted_entry_is_named(ctx):
    write(5)
    drop_guards(ctx)
    db.session.execute(text("DELETE FROM audit_entry WHERE seq = 2"))
    db.session.commit()
    result = audit.verify(db.session)
    assert not result.ok and result.broken_seq == 2
    assert "entry 2 is missing" in result.message()


def test_deleted_last_entry_is_found_through_the_head(ctx):
    write(4)
    drop_guards(ctx)
    db.session.execute(text("DELETE FROM audit_entry WHERE seq = 4"))
    db.session.commit()
    result = audit.verify(db.session)
    assert not result.ok and "4 were written" in result.message()


def test_reordered_entries_are_named(ctx):
    write(5)
    drop_guards(ctx)
    # swap the contents of entries 2 and 3, each keeping its own valid hash
    rows = {r.seq: r for r in db.session.execute(text("SELECT * FROM audit_entry WHERE seq IN (2, 3)"))}
    columns = [c for c in audit.HASHED_FIELDS if c != "seq"] + ["hash"]
    db.session.execute(text("UPDATE audit_entry SET hash = 'tmp' WHERE seq = 2"))
    for seq, other in ((3, 2), (2, 3)):
        values = {c: getattr(rows[other], c) for c in columns}
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        db.session.execute(text(f"UPDATE audit_entry SET {sets} WHERE seq = :seq"), {**values, "seq": seq})
    db.session.commit()
    result = audit.verify(db.session)
    assert not result.ok and result.broken_seq == 2


def test_entry_is_only_stored_with_its_transaction(ctx):
    write(1)
    audit.append(db.session, audit.AuditEvent("bob", "test.event", "case", "9"))
    db.session.rollback()  # the change it belonged to failed: the entry goes with it
    assert [e.seq for e in audit.read(db.session)] == [1]
    write(1)
    assert audit.verify(db.session).ok

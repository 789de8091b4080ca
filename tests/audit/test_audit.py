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
        for trigger in ("audit_entry_no_update_delete", "audit_entry_no_truncate"):
            db.session.execute(text(f"DROP TRIGGER {trigger} ON audit_entry"))
        for trigger in ("audit_head_forward_only", "audit_head_no_truncate"):
            db.session.execute(text(f"DROP TRIGGER {trigger} ON audit_head"))
    else:
        triggers = ("audit_entry_no_update", "audit_entry_no_delete", "audit_head_forward_only", "audit_head_no_delete")
        for trigger in triggers:
            db.session.execute(text(f"DROP TRIGGER {trigger}"))
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


# --- tampering by someone with database rights (triggers dropped), who does not hold the audit key ------

COLUMNS = [*audit.HASHED_FIELDS, "hash"]
ATTACKER_KEY = b"not-the-instance-key-of-this-app-0123456789"


def rows():
    result = db.session.execute(text(f"SELECT {', '.join(COLUMNS)} FROM audit_entry ORDER BY seq"))
    return [dict(r._mapping) for r in result]


def rewrite(entries, hasher=audit.legacy_hash, head_mac=None, from_seq=1):
    """Replace the table with `entries`, re-chained with `hasher` from `from_seq` on; point the head at the end."""
    prev = audit.GENESIS
    for seq, entry in enumerate(entries, start=1):
        if seq >= from_seq:
            entry.update(seq=seq, prev_hash=prev)
            entry["hash"] = hasher({k: entry[k] for k in audit.HASHED_FIELDS})
        prev = entry["hash"]
    db.session.execute(text("DELETE FROM audit_entry"))
    for entry in entries:
        db.session.execute(
            text(f"INSERT INTO audit_entry ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"),
            entry,
        )
    set_head(len(entries), prev, head_mac)


def set_head(seq, head_hash, mac=None):
    params = {"seq": seq, "hash": head_hash}
    mac_sql = ", mac = :mac" if mac is not None else ""
    if mac is not None:
        params["mac"] = mac
    db.session.execute(text(f"UPDATE audit_head SET seq = :seq, hash = :hash{mac_sql} WHERE id = 1"), params)


def forge_append():
    entries = rows()
    forged = dict(entries[-1], reason="forged: dose approved by nobody", at=audit.now())
    rewrite([*entries, forged], from_seq=len(entries) + 1)


def edit():
    db.session.execute(text("UPDATE audit_entry SET reason = 'nothing happened' WHERE seq = 3"))


def edit_and_rechain():
    entries = rows()
    entries[2]["reason"] = "nothing happened"
    rewrite(entries, from_seq=3)


def delete():
    db.session.execute(text("DELETE FROM audit_entry WHERE seq = 2"))


def delete_and_renumber():
    entries = rows()
    del entries[1]
    rewrite(entries, from_seq=2)


def reorder():
    entries = rows()
    entries[1], entries[2] = entries[2], entries[1]
    db.session.execute(text("DELETE FROM audit_entry"))
    for entry in entries:  # each keeps its own valid keyed hash; only the order changes
        db.session.execute(
            text(f"INSERT INTO audit_entry ({', '.join(COLUMNS)}) VALUES ({', '.join(':' + c for c in COLUMNS)})"),
            {**entry, "seq": entries.index(entry) + 1},
        )


def truncate_tail_with_head_rewound():
    entries = rows()
    db.session.execute(text("DELETE FROM audit_entry WHERE seq > 3"))
    set_head(3, entries[2]["hash"])


def empty_the_log():
    db.session.execute(text("DELETE FROM audit_entry"))
    db.session.execute(text("DELETE FROM audit_head"))


def empty_the_log_keeping_the_head():
    db.session.execute(text("DELETE FROM audit_entry"))
    set_head(0, audit.GENESIS)


def replace_with_a_chain_under_another_key():
    entries = rows()
    for entry in entries:
        entry["actor"] = "mallory"
    mac = audit.head_mac(ATTACKER_KEY, 5, "x")
    rewrite(entries, lambda content: audit.entry_hash(content, ATTACKER_KEY), head_mac=mac)


def downgrade_everything_to_unkeyed():
    rewrite(rows())


@pytest.mark.parametrize(
    "tamper, broken_seq, words",
    [
        (forge_append, 6, "keyed hash"),
        (edit, 3, "keyed hash"),
        (edit_and_rechain, 3, "keyed hash"),
        (delete, 2, "entry 2 is missing"),
        (delete_and_renumber, 2, "keyed hash"),
        (reorder, 2, "does not link"),
        (truncate_tail_with_head_rewound, 3, "head was rewritten"),
        (empty_the_log, 0, "head row is missing"),
        (empty_the_log_keeping_the_head, 0, "head was rewritten"),
        (replace_with_a_chain_under_another_key, 1, "keyed hash"),
        (downgrade_everything_to_unkeyed, 1, "no keyed seal"),
    ],
)
def test_every_kind_of_tampering_is_found(ctx, tamper, broken_seq, words):
    write(5)
    drop_guards(ctx)
    tamper()
    db.session.commit()
    result = audit.verify(db.session)
    assert not result.ok, tamper.__name__
    assert result.broken_seq == broken_seq and words in result.message()


def test_rollback_to_an_earlier_copy_is_found_by_the_checkpoint(ctx):
    """Truncating the tail and restoring the head row saved earlier looks intact; a checkpoint catches it."""
    write(3)
    saved = dict(db.session.execute(text("SELECT seq, hash, mac FROM audit_head")).one()._mapping)
    write(2)
    point = audit.checkpoint(db.session)
    assert audit.verify(db.session, checkpoint=point).ok
    drop_guards(ctx)
    db.session.execute(text("DELETE FROM audit_entry WHERE seq > 3"))
    set_head(saved["seq"], saved["hash"], saved["mac"])
    db.session.commit()
    assert audit.verify(db.session).ok  # consistent with itself: only the outside copy can tell
    result = audit.verify(db.session, checkpoint=point)
    assert not result.ok and "truncated" in result.message()


def test_a_replaced_log_differs_from_the_checkpoint(ctx):
    write(3)
    point = audit.checkpoint(db.session)
    forged = dict(point, hash="f" * 64)
    assert "signature does not match" in audit.verify(db.session, checkpoint=forged).message()
    drop_guards(ctx)
    db.session.execute(text("DELETE FROM audit_entry"))
    set_head(0, audit.GENESIS, db.session.execute(text("SELECT mac FROM audit_head")).scalar())
    db.session.commit()
    write(3)  # a new chain, under the real key (the application itself wrote it), of the same length
    result = audit.verify(db.session, checkpoint=point)
    assert not result.ok and "replaced" in result.message()


def test_the_database_refuses_to_rewind_or_delete_the_head(ctx):
    write(2)
    for statement in ("UPDATE audit_head SET seq = 1", "DELETE FROM audit_head"):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="moves forward"):
            db.session.execute(text(statement))
        db.session.rollback()
    assert audit.verify(db.session).ok


def test_a_log_written_before_the_key_is_sealed_by_the_migration(tmp_path):
    """Existing unkeyed entries still verify, are reported as such, and a later edit of one is still found."""
    from flask_migrate import upgrade

    from review_ui import create_app

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'old.db'}", "SECRET_KEY": "x"})
    with app.app_context():
        upgrade(revision="4c673394a2b7")
        prev = audit.GENESIS
        for seq in (1, 2, 3):  # what the unkeyed log of earlier releases wrote
            entry = {c: "" for c in audit.HASHED_FIELDS} | {"seq": seq, "prev_hash": prev, "actor": "alice"}
            entry |= {"before": "null", "after": "null", "details": "{}", "at": audit.now(), "action": "test"}
            prev = audit.legacy_hash(entry)
            columns = [*entry, "hash"]
            db.session.execute(
                text(f"INSERT INTO audit_entry ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"),
                {**entry, "hash": prev},
            )
        db.session.execute(text("INSERT INTO audit_head (id, seq, hash) VALUES (1, 3, :h)"), {"h": prev})
        db.session.commit()
        upgrade()
        write(1)
        result = audit.verify(db.session)
        assert result.ok and result.legacy == 3
        assert result.message() == "audit log intact: 5 entries verified (the first 3 unkeyed, sealed by entry 4)"
        db.session.execute(text("DROP TRIGGER audit_entry_no_update"))
        db.session.execute(text("UPDATE audit_entry SET reason = 'edited' WHERE seq = 2"))
        db.session.commit()
        assert not audit.verify(db.session).ok
        db.engine.dispose()

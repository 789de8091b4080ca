"""keyed audit chain: the head's MAC, unkeyed entries sealed, the head row protected

Revision ID: 5d2e8a91c0b4
Revises: 4c673394a2b7
Create Date: 2026-12-01 19:40:00.000000

Entries written before this migration keep their plain sha256 hashes; one keyed entry
(`audit.keyed`) seals them (how many, and the hash of the last), so `audit verify` checks them
as part of the chain and reports them. The key comes from the app (MGREVIEW_AUDIT_KEY or the
instance folder's `audit_key`), never from the database.
"""
import logging

from alembic import op
import sqlalchemy as sa
from flask import current_app

from audit import log

# The head row may only move forward; it can be neither deleted nor truncated.
PG_HEAD = """
CREATE FUNCTION audit_head_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.seq > OLD.seq AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_head only moves forward: % refused', TG_OP;
END $$;
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_refuse_change();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_head_refuse_change();
"""
SQLITE_HEAD = (
    "CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.seq <= OLD.seq OR NEW.id != OLD.id "
    "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward: UPDATE refused'); END",
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
    "BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward: DELETE refused'); END",
)

# revision identifiers, used by Alembic.
revision = '5d2e8a91c0b4'
down_revision = '4c673394a2b7'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=False, server_default=''))
    key = current_app.config["MGREVIEW_AUDIT_KEY"].encode("utf-8")
    logging.getLogger("alembic.runtime.migration").info(log.key_existing_log(op.get_bind(), key))
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(PG_HEAD)
    elif dialect == "sqlite":
        for statement in SQLITE_HEAD:
            op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_truncate ON audit_head")
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only ON audit_head")
        op.execute("DROP FUNCTION IF EXISTS audit_head_refuse_change()")
    elif dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_head_forward_only")
        op.execute("DROP TRIGGER IF EXISTS audit_head_no_delete")
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('mac')

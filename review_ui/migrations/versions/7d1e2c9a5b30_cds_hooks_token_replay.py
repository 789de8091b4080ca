"""CDS Hooks: JWT ids already used (replay protection)

Revision ID: 7d1e2c9a5b30
Revises: 7b41c2d9e6f8
Create Date: 2026-12-01 20:00:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '7d1e2c9a5b30'
down_revision = '7b41c2d9e6f8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'cds_token_seen',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    with op.batch_alter_table('cds_token_seen', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cds_token_seen_expires_at'), ['expires_at'], unique=False)


def downgrade():
    with op.batch_alter_table('cds_token_seen', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cds_token_seen_expires_at'))
    op.drop_table('cds_token_seen')

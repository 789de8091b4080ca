"""Decisions: an amendment or a withdrawal names the signed decision it supersedes

Revision ID: a3c9e1f07d42
Revises: 9c3f5a7e1d42
Create Date: 2026-12-03 15:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = 'a3c9e1f07d42'
down_revision = '9c3f5a7e1d42'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.add_column(sa.Column('supersedes_id', sa.Integer(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_decision_supersedes_id'), ['supersedes_id'])
        batch_op.create_foreign_key(
            batch_op.f('fk_decision_supersedes_id_decision'), 'decision', ['supersedes_id'], ['id']
        )


def downgrade():
    with op.batch_alter_table('decision', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_decision_supersedes_id_decision'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_decision_supersedes_id'), type_='unique')
        batch_op.drop_column('supersedes_id')

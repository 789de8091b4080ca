"""Language choices: a user's page language and a case's patient (printed plan) language

Revision ID: 3f6b9d2e1a74
Revises: 7d1e2c9a5b30
Create Date: 2026-12-03 15:30:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '3f6b9d2e1a74'
down_revision = '7d1e2c9a5b30'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
    with op.batch_alter_table('review_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('patient_language', sa.String(length=8), nullable=True))


def downgrade():
    with op.batch_alter_table('review_case', schema=None) as batch_op:
        batch_op.drop_column('patient_language')
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('language')

"""Re-imports: the revisions of a superseded pending case; a new intake after a decision names the decided case

Revision ID: 9c3f5a7e1d42
Revises: 3f6b9d2e1a74
Create Date: 2026-12-03 15:20:00.000000

"""
from alembic import op
import sqlalchemy as sa

# revision identifiers, used by Alembic.
revision = '9c3f5a7e1d42'
down_revision = '3f6b9d2e1a74'
branch_labels = None
depends_on = None


def upgrade():
    # existing cases follow no other case: the new column starts empty for them
    with op.batch_alter_table('review_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('follows_case_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_review_case_follows_case_id'), ['follows_case_id'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_review_case_follows_case_id_review_case'), 'review_case', ['follows_case_id'], ['id']
        )
    op.create_table(
        'case_revision',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('case_id', sa.Integer(), nullable=False),
        sa.Column('batch_id', sa.Integer(), nullable=False),
        sa.Column('actor', sa.String(length=80), nullable=False),
        sa.Column('previous_intake', sa.JSON(), nullable=False),
        sa.Column('previous_result', sa.JSON(), nullable=False),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('audit_seq', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['batch_id'], ['batch.id']),
        sa.ForeignKeyConstraint(['case_id'], ['review_case.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('case_revision', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_revision_case_id'), ['case_id'], unique=False)


def downgrade():
    with op.batch_alter_table('case_revision', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_revision_case_id'))
    op.drop_table('case_revision')
    with op.batch_alter_table('review_case', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_review_case_follows_case_id_review_case'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_review_case_follows_case_id'))
        batch_op.drop_column('follows_case_id')

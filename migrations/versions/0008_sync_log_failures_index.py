"""the console's sync log reads failures along a partial index instead of sorting the whole audit

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 12:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

FAILED = "result_code <> '000000'"


def upgrade():
    # CONCURRENTLY on PostgreSQL: a large audit table keeps taking sync calls while the index builds.
    with op.get_context().autocommit_block():
        op.create_index('ix_kg_sync_call_failed', 'kg_sync_call', ['id'], unique=False,
                        postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED),
                        postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_kg_sync_call_failed', table_name='kg_sync_call', postgresql_concurrently=True)

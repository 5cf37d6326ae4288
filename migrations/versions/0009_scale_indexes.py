"""indexes the data's growth needs: tenant codes by lower(code) (login page and tenantSync's
uniqueness check read it on every call), and the console's sync log failures (partial index)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 12:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

FAILED = "result_code <> '000000'"


def upgrade():
    # CONCURRENTLY on PostgreSQL: the tables keep taking sync calls while the indexes build.
    with op.get_context().autocommit_block():
        op.create_index('ix_kg_tenant_code_lower', 'kg_tenant', [sa.text('lower(tenant_code)')], unique=False,
                        postgresql_concurrently=True)
        op.create_index('ix_kg_sync_call_failed', 'kg_sync_call', ['id'], unique=False,
                        postgresql_where=sa.text(FAILED), sqlite_where=sa.text(FAILED),
                        postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_kg_sync_call_failed', table_name='kg_sync_call', postgresql_concurrently=True)
        op.drop_index('ix_kg_tenant_code_lower', table_name='kg_tenant', postgresql_concurrently=True)

"""the console's tenants list along an index: live tenants, then deleted ones, each by code and id
(an expression index on exactly the list's key, so each page is a seek, never a sort of kg_tenant)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 13:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # CONCURRENTLY on PostgreSQL: tenantSync keeps writing kg_tenant while the index builds.
    with op.get_context().autocommit_block():
        op.create_index('ix_kg_tenant_console_order', 'kg_tenant',
                        [sa.text('(deleted_at IS NOT NULL)'), 'tenant_code', 'tenant_id'], unique=False,
                        postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_kg_tenant_console_order', table_name='kg_tenant', postgresql_concurrently=True)

"""the console's tenants list (live first, by code) read along an index instead of sorting the
whole tenant table for every page

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 13:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index('ix_kg_tenant_console_order', 'kg_tenant',
                        [sa.text('(deleted_at IS NOT NULL)'), 'tenant_code', 'tenant_id'], unique=False,
                        postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_kg_tenant_console_order', table_name='kg_tenant', postgresql_concurrently=True)

"""the enterprise's domainId recorded for a tenant (userinfo `tenant` match)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 03:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('kg_tenant', schema=None) as batch_op:
        batch_op.add_column(sa.Column('domain_id', sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table('kg_tenant', schema=None) as batch_op:
        batch_op.drop_column('domain_id')

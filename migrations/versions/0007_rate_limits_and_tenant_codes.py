"""rate-limit windows, tenant codes unique case-insensitively among live tenants

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00

"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

LIVE_CODES = "tenant_code <> '' AND deleted_at IS NULL"


def upgrade():
    op.create_table('sso_rate_window',
    sa.Column('bucket', sa.String(length=16), nullable=False),
    sa.Column('client', sa.String(length=64), nullable=False),
    sa.Column('window_start', sa.Integer(), nullable=False),
    sa.Column('hits', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'client', 'window_start', name=op.f('pk_sso_rate_window'))
    )
    with op.batch_alter_table('sso_rate_window', schema=None) as batch_op:
        batch_op.create_index('ix_sso_rate_window_start', ['window_start'], unique=False)

    duplicates = op.get_bind().execute(sa.text(
        f"SELECT lower(tenant_code), count(*) FROM kg_tenant WHERE {LIVE_CODES} "
        "GROUP BY lower(tenant_code) HAVING count(*) > 1")).fetchall()
    if duplicates:
        codes = ", ".join(repr(row[0]) for row in duplicates[:10])
        raise RuntimeError(f"live tenants share a tenantCode (case-insensitively): {codes}. Keep one per code "
                           "(flask tenants list), then run flask db upgrade again.")
    op.create_index('uq_kg_tenant_code_live', 'kg_tenant', [sa.text('lower(tenant_code)')], unique=True,
                    postgresql_where=sa.text(LIVE_CODES), sqlite_where=sa.text(LIVE_CODES))


def downgrade():
    op.drop_index('uq_kg_tenant_code_live', table_name='kg_tenant')
    with op.batch_alter_table('sso_rate_window', schema=None) as batch_op:
        batch_op.drop_index('ix_sso_rate_window_start')
    op.drop_table('sso_rate_window')

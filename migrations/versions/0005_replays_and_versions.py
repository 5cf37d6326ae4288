"""one version column, full-list versions, re-send answers, seats

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:30:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('kg_user', schema=None) as batch_op:
        batch_op.alter_column('last_sync_time', new_column_name='last_sync_ts',
                              existing_type=sa.String(length=17), existing_nullable=False)
    op.create_table('kg_org_list',
    sa.Column('tenant_id', sa.String(length=64), nullable=False),
    sa.Column('test_flag', sa.Boolean(), nullable=False),
    sa.Column('last_sync_ts', sa.String(length=17), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', name=op.f('pk_kg_org_list'))
    )
    with op.batch_alter_table('kg_nonce', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('answer', sa.Text(), nullable=True))
    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refresh_claimed_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('kg_sync_call', schema=None) as batch_op:
        batch_op.add_column(sa.Column('debug', sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table('kg_instance', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seats', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('seats_requested', sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('sso_session', schema=None) as batch_op:
        batch_op.drop_column('refresh_claimed_until')
    with op.batch_alter_table('kg_sync_call', schema=None) as batch_op:
        batch_op.drop_column('debug')
    with op.batch_alter_table('kg_instance', schema=None) as batch_op:
        batch_op.drop_column('seats_requested')
        batch_op.drop_column('seats')
    with op.batch_alter_table('kg_nonce', schema=None) as batch_op:
        batch_op.drop_column('answer')
        batch_op.drop_column('request_hash')
    op.drop_table('kg_org_list')
    with op.batch_alter_table('kg_user', schema=None) as batch_op:
        batch_op.alter_column('last_sync_ts', new_column_name='last_sync_time',
                              existing_type=sa.String(length=17), existing_nullable=False)

"""held sign-ins (workbench confirmation, account switch), login-state caps

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 23:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('sso_login_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_hash', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('reinitiated', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.create_index('ix_sso_login_state_client', ['client_hash', 'expires_at'], unique=False)
    op.create_table('sso_held_sign_in',
    sa.Column('browser_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('identity_json', sa.Text(), nullable=False),
    sa.Column('access_token_enc', sa.Text(), nullable=False),
    sa.Column('refresh_token_enc', sa.Text(), nullable=True),
    sa.Column('expires_in', sa.Integer(), nullable=False),
    sa.Column('next_url', sa.String(length=2048), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('browser_hash', name=op.f('pk_sso_held_sign_in'))
    )
    with op.batch_alter_table('sso_held_sign_in', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sso_held_sign_in_expires_at'), ['expires_at'], unique=False)


def downgrade():
    op.drop_table('sso_held_sign_in')
    with op.batch_alter_table('sso_login_state', schema=None) as batch_op:
        batch_op.drop_index('ix_sso_login_state_client')
        batch_op.drop_column('reinitiated')
        batch_op.drop_column('client_hash')

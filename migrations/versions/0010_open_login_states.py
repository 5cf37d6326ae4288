"""the login caps count open login states along a partial index (used_at IS NULL) instead of
every state of the TTL; the per-client index it replaces no longer serves any query

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

OPEN = "used_at IS NULL"


def upgrade():
    # CONCURRENTLY on PostgreSQL: logins keep starting while the index builds.
    with op.get_context().autocommit_block():
        op.create_index('ix_sso_login_state_open', 'sso_login_state', ['expires_at'], unique=False,
                        postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN), postgresql_concurrently=True)
        op.drop_index('ix_sso_login_state_client', table_name='sso_login_state', postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.create_index('ix_sso_login_state_client', 'sso_login_state', ['client_hash', 'expires_at'], unique=False,
                        postgresql_concurrently=True)
        op.drop_index('ix_sso_login_state_open', table_name='sso_login_state', postgresql_concurrently=True)

"""an app's nonce is checked for reuse along an index: /oidc/authorize read every code of the
retention period (a day and the code lifetime) for each authorization request with a nonce

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 15:00:00

"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index('ix_oidc_authorization_code_nonce', 'oidc_authorization_code', ['client_id', 'nonce'],
                        unique=False, postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index('ix_oidc_authorization_code_nonce', table_name='oidc_authorization_code',
                      postgresql_concurrently=True)

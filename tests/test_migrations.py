"""The migrations build exactly the schema the models describe, on both databases: a model change
without its migration (or a chain that skips one) fails here, not in a deployment."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from extensions import db, migrate


def test_one_chain_of_migrations(app):
    with app.app_context():
        script = ScriptDirectory.from_config(migrate.get_config())
        assert len(script.get_heads()) == 1, script.get_heads()


# SQLite cannot reflect expression indexes (lower(tenant_code)); PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_the_migrated_schema_is_the_models_schema(app):
    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []

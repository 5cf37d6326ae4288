"""The migrations build exactly the schema the models describe, on both databases: a model change
without its migration (or a chain that skips one) fails here, not in a deployment."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from extensions import MIGRATIONS, db
from ops.health import code_heads


def test_one_chain_of_migrations():
    heads = ScriptDirectory(MIGRATIONS).get_heads()
    assert len(heads) == 1, heads


def test_readyz_expects_the_heads_alembic_would_upgrade_to():
    assert code_heads(MIGRATIONS) == frozenset(ScriptDirectory(MIGRATIONS).get_heads())


_SCRIPT = """
revision{annotation} = {revision!r}
down_revision{annotation} = {down!r}
branch_labels = None
depends_on = None


def upgrade():
    pass
"""


def test_readyz_reads_branches_and_merges_as_alembic_does(tmp_path):
    # Two branches from 'a', one merged back with 'c' (a tuple of parents), the other left open.
    (tmp_path / "versions").mkdir()
    graph = {"a": None, "b": "a", "c": "a", "d": ("b", "c"), "e": "a", "f": "d"}
    for i, (revision, down) in enumerate(graph.items()):
        annotation = ": str" if i % 2 else ""
        (tmp_path / "versions" / f"{revision}_step.py").write_text(
            _SCRIPT.format(revision=revision, down=down, annotation=annotation), "utf-8")
    (tmp_path / "script.py.mako").write_text("", "utf-8")
    alembic_heads = frozenset(ScriptDirectory(str(tmp_path)).get_heads())
    assert alembic_heads == {"e", "f"}
    assert code_heads(str(tmp_path)) == alembic_heads


# SQLite cannot reflect expression indexes (lower(tenant_code)); PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:.*expression-based index")
def test_the_migrated_schema_is_the_models_schema(app):
    with app.app_context(), db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), db.metadata)
    assert diff == []

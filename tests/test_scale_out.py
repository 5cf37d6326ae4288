"""The scale-out path's fixed parts (docs/scale-out.md); tests/test_pgbouncer.py runs it live."""

from __future__ import annotations

import ast

import pytest

from app import create_app
from tests.servers import ROOT


def _config(base_config: dict, url: str) -> dict:
    """The tests' settings without their own DATABASE_PGBOUNCER, which would override the environment."""
    return {**{k: v for k, v in base_config.items() if k != "DATABASE_PGBOUNCER"}, "DATABASE_URL": url}


@pytest.mark.parametrize(("raw", "prepares"), [("true", False), ("1", False), ("false", True), ("False", True),
                                               ("0", True)])
def test_bridge_database_pgbouncer_turns_off_prepared_statements(monkeypatch, base_config, raw, prepares):
    monkeypatch.setenv("BRIDGE_DATABASE_PGBOUNCER", raw)
    app = create_app(_config(base_config, "postgresql+psycopg://bridge@pgbouncer.invalid:6432/bridge"))
    connect_args = app.config["SQLALCHEMY_ENGINE_OPTIONS"].get("connect_args", {})
    assert ("prepare_threshold" not in connect_args) is prepares
    if not prepares:
        assert connect_args["prepare_threshold"] is None  # psycopg 3: never prepare


def test_the_setting_is_ignored_on_sqlite(monkeypatch, base_config, tmp_path):
    monkeypatch.setenv("BRIDGE_DATABASE_PGBOUNCER", "true")
    app = create_app(_config(base_config, f"sqlite:///{tmp_path / 'b.sqlite'}"))
    assert app.config["SQLALCHEMY_ENGINE_OPTIONS"] == {"connect_args": {"timeout": 30}}


def _imported_modules(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_nothing_outside_tests_imports_tests():
    """The project rule: the product, bench/ and devtools/ never import tests/ (tests import them)."""
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT)
        if relative.parts[0] in ("tests", ".venv", "instance", "node_modules") or relative.parts[0].startswith("."):
            continue
        if any(name == "tests" or name.startswith("tests.") for name in _imported_modules(path)):
            offenders.append(str(relative))
    assert offenders == []

"""The missing RSA key is reported where it matters (a serving worker), and not by the command that
makes it."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

from app import create_app


def _gunicorn_hooks(monkeypatch, tmp_path):
    # The file sets PROMETHEUS_MULTIPROC_DIR when it is unset, which would switch this test
    # process's /metrics to multiprocess mode for every later test.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    spec = importlib.util.spec_from_file_location("bridge_gunicorn_conf", Path(__file__).parent.parent / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Worker:
    def __init__(self, wsgi):
        self.wsgi = wsgi


def test_keys_generate_does_not_warn_about_the_key_it_makes(base_config, tmp_path, caplog):
    key_file = tmp_path / "koogallery_rsa.pem"
    app = create_app({**base_config, "RSA_PRIVATE_KEY_FILE": str(key_file),
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite'}"})
    with caplog.at_level(logging.WARNING):
        result = app.test_cli_runner().invoke(args=["keys", "generate"])
    assert result.exit_code == 0, result.output
    assert key_file.exists()
    assert "rsa_private_key_missing" not in caplog.text + result.output


def test_a_serving_worker_warns_when_the_key_is_missing(base_config, tmp_path, caplog, monkeypatch):
    missing = tmp_path / "none.pem"
    app = create_app({**base_config, "RSA_PRIVATE_KEY_FILE": str(missing),
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite'}"})
    with caplog.at_level(logging.WARNING):
        _gunicorn_hooks(monkeypatch, tmp_path).post_worker_init(Worker(app))
    assert f"rsa_private_key_missing path={missing}" in caplog.text


def test_a_serving_worker_with_its_key_is_quiet_and_other_apps_are_ignored(base_config, tmp_path, caplog,
                                                                           monkeypatch):
    app = create_app({**base_config, "DATABASE_URL": f"sqlite:///{tmp_path / 'b.sqlite'}"})
    hooks = _gunicorn_hooks(monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING):
        hooks.post_worker_init(Worker(app))
        hooks.post_worker_init(Worker(object()))  # the simulator and the example app share the file
    assert "rsa_private_key_missing" not in caplog.text

"""`sso-bridge`: the installed command. `serve` and `migrate` for deployments; every other command is
the bridge's Flask CLI (`sso-bridge tenants list` is `flask --app app tenants list`)."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

import click
from flask.cli import FlaskGroup, NoAppException

APP_FACTORY = "app:create_app()"


def _create_app():
    from app import create_app
    from config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:
        # Flask prints a NoAppException as one message instead of a traceback.
        raise NoAppException(str(exc)) from None


def _gunicorn_config() -> str:
    """gunicorn.conf.py: beside this module in a checkout, under {prefix}/share/sso-bridge when
    installed; GUNICORN_CONFIG names another."""
    if os.environ.get("GUNICORN_CONFIG"):
        return os.environ["GUNICORN_CONFIG"]
    for candidate in (Path(__file__).with_name("gunicorn.conf.py"),
                      Path(sysconfig.get_path("data")) / "share" / "sso-bridge" / "gunicorn.conf.py"):
        if candidate.is_file():
            return str(candidate)
    raise click.ClickException("gunicorn.conf.py not found; set GUNICORN_CONFIG to its path")


class BridgeGroup(FlaskGroup):
    def list_commands(self, ctx):
        # Every group is registered below, so listing them needs no app (nor its settings):
        # `sso-bridge --help` works on a host that is not configured yet.
        self._load_plugin_commands()
        return sorted(self.commands)


cli = BridgeGroup(
    name="sso-bridge",
    create_app=_create_app,
    help="SSO Bridge for Huawei Cloud KooGallery joint-operation SaaS. Settings come from BRIDGE_* "
         "environment variables (and {instance}/config.py); see docs/operations.md.",
)


@cli.command("serve", with_appcontext=False, context_settings={"ignore_unknown_options": True,
                                                                "allow_extra_args": True})
@click.argument("gunicorn_args", nargs=-1, type=click.UNPROCESSED)
def serve(gunicorn_args):
    """Serve the bridge with gunicorn (gunicorn.conf.py; bind with GUNICORN_BIND or --bind).

    Extra arguments go to gunicorn: `sso-bridge serve --bind 0.0.0.0:8000 --workers 4`."""
    # exec: gunicorn becomes this process, so systemd and signals reach the master directly.
    args = [sys.executable, "-m", "gunicorn", "--config", _gunicorn_config(), *gunicorn_args, APP_FACTORY]
    os.execv(sys.executable, args)


@cli.command("migrate")
def migrate():
    """Create or upgrade the database schema (`flask db upgrade`); safe to repeat."""
    import flask_migrate

    flask_migrate.upgrade()


def _register_groups() -> None:
    """The bridge's command groups, known before any app loads: `sso-bridge keys --help` works
    with no settings at all. Each command loads the app itself (@with_appcontext)."""
    from flask_migrate.cli import db as db_cli

    from admin.cli import admin_cli
    from keys.cli import keys_cli
    from ops.maintenance import maintenance_cli
    from sso.oidc.cli import apps_cli
    from tenants.cli import sync_cli, tenants_cli, users_cli

    for group in (tenants_cli, users_cli, sync_cli, keys_cli, apps_cli, admin_cli, maintenance_cli):
        cli.add_command(group)
    cli.add_command(db_cli, name="db")


_register_groups()


def main() -> None:
    cli.main(prog_name="sso-bridge")


if __name__ == "__main__":
    main()

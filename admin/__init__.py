"""The operator console at /admin: the vendor's staff see tenants, sync calls, sign-ins and apps,
and end sessions. Operators are local accounts (`flask admin create-user`)."""

from flask import Flask


def init_app(app: Flask) -> None:
    from admin import models  # noqa: F401  (registers the tables with the metadata)
    from admin.cli import admin_cli
    from admin.views import bp

    app.register_blueprint(bp)
    app.cli.add_command(admin_cli)

"""The marketplace side: KooGallery's signed sync calls (spec §2–§5, §7)."""

from flask import Flask


def init_app(app: Flask) -> None:
    from tenants import models  # noqa: F401  (registers the tables with the metadata)
    from tenants.cli import sync_cli, tenants_cli, users_cli
    from tenants.views import bp

    app.register_blueprint(bp, url_prefix=app.config["PRODUCE_PATH"])
    for group in (tenants_cli, users_cli, sync_cli):
        app.cli.add_command(group)

"""The OpenID Connect provider for the vendor's SaaS apps."""

from flask import Flask, g, has_request_context


def init_app(app: Flask) -> None:
    from extensions import csrf
    from sso.oidc import models  # noqa: F401  (models register their tables)
    from sso.oidc.backchannel import Deliverer
    from sso.oidc.cli import apps_cli
    from sso.oidc.server import init_server
    from sso.oidc.views import bp
    from sso.sessions import sessions_ended

    init_server(app)
    app.register_blueprint(bp)
    csrf.exempt(bp)  # token/userinfo are called by apps; logout checks its own form's token
    app.cli.add_command(apps_cli)

    deliverer = Deliverer(app) if app.config["OIDC_BACKCHANNEL_DELIVERY"] == "thread" else None
    app.extensions["backchannel_deliverer"] = deliverer

    @app.after_request
    def wake_deliverer(response):
        if g.get("backchannel_queued") and deliverer is not None:
            deliverer.notify()
        return response

    sessions_ended.connect(_queue_logouts)  # one connection per receiver, however many apps


def _queue_logouts(_sender, id_hashes, reason):
    from sso.oidc.backchannel import on_sessions_ended

    if on_sessions_ended(id_hashes) and has_request_context():
        g.backchannel_queued = True

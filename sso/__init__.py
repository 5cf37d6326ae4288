"""The browser side: login through each tenant's authentication centre, sessions, logout."""

from flask import Flask

from sso.auth_centre import AuthCentreClient


def init_app(app: Flask) -> None:
    from sso import i18n, models  # noqa: F401  (models register their tables)
    from sso.sessions import end_sessions
    from sso.views import bp
    from tenants.signals import access_revoked

    app.extensions["auth_centre_client"] = AuthCentreClient(
        app.config["IDP_CONNECT_TIMEOUT"], app.config["IDP_READ_TIMEOUT"], app.config["IDP_POOL_SIZE"],
        allow_private=app.config["ALLOW_INSECURE_IDP"])
    i18n.init_app(app)
    app.register_blueprint(bp)

    from sso import oidc

    oidc.init_app(app)

    if not getattr(access_revoked, "_sso_connected", False):
        # Revocations from KooGallery end the affected sessions in the sync call's transaction.
        access_revoked.connect(lambda _sender, tenant_id, user_names, reason: end_sessions(tenant_id, user_names, reason),
                               weak=False)
        access_revoked._sso_connected = True

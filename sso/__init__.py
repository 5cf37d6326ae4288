"""The browser side: login through each tenant's authentication centre, sessions, logout."""

from flask import Flask

from config import ConfigError
from sso.auth_centre import AuthCentreClient


def init_app(app: Flask) -> None:
    from sso import i18n, models, ratelimit  # noqa: F401  (models register their tables)
    from sso.views import bp
    from sso.web import no_store_if_personal, rate_limit_login_routes
    from tenants.signals import access_changed, centre_moved

    cfg = app.config
    try:
        app.extensions["auth_centre_client"] = AuthCentreClient(
            float(cfg["IDP_CONNECT_TIMEOUT"]), float(cfg["IDP_READ_TIMEOUT"]), int(cfg["IDP_POOL_SIZE"]),
            allow_private=cfg["ALLOW_INSECURE_IDP"], total_timeout=float(cfg["IDP_TOTAL_TIMEOUT"]),
            max_response_bytes=int(cfg["IDP_MAX_RESPONSE_BYTES"]),
            max_concurrent_per_tenant=int(cfg["IDP_MAX_CONCURRENT_PER_TENANT"]),
            circuit_failures=int(cfg["IDP_CIRCUIT_FAILURES"]),
            circuit_cooldown=float(cfg["IDP_CIRCUIT_COOLDOWN_SECONDS"]),
            allowed_networks=cfg["IDP_ALLOWED_NETWORKS"])
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"BRIDGE_IDP_* outbound settings: {exc}") from None
    i18n.init_app(app)
    _init_branding(app)
    app.register_blueprint(bp)
    app.before_request(rate_limit_login_routes)  # only sso.login / login_form / callback are counted
    app.after_request(no_store_if_personal)  # pages and redirects that depended on the session

    from sso import oidc

    oidc.init_app(app)

    # Changes from KooGallery end the sessions admission now refuses, in the sync call's
    # transaction. Receivers are module-level functions: blinker keeps one connection per
    # receiver, however many apps are built (no flags needed).
    access_changed.connect(_on_access_changed)
    centre_moved.connect(_on_centre_moved)


def _init_branding(app: Flask) -> None:
    from flask_babel import gettext

    from sso.branding import branding_from, logo_problem

    problem = logo_problem(app.config, app.instance_path)
    if problem:
        raise ConfigError(f"SSO Bridge cannot start:\n  - {problem}")
    brand = branding_from(app.config)
    app.extensions["branding"] = brand

    @app.context_processor
    def branding_for_templates():
        return {"branding": brand, "site_name": brand.app_name or gettext("app_name")}


def _on_access_changed(_sender, tenant_id, user_names, reason):
    from sso.sessions import end_sessions

    end_sessions(tenant_id, user_names, reason, only_refused=True)


def _on_centre_moved(_sender, tenant_id):
    from sso.sessions import end_pending_logins

    end_pending_logins(tenant_id)

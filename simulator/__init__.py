"""KooGallery and the tenants' authentication centres, simulated on one local server.

Serve with `flask --app simulator run -p 5001` or `gunicorn 'simulator:create_app()'`; drive it
with `flask --app simulator sim ...`. It imports nothing from the bridge: like KooGallery, it
talks to the bridge only over HTTP. Settings come from SIM_* environment variables."""

from __future__ import annotations

import logging
import os

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

DEFAULTS = {
    # Where the simulator is reached; each tenant's domainName is {PUBLIC_URL}/t/<tenantCode>.
    "PUBLIC_URL": "http://127.0.0.1:5001",
    # The demo world (simulator/seed.json when unset) and the run-time state file
    # (instance/simulator.sqlite when unset).
    "SEED_FILE": None,
    "STATE_DB": None,
    # The app's registered login address (应用登录地址): where portal and workbench send ?code&tenant.
    "APP_LOGIN_URL": "http://127.0.0.1:5000/sso/callback",
    # The bridge: sync calls go to {BRIDGE_URL}{PRODUCE_PATH}; its own redirect_uris are accepted.
    "BRIDGE_URL": "http://127.0.0.1:5000",
    "PRODUCE_PATH": "/produce",
    # The accessKeys bound to the kit and basic interfaces, and the public key applicationSync
    # encrypts clientSecret with (base64 SPKI on one line, or a file holding it or a PEM key).
    "KIT_ACCESS_KEY": None,
    "BASIC_ACCESS_KEY": None,
    "BRIDGE_PUBLIC_KEY": None,
    "BRIDGE_PUBLIC_KEY_FILE": None,
    # The app credential's appId; the seed's when unset.
    "APP_ID": None,
    # A simulator, not a product: a fixed development key signs its own cookies.
    "SECRET_KEY": "koogallery-simulator-development-key",
    "CODE_TTL_SECONDS": 300,
    "ACCESS_TOKEN_TTL_SECONDS": 7200,
    "REFRESH_TOKEN_TTL_SECONDS": 30 * 86400,
    "SIGN_IN_TTL_SECONDS": 8 * 3600,
    "SYNC_TIMEOUT_SECONDS": 15,
    "LOG_LEVEL": "INFO",
    # Same host as the bridge (cookies ignore ports): never share its cookie names.
    "SESSION_COOKIE_NAME": "kgsim_session",
    "SESSION_COOKIE_SAMESITE": "Lax",
    "MAX_CONTENT_LENGTH": 1024 * 1024,
}
# Read from the environment as given: from_prefixed_env would turn an all-digit key into a number.
VERBATIM = ("PUBLIC_URL", "SEED_FILE", "STATE_DB", "APP_LOGIN_URL", "BRIDGE_URL", "PRODUCE_PATH", "KIT_ACCESS_KEY",
            "BASIC_ACCESS_KEY", "BRIDGE_PUBLIC_KEY", "BRIDGE_PUBLIC_KEY_FILE", "APP_ID", "SECRET_KEY")


def create_app(test_config: dict | None = None) -> Flask:
    # No static folder: every page carries its own CSS, nothing external.
    app = Flask(__name__, instance_relative_config=True, static_folder=None)
    load_config(app, test_config)
    configure_logging(app)
    register_services(app)
    register_blueprints(app)
    register_page_context(app)
    register_errorhandlers(app)
    register_commands(app)
    return app


def load_config(app: Flask, test_config: dict | None) -> None:
    """Defaults → instance/simulator.py (written by `make run`; another file with SIM_CONFIG_FILE,
    none with SIM_CONFIG_FILE="") → SIM_* environment → the test mapping (which skips the file)."""
    app.config.update(DEFAULTS)
    config_file = os.environ.get("SIM_CONFIG_FILE", os.path.join(app.instance_path, "simulator.py"))
    if test_config is None and config_file:
        app.config.from_pyfile(config_file, silent="SIM_CONFIG_FILE" not in os.environ)
    app.config.from_prefixed_env("SIM")
    for name in VERBATIM:
        if os.environ.get(f"SIM_{name}") is not None:
            app.config[name] = os.environ[f"SIM_{name}"]
    if test_config:
        app.config.update(test_config)
    app.config["PUBLIC_URL"] = str(app.config["PUBLIC_URL"]).rstrip("/")
    app.config["PRODUCE_PATH"] = "/" + str(app.config["PRODUCE_PATH"]).strip("/")


def configure_logging(app: Flask) -> None:
    """One line per event (why a token was refused, which code went to whom); never a secret.
    Under gunicorn or `flask` nothing else sets up logging, so the simulator brings a handler."""
    logger = logging.getLogger("simulator")
    logger.setLevel(app.config["LOG_LEVEL"])
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        logger.addHandler(handler)


def register_services(app: Flask) -> None:
    from simulator.services import build_services

    app.extensions["simulator"] = build_services(app.config, app.instance_path)


def register_blueprints(app: Flask) -> None:
    from simulator import control, idp, portal

    for blueprint in (control.bp, portal.bp, idp.bp):
        app.register_blueprint(blueprint)


def register_page_context(app: Flask) -> None:
    from simulator import i18n, web
    from simulator.services import services

    i18n.init_app(app)

    # A url_value_preprocessor, not before_request: it runs before the blueprints' own (which may
    # already refuse the request with a translated message).
    @app.url_value_preprocessor
    def pick_language(_endpoint, _values):
        g.lang = web.choose_language()

    app.after_request(web.remember_language)

    @app.context_processor
    def page_helpers():
        return {"lang": g.get("lang", "zh"), "url_in_language": web.url_in_language,
                "csrf_token": web.csrf_token, "user_purpose": web.user_purpose,
                "app_id": services().directory.app_id}


def _wants_json() -> bool:
    """API callers get errors in their own format; browsers get a page."""
    path = request.path.rstrip("/")
    return path.endswith(("/api/v1/oauth2/token", "/api/v1/oauth2/userinfo")) or path.startswith("/_sim") \
        or path == "/healthz"


def register_errorhandlers(app: Flask) -> None:
    from flask import jsonify

    from simulator.i18n import N_
    from simulator.web import _, choose_language, render_page

    titles = {400: N_("error.bad_request"), 404: N_("error.not_found"), 405: N_("error.method"),
              413: N_("error.too_large")}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if "lang" not in g:  # no route matched, so no url_value_preprocessor ran
            g.lang = choose_language()
        if _wants_json():
            error = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(exc.code, "invalid_request")
            return jsonify(error=error, error_description=exc.description), exc.code
        detail = exc.description
        if exc.code == 404 and detail == type(exc).description:  # werkzeug's English default
            detail = _("error.not_found_detail")
        return render_page("error.html", exc.code, title=_(titles.get(exc.code, "error.bad_request")),
                           detail=detail, status=exc.code)

    @app.errorhandler(Exception)
    def unexpected_error(exc: Exception):
        app.logger.exception("unhandled_error path=%s", request.path)
        g.setdefault("lang", "zh")
        if _wants_json():
            return jsonify(error="server_error", error_description="The simulator could not complete this "
                                                                   "request."), 500
        return render_page("error.html", 500, title=_("error.server"), detail=_("error.server_detail"), status=500)


def register_commands(app: Flask) -> None:
    from simulator.cli import sim_cli

    app.cli.add_command(sim_cli)

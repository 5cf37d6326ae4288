"""Running the bridge: health and readiness, Prometheus metrics, JSON logs, housekeeping."""

from flask import Flask


def init_app(app: Flask) -> None:
    from ops.health import bp as health_bp
    from ops.maintenance import maintenance_cli
    from ops.metrics import bp as metrics_bp

    app.register_blueprint(health_bp)
    app.register_blueprint(metrics_bp)
    app.cli.add_command(maintenance_cli)

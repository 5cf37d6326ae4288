"""Prometheus metrics (the standard client). Under gunicorn every worker writes its samples to
PROMETHEUS_MULTIPROC_DIR (set up in gunicorn.conf.py) and /metrics adds them up; label values
are bounded (interfaces, result codes, reasons, authentication-centre hosts)."""

from __future__ import annotations

import hmac
import os

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

bp = Blueprint("metrics", __name__)

SYNC_CALLS = Counter("bridge_sync_calls_total", "KooGallery sync calls answered, by interface and resultCode",
                     ["interface", "result_code"])
LOGINS = Counter("bridge_logins_total", "Browser login outcomes (success, refused, logout) and refusal reasons",
                 ["outcome", "reason"])
AUTH_CENTRE_SECONDS = Histogram("bridge_auth_centre_request_seconds",
                                "Outbound calls to tenants' authentication centres",
                                ["host", "call", "outcome"],
                                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
# Circuit state is per worker process; "livemax" reports a host as open while any live worker has it open.
AUTH_CENTRE_CIRCUIT_OPEN = Gauge("bridge_auth_centre_circuit_open",
                                 "1 while calls to an authentication-centre host are suspended after repeated failures",
                                 ["host"], multiprocess_mode="livemax")
AUTH_CENTRE_CIRCUIT_OPENED = Counter("bridge_auth_centre_circuit_opened_total",
                                     "Times the circuit to an authentication-centre host opened", ["host"])
AUTH_CENTRE_REFUSED = Counter("bridge_auth_centre_calls_refused_total",
                              "Calls to authentication centres not made: busy (tenant's concurrency limit) or "
                              "circuit_open", ["host", "reason"])
OIDC_TOKENS = Counter("bridge_oidc_tokens_issued_total", "Tokens issued to SaaS apps, by grant type", ["grant_type"])


class ActiveSessions(Collector):
    """Read at scrape time from the database, so every process reports the same number."""

    def collect(self):
        from extensions import db
        from sso.models import UserSession
        from tenants.models import utcnow

        gauge = GaugeMetricFamily("bridge_active_sessions", "Browser sessions not ended and not expired")
        try:
            count = db.session.scalar(db.select(db.func.count()).select_from(UserSession).where(
                UserSession.ended_at.is_(None), UserSession.expires_at > utcnow()))
            gauge.add_metric([], count or 0)
        except Exception:  # the database being down must not break the scrape of everything else
            db.session.rollback()
        yield gauge


@bp.get("/metrics")
def metrics():
    token = current_app.config.get("METRICS_TOKEN")
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), str(token).encode()):
            return Response("unauthorized\n", status=401, mimetype="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    scrape = CollectorRegistry()
    scrape.register(ActiveSessions())
    body = generate_latest(registry) + generate_latest(scrape)
    return Response(body, mimetype=CONTENT_TYPE_LATEST)

"""/metrics: the samples of every process (the metric objects are in common.metrics), plus gauges
read from the database at scrape time."""

from __future__ import annotations

import hmac
import os
from datetime import timedelta

from flask import Blueprint, Response, current_app, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from common.clock import utcnow

bp = Blueprint("metrics", __name__)


class ActiveSessions(Collector):
    """Read at scrape time from the database, so every process reports the same number."""

    def collect(self):
        from extensions import db
        from sso.models import UserSession

        gauge = GaugeMetricFamily("bridge_active_sessions", "Browser sessions not ended and not expired")
        try:
            count = db.session.scalar(db.select(db.func.count()).select_from(UserSession).where(
                UserSession.ended_at.is_(None), UserSession.expires_at > utcnow()))
            gauge.add_metric([], count or 0)
        except Exception:  # the database being down must not break the scrape of everything else
            db.session.rollback()
        yield gauge


class LastDayActivity(Collector):
    """Sign-ins and sync calls of the last 24 hours, counted by the database at scrape time (the
    console's chart shows the same numbers): unlike the _total counters they survive restarts and
    are the same whichever process answers."""

    def collect(self):
        from extensions import db
        from ops import activity

        logins = GaugeMetricFamily("bridge_login_events_last_24h", "Login events of the last 24 hours by outcome "
                                   "and refusal reason", labels=["outcome", "reason"])
        syncs = GaugeMetricFamily("bridge_sync_calls_last_24h", "KooGallery sync calls of the last 24 hours by "
                                  "interface and resultCode", labels=["interface", "result_code"])
        since = utcnow() - timedelta(hours=24)
        try:
            for (outcome, reason), count in sorted(activity.login_counts(since).items()):
                logins.add_metric([outcome, reason], count)
            for (interface, code), count in sorted(activity.sync_counts(since).items()):
                syncs.add_metric([interface, code], count)
        except Exception:  # the database being down must not break the scrape of everything else
            db.session.rollback()
        yield logins
        yield syncs


class UnknownInstances(Collector):
    """Read at scrape time: what admission sees now (it clears when the newInstance arrives)."""

    def collect(self):
        from extensions import db
        from tenants import queries

        gauge = GaugeMetricFamily("bridge_tenant_orders_unknown_instance",
                                  "instanceIds that live tenants' kit syncs bound them to and that match no instance "
                                  "the bridge knows (no newInstance received); sign-ins fail closed (instance_unknown)")
        try:
            gauge.add_metric([], queries.orders_without_instance())
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
    elif not current_app.config.get("METRICS_PUBLIC"):
        # Metrics say who calls and how often: closed unless the operator chose otherwise.
        return Response("unauthorized: set BRIDGE_METRICS_TOKEN (scrape with Authorization: Bearer <token>) "
                        "or BRIDGE_METRICS_PUBLIC=true\n", status=401, mimetype="text/plain")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    scrape = CollectorRegistry()
    scrape.register(ActiveSessions())
    scrape.register(LastDayActivity())
    scrape.register(UnknownInstances())
    body = generate_latest(registry) + generate_latest(scrape)
    # content_type, not mimetype: Werkzeug appends "; charset=utf-8" to a mimetype, and
    # CONTENT_TYPE_LATEST already names the charset (two charsets confuse strict scrapers).
    return Response(body, content_type=CONTENT_TYPE_LATEST)

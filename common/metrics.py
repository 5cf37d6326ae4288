"""The Prometheus metric objects every package records to (the standard client). Under gunicorn
each worker writes its samples to PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py) and /metrics (ops)
adds them up; label values are bounded (interfaces, result codes, reasons, centre hosts)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SYNC_CALLS = Counter("bridge_sync_calls_total", "KooGallery sync calls answered, by interface and resultCode",
                     ["interface", "result_code"])
LOGINS = Counter("bridge_logins_total", "Browser login outcomes (success, refused, logout) and refusal reasons",
                 ["outcome", "reason"])
AUTH_CENTRE_SECONDS = Histogram("bridge_auth_centre_request_seconds",
                                "Outbound calls to tenants' authentication centres",
                                ["host", "call", "outcome"],
                                buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
OIDC_TOKENS = Counter("bridge_oidc_tokens_issued_total", "Tokens issued to SaaS apps, by grant type", ["grant_type"])

"""The Prometheus metric objects every package records to (the standard client). Under gunicorn
each worker writes its samples to PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py) and /metrics (ops)
adds them up; label values are bounded (interfaces, result codes, reasons, centre hosts)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SYNC_CALLS = Counter("bridge_sync_calls_total", "KooGallery sync calls answered, by interface and resultCode",
                     ["interface", "result_code"])
KIT_UNKNOWN_INSTANCE = Counter("bridge_kit_calls_unknown_instance_total",
                               "Production kit sync calls applied whose instanceId matches no instance the bridge "
                               "knows (no newInstance received)", ["interface"])
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

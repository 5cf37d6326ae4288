"""gunicorn settings for the bridge: `gunicorn 'app:create_app()'` picks this file up."""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
# Login requests mostly wait on the tenant's authentication centre: threads keep a worker busy.
workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
worker_class = "gthread"
# KooGallery gives up after 5-20 s; nothing of ours should take longer than this.
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = "-"
# Path only: query strings (OAuth codes, states) never reach the access log.
access_log_format = '%(h)s "%(m)s %(U)s" %(s)s %(b)s %(L)ss req=%({x-request-id}o)s'

# gunicorn 25+ opens a control socket for `gunicornc` at one path per user ($XDG_RUNTIME_DIR or
# ~/.gunicorn/gunicorn.ctl), so every master on a host would claim the same one. Off unless
# GUNICORN_CONTROL_SOCKET gives this server a path of its own.
if os.environ.get("GUNICORN_CONTROL_SOCKET"):
    control_socket = os.environ["GUNICORN_CONTROL_SOCKET"]
else:
    control_socket_disable = True

# Prometheus multiprocess mode: every worker writes its samples here; /metrics adds them up.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    import tempfile

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bridge-metrics-")


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def post_worker_init(worker):
    from keys import warn_if_key_missing

    warn_if_key_missing(worker.wsgi)

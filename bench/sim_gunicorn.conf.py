"""gunicorn settings for the simulator in the benchmark (a test tool: no access log)."""

worker_class = "gthread"
timeout = 60
graceful_timeout = 10
keepalive = 5
accesslog = None

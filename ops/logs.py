"""JSON logs: one event a line, with the request id, to stdout (where gunicorn and any container
runtime collect them). Messages are `event key=value` strings written to carry no secrets; the
leak test (tests/test_live_ops.py) plants marker secrets and scans the logs of a full run."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from flask import g, has_request_context

NOISY_LIBRARIES = ("authlib", "urllib3", "requests", "werkzeug")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": g.get("request_id") if has_request_context() else None,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            # Exception type and traceback lines for operators; values of locals are never logged.
            event["exc"] = self.formatException(record.exc_info)
        # A lone surrogate from hostile input has no UTF-8 form: written as its JSON escape, so the
        # line stays valid JSON and the stream never fails to encode it.
        return json.dumps(event, ensure_ascii=False).encode("utf-8", "backslashreplace").decode("utf-8")


def configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level)
    # Libraries whose DEBUG lines carry tokens or request details (Authlib logs issued tokens):
    # never below INFO, whatever the bridge's own level.
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, logging.getLevelName(level)
                                             if isinstance(level, str) else level))

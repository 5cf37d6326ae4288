"""`make run`: serve the bridge with gunicorn on 127.0.0.1:5000 and say what to open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

BRIDGE = "127.0.0.1:5000"


def main() -> int:
    from app import create_app

    app = create_app()
    produce = app.config["PRODUCE_PATH"]
    print(f"""
SSO Bridge on http://{BRIDGE}
  production address (basic interfaces): http://{BRIDGE}{produce}
  kit interfaces:                        http://{BRIDGE}{produce}/produceAPI/v2/<tenantSync|applicationSync|authSync|singleOrgSync|allOrgSync>
  local secrets and access keys:         instance/config.py
  what is stored:                        .venv/bin/flask tenants list
Ctrl-C stops it.
""", flush=True)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "--bind", BRIDGE,
                               "--workers", "1", "app:create_app()"], env=os.environ.copy())
    try:
        return server.wait()
    except KeyboardInterrupt:
        server.send_signal(signal.SIGTERM)
        return server.wait()


if __name__ == "__main__":
    sys.exit(main())

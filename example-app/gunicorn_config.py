"""gunicorn settings for string-service, read from the environment so one file serves every deployment.

HOST and PORT set the bind address (0.0.0.0:8080 by default), WEB_CONCURRENCY the number of worker processes
(default 2), GRACEFUL_TIMEOUT the seconds workers get to finish requests on shutdown (default 30). Workers are
uvicorn's ASGI workers from the ``uvicorn-worker`` package. Access log to stdout, error log to stderr.
"""

import os

bind = f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8080')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "30"))
timeout = int(os.environ.get("TIMEOUT", "60"))
keepalive = 5

accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")

# gunicorn 25.1+ opens a control socket under $HOME/.gunicorn for `gunicornc`; this service does not use it, and
# it would fail in a container with a read-only file system.
control_socket_disable = True

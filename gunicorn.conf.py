"""gunicorn settings for the admin (`make serve`, the Dockerfile). Every value can come from the environment.

Uploads go up to 512 MB: at a slow 2 MB/s that is ~4 minutes of request body, so the worker timeout
is 300 s by default. The body is spooled to a temporary file (FILE_UPLOAD_MAX_MEMORY_SIZE), not kept in
memory, and the import itself runs on a Celery worker; only the upload is on the request.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", min(2 * multiprocessing.cpu_count() + 1, 8)))
threads = int(os.environ.get("GUNICORN_THREADS", "2"))
worker_class = "gthread"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "300"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "60"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# A worker is replaced after this many requests (jitter spreads the restarts): bounds slow leaks.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# The workers' heartbeat files: in memory (/dev/shm, gunicorn's advice for containers), not on a slow disk.
_SHM = "/dev/shm"  # noqa: S108 - gunicorn's heartbeat, not data
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", _SHM if os.path.isdir(_SHM) else None)
# X-Forwarded-* is believed from these addresses (the proxy); Django's own TRUSTED_PROXIES does the rest.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")

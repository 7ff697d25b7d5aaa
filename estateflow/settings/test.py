"""Test run: PostgreSQL and Redis, the production stack."""

import os

from .base import *  # noqa: F403
from .base import VAR_DIR, env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-only-not-secret-estateflow")
# DATABASES as in base: DATABASE_URL (`make test` sets it), else the usual local PostgreSQL.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Redis like production; a per-process key prefix keeps concurrent test runs apart.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("REDIS_URL", default="redis://127.0.0.1:6379/14"),
        "KEY_PREFIX": f"test-{os.getpid()}",
    }
}
# The only place tasks may run in-process: unit tests ask for it here; end-to-end tests start a
# real worker process (imports/tests/conftest.py) that runs with eager mode off.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
# Uploaded import files: shared by the test process and the worker processes it starts.
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "test-media"))

"""Production: every secret from the environment, HTTPS-only cookies, HSTS, and no silent fallbacks.

A missing DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, D1 target or R2 target stops the process at
start-up with ImproperlyConfigured naming the variables (never a local database, an in-process cache,
a local D1 file or a local R2 folder by accident). D1_TARGET=local / R2_TARGET=local are the explicit
opt-ins for the local stand-ins (a staging box, `make serve`, the deploy check).
"""

from django.core.exceptions import ImproperlyConfigured

from estateflow.database import postgres_database

from .base import *  # noqa: F403
from .base import MIDDLEWARE, STORAGES, env


def _missing(*names: str) -> list[str]:
    return [name for name in names if not env(name, default="").strip()]


def _require(missing: list[str], what: str, hint: str = "") -> None:
    if missing:
        raise ImproperlyConfigured(
            f"{what}: set {', '.join(missing)} (estateflow.settings.production has no local defaults)"
            + (f"; {hint}" if hint else "")
            + ". README, 'Running in production'."
        )


_require(_missing("DJANGO_SECRET_KEY"), "The secret key")
_require(_missing("DATABASE_URL"), "The database")
_require(_missing("CELERY_BROKER_URL"), "The Celery broker")
_require(_missing("REDIS_URL"), "The cache (login throttling is shared through it)")

D1_TARGET = env("D1_TARGET", default="cloudflare")
R2_TARGET = env("R2_TARGET", default="cloudflare")
for _name, _value in (("D1_TARGET", D1_TARGET), ("R2_TARGET", R2_TARGET)):
    if _value not in ("cloudflare", "local"):
        raise ImproperlyConfigured(f"{_name} must be 'cloudflare' or 'local', not {_value!r}.")
if D1_TARGET != "local":
    _require(
        _missing("D1_DATABASE_ID", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN"),
        "The D1 target",
        "or D1_TARGET=local for the local SQLite stand-in",
    )
if R2_TARGET != "local":
    _r2 = _missing("R2_ACCESS_KEY_ID", "R2_SECRET_ACCESS_KEY", "R2_PUBLIC_BASE_URL")
    if _missing("R2_ENDPOINT_URL") and _missing("R2_ACCOUNT_ID"):
        _r2.insert(0, "R2_ENDPOINT_URL (or R2_ACCOUNT_ID)")
    _require(_r2, "The R2 target", "or R2_TARGET=local for the local folder stand-in")

DEBUG = False
SECRET_KEY = env("DJANGO_SECRET_KEY")
DATABASES = {
    "default": postgres_database(env("DATABASE_URL"), conn_max_age=env.int("CONN_MAX_AGE", default=0)),
}
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
REDIS_URL = env("REDIS_URL")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # A dead Redis fails a request (or /readyz) in seconds instead of hanging a worker.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
    }
}
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["backoffice.estateflow.example"])

# Static files: collectstatic into STATIC_ROOT (base), served by whitenoise with hashed, compressed names.
MIDDLEWARE = [
    MIDDLEWARE[0],  # SecurityMiddleware first, whitenoise right after it
    "whitenoise.middleware.WhiteNoiseMiddleware",
    *MIDDLEWARE[1:],
]
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# The probes answer over plain HTTP inside the container network / from the load balancer.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

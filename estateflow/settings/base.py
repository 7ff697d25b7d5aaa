"""Settings shared by every environment; every deploy-specific value comes from the environment."""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from estateflow.database import postgres_database
from estateflow.logging import sentry_init

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

DJANGO_APPS = [
    "estateflow.apps.EstateFlowAdminConfig",  # django.contrib.admin with our AdminSite
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "import_export",
]
LOCAL_APPS = [
    "industries",
    "agents",
    "imports",
    "sync",
    "assets",
    "accounts",
    "exports",
]
# Ours before third-party apps: a project command of the same name wins (imports/ replaces
# django-import-export's `import` and `export`, which would bypass the import pipeline).
INSTALLED_APPS = DJANGO_APPS + LOCAL_APPS + THIRD_PARTY_APPS

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "estateflow.urls"
WSGI_APPLICATION = "estateflow.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# PostgreSQL only (estateflow.database refuses any other URL). Unset, DATABASE_URL means the
# usual local server; `make run`, `make test` and `make worker` always set it (estateflow.services_local).
LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/estateflow"
DATABASES = {
    "default": postgres_database(
        env("DATABASE_URL", default=LOCAL_DATABASE_URL), conn_max_age=env.int("CONN_MAX_AGE", default=0)
    ),
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media"))

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Uploads, staged import files, ZIP members and agent photos (estateflow.storage): MEDIA_ROOT on one
    # host; a private bucket every worker host reaches when IMPORT_STORAGE_BUCKET is set.
    "imports": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
}
# Uploads larger than this stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
IMPORT_STORAGE_BUCKET = env("IMPORT_STORAGE_BUCKET", default="")
IMPORT_STORAGE_ENDPOINT_URL = env("IMPORT_STORAGE_ENDPOINT_URL", default="")  # "" = AWS S3
IMPORT_STORAGE_ACCESS_KEY_ID = env("IMPORT_STORAGE_ACCESS_KEY_ID", default="")
IMPORT_STORAGE_SECRET_ACCESS_KEY = env("IMPORT_STORAGE_SECRET_ACCESS_KEY", default="")
IMPORT_STORAGE_REGION = env("IMPORT_STORAGE_REGION", default="")


def imports_bucket_storage(
    *, bucket: str, endpoint_url: str, access_key: str, secret_key: str, region: str
) -> dict:
    """STORAGES["imports"] for a private S3-compatible bucket (also what the two-host test uses)."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "region_name": region or None,
            "default_acl": "private",
            "querystring_auth": True,  # admin links to a photo are signed and expire
            "file_overwrite": False,  # a second save under a taken name gets a new name, as on disk
            # A file opened for reading (planning reads a whole upload) spools to disk past this, not
            # to memory: the storage's default keeps all 512 MB in RAM.
            "max_memory_size": FILE_UPLOAD_MAX_MEMORY_SIZE,
        },
    }


if IMPORT_STORAGE_BUCKET:
    STORAGES["imports"] = imports_bucket_storage(
        bucket=IMPORT_STORAGE_BUCKET,
        endpoint_url=IMPORT_STORAGE_ENDPOINT_URL,
        access_key=IMPORT_STORAGE_ACCESS_KEY_ID,
        secret_key=IMPORT_STORAGE_SECRET_ACCESS_KEY,
        region=IMPORT_STORAGE_REGION,
    )

# --- Cache (login throttling, dashboard figures) -------------------------------
# Redis when REDIS_URL is set (production, tests); a per-process memory cache otherwise.
REDIS_URL = env("REDIS_URL", default="")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}
# Admin login (accounts.throttle): this many failed attempts for one username from one address lock
# that username from that address, and LOGIN_THROTTLE_IP_FAILURES across usernames lock the address,
# both for LOGIN_THROTTLE_LOCK_SECONDS.
LOGIN_THROTTLE_FAILURES = env.int("LOGIN_THROTTLE_FAILURES", default=5)
LOGIN_THROTTLE_IP_FAILURES = env.int("LOGIN_THROTTLE_IP_FAILURES", default=30)
LOGIN_THROTTLE_LOCK_SECONDS = env.int("LOGIN_THROTTLE_LOCK_SECONDS", default=15 * 60)
# Reverse proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed. Empty: the client
# address is REMOTE_ADDR. Behind a proxy, list it here, or every login shares the proxy's address.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])

# --- Celery -----------------------------------------------------------------
# Tasks always go through a broker (imports, syncs and rollbacks are built for real workers); only
# the test settings run them in-process. Unset means the usual local Redis, like DATABASE_URL.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default="")
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_DEFAULT_QUEUE = "default"
# Import chunks take seconds; the visibility timeout must stay above the
# longest chunk or Redis redelivers a chunk that is still running.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Every beat (`celery beat`, `worker -B`) also sends the D1 and R2 schedules staff control in the admin
# (sync.Schedule); `-s FILE` still keeps the fixed entries' state.
CELERY_BEAT_SCHEDULER = "sync.scheduler:OperatorScheduler"

# --- Imports ------------------------------------------------------------------
# A chunk over this many seconds is stopped and the job marked failed (never left running).
IMPORT_CHUNK_SOFT_TIME_LIMIT = env.int("IMPORT_CHUNK_SOFT_TIME_LIMIT", default=600)
# Transient chunk failures retry after base * 2**attempt seconds (capped at 30 s).
IMPORT_RETRY_BASE_DELAY = env.float("IMPORT_RETRY_BASE_DELAY", default=1.0)
# What one import may hold in memory or time (README "Import limits"). They keep a planner
# and a chunk worker under ~300 MB whatever the (≤ 512 MB) upload holds; past them a row
# becomes a row error, or the file is refused with a message naming the limit.
IMPORT_MAX_ROW_BYTES = env.int(
    "IMPORT_MAX_ROW_BYTES", default=1024 * 1024
)  # one record (D1 rows stop at 2 MB)
IMPORT_MAX_COLUMNS = env.int("IMPORT_MAX_COLUMNS", default=500)  # fields of one record, header included
IMPORT_CHUNK_MAX_BYTES = env.int(
    "IMPORT_CHUNK_MAX_BYTES", default=8 * 1024 * 1024
)  # a chunk ends at this size
IMPORT_XLSX_MAX_SHARED_STRINGS = env.int("IMPORT_XLSX_MAX_SHARED_STRINGS", default=4_000_000)
IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES = env.int(
    "IMPORT_XLSX_MAX_SHARED_STRINGS_BYTES", default=64 * 1024 * 1024
)
IMPORT_JSON_MAX_KEYS = env.int("IMPORT_JSON_MAX_KEYS", default=500)  # keys of one JSON object
IMPORT_JSON_MAX_DEPTH = env.int("IMPORT_JSON_MAX_DEPTH", default=32)  # nesting of one JSON value
IMPORT_PLAN_TIME_LIMIT = env.int("IMPORT_PLAN_TIME_LIMIT", default=1800)  # seconds to read and plan a file

# --- Exports --------------------------------------------------------------------
# An agent export of at most this many rows is written in the request; a larger one runs as a
# chunked job on the workers (exports/), whose file is then downloaded from the job page.
EXPORT_DIRECT_MAX_ROWS = env.int("EXPORT_DIRECT_MAX_ROWS", default=5000)
# An export's file is deleted this many days after the export finished (hourly sweep, exports.apps).
EXPORT_RETENTION_DAYS = env.int("EXPORT_RETENTION_DAYS", default=7)

# --- Cloudflare D1 (sync app) ----------------------------------------------
# With D1_DATABASE_ID set the sync talks to Cloudflare's REST API; without
# it, a local SQLite file stands in for D1 so a local run syncs with no account.
# Production refuses to start without the three Cloudflare variables unless D1_TARGET=local
# (the explicit opt-in for the SQLite stand-in); R2_TARGET=local does the same for the R2 folder.
D1_TARGET = env("D1_TARGET", default="")  # "" (D1 when D1_DATABASE_ID is set) | "cloudflare" | "local"
R2_TARGET = env("R2_TARGET", default="")  # "" (R2 when R2_ENDPOINT_URL is set) | "cloudflare" | "local"
D1_DATABASE_ID = env("D1_DATABASE_ID", default="")
CLOUDFLARE_ACCOUNT_ID = env("CLOUDFLARE_ACCOUNT_ID", default="")
CLOUDFLARE_API_TOKEN = env("CLOUDFLARE_API_TOKEN", default="")
CLOUDFLARE_BASE_URL = env("CLOUDFLARE_BASE_URL", default="https://api.cloudflare.com/client/v4")
D1_LOCAL_PATH = env("D1_LOCAL_PATH", default=str(VAR_DIR / "d1-local.sqlite3"))
SYNC_D1_INTERVAL_SECONDS = env.int("SYNC_D1_INTERVAL_SECONDS", default=300)
# A sync that deletes more D1 agents than this takes a Time Travel bookmark first (pruning always does).
SYNC_D1_BOOKMARK_DELETES = env.int("SYNC_D1_BOOKMARK_DELETES", default=1000)
# HTTP requests (retries included) one sync or verification may send before it stops with an
# error: a 500,000-agent full sync needs about 1,000, so hitting this means a storm, not work.
SYNC_D1_MAX_REQUESTS_PER_RUN = env.int("SYNC_D1_MAX_REQUESTS_PER_RUN", default=50_000)

# --- Cloudflare R2 (assets app) ---------------------------------------------
R2_ACCOUNT_ID = env("R2_ACCOUNT_ID", default="")
R2_ENDPOINT_URL = env(
    "R2_ENDPOINT_URL",
    default=f"https://{R2_ACCOUNT_ID}.r2.cloudflarestorage.com" if R2_ACCOUNT_ID else "",
)
R2_ACCESS_KEY_ID = env("R2_ACCESS_KEY_ID", default="")
R2_SECRET_ACCESS_KEY = env("R2_SECRET_ACCESS_KEY", default="")
R2_BUCKET = env("R2_BUCKET", default="estateflow-assets")
# Without an endpoint a local folder stands in for the bucket (served under /assets/ in DEBUG).
R2_LOCAL_PATH = env("R2_LOCAL_PATH", default=str(VAR_DIR / "r2-local"))
R2_PUBLIC_BASE_URL = env("R2_PUBLIC_BASE_URL", default="http://127.0.0.1:8000/assets")
# The explicit opt-in for the local stand-ins wins over any Cloudflare variable left in the environment.
if D1_TARGET == "local":
    D1_DATABASE_ID = ""
if R2_TARGET == "local":
    R2_ENDPOINT_URL = ""
if (
    IMPORT_STORAGE_BUCKET
    and IMPORT_STORAGE_BUCKET == R2_BUCKET
    and IMPORT_STORAGE_ENDPOINT_URL == R2_ENDPOINT_URL
):
    # Uploaded files hold emails and phones; the assets bucket is served to the public.
    raise ImproperlyConfigured(
        f"IMPORT_STORAGE_BUCKET is the public assets bucket ({R2_BUCKET}); give imports a private bucket."
    )

# --- django-import-export -----------------------------------------------------
IMPORT_EXPORT_SKIP_ADMIN_LOG = True
# Import and export need their own permissions (agents.import_agent / agents.export_agent).
IMPORT_EXPORT_IMPORT_PERMISSION_CODE = "import"
IMPORT_EXPORT_EXPORT_PERMISSION_CODE = "export"
# We escape every formula-leading character ourselves (agents.resources).
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False

# --- Health and observability -------------------------------------------------
# /readyz: each dependency gets this long; a D1 sync older than READYZ_MAX_SYNC_AGE_SECONDS (or
# none at all) is unready (0 leaves the sync age out).
READYZ_TIMEOUT_SECONDS = env.float("READYZ_TIMEOUT_SECONDS", default=1.0)
READYZ_MAX_SYNC_AGE_SECONDS = env.int("READYZ_MAX_SYNC_AGE_SECONDS", default=3 * SYNC_D1_INTERVAL_SECONDS)
# Errors to Sentry (Django + Celery integrations) only when SENTRY_DSN is set (estateflow.observability).
SENTRY_DSN = env("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env("SENTRY_ENVIRONMENT", default="production")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
# LOG_FORMAT=json: one JSON object a line (estateflow.logging.JsonFormatter), job/run ids included.
LOG_FORMAT = env("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "estateflow.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # One INFO line per D1 request otherwise.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

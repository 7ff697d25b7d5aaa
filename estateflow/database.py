"""DATABASES["default"] from DATABASE_URL: PostgreSQL is the only database EstateFlow runs on.

Imports (COPY, ON CONFLICT, advisory locks), the D1 change log (statement triggers, snapshots) and
the admin search (pg_trgm) are PostgreSQL features; there is no second code path for another engine.
"""

from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

POSTGRES_ENGINE = "django.db.backends.postgresql"


def postgres_database(url: str, *, conn_max_age: int = 0) -> dict:
    """Django's connection settings for `url`; ImproperlyConfigured unless it is a PostgreSQL URL."""
    scheme = urlsplit(url).scheme or "(none)"
    config = environ.Env.db_url_config(url) if "://" in url else {}
    if config.get("ENGINE") != POSTGRES_ENGINE:
        raise ImproperlyConfigured(
            f"DATABASE_URL must be a PostgreSQL URL (postgres://USER[:PASSWORD]@HOST:PORT/NAME); its "
            f"scheme is {scheme!r}. EstateFlow runs on PostgreSQL only: `make run` and `make test` find "
            "or start one (README, 'What each command uses')."
        )
    config["ATOMIC_REQUESTS"] = False
    config.setdefault("CONN_MAX_AGE", conn_max_age)
    return config

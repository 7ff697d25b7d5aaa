"""/healthz (the process answers) and /readyz (what serving and background work depend on).

No authentication and nothing secret in the bodies: check names, ok/failed and a short reason
(exception class, never a URL, host or password). Every check is bounded by READYZ_TIMEOUT_SECONDS.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.db import connections
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

READYZ_CACHE_KEY = "readyz:probe"


def _timeout() -> float:
    return float(getattr(settings, "READYZ_TIMEOUT_SECONDS", 1.0))


def check_database() -> dict:
    connection = connections["default"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def check_cache() -> dict:
    cache.set(READYZ_CACHE_KEY, "1", 10)
    if cache.get(READYZ_CACHE_KEY) != "1":
        raise RuntimeError("cache did not return what was written")
    return {}


def _broker_connection():
    from kombu import Connection

    return Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=_timeout(),
        transport_options={"socket_timeout": _timeout(), "socket_connect_timeout": _timeout()},
    )


def check_broker() -> dict:
    with _broker_connection() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=_timeout())
        conn.default_channel  # noqa: B018 - opening the channel talks to the server
    return {}


def workers_alive(*, timeout: float | None = None) -> list[str]:
    """Names of the Celery workers answering control.ping within `timeout` (the broker of the settings)."""
    from estateflow.celery import app

    with _broker_connection() as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=_timeout())
        replies = app.control.ping(timeout=timeout or _timeout(), connection=conn) or []
    return sorted(name for reply in replies for name in reply)


def check_workers() -> dict:
    names = workers_alive()
    if not names:
        raise RuntimeError("no worker answered control.ping")
    return {"count": len(names)}


def check_sync_age() -> dict:
    from sync.schedules import SYNC_D1
    from sync.selectors import schedules_list, sync_run_last_successful

    schedule = next(s for s in schedules_list() if s.key == SYNC_D1)
    if not schedule.enabled:
        # An operator paused the sync (admin, Schedules): a stale edge is their decision, not an outage
        # that should take this process out of a load balancer.
        return {"schedule": "paused"}
    limit = int(getattr(settings, "READYZ_MAX_SYNC_AGE_SECONDS", 0))
    if limit and schedule.interval_seconds:  # an operator's longer interval raises the limit with it
        limit = max(limit, 3 * schedule.interval_seconds)
    run = sync_run_last_successful()
    if run is None:
        if limit:
            raise RuntimeError("no successful D1 sync yet")
        return {"age_seconds": None}
    age = round((timezone.now() - run.started_at).total_seconds(), 1)
    if limit and age > limit:
        raise RuntimeError(f"last successful D1 sync is {age:.0f} s old (limit {limit} s)")
    return {"age_seconds": age, "max_age_seconds": limit or None}


# Dependencies first: the sync age needs the database, the worker ping the broker.
CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "workers": check_workers,
    "sync": check_sync_age,
}
DEPENDS_ON = {"workers": "broker", "sync": "database"}


def readiness() -> tuple[bool, dict]:
    results: dict[str, dict] = {}
    for name, check in CHECKS.items():
        needed = DEPENDS_ON.get(name)
        if needed and not results[needed]["ok"]:
            results[name] = {"ok": False, "error": f"{needed} unavailable"}
            continue
        started = time.monotonic()
        try:
            detail = check()
            results[name] = {"ok": True, **detail}
        except Exception as exc:  # any failure is "not ready", with its class (not its message: URLs)
            if name == "database":
                connections["default"].close_if_unusable_or_obsolete()
                connections["default"].close()
            error = str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__
            results[name] = {"ok": False, "error": error}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    return all(r["ok"] for r in results.values()), results


@never_cache
@require_GET
def healthz(request):
    """The process is up and answers: no database, cache or broker involved."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    ok, checks = readiness()
    return JsonResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503
    )

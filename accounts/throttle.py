"""Admin login throttling: after N failed logins for one username from one IP, lock it for a while.

Counters live in Django's cache (Redis in production and tests, LocMem on a
bare local run), keyed by a hash of the lower-cased username and the client
IP, so one attacker cannot lock a user out from everywhere and the cache
never holds a username in clear.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache


def _limit() -> int:
    return getattr(settings, "LOGIN_THROTTLE_FAILURES", 5)


def _lock_seconds() -> int:
    return getattr(settings, "LOGIN_THROTTLE_LOCK_SECONDS", 15 * 60)


def login_throttle_key(*, username: str, ip: str) -> str:
    digest = hashlib.sha256(f"{(username or '').strip().lower()}\x00{ip or ''}".encode()).hexdigest()
    return f"login-throttle:{digest[:40]}"


def client_ip(request) -> str:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted
    # proxy rewrites REMOTE_ADDR (configure that in the proxy / WSGI server).
    return (request.META.get("REMOTE_ADDR") or "") if request is not None else ""


def login_is_locked(key: str) -> bool:
    return cache.get(f"{key}:locked") is not None


def login_failure_record(key: str) -> int:
    """Count one failure; locks the key once the limit is reached. Returns the failures so far."""
    count_key = f"{key}:failures"
    cache.add(count_key, 0, timeout=_lock_seconds())
    try:
        failures = cache.incr(count_key)
    except ValueError:  # expired between add and incr
        cache.set(count_key, 1, timeout=_lock_seconds())
        failures = 1
    if failures >= _limit():
        cache.set(f"{key}:locked", 1, timeout=_lock_seconds())
        cache.delete(count_key)
    return failures


def login_throttle_reset(key: str) -> None:
    cache.delete_many([f"{key}:failures", f"{key}:locked"])


def lock_minutes() -> int:
    return max(1, _lock_seconds() // 60)

"""Admin login throttling, counted before the password is checked.

Two counters in Django's cache (Redis in production and tests, LocMem on a
bare local run), both keyed by hashes so the cache never holds a username
in clear:

* username + client address: LOGIN_THROTTLE_FAILURES attempts lock that
  username *from that address* only, so an attacker can never lock a user
  out of every address;
* client address alone: LOGIN_THROTTLE_IP_FAILURES attempts across all
  usernames lock the address (password spraying).

Each attempt takes a slot with an atomic INCR before the password hash is
evaluated; an attempt past a limit is refused unevaluated, so N parallel
guesses cost at most `limit` hash evaluations. A success gives its slots
back. The client address is REMOTE_ADDR unless REMOTE_ADDR is one of
TRUSTED_PROXIES, in which case X-Forwarded-For is read from the right.
Unlocking a user bumps a per-user generation that is part of the key, which
drops that user's counters for every address at once.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

PREFIX = "login-throttle"


def _limit() -> int:
    return getattr(settings, "LOGIN_THROTTLE_FAILURES", 5)


def _ip_limit() -> int:
    return getattr(settings, "LOGIN_THROTTLE_IP_FAILURES", 30)


def _lock_seconds() -> int:
    return getattr(settings, "LOGIN_THROTTLE_LOCK_SECONDS", 15 * 60)


def _digest(value: str, size: int = 40) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:size]


def _user_digest(username: str) -> str:
    return _digest((username or "").strip().lower())


# --- the client address -------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
    networks = _networks(tuple(getattr(settings, "TRUSTED_PROXIES", ()) or ()))
    return address is not None and any(address in net for net in networks)


def client_ip(request) -> str:
    """The address a login attempt comes from.

    X-Forwarded-For is client-controlled: it counts only when the direct
    peer is a trusted proxy, and then only up to the first hop no trusted
    proxy added (read from the right), so a forged left-hand entry is ignored.
    """
    if request is None:
        return ""
    remote = request.META.get("REMOTE_ADDR") or ""
    if not _trusted(_ip(remote)):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
    client = remote
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            break  # not written by a proxy we trust: stop at the last good hop
        client = str(address)
        if not _trusted(address):
            break
    return client


# --- counting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginAttempt:
    """The slots one attempt holds; given back when the password turns out right."""

    user_key: str
    ip_key: str


def _generation(username: str) -> int:
    return int(cache.get(f"{PREFIX}:gen:{_user_digest(username)}") or 0)


def _keys(*, username: str, ip: str) -> LoginAttempt:
    user = _user_digest(username)
    return LoginAttempt(
        user_key=f"{PREFIX}:user:{user}:{_generation(username)}:{_digest(ip or '', 24)}",
        ip_key=f"{PREFIX}:ip:{_digest(ip or '')}",
    )


def _take_slot(key: str, limit: int) -> bool:
    """Atomically count one attempt on `key`; False when it is past `limit` (the attempt is refused)."""
    cache.add(key, 0, timeout=_lock_seconds())
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.add(key, 0, timeout=_lock_seconds())
        used = cache.incr(key)
    if used in (1, limit):
        # 1: a key that expired between Django's existence check and INCR would have no TTL.
        # limit: the last allowed attempt; if it fails, the lock runs from now.
        cache.touch(key, _lock_seconds())
    return used <= limit


def _give_back(key: str) -> None:
    with contextlib.suppress(ValueError):  # expired meanwhile: nothing to give back
        cache.decr(key)


def login_is_locked(*, username: str, ip: str) -> bool:
    keys = _keys(username=username, ip=ip)
    counts = cache.get_many([keys.user_key, keys.ip_key])
    return counts.get(keys.user_key, 0) >= _limit() or counts.get(keys.ip_key, 0) >= _ip_limit()


def login_attempt_begin(*, username: str, ip: str) -> LoginAttempt | None:
    """Take a slot for one attempt before its password is checked; None: locked, do not check it.

    Every attempt counts as a failure until `login_attempt_succeeded` says
    otherwise, so concurrent guesses cannot all slip past the limit.
    """
    if login_is_locked(username=username, ip=ip):
        return None  # cheap early refusal; the INCRs below are what make the limit exact
    keys = _keys(username=username, ip=ip)
    if not _take_slot(keys.ip_key, _ip_limit()):
        return None
    if not _take_slot(keys.user_key, _limit()):
        _give_back(keys.ip_key)  # refused for this user only: not a guess against the address's budget
        return None
    return keys


def login_attempt_succeeded(attempt: LoginAttempt) -> None:
    """The right password: this user's failures from this address are forgotten, the address's slot returned."""
    cache.delete(attempt.user_key)
    _give_back(attempt.ip_key)


def login_unlock_user(*, username: str) -> None:
    """Lift every lock on `username`, from every address (the admin's "unlock" action)."""
    gen_key = f"{PREFIX}:gen:{_user_digest(username)}"
    cache.add(gen_key, 0, timeout=None)
    cache.incr(gen_key)


def login_throttle_reset(*, username: str, ip: str) -> None:
    """Forget the counters of one username and address."""
    keys = _keys(username=username, ip=ip)
    cache.delete_many([keys.user_key, keys.ip_key])


def lock_minutes() -> int:
    return max(1, _lock_seconds() // 60)

"""PostgreSQL session advisory locks: one writer at a time for D1 (the sync) and for R2 (the asset push)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from django.db import connection

# "EFD1": the advisory lock key shared by every D1 writer of this project.
SYNC_LOCK_KEY = 0x45464431

_held = threading.local()


@contextmanager
def advisory_lock(key: int) -> Iterator[bool]:
    """Yield True when this process holds the session advisory lock `key`, False when another one does.

    PostgreSQL advisory locks are re-entrant within a session, so work started
    in-process by code that already holds the lock (a pull's import finishing,
    in eager mode) would take it a second time and run alongside its caller.
    The thread-local guard tells that nested caller False, like any other
    second writer. Thread-local matches Django's one connection per thread.
    """
    keys: set[int] = _held.__dict__.setdefault("keys", set())
    if key in keys:
        yield False
        return
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cur.fetchone()[0])
    if acquired:
        keys.add(key)
    try:
        yield acquired
    finally:
        if acquired:
            keys.discard(key)
            with connection.cursor() as cur:
                cur.execute("SELECT pg_advisory_unlock(%s)", [key])


def sync_lock() -> AbstractContextManager[bool]:
    """The D1 writer lock: the sync, the repair of `d1_verify`, `d1_pull` and `benchmark_sync` take it."""
    return advisory_lock(SYNC_LOCK_KEY)

"""Restore points before a sync deletes D1 rows: D1 Time Travel bookmarks, or a file copy locally.

D1 keeps 30 days of history; a bookmark names a point in it.
`GET /accounts/{account}/d1/database/{db}/time_travel/bookmark` returns
`{"bookmark"}` and `POST …/time_travel/restore?bookmark=…` goes back to it.
The local SQLite stand-in is copied with SQLite's online backup instead.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from .d1_client import D1Client, D1Error, RestTransport, SqliteTransport


@dataclass(frozen=True)
class RestorePoint:
    bookmark: str
    restore_hint: str


def d1_restore_point_take(*, client: D1Client) -> RestorePoint:
    """Take a restore point of the whole D1 database now; raise D1Error when none can be had."""
    transport = client.transport
    if isinstance(transport, SqliteTransport):
        return _sqlite_copy(transport)
    if isinstance(transport, RestTransport):
        return _bookmark(transport)
    raise D1Error(f"no restore point for a {type(transport).__name__} target")


def _bookmark(transport: RestTransport) -> RestorePoint:
    url = f"{transport.url}/time_travel/bookmark"
    try:
        response = transport.http.get(url)
        data = response.json()
    except Exception as exc:  # any failure means: no restore point, so no delete
        raise D1Error(f"could not take a D1 Time Travel bookmark: {type(exc).__name__}") from exc
    bookmark = (data.get("result") or {}).get("bookmark") if isinstance(data, dict) else None
    if response.status_code != 200 or not bookmark:
        raise D1Error(f"could not take a D1 Time Travel bookmark (HTTP {response.status_code})")
    database = transport.url.rsplit("/", 1)[-1]
    hint = (
        f"POST {transport.url}/time_travel/restore?bookmark={bookmark} "
        f"(or: wrangler d1 time-travel restore {database} --bookmark={bookmark})"
    )
    return RestorePoint(bookmark, hint)


def _sqlite_copy(transport: SqliteTransport) -> RestorePoint:
    source = Path(transport.path)
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%fZ")
    copy = source.with_name(f"{source.stem}.restore-{stamp}{source.suffix}")
    target = sqlite3.connect(copy)
    try:
        transport.conn.backup(target)
    finally:
        target.close()
    return RestorePoint(str(copy), f"stop the app and copy {copy} over {source}")

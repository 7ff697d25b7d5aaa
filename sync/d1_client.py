"""D1 client: one SQL path over two transports (Cloudflare REST, or a local SQLite file).

Callers hand over `Statement`s; the client groups them into requests (each
request is one D1 transaction), retries what is retryable and counts
requests, bytes and statement sizes for SyncRun and the benchmark.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings

from .sqlite_sql import D1_MAX_PARAMS, D1_MAX_STATEMENT_BYTES, Statement

logger = logging.getLogger(__name__)

# A request carries several statements; D1 runs them as one transaction and
# must finish within 30 s, so requests stay far below that in bytes.
REQUEST_MAX_BYTES = 900_000
REQUEST_MAX_STATEMENTS = 50
# A run that needs more HTTP requests than this is misbehaving (a storm of splits or retries), not syncing.
MAX_REQUESTS_PER_RUN = 50_000
# Endpoint text kept in errors: enough to diagnose, too little to store a whole echoed request.
ERROR_TEXT_MAX_CHARS = 500


class D1Error(Exception):
    """Base class for D1 failures."""


class D1StatementError(D1Error):
    """D1 rejected a statement (HTTP 400, code 7500): retrying the same request cannot help."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class D1UnavailableError(D1Error):
    """Retries exhausted on 429, 5xx, timeouts or dropped connections."""


class D1ConfigError(D1Error):
    """The endpoint is not a D1 API we can talk to (wrong URL or id, credentials, a proxy's page).

    Every request would fail the same way, so it is raised at once: never
    retried, never split into smaller requests.
    """


class D1RequestBudgetExceeded(D1Error):
    """The client sent SYNC_D1_MAX_REQUESTS_PER_RUN requests; the run stops instead of storming on."""


_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',;]+")


def d1_error_text(error: object, *, secrets: Iterable[str] = (), limit: int = ERROR_TEXT_MAX_CHARS) -> str:
    """Error text safe to store or show: no API token, no `Bearer …` credential, at most `limit` chars.

    Every place that stores a D1 error (SyncRun.error and .failures,
    VerifyRun.error) goes through this: endpoints echo requests back, and
    an echoed Authorization header must not land in the database or the admin.
    """
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    for secret in (*secrets, getattr(settings, "CLOUDFLARE_API_TOKEN", "")):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    text = _BEARER.sub("Bearer [redacted]", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def url_without_secrets(url: str) -> str:
    """The URL without user info, query or fragment (what an error message may name)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


# What a 400 names when D1 refused the SQL itself (as opposed to the request or the route).
_SQL_PROBLEM = re.compile(
    r"SQLITE_|syntax error|no such (table|column|function|index)|constraint failed|"
    r"too many SQL variables|statement too long|incomplete input|unrecognized token",
    re.IGNORECASE,
)


def _is_statement_error(errors: list[dict]) -> bool:
    return any(e.get("code") == 7500 or _SQL_PROBLEM.search(str(e.get("message", ""))) for e in errors)


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class RetryPolicy:
    attempts: int = 8
    base: float = 0.5
    cap: float = 30.0
    max_retry_after: float = 300.0
    sleep: Callable[[float], None] = time.sleep

    def delay(self, attempt: int, retry_after: float | None) -> float:
        # Full jitter spreads retries of parallel clients; retry-after is a floor.
        backoff = random.uniform(0, min(self.cap, self.base * 2**attempt))
        if retry_after is not None:
            return max(min(retry_after, self.max_retry_after), backoff)
        return backoff


@dataclass
class D1Stats:
    requests: int = 0
    attempts: int = 0
    retries: int = 0
    bytes_sent: int = 0
    statements: int = 0
    max_statement_bytes: int = 0
    max_params: int = 0
    statement_sizes: list[int] = field(default_factory=list)
    # HTTP attempts allowed on this client (0: no limit); checked before each one is sent.
    max_attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def attempt(self, nbytes: int) -> None:
        """Count one request about to be sent, refusing it when the budget is spent."""
        with self.lock:
            if self.max_attempts and self.attempts >= self.max_attempts:
                raise D1RequestBudgetExceeded(
                    f"stopped after {self.attempts:,} D1 requests (SYNC_D1_MAX_REQUESTS_PER_RUN="
                    f"{self.max_attempts:,}); the endpoint keeps failing or the run needs a higher budget"
                )
            self.attempts += 1
            self.bytes_sent += nbytes

    def as_dict(self) -> dict:
        sizes = sorted(self.statement_sizes)
        return {
            "requests": self.requests,
            "attempts": self.attempts,
            "retries": self.retries,
            "bytes_sent": self.bytes_sent,
            "statements": self.statements,
            "max_statement_bytes": self.max_statement_bytes,
            "median_statement_bytes": sizes[len(sizes) // 2] if sizes else 0,
            "max_params": self.max_params,
        }


def _check_limits(statements: Sequence[Statement]) -> None:
    # Enforced client-side too, so the local SQLite transport fails like D1.
    for stmt in statements:
        if stmt.size > D1_MAX_STATEMENT_BYTES:
            raise D1StatementError(f"statement too long: SQLITE_TOOBIG ({stmt.size} bytes)", 7500)
        if len(stmt.params) > D1_MAX_PARAMS:
            raise D1StatementError("too many SQL variables", 7500)


class RestTransport:
    """Cloudflare's D1 REST API (or anything serving its shape, like our miniflare Worker)."""

    name = "rest"

    def __init__(
        self,
        *,
        base_url: str,
        account_id: str,
        database_id: str,
        api_token: str = "",
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ):
        self.url = f"{base_url.rstrip('/')}/accounts/{account_id}/d1/database/{database_id}"
        self._secrets = (api_token,) if api_token else ()
        headers = {"content-type": "application/json"}
        if api_token:
            headers["authorization"] = f"Bearer {api_token}"
        self.http = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout, connect=10.0))
        self.retry = retry or RetryPolicy()

    def close(self) -> None:
        self.http.close()

    def execute(self, statements: Sequence[Statement], *, raw: bool, stats: D1Stats) -> list[dict]:
        payload = (
            statements[0].payload() if len(statements) == 1 else {"batch": [s.payload() for s in statements]}
        )
        body = httpx_json(payload)
        endpoint = f"{self.url}/{'raw' if raw else 'query'}"
        last: Exception | None = None
        for attempt in range(self.retry.attempts):
            stats.attempt(len(body))
            try:
                return self._post(endpoint, body)
            except _Retryable as exc:
                last = exc
                if attempt + 1 >= self.retry.attempts:
                    break
                delay = self.retry.delay(attempt, exc.retry_after)
                with stats.lock:
                    stats.retries += 1
                logger.warning("D1 request failed (%s); retry %d in %.2fs", exc, attempt + 1, delay)
                self.retry.sleep(delay)
        raise D1UnavailableError(
            self._safe(
                f"D1 unavailable after {self.retry.attempts} attempts at {self._where(endpoint)}: {last}"
            )
        )

    def _safe(self, text: str) -> str:
        return d1_error_text(text, secrets=self._secrets, limit=ERROR_TEXT_MAX_CHARS + 300)

    @staticmethod
    def _where(endpoint: str) -> str:
        return f"POST {url_without_secrets(endpoint)}"

    def _post(self, endpoint: str, body: bytes) -> list[dict]:
        try:
            response = self.http.post(endpoint, content=body)
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # The request may have landed before the connection died; every
            # write we send is an idempotent upsert/delete, so resending is safe.
            raise _Retryable(f"{type(exc).__name__}: {exc}") from exc
        status = response.status_code
        if status == 429:
            raise _Retryable("429 rate limited", _parse_retry_after(response.headers.get("retry-after")))
        if status >= 500 or status == 408:
            raise _Retryable(f"HTTP {status}", _parse_retry_after(response.headers.get("retry-after")))
        where = self._where(endpoint)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            kind = "not JSON" if data is None else f"JSON {type(data).__name__}, not an object"
            raise D1ConfigError(
                self._safe(
                    f"{where} answered HTTP {status} with a body that is {kind}: is CLOUDFLARE_BASE_URL"
                    f" a D1 REST API? Body starts: {response.text[:200]!r}"
                )
            )
        errors = [e if isinstance(e, dict) else {"message": e} for e in (data.get("errors") or [])]
        if status >= 400 or not data.get("success", False):
            errors = errors or [{"message": f"HTTP {status}"}]
            message = "; ".join(str(e.get("message")) for e in errors)[:ERROR_TEXT_MAX_CHARS]
            if status in (401, 403):
                raise D1ConfigError(
                    self._safe(f"{where}: D1 refused the credentials (HTTP {status}): {message}")
                )
            if status in (200, 400) and _is_statement_error(errors):
                code = next((e.get("code") for e in errors if e.get("code") is not None), None)
                raise D1StatementError(self._safe(message), code)
            raise D1ConfigError(
                self._safe(
                    f"{where} answered HTTP {status} ({message}): check CLOUDFLARE_BASE_URL, "
                    "CLOUDFLARE_ACCOUNT_ID and D1_DATABASE_ID"
                )
            )
        result = data.get("result")
        if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise D1ConfigError(self._safe(f"{where} answered HTTP {status} without a list of results"))
        return result


def httpx_json(payload: dict) -> bytes:
    import json

    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class SqliteTransport:
    """A local SQLite file standing in for D1 when no account is configured (`make run`)."""

    name = "sqlite"

    def __init__(self, *, path: str):
        self.path = path
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA journal_mode = WAL")

    def close(self) -> None:
        self.conn.close()

    def execute(self, statements: Sequence[Statement], *, raw: bool, stats: D1Stats) -> list[dict]:
        stats.attempt(sum(s.size for s in statements))
        out: list[dict] = []
        cur = self.conn.cursor()
        # Same contract as a D1 request: all statements or none.
        cur.execute("BEGIN")
        try:
            for stmt in statements:
                cur.execute(stmt.sql, stmt.params)
                columns = [d[0] for d in cur.description or ()]
                rows = cur.fetchall()
                if raw:
                    results: object = {"columns": columns, "rows": [list(r) for r in rows]}
                else:
                    results = [dict(zip(columns, r, strict=True)) for r in rows]
                out.append({"results": results, "success": True, "meta": {"changes": cur.rowcount}})
            cur.execute("COMMIT")
        except sqlite3.Error as exc:
            cur.execute("ROLLBACK")
            raise D1StatementError(f"{exc}", 7500) from exc
        return out


class D1Client:
    def __init__(self, transport: RestTransport | SqliteTransport, *, max_requests: int | None = None):
        self.transport = transport
        if max_requests is None:
            max_requests = int(getattr(settings, "SYNC_D1_MAX_REQUESTS_PER_RUN", MAX_REQUESTS_PER_RUN))
        self.stats = D1Stats(max_attempts=max(0, max_requests))

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> D1Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, statements: Sequence[Statement], *, raw: bool = False) -> list[dict]:
        """Run `statements` in ONE request (one D1 transaction); returns one result per statement."""
        statements = list(statements)
        _check_limits(statements)
        result = self.transport.execute(statements, raw=raw, stats=self.stats)
        with self.stats.lock:
            self.stats.requests += 1
            self.stats.statements += len(statements)
            for stmt in statements:
                self.stats.statement_sizes.append(stmt.size)
                self.stats.max_statement_bytes = max(self.stats.max_statement_bytes, stmt.size)
                self.stats.max_params = max(self.stats.max_params, len(stmt.params))
        return result

    def query(self, sql: str, params: Sequence = ()) -> list[dict]:
        return self.execute([Statement(sql, tuple(params))])[0]["results"]

    def rows(self, sql: str, params: Sequence = ()) -> list[list]:
        return self.execute([Statement(sql, tuple(params))], raw=True)[0]["results"]["rows"]

    def requests(self, statements: Iterable[Statement]) -> Iterable[list[Statement]]:
        """Group statements into requests bounded by bytes and count."""
        batch: list[Statement] = []
        used = 0
        for stmt in statements:
            if batch and (used + stmt.size > REQUEST_MAX_BYTES or len(batch) >= REQUEST_MAX_STATEMENTS):
                yield batch
                batch, used = [], 0
            batch.append(stmt)
            used += stmt.size
        if batch:
            yield batch


def d1_client_from_settings(*, retry: RetryPolicy | None = None, timeout: float | None = None) -> D1Client:
    if settings.D1_DATABASE_ID:
        transport: RestTransport | SqliteTransport = RestTransport(
            base_url=settings.CLOUDFLARE_BASE_URL,
            account_id=settings.CLOUDFLARE_ACCOUNT_ID or "local",
            database_id=settings.D1_DATABASE_ID,
            api_token=settings.CLOUDFLARE_API_TOKEN,
            timeout=timeout or getattr(settings, "SYNC_D1_TIMEOUT_SECONDS", 60.0),
            retry=retry
            or RetryPolicy(
                attempts=getattr(settings, "SYNC_D1_RETRY_ATTEMPTS", 8),
                base=getattr(settings, "SYNC_D1_RETRY_BASE_SECONDS", 0.5),
                cap=getattr(settings, "SYNC_D1_RETRY_CAP_SECONDS", 30.0),
            ),
        )
    else:
        transport = SqliteTransport(path=settings.D1_LOCAL_PATH)
    return D1Client(transport)


def d1_target_describe() -> str:
    if settings.D1_DATABASE_ID:
        return f"D1 database {settings.D1_DATABASE_ID} via {settings.CLOUDFLARE_BASE_URL}"
    return f"local SQLite stand-in at {settings.D1_LOCAL_PATH}"

"""Retries and fault tolerance.

The proxy tests put a fault-injecting proxy between the client and the real
local D1 engine. The unit tests use httpx.MockTransport: that mocks only
Cloudflare's network (status codes and headers), nothing of ours.
"""

import httpx
import pytest

from sync.d1_client import D1Client, D1StatementError, D1Stats, D1UnavailableError, RestTransport, RetryPolicy
from sync.models import SyncRun
from sync.services import d1_verify, sync_run_execute
from sync.sqlite_sql import Statement

from .conftest import ACCOUNT, DB_ID
from .factories import agents_bulk, industries_ensure
from .faults import FaultProxy

OK = {"result": [{"results": [], "success": True, "meta": {}}], "success": True, "errors": [], "messages": []}


def mock_client(handler, sleeps: list) -> D1Client:
    transport = RestTransport(base_url="https://api.invalid/client/v4", account_id="a", database_id="d")
    transport.http = httpx.Client(transport=httpx.MockTransport(handler))
    transport.retry = RetryPolicy(attempts=5, base=0.1, cap=2.0, sleep=sleeps.append)
    return D1Client(transport)


def test_429_honours_retry_after_then_succeeds():
    """Cloudflare's rate limit (mocked network): the client waits at least retry-after."""
    answers = iter([httpx.Response(429, headers={"retry-after": "7"}, json={}), httpx.Response(200, json=OK)])
    sleeps: list[float] = []
    client = mock_client(lambda request: next(answers), sleeps)
    client.execute([Statement("SELECT 1")])
    assert sleeps and sleeps[0] >= 7
    assert client.stats.retries == 1


def test_5xx_and_dropped_connections_back_off_with_jitter_and_cap_then_give_up():
    """Mocked network failing every time: bounded attempts, exponential capped delays."""
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) % 2:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(503, json={})

    sleeps: list[float] = []
    client = mock_client(handler, sleeps)
    with pytest.raises(D1UnavailableError):
        client.execute([Statement("SELECT 1")])
    assert len(calls) == 5
    assert len(sleeps) == 4 and all(0 <= s <= 2.0 for s in sleeps)


def test_a_400_is_not_retried():
    """A bad statement (mocked 400 / 7500) fails at once: retrying cannot fix it."""
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(
            400, json={"result": None, "success": False, "errors": [{"code": 7500, "message": "near x"}]}
        )

    client = mock_client(handler, [])
    with pytest.raises(D1StatementError) as err:
        client.execute([Statement("SELEC 1")])
    assert err.value.code == 7500 and len(calls) == 1


def test_timeout_is_retried_against_the_real_engine(d1):
    """A response slower than the client's timeout: the request is resent and lands once."""
    proxy = FaultProxy(
        d1.transport.url.split("/client/v4")[0], rate=0, slow_seconds=1.2, script=["slow"]
    ).start()
    try:
        transport = RestTransport(
            base_url=proxy.url + "/client/v4",
            account_id=ACCOUNT,
            database_id=DB_ID,
            timeout=0.5,
            retry=RetryPolicy(attempts=4, base=0.01, cap=0.05),
        )
        stats = D1Stats()
        result = transport.execute([Statement("SELECT 42 AS x")], raw=False, stats=stats)
        assert result[0]["results"] == [{"x": 42}]
        assert stats.retries == 1
    finally:
        proxy.stop()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sync_converges_with_20_percent_of_requests_failing(d1, settings):
    """429s, 500/503s, slow answers and dropped connections (before and after the engine applied
    the request) on 20% of requests: the sync still lands everything and verify is clean."""
    industries_ensure()
    agents_bulk(2000)
    settings.SYNC_D1_STATEMENT_MAX_BYTES = 12_000
    settings.SYNC_D1_REQUEST_MAX_BYTES = 30_000
    settings.SYNC_D1_TIMEOUT_SECONDS = 1.0
    settings.SYNC_D1_RETRY_ATTEMPTS = 12
    engine_root = settings.CLOUDFLARE_BASE_URL.rsplit("/client/v4", 1)[0]
    proxy = FaultProxy(engine_root, rate=0.2, seed=20, slow_seconds=1.3).start()
    try:
        settings.CLOUDFLARE_BASE_URL = proxy.url + "/client/v4"
        run = sync_run_execute(reason="faults")
        assert run.status == SyncRun.Status.COMPLETED, run.error
        assert run.rows_upserted == 2000 + 6
        assert run.retries > 0
        faults = {k: v for k, v in proxy.counts.items() if k != "requests"}
        assert sum(faults.values()) >= 0.1 * proxy.counts["requests"]
        assert len(faults) >= 4, faults
        assert run.max_statement_bytes <= 12_000
        verify = d1_verify()  # through the faulty proxy too
        assert verify.clean, verify.drifted_ranges
    finally:
        proxy.stop()
    settings.CLOUDFLARE_BASE_URL = engine_root + "/client/v4"
    assert d1_verify().clean

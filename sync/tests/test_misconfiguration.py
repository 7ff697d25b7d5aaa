"""A misconfigured or misbehaving endpoint stops the sync at once, loudly, and leaks no credential.

The fault proxy (faults.py) sits between the client and the real local D1
engine and answers like a wrong database id (404), a login page (not JSON),
a JSON list, a database refusing every write, or an endpoint echoing the
Authorization header.
"""

import json

import httpx
import pytest
from django.core.management import CommandError, call_command

from agents.models import Agent
from sync.d1_client import (
    D1Client,
    D1ConfigError,
    D1RequestBudgetExceeded,
    D1StatementError,
    RestTransport,
    RetryPolicy,
    d1_error_text,
)
from sync.models import SyncChange, SyncRun
from sync.services import d1_verify, sync_run_execute
from sync.sqlite_sql import Statement

from .conftest import ACCOUNT, DB_ID, rest_client
from .factories import agents_bulk, industries_ensure
from .faults import FaultProxy

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "cfTEST_9f8e7d6c5b4a3210-secret-token"


@pytest.fixture
def proxied(d1, settings):
    """Start a fault proxy in front of the engine and point the sync's settings at it."""
    industries_ensure()
    engine_root = settings.CLOUDFLARE_BASE_URL.rsplit("/client/v4", 1)[0]
    proxies = []

    def start(**kwargs) -> FaultProxy:
        proxy = FaultProxy(engine_root, rate=0, **kwargs).start()
        proxies.append(proxy)
        settings.CLOUDFLARE_BASE_URL = proxy.url + "/client/v4"
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()
    settings.CLOUDFLARE_BASE_URL = engine_root + "/client/v4"


def many_small_requests(settings, n_agents: int = 300) -> None:
    # Small statements and requests: a bisecting client would send hundreds of requests.
    agents_bulk(n_agents)
    settings.SYNC_D1_STATEMENT_MAX_BYTES = 6_000
    settings.SYNC_D1_REQUEST_MAX_BYTES = 12_000


def test_404_on_writes_stops_at_once_and_sync_d1_exits_non_zero(proxied, settings):
    """The issue's storm: a 404 on every write used to be bisected down to single rows."""
    many_small_requests(settings)
    proxy = proxied(always="404", writes_only=True)
    with pytest.raises(CommandError) as err:
        call_command("sync_d1", "--full", stdout=open("/dev/null", "w"))  # noqa: SIM115
    run = SyncRun.objects.latest("id")
    assert run.status == SyncRun.Status.FAILED
    assert proxy.counts["404"] <= 3, proxy.counts
    assert run.failures == [] and run.rows_failed == 0
    endpoint = f"{proxy.url}/client/v4/accounts/{ACCOUNT}/d1/database/{DB_ID}/query"
    assert "404" in run.error and endpoint in run.error, run.error
    assert "D1ConfigError" in run.error
    assert "404" in str(err.value)


def test_404_fails_the_run_even_where_nothing_is_recorded(proxied, settings):
    """The benchmark path (no position) used to report SUCCESS having written nothing."""
    many_small_requests(settings)
    proxy = proxied(always="404")
    run = sync_run_execute(full=True, record_position=False, reason="misconfigured")
    assert run.status == SyncRun.Status.FAILED
    assert proxy.counts["requests"] <= 3, proxy.counts
    assert run.rows_upserted == 0 and run.failures == []


def test_a_sync_whose_writes_all_failed_is_failed_and_its_rows_stay_pending(proxied, settings):
    agents_bulk(40)
    assert sync_run_execute(reason="first").status == SyncRun.Status.COMPLETED
    Agent.objects.filter(id__in=["a0000001", "a0000002", "a0000003"]).update(city="Pending")
    proxied(always="sql_400", writes_only=True)
    with pytest.raises(CommandError, match="every write failed"):
        call_command("sync_d1", stdout=open("/dev/null", "w"))  # noqa: SIM115
    run = SyncRun.objects.latest("id")
    assert run.status == SyncRun.Status.FAILED
    assert run.rows_failed == 3 and run.rows_upserted == 0
    assert "no such table" in run.failures[0]["error"]
    assert sorted(SyncChange.objects.values_list("row_id", flat=True)) == ["a0000001", "a0000002", "a0000003"]


def test_an_echoed_token_never_reaches_sync_run_or_verify_run(proxied, settings):
    settings.CLOUDFLARE_API_TOKEN = TOKEN
    agents_bulk(4)
    # Rows refused with the header echoed: failures.
    proxied(always="echo_auth_400", writes_only=True)
    partial = sync_run_execute(full=True, reason="echo 400")
    assert partial.failures and partial.rows_failed == 4 + 6
    # Every request refused with the header echoed: the run's error.
    proxied(always="echo_auth_404")
    failed = sync_run_execute(full=True, reason="echo 404")
    assert failed.status == SyncRun.Status.FAILED and "404" in failed.error
    verify = d1_verify()
    assert verify.error and not verify.clean
    for run in SyncRun.objects.all():
        stored = json.dumps([run.error, run.failures])
        assert TOKEN not in stored and TOKEN[:12] not in stored
    assert TOKEN not in verify.error
    assert "Bearer [redacted]" in json.dumps(partial.failures)
    assert "Bearer [redacted]" in failed.error and "Bearer [redacted]" in verify.error


@pytest.mark.parametrize(
    ("fault", "words"),
    [("404", "HTTP 404"), ("non_json", "not JSON"), ("json_list", "JSON list, not an object")],
)
def test_answers_that_are_not_d1_fail_once_without_retry(proxied, fault, words):
    proxy = proxied(always=fault)
    client = rest_client(proxy.url + "/client/v4")
    try:
        with pytest.raises(D1ConfigError, match=words) as err:
            client.execute([Statement("SELECT 1")])
    finally:
        client.close()
    assert proxy.counts["requests"] == 1 and client.stats.retries == 0
    assert f"{proxy.url}/client/v4/accounts/{ACCOUNT}/d1/database/{DB_ID}/query" in str(err.value)


def _mock_client(status: int, body: dict | None) -> tuple[D1Client, list]:
    calls: list = []

    def handler(request):
        calls.append(request)
        return httpx.Response(status, json=body)

    transport = RestTransport(
        base_url="https://user:pw@api.invalid/client/v4", account_id="a", database_id="d", api_token=TOKEN
    )
    transport.http = httpx.Client(transport=httpx.MockTransport(handler))
    transport.retry = RetryPolicy(attempts=5, base=0.01, cap=0.01, sleep=lambda s: None)
    return D1Client(transport), calls


@pytest.mark.parametrize("status", [400, 404, 405, 413, 422])
def test_http_errors_that_name_no_sql_problem_are_configuration_errors(status):
    """(Mocked network.) Only a 400 naming a SQL problem may be split; the rest stop the run."""
    body = {"result": None, "success": False, "errors": [{"code": 10000 + status, "message": "nope"}]}
    client, calls = _mock_client(status, body)
    with pytest.raises(D1ConfigError) as err:
        client.execute([Statement("SELECT 1")])
    assert len(calls) == 1
    assert f"HTTP {status}" in str(
        err.value
    ) and "https://api.invalid/client/v4/accounts/a/d1/database/d" in str(err.value)
    assert "user:pw" not in str(err.value)


def test_a_400_naming_a_sql_problem_is_a_statement_error():
    body = {
        "result": None,
        "success": False,
        "errors": [{"code": 0, "message": "no such column: x: SQLITE_ERROR"}],
    }
    client, calls = _mock_client(400, body)
    with pytest.raises(D1StatementError):
        client.execute([Statement("SELECT x")])
    assert len(calls) == 1


def test_request_budget_stops_the_run(d1, settings):
    industries_ensure()
    many_small_requests(settings)
    settings.SYNC_D1_MAX_REQUESTS_PER_RUN = 5
    run = sync_run_execute(full=True, reason="budget")
    assert run.status == SyncRun.Status.FAILED
    assert "SYNC_D1_MAX_REQUESTS_PER_RUN" in run.error and D1RequestBudgetExceeded.__name__ in run.error
    assert run.requests <= 5


def test_error_text_is_scrubbed_and_truncated(settings):
    settings.CLOUDFLARE_API_TOKEN = TOKEN
    text = d1_error_text(f"echo: authorization: Bearer {TOKEN} and Bearer other.jwt.value " + "x" * 2000)
    assert TOKEN not in text and "other.jwt.value" not in text
    assert text.count("Bearer [redacted]") == 2 and len(text) <= 500
    assert d1_error_text(RuntimeError(f"raw {TOKEN}")) == "RuntimeError: raw [redacted]"

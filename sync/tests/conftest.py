import pytest

from sync.d1_client import D1Client, RestTransport, RetryPolicy
from sync.local_engine import LocalD1Engine
from sync.services import d1_migrate
from sync.sqlite_sql import Statement

DB_ID = "test-db"
ACCOUNT = "test-account"


@pytest.fixture(scope="session")
def d1_engine():
    """A real local D1 engine (miniflare v4 running workerd) for the whole session."""
    engine = LocalD1Engine().start()
    yield engine
    engine.stop()


def d1_reset(client: D1Client) -> None:
    tables = client.rows(
        "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'trigger')"
        " AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'"
    )
    drops = [Statement(f'DROP TRIGGER IF EXISTS "{n}"') for t, n in tables if t == "trigger"]
    drops += [Statement(f'DROP TABLE IF EXISTS "{n}"') for t, n in tables if t == "table"]
    if drops:
        client.execute(drops)


def rest_client(base_url: str, *, timeout: float = 30.0, attempts: int = 8) -> D1Client:
    return D1Client(
        RestTransport(
            base_url=base_url,
            account_id=ACCOUNT,
            database_id=DB_ID,
            timeout=timeout,
            retry=RetryPolicy(attempts=attempts, base=0.05, cap=0.5),
        )
    )


@pytest.fixture
def d1_empty(d1_engine, settings):
    """Settings pointing the sync at the engine, and an empty D1 database."""
    settings.D1_DATABASE_ID = DB_ID
    settings.CLOUDFLARE_ACCOUNT_ID = ACCOUNT
    settings.CLOUDFLARE_API_TOKEN = ""
    settings.CLOUDFLARE_BASE_URL = d1_engine.api_base
    settings.SYNC_D1_RETRY_BASE_SECONDS = 0.05
    settings.SYNC_D1_RETRY_CAP_SECONDS = 0.5
    client = rest_client(d1_engine.api_base)
    d1_reset(client)
    yield client
    client.close()


@pytest.fixture
def d1(d1_empty, django_db_blocker):
    """An engine with every D1 migration applied (as production D1 would be)."""
    with django_db_blocker.unblock():  # d1_migrate notes what it did in PostgreSQL
        d1_migrate(client=d1_empty)
    return d1_empty


@pytest.fixture(autouse=True)
def _quiet_httpx(caplog):
    # httpx logs every request at INFO; hundreds of lines hide real failures.
    import logging

    logging.getLogger("httpx").setLevel(logging.WARNING)

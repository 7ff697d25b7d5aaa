"""PostgreSQL only: the settings refuse any other database, and only the test settings run tasks eagerly."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from estateflow.database import postgres_database

BASE_DIR = Path(__file__).resolve().parents[2]


def test_postgres_urls_are_accepted():
    config = postgres_database("postgres://app:secret@db.example:6543/estateflow", conn_max_age=60)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.example", 6543, "estateflow")
    assert config["CONN_MAX_AGE"] == 60 and config["ATOMIC_REQUESTS"] is False
    assert postgres_database("postgresql://db.example/x")["ENGINE"] == "django.db.backends.postgresql"


@pytest.mark.parametrize("url", ["sqlite:///var/db.sqlite3", "mysql://db.example/estateflow", "", "nonsense"])
def test_other_databases_are_refused_with_a_clear_message(url):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL must be a PostgreSQL URL"):
        postgres_database(url)


def _settings_probe(module: str, env: dict, expression: str) -> subprocess.CompletedProcess:
    """Load a settings module in a fresh interpreter (settings are read once per process)."""
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": module, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_settings_refuse_a_sqlite_database_url():
    result = _settings_probe("estateflow.settings.local", {"DATABASE_URL": "sqlite:///var/db.sqlite3"}, "1")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "DATABASE_URL must be a PostgreSQL URL" in result.stderr and "'sqlite'" in result.stderr


def test_local_settings_never_run_tasks_in_process():
    result = _settings_probe(
        "estateflow.settings.local",
        {"DATABASE_URL": "postgres://postgres@127.0.0.1:5432/x", "CELERY_TASK_ALWAYS_EAGER": "true"},
        "settings.CELERY_TASK_ALWAYS_EAGER, settings.CELERY_BROKER_URL",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("False redis://")


def test_production_settings_require_a_database_url():
    env = {
        "DJANGO_SECRET_KEY": "x" * 60,
        "CELERY_BROKER_URL": "redis://redis.example:6379/0",
        "DATABASE_URL": "",
    }
    result = _settings_probe("estateflow.settings.production", env, "1")
    assert result.returncode != 0 and "ImproperlyConfigured" in result.stderr

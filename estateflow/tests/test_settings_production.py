"""Production settings refuse to start without their services; one default settings module everywhere."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

COMPLETE = {
    "DJANGO_SECRET_KEY": "x" * 60,
    "DATABASE_URL": "postgres://app@db.example:5432/estateflow",
    "CELERY_BROKER_URL": "redis://redis.example:6379/0",
    "REDIS_URL": "redis://redis.example:6379/1",
    "D1_DATABASE_ID": "d1-id",
    "CLOUDFLARE_ACCOUNT_ID": "acct",
    "CLOUDFLARE_API_TOKEN": "token",
    "R2_ACCOUNT_ID": "acct",
    "R2_ACCESS_KEY_ID": "key",
    "R2_SECRET_ACCESS_KEY": "secret",
    "R2_PUBLIC_BASE_URL": "https://assets.example",
}
VARIABLES = [
    *COMPLETE,
    "D1_TARGET",
    "R2_TARGET",
    "R2_ENDPOINT_URL",
    "DJANGO_SETTINGS_MODULE",
]


def _start(env: dict, expression: str = "1", module: str | None = "estateflow.settings.production"):
    base = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    if module:
        base["DJANGO_SETTINGS_MODULE"] = module
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_complete_environment_starts():
    result = _start(
        COMPLETE, "settings.D1_DATABASE_ID, settings.R2_ENDPOINT_URL, settings.CACHES['default']['BACKEND']"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "d1-id",
        "https://acct.r2.cloudflarestorage.com",
        "django.core.cache.backends.redis.RedisCache",
    ]


@pytest.mark.parametrize(
    "missing",
    [
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "REDIS_URL",
        "DJANGO_SECRET_KEY",
        "D1_DATABASE_ID",
        "CLOUDFLARE_ACCOUNT_ID",
        "CLOUDFLARE_API_TOKEN",
        "R2_ACCESS_KEY_ID",
        "R2_SECRET_ACCESS_KEY",
        "R2_PUBLIC_BASE_URL",
    ],
)
def test_a_missing_variable_refuses_to_start_and_is_named(missing):
    env = {k: v for k, v in COMPLETE.items() if k != missing}
    result = _start(env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr.strip().splitlines()[-1]


def test_an_empty_variable_counts_as_missing():
    result = _start({**COMPLETE, "REDIS_URL": ""})
    assert result.returncode != 0 and "REDIS_URL" in result.stderr.strip().splitlines()[-1]


def test_r2_needs_an_endpoint_or_account():
    env = {k: v for k, v in COMPLETE.items() if k != "R2_ACCOUNT_ID"}
    result = _start(env)
    assert result.returncode != 0 and "R2_ENDPOINT_URL (or R2_ACCOUNT_ID)" in result.stderr


def test_local_stand_ins_are_an_explicit_opt_in():
    cloudflare = ("D1_DATABASE_ID", "CLOUDFLARE_ACCOUNT_ID", "CLOUDFLARE_API_TOKEN", "R2_ACCOUNT_ID")
    env = {k: v for k, v in COMPLETE.items() if k not in cloudflare and not k.startswith("R2_")}
    result = _start(
        {**env, "D1_TARGET": "local", "R2_TARGET": "local"},
        "repr(settings.D1_DATABASE_ID), repr(settings.R2_ENDPOINT_URL)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["''", "''"]
    result = _start({**env, "D1_TARGET": "sqlite", "R2_TARGET": "local"})
    assert result.returncode != 0 and "D1_TARGET must be" in result.stderr


def test_local_opt_in_wins_over_leftover_cloudflare_variables():
    result = _start({**COMPLETE, "D1_TARGET": "local"}, "repr(settings.D1_DATABASE_ID)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "''"


def test_celery_wsgi_and_asgi_share_the_production_default():
    code = (
        "import os, estateflow.celery; a = os.environ['DJANGO_SETTINGS_MODULE']; "
        "del os.environ['DJANGO_SETTINGS_MODULE']; import estateflow.wsgi as w; print(a)"
    )
    base = {k: v for k, v in os.environ.items() if k not in VARIABLES}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**base, **COMPLETE},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "estateflow.settings.production"
    for module in ("wsgi", "asgi"):
        assert (
            'setdefault("DJANGO_SETTINGS_MODULE", "estateflow.settings.production")'
            in (BASE_DIR / "estateflow" / f"{module}.py").read_text()
        )
    assert (
        'setdefault("DJANGO_SETTINGS_MODULE", "estateflow.settings.local")'
        in (BASE_DIR / "manage.py").read_text()
    )


def test_production_serves_static_files_through_whitenoise():
    result = _start(
        COMPLETE,
        "settings.STORAGES['staticfiles']['BACKEND'], settings.MIDDLEWARE[1], bool(settings.STATIC_ROOT)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "whitenoise.storage.CompressedManifestStaticFilesStorage",
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "True",
    ]

"""Dockerfile and compose.yaml stay in step with the settings: services, commands, env names."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_DIR = ROOT / "estateflow" / "settings"
# Read by something other than estateflow/settings: gunicorn.conf.py, Django itself, the images.
NOT_SETTINGS = {
    "DJANGO_SETTINGS_MODULE",
    "WEB_CONCURRENCY",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_DB",
}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _settings_env_names() -> set[str]:
    text = "\n".join(p.read_text() for p in SETTINGS_DIR.glob("*.py"))
    names = set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z0-9_]+)["']""", text))
    return names


def _gunicorn_env_names() -> set[str]:
    return set(
        re.findall(r"""environ\.get\(\s*["']([A-Z0-9_]+)["']""", (ROOT / "gunicorn.conf.py").read_text())
    )


def test_compose_has_every_service_with_a_health_check():
    services = _compose()["services"]
    assert set(services) == {"web", "worker", "beat", "postgres", "redis"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_commands():
    services = _compose()["services"]
    assert "gunicorn -c gunicorn.conf.py estateflow.wsgi:application" in " ".join(services["web"]["command"])
    worker = services["worker"]["command"]
    assert worker[:4] == ["celery", "-A", "estateflow", "worker"]
    assert set(worker[worker.index("-Q") + 1].split(",")) == {"imports", "sync", "default"}
    beat = services["beat"]["command"]
    assert beat[:4] == ["celery", "-A", "estateflow", "beat"]
    assert "-B" not in worker  # exactly one beat: its own service
    # The scheduler comes from CELERY_BEAT_SCHEDULER (the schedules staff pause in the admin); a
    # -S/--scheduler here would silently stop the D1 and R2 schedules (they are not beat_schedule entries).
    assert not {"-S", "--scheduler"} & set(beat) and not any(a.startswith("--scheduler=") for a in beat)
    # The fixed entries' state (imports-recover) survives a restart; the health check reads the file.
    assert "-s" in beat


def test_every_beat_uses_the_operator_scheduler():
    from django.conf import settings

    from estateflow.celery import app

    assert settings.CELERY_BEAT_SCHEDULER == "sync.scheduler:OperatorScheduler"
    assert app.conf.beat_scheduler == settings.CELERY_BEAT_SCHEDULER
    for path in (ROOT / "Makefile", ROOT / "scripts" / "run_demo.sh"):
        text = path.read_text()
        assert "worker -B" in text and "--scheduler" not in text and " -S " not in text, path


def test_compose_env_names_exist_in_the_settings():
    known = _settings_env_names() | _gunicorn_env_names() | NOT_SETTINGS
    services = _compose()["services"]
    for name, service in services.items():
        env = service.get("environment") or {}
        unknown = set(env) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which no setting reads"
    web_env = services["web"]["environment"]
    for required in (
        "DATABASE_URL",
        "CELERY_BROKER_URL",
        "REDIS_URL",
        "DJANGO_SECRET_KEY",
        "D1_TARGET",
        "R2_TARGET",
    ):
        assert required in web_env and required in services["worker"]["environment"]
    assert web_env["DJANGO_SETTINGS_MODULE"] == "estateflow.settings.production"


def test_dockerfile_is_slim_pinned_and_non_root():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "pip install -r requirements.txt" in text and "collectstatic" in text
    assert 'CMD ["gunicorn", "-c", "gunicorn.conf.py", "estateflow.wsgi:application"]' in text
    for name in re.findall(r"\b([A-Z][A-Z0-9_]+)=", text):
        if name.startswith(("PYTHON", "PIP_")):
            continue
        assert name in _settings_env_names() | NOT_SETTINGS, name
    for service in _compose()["services"].values():
        image = service.get("image", "")
        if "build" not in service:
            assert re.search(r":\d+\.\d+", image), f"unpinned image {image}"


def test_requirements_pin_the_serving_stack():
    pins = dict(
        line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line
    )
    for package in ("gunicorn", "whitenoise", "sentry-sdk"):
        assert package in pins

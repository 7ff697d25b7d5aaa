"""Structured logs (LOG_FORMAT=json) and the optional Sentry hook (SENTRY_DSN)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# `extra` keys copied to the JSON line when a log call carries them: the import job, chunk and the
# D1 sync / verify run a line belongs to, and Celery's task id.
CONTEXT_KEYS = ("job_id", "import_job_id", "chunk_id", "run_id", "sync_run_id", "verify_run_id", "task_id")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, the ids in CONTEXT_KEYS, any exception."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def sentry_init(*, dsn: str, environment: str = "production", traces_sample_rate: float = 0.0) -> bool:
    """Start Sentry with the Django and Celery integrations; nothing (and no import) without a DSN."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        integrations=[DjangoIntegration(), CeleryIntegration()],
        traces_sample_rate=traces_sample_rate,
        send_default_pii=False,
    )
    return True

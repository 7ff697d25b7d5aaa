from django.apps import AppConfig
from django.conf import settings

BEAT_ENTRY = "sync-d1"


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Edge sync (D1)"

    def ready(self) -> None:
        # The beat entry lives with the sync code; its interval comes from settings.
        from estateflow.celery import app

        schedule = dict(app.conf.beat_schedule or {})
        schedule.setdefault(
            BEAT_ENTRY,
            {
                "task": "sync.d1_sync_run",
                "schedule": float(settings.SYNC_D1_INTERVAL_SECONDS),
                "kwargs": {"reason": "scheduled"},
                "options": {"expires": float(settings.SYNC_D1_INTERVAL_SECONDS)},
            },
        )
        app.conf.beat_schedule = schedule

from django.apps import AppConfig
from django.conf import settings

BEAT_ENTRY = "assets-r2-sync"


class AssetsConfig(AppConfig):
    name = "assets"
    verbose_name = "Assets (R2)"

    def ready(self) -> None:
        # Same cadence as the D1 sync (sync.apps): a new photo_url reaches D1 in the
        # next D1 sync, and replaced objects are deleted once a D1 sync has started after it.
        from estateflow.celery import app

        schedule = dict(app.conf.beat_schedule or {})
        schedule.setdefault(
            BEAT_ENTRY,
            {
                "task": "assets.r2_sync_run",
                "schedule": float(settings.SYNC_D1_INTERVAL_SECONDS),
                "kwargs": {"reason": "beat"},
                "options": {"expires": float(settings.SYNC_D1_INTERVAL_SECONDS)},
            },
        )
        app.conf.beat_schedule = schedule

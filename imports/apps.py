from django.apps import AppConfig

BEAT_ENTRY = "imports-recover"
RECOVER_INTERVAL_SECONDS = 60.0


class ImportsConfig(AppConfig):
    name = "imports"
    verbose_name = "Imports"

    def ready(self) -> None:
        # Like the sync's entry: a periodic sweep re-enqueues chunks whose worker died
        # even when no new worker starts (its start-up runs the same sweep).
        from estateflow.celery import app

        schedule = dict(app.conf.beat_schedule or {})
        schedule.setdefault(
            BEAT_ENTRY,
            {
                "task": "imports.import_jobs_recover",
                "schedule": RECOVER_INTERVAL_SECONDS,
                "options": {"expires": RECOVER_INTERVAL_SECONDS},
            },
        )
        app.conf.beat_schedule = schedule

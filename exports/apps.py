from django.apps import AppConfig

EXPIRE_BEAT_ENTRY = "exports-expire"
EXPIRE_INTERVAL_SECONDS = 3600.0


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        # A fixed entry like imports-recover: deleting old files is housekeeping, not an operator's schedule.
        from estateflow.celery import app

        schedule = dict(app.conf.beat_schedule or {})
        schedule.setdefault(
            EXPIRE_BEAT_ENTRY,
            {
                "task": "exports.export_files_expire",
                "schedule": EXPIRE_INTERVAL_SECONDS,
                "options": {"expires": EXPIRE_INTERVAL_SECONDS},
            },
        )
        app.conf.beat_schedule = schedule

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _schedules_ensure(sender, apps=None, **kwargs) -> None:
    from .schedules import schedules_ensure

    try:
        # `apps` is the migrated state after `migrate`; a flush (tests) sends none and keeps every table.
        if apps is not None:
            apps.get_model("sync", "Schedule")
    except LookupError:  # migrated back below the table (sync 0006): nothing to fill
        return
    schedules_ensure()


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Edge sync (D1)"

    def ready(self) -> None:
        # The D1 and R2 schedules are rows staff control (sync.schedules), not beat_schedule entries.
        # Created after migrate so the admin lists them on a fresh database, enabled at the defaults.
        post_migrate.connect(_schedules_ensure, sender=self, dispatch_uid="sync.schedules_ensure")

import logging

from django.apps import AppConfig
from django.conf import settings

logger = logging.getLogger("estateflow")


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agents"

    def ready(self) -> None:
        if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            logger.warning(
                "DATABASE_URL is not set: using the SQLite file %s. PostgreSQL is the "
                "supported database; the bulk import fast path needs it.",
                settings.DATABASES["default"]["NAME"],
            )
        if settings.CELERY_TASK_ALWAYS_EAGER:
            logger.warning("CELERY_BROKER_URL is not set: background tasks run in-process (eager mode).")

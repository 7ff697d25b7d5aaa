"""The one retry and time-limit policy of every chunked job.

One number bounds a chunk: MAX_CHUNK_ATTEMPTS starts, whatever ended the
earlier ones. A retry after a transient database error, a redelivery after
a killed worker (acks_late) and a re-send by the recovery sweep all count,
because each is an attempt recorded on the chunk row (`attempts`) in the
same place. Celery's own retry counter is only a backstop for failures
before an attempt is counted (the database down at `chunk_begin`), and is
held to the same number. Six: enough to ride out a deadlock, a failover or
a couple of worker kills; few enough that a poison chunk fails the job
after about half a minute of backoff (1 + 2 + 4 + 8 + 16 s by default). `manage.py import_resume` starts the count
again.

The time limit is Celery's soft limit, IMPORT_CHUNK_SOFT_TIME_LIMIT (the
name is older than the engine; renaming it would break deployed
environments), the hard limit a minute later, and PostgreSQL's
statement_timeout a little under the soft limit.
"""

import psycopg
from django.conf import settings
from django.db import connection

MAX_CHUNK_ATTEMPTS = 6
MAX_RETRY_DELAY = 30.0
CHUNK_SOFT_TIME_LIMIT = settings.IMPORT_CHUNK_SOFT_TIME_LIMIT
CHUNK_HARD_TIME_LIMIT = CHUNK_SOFT_TIME_LIMIT + 60
TIME_LIMIT_MESSAGE = f"exceeded the time limit of {CHUNK_SOFT_TIME_LIMIT} s; try a smaller chunk size"


def retry_delay(retries: int) -> float:
    """Exponential backoff from IMPORT_RETRY_BASE_DELAY, capped."""
    return min(settings.IMPORT_RETRY_BASE_DELAY * 2**retries, MAX_RETRY_DELAY)


def chunk_statement_time_limit() -> None:
    """Let PostgreSQL stop a statement that outlives the chunk's time limit.

    Celery's soft limit is a signal; a worker blocked inside the database
    driver (a lock wait) does not see it until the statement returns.
    """
    # A little under the soft limit, so PostgreSQL cancels before the signal interrupts the driver.
    limit_ms = int(settings.IMPORT_CHUNK_SOFT_TIME_LIMIT * 900)
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(limit_ms)])


def is_statement_timeout(exc: Exception) -> bool:
    """PostgreSQL cancelled a statement at the chunk's time limit (see chunk_statement_time_limit)."""
    return isinstance(exc.__cause__, psycopg.errors.QueryCanceled)

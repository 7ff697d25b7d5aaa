"""The D1 sync's public writes, one import away; each lives in the module of its job.

- sync.changes: `d1_sync_request`, `d1_changes_mark` (what the import pipeline calls)
- sync.locks: `sync_lock`, the one D1 writer lock (an advisory lock, also the asset push's helper)
- sync.schema_migrate: `d1_migrate`, `D1SchemaConflict`
- sync.push: the pusher and the row preparer
- sync.bookkeeping: the SyncRun every writing run (sync, repair) begins, pushes through and totals
- sync.run: `sync_run_execute` (incremental, full, the guards for D1 rows we did not write)
- sync.verify: `d1_verify` and its repair
- sync.schedules: the D1 and R2 beat schedules staff pause and re-time (`schedules_enabled_set`, …)

Callers keep importing from here (`sync_services.d1_sync_request(...)` is
looked up at call time, so tests can replace it on this module).
"""

from .changes import d1_changes_mark, d1_sync_request
from .locks import SYNC_LOCK_KEY, sync_lock
from .push import Pusher, PushResult, RowPreparer
from .run import SyncOptions, d1_unknown_agent_ids, sync_run_execute
from .schedules import schedules_due_claim, schedules_enabled_set, schedules_ensure
from .schema_migrate import D1SchemaConflict, d1_migrate
from .verify import d1_verify

__all__ = [
    "SYNC_LOCK_KEY",
    "D1SchemaConflict",
    "PushResult",
    "Pusher",
    "RowPreparer",
    "SyncOptions",
    "d1_changes_mark",
    "d1_migrate",
    "d1_sync_request",
    "d1_unknown_agent_ids",
    "d1_verify",
    "schedules_due_claim",
    "schedules_enabled_set",
    "schedules_ensure",
    "sync_lock",
    "sync_run_execute",
]

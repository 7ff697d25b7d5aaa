"""Fault drill: an import killed repeatedly by SIGKILL, then an exact rollback, on real workers.

Against a disposable database (see imports.benchmark: the same guards, files,
broker and worker pool), the drill

1. pre-loads the first `existing` rows of the generated file with COPY +
   upsert (imports.benchmark.baseline_pass) and takes agents_table_checksum;
2. imports the whole file changed in every row (benchmark's update file), so
   the existing rows are updated and the others created, with N Celery worker
   processes, and SIGKILLs a random worker's process group `kills` times at
   random moments (seeded RNG) while the job runs; each time a replacement
   worker starts (its start-up recovery re-enqueues the chunk the dead worker
   held), and after the last kill import_job_resume re-enqueues what died in
   a killed worker's prefetch, as an operator would;
3. checks the counts, that no row or journal entry exists twice, and
4. rolls the import back with the workers, killing one mid-rollback and
   resuming, and checks the table checksum equals the one taken before.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.core.files import File
from django.db import connection
from django.test.utils import override_settings

from agents.selectors import agents_table_checksum

from .benchmark import (
    BenchmarkError,
    WorkerPool,
    baseline_pass,
    benchmark_files_write,
    broker_check,
    celery_broker,
    database_assert_disposable,
    queues_purge,
    tables_reset,
    worker_env,
)
from .models import ImportChunk, ImportJob, ImportJournalEntry, ImportRollback, ImportRollbackChunk
from .rollback import import_rollback_request, import_rollback_resume
from .services import import_job_create, import_job_resume

DEFAULT_ROWS = 200_000
DEFAULT_EXISTING = 100_000
DEFAULT_KILLS = 5
DEFAULT_WORKERS = 2
DEFAULT_CHUNK_SIZE = 5_000
DEFAULT_SEED = 42
# Redis databases in use elsewhere: 15 tests, 14 benchmark_import, 13 test_benchmark, 12 someone else's.
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/10"
POLL = 0.05
PRIOR_ROWS_PER_SECOND = 1_500

Log = Callable[[str], None]


class DrillError(BenchmarkError):
    pass


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Kill:
    phase: str  # import | rollback
    at_seconds: float  # since the job (or rollback) started running
    worker: str
    chunks_done: int
    chunks_total: int
    chunks_running: int  # chunks inside their transaction when the worker was killed
    still_running_after: bool  # the job was still running once the worker was dead


@dataclass
class DrillReport:
    checks: list[Check]
    kills: list[Kill]
    timings: dict
    counts: dict
    meta: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "checks": [asdict(c) | {"result": "PASS" if c.ok else "FAIL"} for c in self.checks],
            "kills": [asdict(k) for k in self.kills],
            "timings": self.timings,
            "counts": self.counts,
            "meta": self.meta,
        }


def report_json(report: DrillReport) -> str:
    return json.dumps(report.as_dict(), indent=2)


def report_text(report: DrillReport) -> str:
    m, t, c = report.meta, report.timings, report.counts
    lines = [
        f"Fault drill: {m['rows']:,} rows ({m['existing']:,} pre-loaded), {m['workers']} worker(s), "
        f"chunk size {m['chunk_size']:,}, seed {m['seed']}, database {m['database']}, broker {m['broker']}",
        f"Kills: {m['import_kills_done']} of {m['kills_requested']} requested during the import, "
        f"{m['rollback_kills_done']} during the rollback",
    ]
    for k in report.kills:
        lines.append(
            f"  SIGKILL {k.phase:<8} at {k.at_seconds:7.2f} s  {k.worker:<40} chunks done "
            f"{k.chunks_done}/{k.chunks_total}, {k.chunks_running} running"
            f"{'' if k.still_running_after else ' (job had ended)'}"
        )
    lines.append(
        f"Import: {c['created']:,} created / {c['updated']:,} updated / {c['unchanged']:,} unchanged / "
        f"{c['failed']:,} rejected; {c['chunks_retried']} chunk(s) with attempts > 1 since the last resume; "
        f"resume re-enqueued {c['resumed_chunks']} chunk(s)"
    )
    lines.append(
        f"Rollback: {c.get('rollback_deleted', 0):,} deleted / {c.get('rollback_restored', 0):,} restored / "
        f"{c.get('rollback_skipped', 0):,} skipped; resume re-enqueued {c.get('rollback_resumed_chunks', 0)}"
    )
    lines.append(
        "Timings: "
        + ", ".join(f"{k.replace('_seconds', '')} {v:.1f} s" for k, v in t.items() if v is not None)
    )
    lines.append("")
    width = max(len(ch.name) for ch in report.checks) if report.checks else 10
    for ch in report.checks:
        lines.append(f"{'PASS' if ch.ok else 'FAIL'}  {ch.name:<{width}}  {ch.detail}")
    lines.append("")
    lines.append("ALL CHECKS PASS" if report.ok else "SOME CHECKS FAILED")
    return "\n".join(lines)


# --- workers that get killed ------------------------------------------------------------------


class KillableWorkerPool(WorkerPool):
    """benchmark.WorkerPool plus SIGKILL of one worker's process group and replacements."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dead: list[str] = []
        self.ready: set[str] = set()
        self._spawned = 0

    def start(self, app) -> None:
        super().start(app)
        self._spawned = len(self.names)
        self.ready = set(self.names)

    def kill(self, name: str) -> None:
        """SIGKILL the worker's process group (main process and pool child), like a crash."""
        i = self.names.index(name)
        proc = self.procs.pop(i)
        self.names.pop(i)
        self.ready.discard(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.dead.append(name)

    def replace(self) -> str:
        """Start a replacement worker without waiting for it; its start-up runs the recovery."""
        self._spawned += 1
        name = f"drill{self._spawned}-{os.getpid()}@{socket.gethostname()}"
        self.spawn(name, log_name=f"worker-{self._spawned}.log")
        return name

    def refresh_ready(self, app, timeout: float = 0.5) -> set[str]:
        waiting = sorted(set(self.names) - self.ready)
        if waiting:
            for reply in app.control.ping(destination=waiting, timeout=timeout) or []:
                self.ready |= set(reply) & set(self.names)
        return self.ready

    def victim(self, app, rng: random.Random, timeout: float = 90.0) -> str:
        """A random worker among those that answered a ping (waiting for one if none has)."""
        deadline = time.monotonic() + timeout
        while not self.refresh_ready(app):
            self.check_alive()
            if time.monotonic() > deadline:
                raise DrillError("No worker became ready to be killed." + self.logs_tail())
        return rng.choice(sorted(self.ready))


# --- helpers --------------------------------------------------------------------------------------


def _job_status(job_id: int) -> str:
    return ImportJob.objects.filter(pk=job_id).values_list("status", flat=True).get()


def _wait(predicate, *, timeout: float, what: str, pool: KillableWorkerPool):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        pool.check_alive()
        if time.monotonic() > deadline:
            raise DrillError(f"Timed out after {timeout:.0f} s waiting for {what}." + pool.logs_tail())
        time.sleep(POLL)


def _chunk_progress(model, **filters) -> tuple[int, int]:
    qs = model.objects.filter(**filters)
    return qs.filter(status="done").count(), qs.count()


def _next_delay(
    rng: random.Random, *, done: int, total: int, elapsed: float, kills_left: int, chunk_size: int
):
    """A random delay that spreads the remaining kills over the time the job still needs."""
    # Before the first chunk ends, a prior: the benchmark's ~1,500 rows/s per job (see README).
    remaining = (
        (total - done) * elapsed / done if done else max(1.0, total * chunk_size / PRIOR_ROWS_PER_SECOND)
    )
    return max(0.05, rng.uniform(0.25, 1.0) * remaining / (kills_left + 0.5))


def _sleep_while_running(job_id: int, seconds: float) -> bool:
    """Sleep up to `seconds`; False as soon as the job is no longer running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _job_status(job_id) != ImportJob.Status.RUNNING:
            return False
        time.sleep(min(POLL, max(0.0, deadline - time.monotonic())))
    return _job_status(job_id) == ImportJob.Status.RUNNING


def _head_file(source: Path, rows: int, out: Path) -> Path:
    """The header and the first `rows` records of a CSV file (records may span lines)."""
    with source.open(encoding="utf-8", newline="") as src, out.open("w", encoding="utf-8", newline="") as dst:
        writer = csv.writer(dst)
        for i, cells in enumerate(csv.reader(src)):
            if i > rows:
                break
            writer.writerow(cells)
    return out


def _timeout(rows: int) -> float:
    return 300 + rows / 100


# --- the drill ------------------------------------------------------------------------------------


def drill_run(
    *,
    rows: int = DEFAULT_ROWS,
    existing: int = DEFAULT_EXISTING,
    kills: int = DEFAULT_KILLS,
    workers: int = DEFAULT_WORKERS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    seed: int = DEFAULT_SEED,
    broker_url: str = DEFAULT_BROKER_URL,
    workdir: Path | None = None,
    log: Log = lambda message: None,
) -> DrillReport:
    """Run the drill on the current (disposable) database; it truncates agents and imports."""
    database_assert_disposable()
    if workers < 1:
        raise DrillError("--workers must be at least 1.")
    if rows < 1 or not 0 <= existing <= rows:
        raise DrillError("--rows must be at least 1 and --existing between 0 and --rows.")
    if kills < 0:
        raise DrillError("--kills must be 0 or more.")
    broker_check(broker_url)
    rng = random.Random(seed)
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="estateflow-drill-")) if own_dir else Path(workdir)
    media_root = root / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    pool: KillableWorkerPool | None = None
    started = time.perf_counter()
    try:
        with celery_broker(broker_url) as app, override_settings(MEDIA_ROOT=str(media_root)):
            queues_purge(app)
            tables_reset()
            log(f"Generating {rows:,} rows (seed {seed}) ...")
            insert_file, update_file = benchmark_files_write(rows, root, seed=seed)
            timings: dict = {}
            t = time.perf_counter()
            if existing:
                head = _head_file(insert_file, existing, root / f"agents-{existing}-existing.csv")
                baseline_pass(head)
            timings["preload_seconds"] = round(time.perf_counter() - t, 2)
            before = agents_table_checksum()
            log(f"Pre-loaded {before['rows']:,} rows by COPY; checksum {before['md5']}")
            pool = KillableWorkerPool(workers, env=worker_env(broker_url=broker_url, media_root=media_root),
                                      log_dir=root)  # fmt: skip
            log(f"Starting {workers} Celery worker process(es) ({broker_url}) ...")
            pool.start(app)
            report = _drill(
                app, pool, rng, file=update_file, rows=rows, existing=existing, kills=kills,
                workers=workers, chunk_size=chunk_size, before=before, timings=timings, log=log,
            )  # fmt: skip
            tables_reset()
    finally:
        if pool is not None:
            pool.stop()
            with contextlib.suppress(Exception), celery_broker(broker_url) as app:
                queues_purge(app)
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    report.timings["total_seconds"] = round(time.perf_counter() - started, 2)
    report.meta.update(
        rows=rows, existing=existing, kills_requested=kills, workers=workers, chunk_size=chunk_size,
        seed=seed, broker=broker_url, database=connection.settings_dict["NAME"], cpu_count=os.cpu_count(),
    )  # fmt: skip
    return report


def _drill(app, pool, rng, *, file, rows, existing, kills, workers, chunk_size, before, timings, log):
    checks: list[Check] = []
    kill_log: list[Kill] = []
    timeout = _timeout(rows)

    # --- the import, with kills -----------------------------------------------------------------
    t = time.perf_counter()
    with file.open("rb") as handle:
        job = import_job_create(file=File(handle), original_name=file.name, chunk_size=chunk_size)
    _wait(lambda: _job_status(job.pk) != ImportJob.Status.PENDING and _job_status(job.pk) != "planning",
          timeout=timeout, what="planning", pool=pool)  # fmt: skip
    running_since = time.monotonic()
    log(f"Import job {job.pk} running: {job.chunks.count()} chunks; {kills} kill(s) to come")
    for k in range(kills):
        done, total = _chunk_progress(ImportChunk, job=job)
        delay = _next_delay(rng, done=done, total=total, elapsed=time.monotonic() - running_since,
                            kills_left=kills - k, chunk_size=chunk_size)  # fmt: skip
        if not _sleep_while_running(job.pk, delay):
            log(f"The job ended before kill {k + 1}.")
            break
        victim = pool.victim(app, rng)
        if _job_status(job.pk) != ImportJob.Status.RUNNING:
            log(f"The job ended before kill {k + 1}.")
            break
        done, total = _chunk_progress(ImportChunk, job=job)
        running = ImportChunk.objects.filter(job=job, status="running").count()
        pool.kill(victim)
        kill = Kill("import", round(time.monotonic() - running_since, 2), victim, done, total, running,
                    _job_status(job.pk) == ImportJob.Status.RUNNING)  # fmt: skip
        kill_log.append(kill)
        replacement = pool.replace()
        log(f"Kill {k + 1}: SIGKILL {victim} at {kill.at_seconds:.2f} s ({done}/{total} done, {running} running); "
            f"replacement {replacement}")  # fmt: skip
    import_kills = len(kill_log)
    resumed: list[int] = []
    if import_kills:
        pool.wait_ready(app)  # the replacements are up (their recovery has been enqueued)
        resumed = import_job_resume(job_id=job.pk)
        log(f"Operator resume: re-enqueued chunks {resumed}")
    job = _wait(lambda: (j := ImportJob.objects.get(pk=job.pk)).is_terminal and j,
                timeout=timeout, what=f"import job {job.pk} to end", pool=pool)  # fmt: skip
    timings["import_wall_seconds"] = round(time.perf_counter() - t, 2)
    timings["import_job_seconds"] = round((job.finished_at - job.created_at).total_seconds(), 2)
    log(f"Import job {job.pk} {job.status}: {job.created_rows:,} created / {job.updated_rows:,} updated / "
        f"{job.unchanged_rows:,} unchanged / {job.failed_rows:,} rejected")  # fmt: skip

    # --- import checks ------------------------------------------------------------------------------
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*), count(DISTINCT id) FROM agents")
        agents, distinct = cursor.fetchone()
    journal = ImportJournalEntry.objects.filter(job=job)
    entries = journal.count()
    journal_distinct = journal.values("agent_id").distinct().count()
    created, updated = rows - existing, existing
    checks += [
        Check("import status completed", job.status == ImportJob.Status.COMPLETED,
              f"{job.status}{': ' + job.error_message[:300] if job.error_message else ''}"),
        Check("created == rows - existing", job.created_rows == created, f"{job.created_rows:,} (expected {created:,})"),
        Check("updated == existing", job.updated_rows == updated, f"{job.updated_rows:,} (expected {updated:,})"),
        Check("unchanged == 0", job.unchanged_rows == 0, f"{job.unchanged_rows:,}"),
        Check("rejected == 0", job.failed_rows == 0, f"{job.failed_rows:,}"),
        Check("no duplicate ids", agents == distinct, f"count(*) {agents:,}, count(distinct id) {distinct:,}"),
        Check("agents count == rows", agents == rows, f"{agents:,} (expected {rows:,})"),
        Check("journal entries == created + updated", entries == job.created_rows + job.updated_rows,
              f"{entries:,} (created + updated {job.created_rows + job.updated_rows:,})"),
        Check("one journal entry per row", entries == journal_distinct,
              f"{entries:,} entries, {journal_distinct:,} distinct agents"),
    ]  # fmt: skip
    counts = {
        "created": job.created_rows,
        "updated": job.updated_rows,
        "unchanged": job.unchanged_rows,
        "failed": job.failed_rows,
        "chunks": job.chunks.count(),
        "chunks_retried": job.chunks.filter(attempts__gt=1).count(),
        "resumed_chunks": len(resumed),
        "journal_entries": entries,
        "agents_after_import": agents,
    }

    # --- the rollback, with one kill ------------------------------------------------------------------
    t = time.perf_counter()
    rollback = import_rollback_request(job_id=job.pk)
    rb_since = time.monotonic()
    rollback_kills = 0
    if rollback.status == ImportRollback.Status.RUNNING:
        # A random moment: once a random number of the rollback's chunks (1 to half) are done.
        target = rng.randint(1, max(1, rollback.chunks.count() // 2))

        def started_or_over():
            done, _ = _chunk_progress(ImportRollbackChunk, rollback=rollback)
            status = ImportRollback.objects.filter(pk=rollback.pk).values_list("status", flat=True).get()
            return status != ImportRollback.Status.RUNNING or done >= target

        _wait(started_or_over, timeout=timeout, what="the rollback to start", pool=pool)
        rb_status = ImportRollback.objects.filter(pk=rollback.pk).values_list("status", flat=True).get()
        if rb_status == ImportRollback.Status.RUNNING:
            victim = pool.victim(app, rng)
            done, total = _chunk_progress(ImportRollbackChunk, rollback=rollback)
            running = ImportRollbackChunk.objects.filter(rollback=rollback, status="running").count()
            pool.kill(victim)
            status_after = (
                ImportRollback.objects.filter(pk=rollback.pk).values_list("status", flat=True).get()
            )
            kill_log.append(Kill("rollback", round(time.monotonic() - rb_since, 2), victim, done, total, running,
                                 status_after == ImportRollback.Status.RUNNING))  # fmt: skip
            rollback_kills = 1
            replacement = pool.replace()
            log(
                f"Rollback kill: SIGKILL {victim} ({done}/{total} chunks done, {running} running); replacement {replacement}"
            )
            pool.wait_ready(app)
            counts["rollback_resumed_chunks"] = len(import_rollback_resume(rollback_id=rollback.pk))
        else:
            log("The rollback ended before a worker could be killed.")
    rollback = _wait(
        lambda: (r := ImportRollback.objects.get(pk=rollback.pk)).status != ImportRollback.Status.RUNNING and r,
        timeout=timeout, what=f"rollback {rollback.pk} to end", pool=pool,
    )  # fmt: skip
    timings["rollback_wall_seconds"] = round(time.perf_counter() - t, 2)
    job.refresh_from_db()
    after = agents_table_checksum()
    log(f"Rollback {rollback.status}: {rollback.deleted_rows:,} deleted / {rollback.restored_rows:,} restored; "
        f"checksum {after['md5']} (before {before['md5']})")  # fmt: skip
    checks += [
        Check("rollback completed, job rolled_back",
              rollback.status == ImportRollback.Status.COMPLETED and job.status == ImportJob.Status.ROLLED_BACK,
              f"rollback {rollback.status}, job {job.status}"
              f"{': ' + rollback.error_message[:300] if rollback.error_message else ''}"),
        Check("rollback deleted == created", rollback.deleted_rows == job.created_rows,
              f"{rollback.deleted_rows:,} (created {job.created_rows:,})"),
        Check("rollback restored == updated", rollback.restored_rows == job.updated_rows,
              f"{rollback.restored_rows:,} (updated {job.updated_rows:,})"),
        Check("agents checksum after rollback == before", after == before,
              f"{after['rows']:,} rows {after['md5']} vs {before['rows']:,} rows {before['md5']}"),
    ]  # fmt: skip
    counts.update(
        rollback_deleted=rollback.deleted_rows,
        rollback_restored=rollback.restored_rows,
        rollback_skipped=rollback.skipped_rows,
        rollback_chunks_retried=rollback.chunks.filter(attempts__gt=1).count(),
    )
    meta = {
        "import_kills_done": import_kills,
        "rollback_kills_done": rollback_kills,
        "job_id": job.pk,
        "checksum_before": before,
        "checksum_after": after,
    }
    return DrillReport(checks=checks, kills=kill_log, timings=timings, counts=counts, meta=meta)

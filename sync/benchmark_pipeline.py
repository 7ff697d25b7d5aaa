"""`benchmark_pipeline`: a generated file to a verified D1, end to end, then the nightly 1% change.

One run, on a disposable database (`manage.py benchmark_pipeline` creates it)
and a fresh local D1 engine, in two phases of three stages:

1. first load: import the generated file on real Celery workers
   (imports.benchmark.pipeline_pass), sync it to D1 (full: nothing is there
   yet), d1_verify;
2. nightly: import the same file with every 100th row changed
   (imports.benchmark.changed_file_write), the incremental sync, d1_verify.

A phase's time is file uploaded -> D1 verified, its stages one after the
other. Generating the files, starting the workers and the engine and D1's
schema are set-up outside it: in production they exist before a file
arrives. Speed is reported, never judged; the checks (exit status) are about
correctness only: every row created, 1% updated, D1 verified clean and
holding as many agents as PostgreSQL.

The sync runs in this process, as `manage.py sync_d1` runs it (the same
`sync_run_execute` a worker's task calls), so its request bodies can be
recorded: after both phases they are posted straight to the emptied engine
(sync.benchmark's baseline), and the ratio says what our sync costs on top
of the engine itself.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection
from django.test.utils import override_settings

from agents.models import Agent
from imports.benchmark import (
    NIGHTLY_EVERY,
    _pass_timeout,
    benchmark_files_write,
    changed_file_write,
    pipeline_pass,
)
from imports.benchmark_report import BenchmarkError
from imports.benchmark_workers import (
    WorkerPool,
    _postgres_version,
    broker_check,
    celery_broker,
    database_assert_disposable,
    queues_purge,
    tables_reset,
    worker_env,
)
from imports.drill_report import Check
from imports.models import ImportJob
from imports.tasks import IMPORT_QUEUE
from industries.models import IndustryConfig

from .benchmark import RecordingClient, bodies_replay, d1_agents_clear, engine_transport
from .benchmark_pipeline_report import PHASES, REPLAY_RATIO_GOAL, PipelineReport, Stage
from .bookkeeping import push_concurrency
from .d1_client import D1Client, RestTransport
from .local_engine import LocalD1Engine
from .models import SyncRun
from .services import d1_migrate, d1_verify, sync_run_execute

DEFAULT_WORKERS = 2
DEFAULT_CHUNK_SIZE = 5_000
# Its own Redis database: the run purges its queues (benchmark_import uses 14, the drill 10).
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/11"
SEED = 42

Log = Callable[[str], None]


def benchmark_pipeline_run(
    *,
    rows: int,
    workers: int = DEFAULT_WORKERS,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    broker_url: str = DEFAULT_BROKER_URL,
    workdir: Path | None = None,
    log: Log = lambda message: None,
) -> PipelineReport:
    """Both phases on the current (disposable, freshly migrated) database; the report of every stage."""
    database_assert_disposable()
    if rows < NIGHTLY_EVERY:
        raise BenchmarkError(f"--rows must be at least {NIGHTLY_EVERY} (the nightly file changes 1%).")
    if workers < 1:
        raise BenchmarkError("--workers must be at least 1.")
    broker_check(broker_url)
    load_before = os.getloadavg()
    own_dir = workdir is None
    root = Path(tempfile.mkdtemp(prefix="estateflow-pipeline-")) if own_dir else Path(workdir)
    media_root = root / "media"
    media_root.mkdir(parents=True, exist_ok=True)
    setup: dict[str, float] = {}
    pool: WorkerPool | None = None
    engine: LocalD1Engine | None = None
    transport: RestTransport | None = None
    try:
        started = time.perf_counter()
        log(f"Generating {rows:,} agents and the nightly file ...")
        source, nightly, changed = _files_write(rows, root)
        setup["generate files"] = time.perf_counter() - started

        started = time.perf_counter()
        engine = LocalD1Engine(persist_dir=str(root / "d1")).start()
        transport = engine_transport(engine)
        d1_migrate(client=D1Client(transport))
        setup["start D1 engine + schema"] = time.perf_counter() - started

        with celery_broker(broker_url) as app, override_settings(MEDIA_ROOT=str(media_root)):
            queues_purge(app)
            tables_reset()
            started = time.perf_counter()
            log(f"Starting {workers} Celery worker process(es) on queue {IMPORT_QUEUE!r} ({broker_url}) ...")
            pool = WorkerPool(
                workers, env=worker_env(broker_url=broker_url, media_root=media_root), log_dir=root
            )
            pool.start(app)
            setup["start workers"] = time.perf_counter() - started

            # What each phase must import and push (a full sync also pushes the industries).
            phases = {
                "first_load": {
                    "file": source,
                    "imported": {"created": rows},
                    "full": True,
                    "pushed": rows + IndustryConfig.objects.count(),
                },
                "nightly": {
                    "file": nightly,
                    "imported": {"updated": changed, "unchanged": rows - changed},
                    "full": False,
                    "pushed": changed,
                },
            }
            report = PipelineReport(rows=rows, changed=changed, stages=[], checks=[])
            synced: dict[str, tuple[SyncRun, Path]] = {}
            for phase, spec in phases.items():
                bodies = root / f"{phase}-bodies.jsonl"
                run = _phase_run(
                    report, phase, chunk_size=chunk_size, pool=pool, transport=transport, bodies=bodies,
                    log=log, **spec,
                )  # fmt: skip
                if run is None:
                    break  # the import failed: nothing to sync; the checks say so
                synced[phase] = (run, bodies)
            if len(synced) == len(phases):
                report.replay = _replay_baseline(synced, transport=transport, log=log)
    finally:
        if pool is not None:
            pool.stop()
            with contextlib.suppress(Exception), celery_broker(broker_url) as app:
                queues_purge(app)  # the sync requests our imports enqueued: no worker here takes them
        if transport is not None:
            transport.close()
        if engine is not None:
            engine.stop()
        if own_dir:
            shutil.rmtree(root, ignore_errors=True)
    report.meta = {
        "cpu_count": os.cpu_count(),
        # Other work on the machine skews every figure: the load averages before and after.
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "platform": f"{platform.system()} {platform.machine()}, Python {platform.python_version()}",
        "postgresql": _postgres_version(),
        "database": connection.settings_dict["NAME"],
        "broker": broker_url,
        "workers": workers,
        "chunk_size": chunk_size,
        "seed": SEED,
        "sync_concurrency": push_concurrency(),
        "peak_worker_mb": max((s.peak_worker_mb or 0 for s in report.stages), default=0) or None,
        "setup_seconds": {k: round(v, 2) for k, v in setup.items()},
    }
    return report


def _files_write(rows: int, root: Path) -> tuple[Path, Path, int]:
    """(the generated file, the nightly file with 1% of its rows changed, rows changed)."""
    source, update = benchmark_files_write(rows, root, seed=SEED)
    update.unlink()  # benchmark_import's update pass; no phase here
    nightly = root / f"agents-{rows}-nightly.csv"
    return source, nightly, changed_file_write(source, nightly, every=NIGHTLY_EVERY)


def _phase_run(
    report: PipelineReport,
    phase: str,
    *,
    file: Path,
    imported: dict[str, int],
    full: bool,
    pushed: int,
    chunk_size: int,
    pool: WorkerPool,
    transport: RestTransport,
    bodies: Path,
    log: Log,
) -> SyncRun | None:
    """Import `file`, sync, verify; stages and checks go on `report`. None when the import failed."""
    label, rows = PHASES[phase], report.rows

    analyzed = _agents_analyze_count()
    started = time.perf_counter()
    outcome = pipeline_pass(file, chunk_size=chunk_size, pool=pool, timeout=_pass_timeout(rows))
    seconds = time.perf_counter() - started
    analyzed = _agents_analyze_count() - analyzed
    counts = {k: outcome[k] for k in ("created", "updated", "unchanged", "failed")}
    summary = ", ".join(f"{v:,} {k}" for k, v in counts.items())
    where = (
        f"upload + planning {outcome['planning_seconds']:.1f} s, {outcome['chunks']} chunks "
        f"{outcome['chunk_seconds_sum']:.1f} s summed (longest {outcome['chunk_seconds_max']:.1f} s); "
        f"agents analyzed {analyzed}x meanwhile"
    )
    report.stages.append(
        Stage(
            phase,
            "import",
            seconds,
            rows,
            detail=f"{summary}; {where}",
            peak_worker_mb=outcome["peak_worker_mb"],
        )
    )
    wanted = dict.fromkeys(counts, 0) | imported
    report.checks.append(
        Check(
            f"{label}: import " + ", ".join(f"{v:,} {k}" for k, v in imported.items()),
            outcome["status"] == ImportJob.Status.COMPLETED and counts == wanted,
            f"{outcome['status']}: {summary}"
            + (f"; {outcome['error_message'][:300]}" if outcome["error_message"] else ""),
        )
    )
    log(f"{label}: import {seconds:.2f} s, {outcome['status']}, {summary}")
    if outcome["status"] not in (ImportJob.Status.COMPLETED, ImportJob.Status.COMPLETED_WITH_ERRORS):
        return None

    with bodies.open("wb") as sink:
        client = RecordingClient(transport, sink)
        started = time.perf_counter()
        run = sync_run_execute(full=full, reason=f"benchmark_pipeline {phase}", client=client)
        seconds = time.perf_counter() - started
    kind = SyncRun.Kind.FULL if full else SyncRun.Kind.INCREMENTAL
    detail = (
        f"{run.kind}, {run.status}: {run.rows_upserted:,} upserted, {run.rows_failed:,} skipped, "
        f"{run.changes_read:,} changes read, {run.retries} retries"
    )
    report.stages.append(
        Stage(phase, "sync", seconds, run.rows_upserted, run.requests, run.bytes_sent, detail)
    )
    report.checks.append(
        Check(
            f"{label}: {kind} sync completed, {pushed:,} rows upserted",
            run.status == SyncRun.Status.COMPLETED and run.kind == kind and run.rows_upserted == pushed,
            detail + (f"; {run.error[:300]}" if run.error else ""),
        )
    )
    log(f"{label}: sync {seconds:.2f} s, {detail}")

    client = D1Client(transport)
    started = time.perf_counter()
    verify = d1_verify(client=client)
    seconds = time.perf_counter() - started
    requests, bytes_sent = client.stats.requests, client.stats.bytes_sent
    pg_count = Agent.objects.count()
    d1_count = int(client.rows("SELECT count(*) FROM agents")[0][0])
    detail = (
        f"{'clean' if verify.clean else 'DRIFT'}, {verify.ranges_checked} id ranges, "
        f"{len(verify.drifted_ranges)} drifted, {len(verify.count_drift)} industry/state counts differ"
    )
    report.stages.append(Stage(phase, "verify", seconds, pg_count, requests, bytes_sent, detail))
    report.checks += [
        Check(f"{label}: d1_verify clean", verify.clean and not verify.error,
              detail + (f"; {verify.error[:300]}" if verify.error else "")),
        Check(f"{label}: D1 agents = PostgreSQL agents = file rows", d1_count == pg_count == rows,
              f"D1 {d1_count:,}, PostgreSQL {pg_count:,}, file {rows:,}"),
    ]  # fmt: skip
    log(f"{label}: verify {seconds:.2f} s, {detail}; D1 {d1_count:,} agents, PostgreSQL {pg_count:,}")
    return run


def _agents_analyze_count() -> int:
    """How often agents was analyzed so far (by anyone, autovacuum included).

    A first load's chunk queries are planned on the statistics of an empty table until
    the table is analyzed again, and some of those plans cost more as the table grows:
    whether and when autovacuum got to it shows in the import's time.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(analyze_count + autoanalyze_count), 0) FROM pg_stat_user_tables"
            " WHERE relname = 'agents'"
        )
        return int(cursor.fetchone()[0])


def _replay_baseline(synced: dict[str, tuple[SyncRun, Path]], *, transport: RestTransport, log: Log) -> dict:
    """Each phase's recorded bodies posted straight to the emptied engine, in order; the sync's ratio to it.

    The first load's bodies land on an empty D1 as its sync did, the nightly's on top of them.
    """
    d1_agents_clear(D1Client(transport))
    concurrency = push_concurrency()
    out = {}
    for phase, (run, bodies) in synced.items():
        replay = bodies_replay(bodies, f"{transport.url}/query", concurrency)
        ratio = round(run.duration_seconds / replay["seconds"], 2) if replay["seconds"] else None
        out[phase] = {
            "sync_seconds": run.duration_seconds,
            "replay_seconds": replay["seconds"],
            "ratio": ratio,
            "requests": replay["requests"],
            "bytes_sent": replay["bytes_sent"],
            "concurrency": concurrency,
            "goal_met": ratio is not None and ratio <= REPLAY_RATIO_GOAL,
        }
        log(f"{PHASES[phase]}: replay of the sync's bodies {replay['seconds']:.2f} s; sync/replay {ratio}x")
    return out

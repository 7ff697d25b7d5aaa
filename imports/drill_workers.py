"""The fault drill's killable worker pool and its waiting and timing helpers.

Split out of imports.drill (which re-exports these names).
"""

from __future__ import annotations

import contextlib
import csv
import os
import random
import signal
import socket
import time
from pathlib import Path

from .benchmark import WorkerPool
from .drill_report import DrillError
from .models import ImportJob

POLL = 0.05
PRIOR_ROWS_PER_SECOND = 1_500


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

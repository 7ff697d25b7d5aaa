"""Results of the import throughput benchmark: per-pass figures, the report, its table and JSON.

Split out of imports.benchmark (which re-exports these names).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .models import ImportJob


class BenchmarkError(RuntimeError):
    """The benchmark cannot run or a pass did not finish; the message says why."""


# --- results -------------------------------------------------------------------------


@dataclass
class PassResult:
    rows: int
    phase: str  # insert | update | unchanged | 1% changed
    status: str
    pipeline_seconds: float  # job.created_at -> job.finished_at, from the database
    pipeline_wall_seconds: float  # this process: before import_job_create -> terminal status seen
    baseline_seconds: float
    baseline_written: int
    created: int
    updated: int
    unchanged: int
    failed: int
    chunks: int
    peak_worker_mb: float | None
    # Where the pipeline's time went: upload + planning (created -> planned), then the chunks.
    planning_seconds: float = 0.0
    chunk_seconds_sum: float = 0.0  # sum of ImportChunk.duration_ms (work inside chunk transactions)
    chunk_seconds_max: float = 0.0
    expected: dict = field(default_factory=dict)

    @property
    def pipeline_rows_per_second(self) -> float:
        return self.rows / self.pipeline_seconds if self.pipeline_seconds else 0.0

    @property
    def baseline_rows_per_second(self) -> float:
        return self.rows / self.baseline_seconds if self.baseline_seconds else 0.0

    @property
    def ratio(self) -> float | None:
        return self.pipeline_seconds / self.baseline_seconds if self.baseline_seconds else None

    @property
    def counts_ok(self) -> bool:
        actual = {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}
        return (
            self.status == ImportJob.Status.COMPLETED
            and self.failed == 0
            and all(actual[k] == v for k, v in self.expected.items())
        )

    def as_dict(self) -> dict:
        data = asdict(self)
        data["pass"] = data.pop("phase")
        data.update(
            pipeline_rows_per_second=round(self.pipeline_rows_per_second, 1),
            baseline_rows_per_second=round(self.baseline_rows_per_second, 1),
            ratio=round(self.ratio, 3) if self.ratio is not None else None,
            counts_ok=self.counts_ok,
        )
        for key in ("pipeline_seconds", "pipeline_wall_seconds", "baseline_seconds", "planning_seconds"):
            data[key] = round(data[key], 4)
        return data


@dataclass
class BenchmarkReport:
    results: list[PassResult]
    meta: dict

    @property
    def ok(self) -> bool:
        return all(r.counts_ok for r in self.results)

    def as_dict(self) -> dict:
        return {"meta": self.meta, "results": [r.as_dict() for r in self.results], "ok": self.ok}


def report_table(report: BenchmarkReport) -> str:
    head = (
        f"{'rows':>9}  {'pass':<10}  {'pipeline s':>10}  {'pipeline r/s':>12}  {'baseline s':>10}  "
        f"{'baseline r/s':>12}  {'ratio':>6}  {'peak worker MB':>14}  counts"
    )
    lines = [head, "-" * len(head)]
    for r in report.results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        peak = f"{r.peak_worker_mb:.0f}" if r.peak_worker_mb is not None else "-"
        counts = (
            "ok" if r.counts_ok else f"WRONG ({r.status}: {r.created}/{r.updated}/{r.unchanged}/{r.failed})"
        )
        lines.append(
            f"{r.rows:>9,}  {r.phase:<10}  {r.pipeline_seconds:>10.2f}  {r.pipeline_rows_per_second:>12,.0f}  "
            f"{r.baseline_seconds:>10.2f}  {r.baseline_rows_per_second:>12,.0f}  {ratio:>6}  {peak:>14}  {counts}"
        )
    m = report.meta
    lines += [
        "",
        f"Machine: {m['cpu_count']} cores, {m['platform']}; {m['postgresql']}; 1-minute load "
        f"{m['load_average'][0]} before, {m['load_average'][1]} after.",
        f"Pipeline: {m['workers']} Celery worker process(es) ({m['worker_command']}), chunk size "
        f"{m['chunk_size']:,}, broker {m['broker']}, database {m['database']}; seconds are "
        "job.created_at -> job.finished_at (file upload, planning, chunks, finalize).",
        "Baseline: csv.reader + COPY into a temp table + one INSERT ... ON CONFLICT (id) DO UPDATE "
        "... WHERE IS DISTINCT FROM, same indexed agents table, same FK and statement-level sync "
        "triggers; no validation, journal or row errors. ratio = pipeline s / baseline s.",
    ]
    return "\n".join(lines)


def report_json(report: BenchmarkReport) -> str:
    return json.dumps(report.as_dict(), indent=2)

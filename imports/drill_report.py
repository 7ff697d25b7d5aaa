"""Results of the fault drill: its checks, the kills, the report as text and JSON.

Split out of imports.drill (which re-exports these names).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .benchmark import BenchmarkError


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

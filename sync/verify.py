"""Comparing PostgreSQL with D1 (`d1_verify`) and repairing what drifted.

A repair is a run like a sync: it holds the D1 writer lock and its SyncRun
(kind repair) is begun, pushed through and totalled by sync.bookkeeping.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .bookkeeping import (
    d1_unmanaged_count,
    restore_point_take,
    sync_run_begin,
    sync_run_pushing,
    sync_target_name,
)
from .d1_client import D1Client, d1_client_from_settings, d1_error_text
from .locks import sync_lock
from .models import SyncRun, VerifyRun
from .push import (
    Pusher,
    RowPreparer,
    push_builders,
    row_preparer,
    send_agent_deletes,
    send_agents,
    send_industries,
    send_industry_deletes,
)
from .selectors import (
    agents_counts_by_industry_state,
    agents_rows_all,
    agents_rows_in_range,
    d1_counts_by_industry_state,
    d1_industries,
    d1_range_checksums,
    d1_versions_in_range,
    industries_rows,
    industry_as_d1,
    row_body_and_version,
)

logger = logging.getLogger(__name__)

VERIFY_RANGE_ROWS = 5000


@dataclass
class _CompareReport:
    ranges: list[dict]
    drifted: list[dict]
    count_drift: list[dict]
    industry_drift: list[dict]

    @property
    def clean(self) -> bool:
        return not (self.drifted or self.count_drift or self.industry_drift)


def d1_verify(*, repair: bool = False, prune: bool = False, client: D1Client | None = None) -> VerifyRun:
    """Compare PostgreSQL with D1; with `repair`, re-push the drifted ranges and compare again.

    `prune` lets the repair delete D1 agents PostgreSQL lacks (after a restore point).
    """
    own_client = client is None
    client = client or d1_client_from_settings()
    verify = VerifyRun.objects.create(started_at=timezone.now())
    try:
        report = _compare(client=client)
        verify.ranges_checked = len(report.ranges)
        verify.drifted_ranges = [_range_summary(r) for r in report.drifted][:500]
        verify.count_drift = report.count_drift[:500]
        verify.industry_drift = report.industry_drift
        verify.clean = report.clean
        if repair and not report.clean:
            verify.rows_repaired = _verify_repair(
                report=report, client=client, prune=prune, own_client=own_client
            )
            verify.repaired = True
            verify.clean = _compare(client=client).clean
    except Exception as exc:
        logger.exception("D1 verification failed")
        verify.error = d1_error_text(exc, limit=4000)
        verify.clean = False
    finally:
        verify.finished_at = timezone.now()
        verify.save()
        if own_client:
            client.close()
    return verify


def _pg_ranges(range_rows: int) -> list[dict]:
    """PostgreSQL's agents in id order, cut into ranges of `range_rows` with count and version sum."""
    ranges: list[dict] = []
    current: dict | None = None
    for values in agents_rows_all():
        if current is None or current["pg_count"] >= range_rows:
            current = {"lo": "" if current is None else values[0], "pg_count": 0, "pg_sum": 0}
            ranges.append(current)
        _, version = row_body_and_version(values)
        current["pg_count"] += 1
        current["pg_sum"] += version
    if not ranges:
        ranges.append({"lo": "", "pg_count": 0, "pg_sum": 0})
    for i, rng in enumerate(ranges):
        rng["hi"] = ranges[i + 1]["lo"] if i + 1 < len(ranges) else None
    return ranges


def _compare(*, client: D1Client) -> _CompareReport:
    # One transaction: PostgreSQL's side is read from a single snapshot, and
    # the id-ordered scan streams through a plain server-side cursor instead
    # of a WITH HOLD one that would materialise every row first.
    with transaction.atomic():
        ranges = _pg_ranges(int(getattr(settings, "SYNC_D1_VERIFY_RANGE_ROWS", VERIFY_RANGE_ROWS)))
        pg_counts = agents_counts_by_industry_state()
        pg_ind = {r[0]: industry_as_d1(r) for r in industries_rows()}
    d1 = d1_range_checksums(client=client, ranges=[(r["lo"], r["hi"]) for r in ranges])
    drifted = []
    for rng, (count, total) in zip(ranges, d1, strict=True):
        rng["d1_count"], rng["d1_sum"] = count, total
        if (count, total) != (rng["pg_count"], rng["pg_sum"]):
            drifted.append(rng)
    d1_counts = d1_counts_by_industry_state(client=client)
    count_drift = [
        {"industry": k[0], "state": k[1], "postgres": pg_counts.get(k, 0), "d1": d1_counts.get(k, 0)}
        for k in sorted(set(pg_counts) | set(d1_counts), key=lambda k: (str(k[0]), str(k[1])))
        if pg_counts.get(k, 0) != d1_counts.get(k, 0)
    ]
    d1_ind = d1_industries(client=client)
    industry_drift = [
        {"industry": k, "postgres": k in pg_ind, "d1": k in d1_ind}
        for k in sorted(set(pg_ind) | set(d1_ind))
        if pg_ind.get(k) != d1_ind.get(k)
    ]
    return _CompareReport(ranges, drifted, count_drift, industry_drift)


def _verify_repair(*, report: _CompareReport, client: D1Client, prune: bool, own_client: bool) -> int:
    with sync_lock() as acquired:
        if not acquired:
            raise RuntimeError("a sync is running; repair again once it has finished")
        run = sync_run_begin(
            kind=SyncRun.Kind.REPAIR,
            reason="d1_verify --repair" + (" --prune" if prune else ""),
            target=sync_target_name(client, own_client=own_client),
            pruned=prune,
        )
        with sync_run_pushing(run, client=client) as pusher:
            repaired = _repair(
                report=report, pusher=pusher, prep=row_preparer(pusher, run.pk), run=run, prune=prune
            )
            run.status = SyncRun.Status.PARTIAL if pusher.result.failures else SyncRun.Status.COMPLETED
        return repaired


def _repair(*, report: _CompareReport, pusher: Pusher, prep: RowPreparer, run: SyncRun, prune: bool) -> int:
    """Re-push what differs inside drifted ranges; with `prune`, delete what PostgreSQL lacks.

    Rows no sync of ours wrote are only overwritten when their content is the same.
    """
    if d1_unmanaged_count(pusher.client):
        pusher.builders = push_builders(unmanaged_guard=True)
    repaired = 0
    restore_point_taken = False

    def before_delete() -> None:
        nonlocal restore_point_taken
        if not restore_point_taken:
            restore_point_take(run, pusher.client, "d1_verify --repair --prune")
            restore_point_taken = True

    if report.industry_drift:
        rows = industries_rows()
        send_industries(pusher, prep, rows)
        pusher.wait()
        gone = [d["industry"] for d in report.industry_drift if not d["postgres"]]
        if gone and prune:
            before_delete()
            send_industry_deletes(pusher, gone)
        repaired += len(report.industry_drift)
    for rng in report.drifted:
        d1_versions = d1_versions_in_range(client=pusher.client, lo=rng["lo"], hi=rng["hi"])
        pg_rows = agents_rows_in_range(lo=rng["lo"], hi=rng["hi"])
        stale = []
        for values in pg_rows:
            _, version = row_body_and_version(values)
            if d1_versions.get(values[0], -1) != version:
                stale.append(values)
        pg_ids = {r[0] for r in pg_rows}
        extras = [i for i in d1_versions if i not in pg_ids] if prune else []
        send_agents(pusher, prep, stale)
        pusher.wait()
        if extras:
            before_delete()
            send_agent_deletes(pusher, extras, run.pk)
        repaired += len(stale) + len(extras)
    pusher.wait()
    return repaired


def _range_summary(rng: dict) -> dict:
    return {k: rng[k] for k in ("lo", "hi", "pg_count", "d1_count", "pg_sum", "d1_sum")}

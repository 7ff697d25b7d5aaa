"""Selectors for the admin index dashboard: agents per industry / state / tier, imports, D1 sync lag, schedules.

Every agent figure is one GROUP BY over an indexed column (industry,
state, subscription_tier), cached for a minute: at 500,000 rows each is an
index-only scan of tens of milliseconds, and the index page is hit often.
Import and sync panels are live (a handful of small queries).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

AGENT_STATS_CACHE_KEY = "admin-dashboard:agents:v1"
AGENT_STATS_TTL_SECONDS = 60
RECENT_IMPORTS = 5
ACTIVE_IMPORT_STATUSES = ("pending", "planning", "running", "rolling_back")


@dataclass
class Bar:
    key: str
    label: str
    count: int
    percent: float  # of the total
    width: float  # of the largest bar, 0-100 (what the chart draws)


@dataclass
class AgentStats:
    total: int
    by_industry: list[Bar]
    by_state: list[Bar]
    by_tier: list[Bar]
    computed_at: datetime


@dataclass
class SyncStatus:
    pending_changes: int
    last_run: object | None
    last_success: object | None
    lag_seconds: float | None  # since the last successful sync started (None: never synced)
    last_verify: object | None


@dataclass
class ImportsPanel:
    active: list[tuple[object, object]] = field(default_factory=list)  # (job, progress)
    recent: list[tuple[object, object]] = field(default_factory=list)


def _bars(rows: list[tuple[str, str, int]], total: int) -> list[Bar]:
    top = max((n for _, _, n in rows), default=0)
    return [
        Bar(
            key=key,
            label=label,
            count=n,
            percent=round(100.0 * n / total, 1) if total else 0.0,
            width=round(100.0 * n / top, 1) if top else 0.0,
        )
        for key, label, n in rows
    ]


def agent_stats_compute() -> AgentStats:
    from agents.models import Agent
    from industries.constants import SUBSCRIPTION_TIERS, US_STATES
    from industries.models import IndustryConfig

    names = dict(IndustryConfig.objects.values_list("industry", "display_name"))
    by_industry = dict(Agent.objects.order_by().values_list("industry_id").annotate(n=Count("*")))
    by_state = dict(Agent.objects.order_by().values_list("state").annotate(n=Count("*")))
    by_tier = dict(Agent.objects.order_by().values_list("subscription_tier").annotate(n=Count("*")))
    total = sum(by_industry.values())

    industry_rows = sorted(
        ((slug, names.get(slug, slug), by_industry.get(slug, 0)) for slug in {*names, *by_industry}),
        key=lambda r: (-r[2], r[0]),
    )
    state_rows = sorted(
        ((code, f"{code} — {US_STATES.get(code, code)}", n) for code, n in by_state.items()),
        key=lambda r: (-r[2], r[0]),
    )
    tier_rows = [(t, t.capitalize(), by_tier.get(t, 0)) for t in SUBSCRIPTION_TIERS]
    tier_rows += [(t, t, n) for t, n in by_tier.items() if t not in SUBSCRIPTION_TIERS]
    return AgentStats(
        total=total,
        by_industry=_bars(industry_rows, total),
        by_state=_bars(state_rows, total),
        by_tier=_bars(tier_rows, total),
        computed_at=timezone.now(),
    )


def agent_stats(*, use_cache: bool = True) -> AgentStats:
    if not use_cache:
        return agent_stats_compute()
    stats = cache.get(AGENT_STATS_CACHE_KEY)
    if stats is None:
        stats = agent_stats_compute()
        cache.set(AGENT_STATS_CACHE_KEY, stats, AGENT_STATS_TTL_SECONDS)
    return stats


def imports_panel() -> ImportsPanel:
    from imports.models import ImportJob
    from imports.selectors import import_job_progress

    jobs = ImportJob.objects.select_related("created_by")
    active = list(jobs.filter(status__in=ACTIVE_IMPORT_STATUSES).order_by("-created_at")[:RECENT_IMPORTS])
    recent = list(jobs.exclude(status__in=ACTIVE_IMPORT_STATUSES).order_by("-created_at")[:RECENT_IMPORTS])
    return ImportsPanel(
        active=[(job, import_job_progress(job=job)) for job in active],
        recent=[(job, import_job_progress(job=job)) for job in recent],
    )


def sync_status() -> SyncStatus:
    from sync.selectors import (
        sync_pending_changes_count,
        sync_run_last,
        sync_run_last_successful,
        verify_run_last,
    )

    last_success = sync_run_last_successful()
    lag = (timezone.now() - last_success.started_at).total_seconds() if last_success else None
    return SyncStatus(
        pending_changes=sync_pending_changes_count(),
        last_run=sync_run_last(),
        last_success=last_success,
        lag_seconds=lag,
        last_verify=verify_run_last(),
    )


def schedules_panel() -> list:
    """The D1 and R2 beat schedules (sync.Schedule): two rows, read live so a pause shows at once."""
    from sync.selectors import schedules_list

    return schedules_list()


WORKERS_CACHE_KEY = "admin-dashboard:workers:v1"
WORKERS_TTL_SECONDS = 30


def workers_status() -> dict:
    """Celery workers answering control.ping (cached 30 s: a ping waits its whole timeout)."""
    status = cache.get(WORKERS_CACHE_KEY)
    if status is None:
        from estateflow.health import workers_alive

        try:
            names = workers_alive(timeout=0.5)
            status = {"alive": bool(names), "names": names, "error": ""}
        except Exception as exc:  # the broker is down: no worker can be reached either
            status = {"alive": False, "names": [], "error": type(exc).__name__}
        status["checked_at"] = timezone.now()
        cache.set(WORKERS_CACHE_KEY, status, WORKERS_TTL_SECONDS)
    return status


def admin_dashboard(*, user) -> dict:
    """The panels `user` may see: each needs the view permission of what it shows."""
    out: dict = {}
    if user.has_perm("agents.view_agent"):
        out["agents"] = agent_stats()
    if user.has_perm("imports.view_importjob"):
        out["imports"] = imports_panel()
    if user.has_perm("sync.view_syncrun"):
        out["sync"] = sync_status()
    if user.has_perm("sync.view_schedule"):
        out["schedules"] = schedules_panel()
    if user.is_staff and (out or user.is_superuser):
        out["workers"] = workers_status()
    return out

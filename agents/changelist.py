"""Changelist pieces that keep the agent admin fast at 500,000 rows (PostgreSQL).

* `EstimatedCountPaginator`: an unfiltered list takes its row count from the
  planner's estimate (`pg_class.reltuples`, kept fresh by autovacuum) instead
  of an exact COUNT(*) over the whole table on every page; a filtered or
  searched list counts exactly up to FILTERED_COUNT_CAP rows (a bounded scan
  through the filter and trigram indexes) and stops there. Deep pages read the page's primary keys first from the covering
  (name, id) index, then fetch only those rows ("deferred join"), so ?p=5000
  does not drag 250,000 full rows through an OFFSET.
* `IndexedOrderingChangeList`: Django appends "-pk" to make any ordering total;
  ordering by name ascending then becomes `name ASC, id DESC`, which no b-tree
  can serve. The tie-breaker here follows the direction of the first key, so
  `?o=1` reads idx_agents_name_id forwards and `?o=-1` backwards.
* Counts that are not exact (`ApproximateCount`) read "10,000+" or "~500,000" everywhere the
  admin prints them, and an action on "all" of such a list first shows the exact number and asks
  to confirm it (`LargeTableAdminMixin.response_action`): "Select all 10000" used to delete 15,981.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import model_format_dict
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import OrderBy, QuerySet
from django.template.response import TemplateResponse
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.safestring import mark_safe

# Below this many rows an exact count is cheap; above it the estimate is used when unfiltered.
ESTIMATE_COUNT_ABOVE = 100_000
# A filtered or searched list counts exactly up to this many rows (200 pages of 50).
FILTERED_COUNT_CAP = 10_000
# From this offset on a page reads its primary keys first (index-only), then the rows.
DEFERRED_JOIN_OFFSET = 2_000


def table_row_estimate(*, table: str, using: str = "default") -> int | None:
    """The planner's row estimate for `table`, or None when unknown (never analysed)."""
    with connections[using].cursor() as cur:
        cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [table])
        row = cur.fetchone()
    if not row or row[0] is None or row[0] < 0:
        return None
    return int(row[0])


class ApproximateCount(int):
    """A row count that is a lower bound ("10,000+") or an estimate ("~500,000").

    Pages with it like the int it is, and prints as its label, so every place the admin shows
    the count ("N agents", "Select all N agents", "All N selected", "N results") says so.
    """

    label: str

    def __new__(cls, value: int, label: str) -> ApproximateCount:
        count = super().__new__(cls, value)
        count.label = label
        return count

    def __str__(self) -> str:
        return self.label

    def __html__(self) -> str:
        return self.label


def queryset_is_unfiltered(qs: QuerySet) -> bool:
    query = qs.query
    return not query.where and not query.distinct and query.combinator is None and not query.is_sliced


class EstimatedCountPaginator(Paginator):
    estimate_above = ESTIMATE_COUNT_ABOVE
    deferred_join_offset = DEFERRED_JOIN_OFFSET
    count_cap = FILTERED_COUNT_CAP

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if isinstance(qs, QuerySet) and queryset_is_unfiltered(qs):
            estimate = table_row_estimate(table=qs.model._meta.db_table, using=qs.db)
            if estimate is not None and estimate >= self.estimate_above:
                self.count_is_estimate = True
                return ApproximateCount(estimate, f"~{estimate:,}")
        self.count_is_estimate = False
        if isinstance(qs, QuerySet) and self.count_cap:
            # Count at most count_cap + 1 matching rows: a search matching 30,000 agents
            # costs a bounded scan, not a visit to every matching row; nobody pages past 200.
            found = qs.order_by()[: self.count_cap + 1].count()
            if found > self.count_cap:
                return ApproximateCount(self.count_cap, f"{self.count_cap:,}+")
            return found
        return super().count

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        qs = self.object_list
        if isinstance(qs, QuerySet) and bottom >= self.deferred_join_offset:
            ids = list(qs.values_list("pk", flat=True)[bottom:top])
            # Same queryset, same (total) ordering: the rows come back in page order.
            object_list = qs.filter(pk__in=ids)
        else:
            object_list = qs[bottom:top]
        return self._get_page(object_list, number, self)


class IndexedOrderingChangeList(ChangeList):
    def _get_deterministic_ordering(self, ordering):
        ordering = list(ordering)
        result = super()._get_deterministic_ordering(ordering)
        if ordering and len(result) == len(ordering) + 1 and result[-1] == "-pk":
            first = ordering[0]
            ascending = (isinstance(first, str) and not first.startswith("-")) or (
                isinstance(first, OrderBy) and not first.descending
            )
            if ascending:
                result[-1] = "pk"
        return result


SELECT_ACROSS_CONFIRM = "select_across_count"


def _posted_select_across(request) -> bool:
    return request.method == "POST" and request.POST.get("select_across") in ("1", "True", "true", "on")


class LargeTableAdminMixin:
    """For a ModelAdmin over a table of hundreds of thousands of rows (put it before ModelAdmin)."""

    paginator = EstimatedCountPaginator
    # No second COUNT(*) of the whole table for the "(N total)" link.
    show_full_result_count = False

    def get_changelist(self, request, **kwargs):
        return IndexedOrderingChangeList

    def response_action(self, request, queryset):
        """An action on "all" rows of a list whose count was not exact runs only on a confirmed exact count."""
        if _posted_select_across(request):
            shown = self.get_paginator(request, queryset, self.list_per_page).count
            if isinstance(shown, ApproximateCount):
                total = queryset.count()  # once, on an explicit "all": the number the action would touch
                if request.POST.get(SELECT_ACROSS_CONFIRM) != str(total):
                    return self._select_across_confirm(request, shown=shown, total=total)
        return super().response_action(request, queryset)

    def _select_across_confirm(self, request, *, shown: ApproximateCount, total: int):
        post = request.POST
        actions = post.getlist("action")
        try:
            action = actions[int(post.get("index", 0))]
        except (IndexError, ValueError):
            return None  # no valid action: Django's own handling reports it
        available = self.get_actions(request)
        if action not in available:
            return None
        opts = self.model._meta
        context = {
            **self.admin_site.each_context(request),
            "opts": opts,
            "title": "Confirm the number of rows",
            "shown": shown,
            "total": total,
            "total_label": f"{total:,}",
            "action": action,
            "action_label": str(available[action][2]) % model_format_dict(opts),
            "selected": post.getlist(helpers.ACTION_CHECKBOX_NAME),
            "confirm_field": SELECT_ACROSS_CONFIRM,
            "changelist_url": request.get_full_path(),
        }
        return TemplateResponse(request, "admin/large_table_select_across.html", context)

    @admin.display(description=mark_safe('<input type="checkbox" id="action-toggle">'))
    def action_checkbox(self, obj):
        # Same markup as Django's, without rendering a form widget template per row.
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            f"Select this object for an action - {obj}",
        )

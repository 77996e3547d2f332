"""The Logs pages' list, shared by Administration > Logs and a project's Logs tab: the filters, and keyset pages
of events (Newer / Older) that cost the same at the 300,000th event as at the first and count nothing."""

from __future__ import annotations

import datetime
from typing import Any

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.utils.http import urlencode

from portal.core.charts import FAILURE_COLOUR, SUCCESS_COLOUR, Chart, Series, last_days, per_day
from portal.core.filters import AuditEventFilterSet
from portal.core.models import AuditEvent, Outcome
from portal.core.pagination import CURSOR_PARAM, InvalidCursor, keyset_page
from portal.core.ui import PAGE_SIZE, page_or_region

# Days of the activity chart above the Logs tables.
ACTIVITY_DAYS = 30
STALE_CURSOR = "This page link is not one the log handed out; start again from the newest events."


def audit_log_page(
    request: HttpRequest, events: QuerySet[AuditEvent], template: str, context: dict[str, Any], *, one_project: bool
) -> HttpResponse:
    """The Logs page (or, for htmx, its table region) of `events` narrowed by the request's filters.

    `one_project` leaves out the project filter (the tab's events are all of one project). Bad filters or a
    cursor this list did not hand out answer 400 with the form's errors and no rows.
    """
    filterset = AuditEventFilterSet(request.GET, events)
    if one_project:
        del filterset.filters["project"]
    query = {name: request.GET[name] for name in filterset.filters if request.GET.get(name)}
    cursor = request.GET.get(CURSOR_PARAM)
    page = None
    if filterset.is_valid():
        try:
            page = keyset_page(filterset.qs, cursor, PAGE_SIZE)
        except InvalidCursor:
            filterset.form.add_error(None, STALE_CURSOR)

    def link(cursor: str | None) -> str | None:
        return None if cursor is None else f"{request.path}?{urlencode({**query, CURSOR_PARAM: cursor})}"

    here = f"{request.path}?{urlencode(query)}" if query else request.path
    if not request.htmx:
        # The chart is of the whole log the page lists (not of the filters): it shows where to look.
        context = {**context, "activity_chart": activity_chart(events)}
    context = {
        **context,
        "filters": filterset.form,
        "events": page.rows if page else [],
        "filtered": bool(query),
        "newer_url": link(page.previous_cursor) if page else None,
        "older_url": link(page.next_cursor) if page else None,
        # Back to the newest events from a later page, or from a cursor that led nowhere.
        "newest_url": here if cursor and (page is None or page.previous_cursor or not page.rows) else None,
    }
    response = page_or_region(request, template, "components/audit_table.html", context)
    if page is None:
        response.status_code = 400
    if request.htmx:
        # The filter form sends its empty fields too; the address bar shows only the filters in use.
        response["HX-Push-Url"] = link(cursor) if cursor else here
    return response


def activity_chart(events: QuerySet[AuditEvent], days: int = ACTIVITY_DAYS) -> Chart:
    """The events of each of the last `days` days (UTC) by outcome: one grouped query over the time index."""
    dates = last_days(days)
    start = datetime.datetime.combine(dates[0], datetime.time(), tzinfo=datetime.UTC)
    counts = (
        events.filter(time__gte=start)
        .annotate(day=TruncDate("time", tzinfo=datetime.UTC))
        .order_by()
        .values_list("day", "outcome")
        .annotate(count=Count("id"))
    )
    by_outcome: dict[str, list[tuple[datetime.date, int]]] = {Outcome.SUCCESS: [], Outcome.FAILURE: []}
    for day, outcome, count in counts:
        by_outcome.setdefault(outcome, []).append((day, count))
    return Chart(
        id="audit-activity-chart",
        kind="bar",
        title=f"Activity per day, last {days} days",
        labels=[day.isoformat() for day in dates],
        axis="Day",
        stacked=True,
        series=[
            Series("Succeeded", per_day(by_outcome[Outcome.SUCCESS], dates), SUCCESS_COLOUR),
            Series("Failed", per_day(by_outcome[Outcome.FAILURE], dates), FAILURE_COLOUR),
        ],
    )

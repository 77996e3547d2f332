"""Datagrid tables: the page of rows that a table's search box, sort headers and page size ask for.

The same FilterSet serves the API list, so `?q=`, `?sort=` and `?page_size=` mean the same on a page and in the
API; the UI drops a sort key the list does not offer (a stale bookmark shows the default order) where the API
answers 400.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django_filters import FilterSet

from portal.core.bulk import Outcome
from portal.core.ui import PAGE_SIZE, paginate


def table_page(
    request: HttpRequest, filterset: type[FilterSet], rows: QuerySet, per_page: int = PAGE_SIZE, **filters: str
) -> dict[str, Any]:
    """The table's page of rows and what its template shows of the request: the search text and the sort key."""
    q = request.GET.get("q", "").strip()
    sort = request.GET.get("sort", "").strip()
    found = filterset({"q": q, "sort": sort, **filters}, rows)
    if "sort" in found.errors:
        sort = ""
    return {"page": paginate(request, found.qs, per_page), "q": q, "sort": sort}


def selected(request: HttpRequest, name: str) -> list[str]:
    """The values of the rows ticked in a table (check boxes called `name`), each once, in the order sent."""
    values = request.POST.getlist(name) or request.GET.getlist(name)
    return list(dict.fromkeys(value.strip() for value in values if value.strip()))


def report(request: HttpRequest, outcomes: list[Outcome], done: str, failed: str) -> None:
    """Say on the page which items a bulk action did and which it did not, each with its reason.

    `done` and `failed` are messages with a `{names}` slot; `failed` gets "name: reason" for each item.
    """
    names = [outcome.name for outcome in outcomes if outcome.done]
    if names:
        messages.success(request, done.format(names=", ".join(names)))
    refusals = [f"{outcome.name}: {outcome.error}" for outcome in outcomes if not outcome.done]
    if refusals:
        messages.error(request, failed.format(names=" ".join(refusals)))


def back_to_table(request: HttpRequest, url: str) -> str:
    """Where a table's action returns to: `url` with the search, sort, page size and page of the table page the
    action was taken from (the address htmx reports, else the Referer), when that page is `url`'s own page;
    otherwise `url` as it is. Only the query is taken from the request, so it can lead nowhere else."""
    came_from = urlsplit(request.headers.get("HX-Current-URL") or request.headers.get("Referer") or "")
    target = urlsplit(url)
    same_page = came_from.path == target.path and came_from.netloc in ("", request.get_host())
    return f"{target.path}?{came_from.query}" if same_page and came_from.query else url

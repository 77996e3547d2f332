"""Helpers every UI view shares: pagination, htmx regions and dialogs, service errors on forms."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode

from portal.core import directory
from portal.core.audit import Actor
from portal.core.errors import DomainError, Forbidden
from portal.core.models import Group, Job, User

PAGE_SIZE = 20
# The page sizes a table offers; ?page_size= takes any whole number up to the API's largest page, as the API does.
PAGE_SIZES = (10, 20, 50, 100)


def page_size(request: HttpRequest, default: int = PAGE_SIZE) -> int:
    """The rows per page asked for by ?page_size= (cut to the largest page); the default when absent or not a number."""
    value = request.GET.get("page_size", "")
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        return default
    return min(int(value), PAGE_SIZES[-1])


def paginate(request: HttpRequest, items: QuerySet | list, per_page: int = PAGE_SIZE) -> Page:
    """The page of items named by ?page= (the last page when the number is too high), ?page_size= rows long."""
    return Paginator(items, page_size(request, per_page)).get_page(request.GET.get("page"))


def page_or_region(request: HttpRequest, page: str, region: str, context: dict[str, Any]) -> HttpResponse:
    """The whole page, or only the table region when htmx asks for it (filter box, pagination)."""
    template = region if request.htmx and not request.htmx.boosted else page
    return render(request, template, context)


def dialog(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """A modal dialog: the fragment for htmx, or a page showing it when opened without htmx."""
    if request.htmx:
        return render(request, template, context, status=status)
    page = {**context, "dialog_template": template, "standalone": True}
    return render(request, "components/dialog_page.html", page, status=status)


def finish(request: HttpRequest, url: str) -> HttpResponse:
    """Go to the URL after a change: a client-side redirect for htmx, an HTTP redirect otherwise."""
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return redirect(url)


def form_error(form: forms.Form, exc: DomainError, rename: dict[str, str] | None = None) -> None:
    """Put a service's refusal on the form: on the fields it names (some renamed), else above the form."""
    placed = False
    for name, field_errors in exc.errors.items():
        field = (rename or {}).get(name, name)
        if field in form.fields:
            for message in field_errors:
                form.add_error(field, message)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def refuse(request: HttpRequest, exc: DomainError, url: str) -> HttpResponse:
    """A refused action: 403/404 for permission and visibility, else the message on the page it came from."""
    if isinstance(exc, Forbidden):
        raise PermissionDenied(exc.message)
    messages.error(request, exc.message)
    return finish(request, url)


def require_permission(allowed: bool) -> None:
    """Answer 403 unless the user may open the page."""
    if not allowed:
        raise PermissionDenied("You do not have permission to open this page.")


def parse_identity(value: str) -> tuple[str, str]:
    """'user:alice' or 'group:devs' as (kind, name); 404 for anything else."""
    kind, _, name = value.partition(":")
    if kind not in ("user", "group") or not name:
        raise Http404("No such user or group.")
    return kind, name


def resolve_identity(kind: str, name: str) -> User | Group:
    """The known user or group, created from the directory entry when it never logged in."""
    return directory.ensure_user(name) if kind == "user" else directory.ensure_group(name)


def submit(
    request: HttpRequest, form: forms.Form, save: Callable[[dict[str, Any]], tuple[str, str]]
) -> HttpResponse | int:
    """Save a dialog's form through a service: a redirect once saved, else the status to show the dialog with.

    `save` gets the cleaned data and returns (success message, URL to go to); a service's refusal lands
    on the form with the refusal's status.
    """
    if not form.is_bound:
        return 200
    if not form.is_valid():
        return 400
    try:
        message, url = save(form.cleaned_data)
    except DomainError as exc:
        form_error(form, exc)
        return exc.status
    messages.success(request, message)
    return finish(request, url)


def act(request: HttpRequest, call: Callable[[Actor], str], back: str) -> HttpResponse:
    """A button's action: call the service as the request's user, then return to `back` with its
    success message (what `call` returns) or the service's refusal."""
    try:
        message = call(Actor.from_request(request))
    except DomainError as exc:
        return refuse(request, exc, back)
    messages.success(request, message)
    return finish(request, back)


def start_job(request: HttpRequest, start: Callable[[Actor], Job], what: str, back: str) -> HttpResponse:
    """A "run now" button: start the job through its service, then return to the page with the outcome."""
    return act(request, lambda actor: f"{what} started (job #{start(actor).pk}).", back)


# Sections other apps add to Administration > Configuration: each returns its part of the page's
# context (the registry's garbage collection, next the scanner's and replication's settings).
CONFIGURATION_SECTIONS: list[Callable[[], dict[str, Any]]] = []


def configuration_section(context: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """Register a section of the Configuration page (called from an app's `ready()`)."""
    if context not in CONFIGURATION_SECTIONS:
        CONFIGURATION_SECTIONS.append(context)
    return context


def identities_url(query: str) -> str:
    """The Users & Groups page showing the results for the query."""
    url = reverse("identities")
    return f"{url}?{urlencode({'q': query})}" if query else url


def one_selected(request: HttpRequest) -> tuple[str, str] | None:
    """The one user or group selected in the table, or None unless exactly one is."""
    values = request.POST.getlist("selected") or request.GET.getlist("selected")
    return parse_identity(values[0]) if len(values) == 1 else None


# What other apps add to a page an app above them may not import (scanning's Vulnerability column on the
# registries' tags table, its chart on the project Summary): each returns its part of the page's context.
# A list value is appended to what another extension gave (tag_columns, sections), anything else is set.
PAGE_EXTENSIONS: dict[str, list[Callable[..., dict[str, Any]]]] = {}


def page_extension(page: str, context: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """Register an extension of a page (called from an app's `ready()`)."""
    extensions = PAGE_EXTENSIONS.setdefault(page, [])
    if context not in extensions:
        extensions.append(context)
    return context


def extend_page(page: str, request: HttpRequest, **objects: Any) -> dict[str, Any]:
    """The context every extension of the page adds, given the page's request and objects."""
    merged: dict[str, Any] = {}
    for context in PAGE_EXTENSIONS.get(page, []):
        for key, value in context(request, **objects).items():
            if isinstance(value, list) and isinstance(merged.get(key), list):
                merged[key] = merged[key] + value
            else:
                merged[key] = value
    return merged

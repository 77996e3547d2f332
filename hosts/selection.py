"""The project selector in the header: which project the Home pages (Containers, Container Hosts) show."""

from __future__ import annotations

from functools import cached_property

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from projects.models import Project

SESSION_KEY = "selected_project"


class Selection:
    """The projects a user may pick from and the one picked, read once per request and only when used."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    @cached_property
    def projects(self) -> list[Project]:
        """The projects the user may view, by name."""
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated:
            return []
        return list(Project.objects.restrict(user, "view").order_by("name"))

    @cached_property
    def project(self) -> Project | None:
        """The project kept in the session; the first visible one when none is kept or it is gone."""
        wanted = self.request.session.get(SESSION_KEY)
        chosen = next((p for p in self.projects if p.name == wanted), None)
        return chosen or (self.projects[0] if self.projects else None)


def selection(request: HttpRequest) -> Selection:
    """The request's selection, made once and shared by the views and the context processor."""
    if not hasattr(request, "_project_selection"):
        request._project_selection = Selection(request)  # type: ignore[attr-defined]
    return request._project_selection  # type: ignore[attr-defined]


def selected_project(request: HttpRequest) -> Project | None:
    """The project the Home pages show."""
    return selection(request).project


def select(request: HttpRequest, name: str) -> Project | None:
    """Keep the named project as the selection if the user may view it; the selection after the change."""
    current = selection(request)
    chosen = next((p for p in current.projects if p.name == name), None)
    if chosen is not None:
        request.session[SESSION_KEY] = chosen.name
        current.__dict__["project"] = chosen
    return current.project


def project_selector(request: HttpRequest) -> dict[str, object]:
    """Template context: `selected_project` and `selectable_projects`, queried only when a template reads them."""
    current = selection(request)
    return {
        "selected_project": SimpleLazyObject(lambda: current.project),
        "selectable_projects": SimpleLazyObject(lambda: current.projects),
    }

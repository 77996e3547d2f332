"""The project selector in the header: the one project selection of the pages that work on one project (Containers,
Container Hosts, the Library's search).

The pick is kept per user: in the session, and in the database for their next logins (ProjectSelection). With
none kept, the user starts on the project where their role is highest, and that start is kept in the session: a
project created later (where its creator is DevOps administrator) does not take the header over.

Every page renders the selector, so it holds one page of choices (the selected project first, then the projects where
the user's role is highest, then by name) and finds the others by search; a site with hundreds of projects would
otherwise send all their names with every page.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest

from projects import services
from projects.models import ROLE_RANK, Project, ProjectSelection, Role
from projects.roles import roles_by_project

if TYPE_CHECKING:
    from portal.core.models import User

SESSION_KEY = "selected_project"
# How many projects the selector offers before the user types: enough for a member's own projects.
SELECTOR_SIZE = 15
# Longer search text cannot match a project name (at most 255 characters); cut it rather than query with it.
SEARCH_MAX_LENGTH = 255


def search_text(text: str) -> str:
    """The search text as a name fragment: trimmed, cut to a name's length, without NUL (PostgreSQL refuses it)."""
    return text.replace("\x00", "").strip()[:SEARCH_MAX_LENGTH]


class Selection:
    """The project picked and a page of those the user may pick from, read once per request and only when used."""

    def __init__(self, request: HttpRequest) -> None:
        self.request = request

    @property
    def _user(self) -> User | None:
        """The logged-in user, or None."""
        return _logged_in(self.request)

    def ranked(self, first: str = "") -> QuerySet[Project]:
        """The projects the user may view: the one named `first`, then by the user's role (highest first), by name."""
        return (
            Project.objects.restrict(self._user, "view")
            .annotate(
                selector_first=Case(When(name=first, then=Value(1)), default=Value(0), output_field=IntegerField()),
                selector_rank=_rank(roles_by_project(self._user)),
            )
            .order_by("-selector_first", "-selector_rank", "name")
        )

    @cached_property
    def _first_page(self) -> tuple[list[Project], bool]:
        """The selector's choices before any search, and whether more exist."""
        if self._user is None:
            return [], False
        page = _page(self.ranked(self._kept()))
        if page[0] and SESSION_KEY not in self.request.session:
            self.request.session[SESSION_KEY] = page[0][0].name
        return page

    def _kept(self) -> str:
        """The name of the project kept for this user: this session's, else the one they picked last time."""
        if SESSION_KEY in self.request.session:
            return self.request.session[SESSION_KEY]
        return ProjectSelection.objects.filter(user=self._user).values_list("project__name", flat=True).first() or ""

    @property
    def choices(self) -> list[Project]:
        """The selected project and the next ones the user may view, at most SELECTOR_SIZE."""
        return self._first_page[0]

    @property
    def more(self) -> bool:
        """Whether the user may view more projects than the selector offers."""
        return self._first_page[1]

    @property
    def project(self) -> Project | None:
        """The project kept in the session; the first one offered when none is kept or it is gone."""
        return self.choices[0] if self.choices else None

    def search(self, text: str) -> tuple[list[Project], bool]:
        """The projects the user may view whose name contains the text, at most SELECTOR_SIZE; whether more match."""
        if self._user is None:
            return [], False
        return _page(self.ranked().filter(name__icontains=search_text(text)))

    def forget(self) -> None:
        """Drop the choices read so far, after the selection changed."""
        self.__dict__.pop("_first_page", None)


def _logged_in(request: HttpRequest) -> User | None:
    """The request's logged-in user, or None."""
    user = getattr(request, "user", None)
    return user if user is not None and user.is_authenticated else None


def _rank(roles: dict[int, Role]) -> Case:
    """The rank of the user's role in each project (0 where they have none), for ordering in SQL."""
    by_rank: dict[int, list[int]] = {}
    for project_id, role in roles.items():
        by_rank.setdefault(ROLE_RANK[role], []).append(project_id)
    ranks = [When(pk__in=ids, then=Value(rank)) for rank, ids in by_rank.items()]
    return Case(*ranks, default=Value(0), output_field=IntegerField())


def _page(projects: QuerySet[Project]) -> tuple[list[Project], bool]:
    """The first SELECTOR_SIZE projects and whether more follow, in one query."""
    rows = list(projects[: SELECTOR_SIZE + 1])
    return rows[:SELECTOR_SIZE], len(rows) > SELECTOR_SIZE


def selection(request: HttpRequest) -> Selection:
    """The request's selection, made once and shared by the views and the context processor."""
    if not hasattr(request, "_project_selection"):
        request._project_selection = Selection(request)  # type: ignore[attr-defined]
    return request._project_selection  # type: ignore[attr-defined]


def selected_project(request: HttpRequest) -> Project | None:
    """The project the one-project pages show."""
    return selection(request).project


def select(request: HttpRequest, name: str) -> Project | None:
    """Keep the named project as the selection if the user may view it; the selection after the change."""
    current = selection(request)
    wanted, user = search_text(name), _logged_in(request)
    chosen = Project.objects.restrict(user, "view").filter(name=wanted).first() if wanted and user else None
    if chosen is None:
        return current.project
    request.session[SESSION_KEY] = chosen.name
    services.remember_selection(user, chosen)
    current.forget()
    return chosen


def project_selector(request: HttpRequest) -> dict[str, object]:
    """Template context: `project_selector` (its choices are queried only when a template reads them)."""
    current = selection(request)
    return {"project_selector": current}

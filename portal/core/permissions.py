"""What the core asks of the role matrix.

The matrix itself, and every decision it makes, live in `projects.roles`: projects, members and
roles are the projects app's. The core (users, audit, jobs, credentials) asks its questions here,
and the projects app plugs its answers in when Django starts (`ProjectsConfig.ready`), so the core
imports no app. Portal administrators are an identity fact, answered here for everyone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from portal.core.models import User


class Matrix(Protocol):
    """The role matrix as the core sees it."""

    def can(self, user: User | None, action: str, project: Any = None) -> bool:
        """Whether the user may take the action (on the project, for project actions)."""

    def visible_projects(self, user: User | None, action: str = "view") -> QuerySet:
        """The projects on which the user may take the action."""

    def restrict_projects(self, queryset: QuerySet, user: User | None, action: str = "view") -> QuerySet:
        """The projects of the queryset on which the user may take the action."""


# The system role's one name, on every page and in every message (the project roles' names are projects.models.Role's).
PORTAL_ADMIN_LABEL = "Management Portal administrator"

_matrix: Matrix | None = None


def install(matrix: Matrix) -> None:
    """Plug the role matrix in (once, at start-up)."""
    global _matrix
    _matrix = matrix


def _installed() -> Matrix:
    if _matrix is None:
        raise RuntimeError("no role matrix installed: is the projects app in INSTALLED_APPS?")
    return _matrix


def can(user: User | None, action: str, project: Any = None) -> bool:
    """Whether the user may take the action, as the role matrix decides."""
    return _installed().can(user, action, project)


def visible_projects(user: User | None, action: str = "view") -> QuerySet:
    """The projects on which the user may take the action, as the role matrix decides."""
    return _installed().visible_projects(user, action)


def restrict_projects(queryset: QuerySet, user: User | None, action: str = "view") -> QuerySet:
    """The projects of the queryset on which the user may take the action, as the role matrix decides."""
    return _installed().restrict_projects(queryset, user, action)


def is_active_user(user: User | None) -> bool:
    """True for a logged-in, active user (not anonymous)."""
    return user is not None and user.is_authenticated and user.is_active


def is_portal_admin(user: User | None) -> bool:
    """True for a Management Portal administrator: by their own role or one of their groups'."""
    if not is_active_user(user):
        return False
    cached = getattr(user, "_wharf_portal_admin", None)
    if cached is None:
        cached = user.is_portal_admin or user.is_superuser or user.wharf_groups.filter(is_portal_admin=True).exists()
        user._wharf_portal_admin = cached
    return cached

"""Template context shared by every page: what the navigation may show and which parts of the portal are down."""

from __future__ import annotations

from django.http import HttpRequest

from portal.core import components
from projects.roles import can, is_portal_admin


def navigation(request: HttpRequest) -> dict[str, object]:
    """Flags for the navigation: which administration items the user may open."""
    user = getattr(request, "user", None)
    return {
        "is_portal_admin": is_portal_admin(user),
        "can_search_users": bool(user and user.is_authenticated and can(user, "view_project_users")),
    }


def component_health(request: HttpRequest) -> dict[str, object]:
    """The parts of the portal the launcher reports as not running, for the banner above every page."""
    return {"component_problems": sorted(components.problems().items())}

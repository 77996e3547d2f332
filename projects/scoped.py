"""Pages and API resources that live inside one project: the project named in the URL, as the role matrix allows.

Every app's project tabs (UI) and `/api/v1/projects/{name}/...` resources (API) start here, so an
app never imports another app's views: a project the caller may not see is a 404.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.shortcuts import get_object_or_404

from projects.models import Project
from projects.roles import can, effective_role


def visible_project(request: HttpRequest, name: str) -> Project:
    """The named project if the user may see it; 404 otherwise."""
    return get_object_or_404(Project.objects.restrict(request.user), name=name)


def project_context(request: HttpRequest, project: Project, tab: str) -> dict[str, Any]:
    """What every tab of the project page shows: the project, the tab, the user's role and rights."""
    return {
        "project": project,
        "tab": tab,
        "my_role": effective_role(request.user, project),
        "can_manage_members": can(request.user, "manage_members", project),
        "can_manage_settings": can(request.user, "manage_settings", project),
    }


class ProjectScopedMixin:
    """For viewsets under /projects/{project_name}/: the project, if the caller may take `project_action` on it."""

    project_action = "view"

    def project(self) -> Project:
        """The project named in the URL, if the caller may take `project_action` on it (else 404)."""
        if not hasattr(self, "_project"):
            visible = Project.objects.restrict(self.request.user, self.project_action)
            self._project = get_object_or_404(visible, name=self.kwargs["project_name"])
        return self._project

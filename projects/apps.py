"""The projects app config."""

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """Projects, members, roles; the role matrix the whole portal asks."""

    name = "projects"

    def ready(self) -> None:
        """Answer the core's permission questions with the role matrix (see portal.core.permissions)."""
        from portal.core import permissions
        from projects import roles

        permissions.install(roles)

"""The projects app config."""

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    """Projects, members, roles."""

    name = "projects"

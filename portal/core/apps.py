"""The administration core's app config: the Django app labelled "portal" (tables and migrations keep it)."""

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Wires the audit and logout signal handlers and the API schema extensions on start."""

    name = "portal.core"
    label = "portal"
    verbose_name = "Wharf core"

    def ready(self) -> None:
        """Connect signal handlers."""
        from portal.core import remembered_logins, schema, signals  # noqa: F401

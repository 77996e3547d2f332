"""The administration core's app config."""

from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Wires the audit signal handlers on start."""

    name = "portal"
    verbose_name = "Wharf portal"

    def ready(self) -> None:
        """Connect signal handlers."""
        from portal import schema, signals  # noqa: F401

"""The hosts app config."""

from django.apps import AppConfig


class HostsConfig(AppConfig):
    """Container hosts (Docker, VCH), their collection, and the containers on them."""

    name = "hosts"

    def ready(self) -> None:
        """Register the hosts' rules: a project holding hosts cannot be deleted, pinned certificates' users."""
        from hosts import services  # noqa: F401

"""The registries app config."""

from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    """The integrated registry, its token service and proxy, and external registries."""

    name = "registries"

    def ready(self) -> None:
        """Register the registry's rule that a project holding repositories cannot be deleted."""
        from registries import services  # noqa: F401

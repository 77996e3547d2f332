"""The registries app config."""

from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    """The integrated registry, its token service and proxy, and external registries."""

    name = "registries"

    def ready(self) -> None:
        """Register the rule that a project holding repositories cannot be deleted, and the Configuration section."""
        from portal.core.ui import configuration_section
        from registries import services  # noqa: F401
        from registries.views import gc_context

        configuration_section(gc_context)

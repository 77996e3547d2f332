"""The registries app config."""

from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    """The integrated registry, its token service and proxy, and external registries."""

    name = "registries"

    def ready(self) -> None:
        """Register the rule that a project holding repositories cannot be deleted, the Configuration sections, and
        the content-trust verdict of the run policy."""
        from portal.core.ui import configuration_section
        from projects import policy
        from registries import content_trust, services  # noqa: F401
        from registries.views import gc_context, notary_context

        configuration_section(gc_context)
        configuration_section(notary_context)
        policy.install_signature_check(content_trust.signature_verdict)

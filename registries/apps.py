"""The registries app config."""

from django.apps import AppConfig


class RegistriesConfig(AppConfig):
    """The integrated registry, its token service and proxy, and external registries."""

    name = "registries"

    def ready(self) -> None:
        """Register the rule that a project holding repositories cannot be deleted, the Configuration sections, and
        the content-trust verdict of the run policy; add the repositories, storage and pulls to a project's Summary
        and the recent pushes to Home."""
        from portal.core.ui import configuration_section, page_extension
        from projects import policy
        from registries import content_trust, services  # noqa: F401
        from registries.views import gc_context, home_pushes, notary_context, project_summary

        page_extension("project-summary", project_summary)
        page_extension("home", home_pushes)
        configuration_section(gc_context)
        configuration_section(notary_context)
        policy.install_signature_check(content_trust.signature_verdict)

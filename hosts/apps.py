"""The hosts app config."""

from django.apps import AppConfig


class HostsConfig(AppConfig):
    """Container hosts (Docker, VCH), their collection, and the containers on them."""

    name = "hosts"

    def ready(self) -> None:
        """Register the hosts' rules (a project holding hosts cannot be deleted, pinned certificates' users, VCH
        whitelists follow content trust), show the VCH whitelist changes on a project's Configuration tab, and show
        the hosts not ON and containers per state on Home."""
        from hosts import services  # noqa: F401
        from hosts.views import home_hosts, project_whitelists
        from portal.core.ui import page_extension

        page_extension("project-configuration", project_whitelists)
        page_extension("home", home_hosts)

"""The scanning app config."""

from django.apps import AppConfig


class ScanningConfig(AppConfig):
    """Vulnerability scanning: the indexer, the vulnerability database and its updaters, the matcher, scan jobs
    and scanner adapters."""

    name = "scanning"

    def ready(self) -> None:
        """Plug the scan results into the run policy and the tag lists, scan on push where a project asks for it,
        and add the scan results and settings to the pages of registries, projects and Configuration, whose
        upload of a vulnerability database (page and API) may be longer than other requests."""
        from portal.core.middleware import allow_large_body
        from portal.core.ui import configuration_section, page_extension
        from projects import policy
        from registries import events, models
        from scanning import policy as scan_policy
        from scanning import views
        from scanning.services.scans import scan_on_push, with_scan_summary
        from scanning.urls import VULNDB_UPLOAD_PATH

        policy.install_vulnerability_check(scan_policy.vulnerability_verdict)
        if with_scan_summary not in models.TAG_ANNOTATIONS:
            models.TAG_ANNOTATIONS.append(with_scan_summary)
        if scan_on_push not in events.PUSH_FOLLOWUPS:
            events.PUSH_FOLLOWUPS.append(scan_on_push)
        page_extension("repository-tags", views.tag_table)
        page_extension("project-summary", views.project_summary)
        page_extension("project-configuration", views.project_configuration)
        configuration_section(views.configuration_section)
        allow_large_body(f"/{VULNDB_UPLOAD_PATH}", "VULNDB_UPLOAD_MAX_BYTES")
        allow_large_body("/api/v1/vulndb/import", "VULNDB_UPLOAD_MAX_BYTES")

"""The scanning app config."""

from django.apps import AppConfig


class ScanningConfig(AppConfig):
    """Vulnerability scanning: the indexer, the vulnerability database and its updaters, the matcher, scan jobs
    and scanner adapters."""

    name = "scanning"

    def ready(self) -> None:
        """Plug the scan results into the run policy and the tag lists, and scan on push where a project asks for it."""
        from projects import policy
        from registries import events, models
        from scanning import policy as scan_policy
        from scanning.services.scans import scan_on_push, with_scan_summary

        policy.install_vulnerability_check(scan_policy.vulnerability_verdict)
        if with_scan_summary not in models.TAG_ANNOTATIONS:
            models.TAG_ANNOTATIONS.append(with_scan_summary)
        if scan_on_push not in events.PUSH_FOLLOWUPS:
            events.PUSH_FOLLOWUPS.append(scan_on_push)

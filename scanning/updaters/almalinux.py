"""The Red Hat family: AlmaLinux's advisories (ALSA-…) in OSV, as osv.dev publishes them (AlmaLinux/all.zip).

AlmaLinux rebuilds RHEL package for package, so its advisories serve the `rhel:N` namespace that
RHEL, AlmaLinux, Rocky and CentOS images match against; Rocky's feed ("Rocky Linux:9") reads the
same. Packages are binary RPM names; the CVEs an advisory fixes are in `related`. The severity is
Red Hat's impact, which the summary starts with ("Important: openssl security update").
"""

from __future__ import annotations

from typing import Any

from scanning.updaters.osv import OsvUpdater
from scanning.updaters.severity import RED_HAT_IMPACT

ECOSYSTEMS = ("AlmaLinux", "Rocky Linux")


class AlmaLinuxUpdater(OsvUpdater):
    """AlmaLinux security advisories in OSV."""

    source = "almalinux"
    url_setting = "VULNDB_ALMALINUX_URL"
    cve_fields = ("aliases", "upstream", "related")

    def namespace(self, ecosystem: str) -> str | None:
        """rhel:9 for "AlmaLinux:9" (or "AlmaLinux:9.3", "Rocky Linux:9")."""
        name, _, release = ecosystem.partition(":")
        if name not in ECOSYSTEMS or not release:
            return None
        return f"rhel:{release.split('.')[0]}"

    def own_severity(self, record: dict[str, Any]) -> str | None:
        """Red Hat's impact rating from the summary's first word."""
        impact = str(record.get("summary") or "").partition(":")[0].strip().lower()
        return RED_HAT_IMPACT.get(impact)

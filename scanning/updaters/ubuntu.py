"""Ubuntu's CVE records in OSV (ubuntu-security-notices' osv/cve, published by osv.dev as Ubuntu/all.zip).

Records are UBUNTU-CVE-…, with the CVE in `upstream`, the source package in `affected.package.name`
and the release in its ecosystem ("Ubuntu:22.04:LTS", "Ubuntu:24.10"). Ubuntu's own priority
(severity type "Ubuntu") is the severity. Fixes only in Ubuntu Pro ("Ubuntu:Pro:…") are not in the
public archive an image installs from, so those entries are left out.
"""

from __future__ import annotations

from typing import Any

from scanning.updaters.osv import OsvUpdater
from scanning.updaters.severity import UBUNTU_PRIORITY


class UbuntuUpdater(OsvUpdater):
    """Ubuntu's security notices in OSV."""

    source = "ubuntu"
    url_setting = "VULNDB_UBUNTU_URL"

    def namespace(self, ecosystem: str) -> str | None:
        """ubuntu:22.04 for "Ubuntu:22.04:LTS"; None for Ubuntu Pro and other ecosystems."""
        parts = ecosystem.split(":")
        if len(parts) < 2 or parts[0] != "Ubuntu" or parts[1] == "Pro":
            return None
        return f"ubuntu:{parts[1]}"

    def own_severity(self, record: dict[str, Any]) -> str | None:
        """Ubuntu's priority for the CVE."""
        for item in record.get("severity") or []:
            if isinstance(item, dict) and item.get("type") == "Ubuntu":
                return UBUNTU_PRIORITY.get(str(item.get("score", "")).lower())
        return None

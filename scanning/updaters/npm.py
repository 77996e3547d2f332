"""Node packages: osv.dev's npm/all.zip (GHSA-… records); versions are semver."""

from __future__ import annotations

from scanning.updaters.osv import OsvUpdater


class NpmUpdater(OsvUpdater):
    """npm advisories in OSV."""

    source = "npm"
    url_setting = "VULNDB_NPM_URL"

    def namespace(self, ecosystem: str) -> str | None:
        """npm for the npm ecosystem."""
        return "npm" if ecosystem == "npm" else None

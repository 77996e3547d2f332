"""Python packages: osv.dev's PyPI/all.zip (PYSEC-…, GHSA-… records); names compared as PEP 503 normalises them."""

from __future__ import annotations

import re

from scanning.updaters.osv import OsvUpdater

SEPARATORS = re.compile(r"[-_.]+")


def normalize(name: str) -> str:
    """The PEP 503 form of a distribution name (Foo_Bar and foo-bar are one project)."""
    return SEPARATORS.sub("-", name).lower()


class PypiUpdater(OsvUpdater):
    """PyPI advisories in OSV."""

    source = "pypi"
    url_setting = "VULNDB_PYPI_URL"

    def namespace(self, ecosystem: str) -> str | None:
        """pypi for the PyPI ecosystem."""
        return "pypi" if ecosystem == "PyPI" else None

    def package_name(self, name: str) -> str:
        """The normalised project name."""
        return normalize(name)

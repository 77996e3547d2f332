"""The matcher against the fixture feeds: each image's findings are exactly the expected set, nothing more."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from portal.core.audit import Actor
from scanning import services
from scanning.matcher import FIXED, NO_FIX, Finding, match, namespace_of

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Distribution:
    """What the indexer reports about an image's OS (scanning.indexer.Distribution's fields)."""

    id: str
    version_id: str
    codename: str = ""
    pretty_name: str = ""


@dataclass(frozen=True)
class Package:
    """One installed package (scanning.indexer.Package's fields)."""

    ecosystem: str
    name: str
    version: str
    source_name: str = ""
    source_version: str = ""
    path: str = ""


def row(vulnerability: str, package: str, installed: str, fixed: str, severity: str) -> Finding:
    """A finding as a report row shows it; the status follows from the fixed version."""
    return Finding(vulnerability, package, installed, fixed, severity, FIXED if fixed else NO_FIX)


@pytest.fixture
def loaded(feed_dir: Path) -> None:
    """Every fixture feed loaded from disk."""
    services.import_path(Actor.system("test"), feed_dir)


BOOKWORM = Distribution("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
OPENSSL_DEB = "3.0.11-1~deb12u1"
DEBIAN_IMAGE = [
    Package("deb", "libssl3", OPENSSL_DEB, "openssl", OPENSSL_DEB, "var/lib/dpkg/status"),
    Package("deb", "openssl", OPENSSL_DEB, "openssl", OPENSSL_DEB, "var/lib/dpkg/status"),
    Package("deb", "passwd", "1:4.13+dfsg1-1", "shadow", "1:4.13+dfsg1-1"),
    Package("deb", "coreutils", "9.1-1"),
    Package("deb", "zlib1g", "1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1"),
]
PYTHON_PACKAGES = [
    Package("pypi", "Jinja2", "3.1.2"),
    Package("pypi", "requests", "2.31.0"),
    Package("pypi", "urllib3", "1.26.18"),
    Package("pypi", "Django", "4.2rc1"),
    Package("pypi", "flask", "3.0.0"),
]
NODE_PACKAGES = [Package("npm", "lodash", "4.17.20"), Package("npm", "minimist", "1.2.6-beta.1")]


def test_debian_matches_by_source_package_with_dpkg_ordering(loaded) -> None:
    assert set(match(BOOKWORM, DEBIAN_IMAGE)) == {
        # ~deb12u1 sorts before ~deb12u2: vulnerable; fixed in ~deb12u1 itself (1002): not.
        row("CVE-0000-1001", "libssl3", OPENSSL_DEB, "3.0.11-1~deb12u2", "High"),
        row("CVE-0000-1001", "openssl", OPENSSL_DEB, "3.0.11-1~deb12u2", "High"),
        # Open and unimportant: reported, no fix yet. 1003 (fixed in "0") and 1005 (bullseye only) are not.
        row("CVE-0000-1004", "libssl3", OPENSSL_DEB, "", "Negligible"),
        row("CVE-0000-1004", "openssl", OPENSSL_DEB, "", "Negligible"),
        # Undetermined, urgency not yet assigned: NVD's score rates it.
        row("CVE-0000-1006", "libssl3", OPENSSL_DEB, "", "Critical"),
        row("CVE-0000-1006", "openssl", OPENSSL_DEB, "", "Critical"),
        # The epoch counts: 1:4.13 is below 1:4.13…+deb12u1 but above 4.14-1 (1012).
        row("CVE-0000-1011", "passwd", "1:4.13+dfsg1-1", "1:4.13+dfsg1-1+deb12u1", "High"),
        # No source field: the binary name is the source; "low**" is Low.
        row("CVE-0000-1013", "coreutils", "9.1-1", "9.1-2", "Low"),
    }


def test_findings_are_sorted_worst_first_and_keep_the_details(loaded) -> None:
    findings = match(BOOKWORM, DEBIAN_IMAGE)
    assert [f.severity for f in findings][:3] == ["Critical", "Critical", "High"]
    critical = findings[0]
    assert (critical.namespace, critical.source_package, critical.path) == (
        "debian:12",
        "openssl",
        "var/lib/dpkg/status",
    )
    # Debian's own description wins over NVD's; the score comes from NVD.
    assert critical.description == "openssl: open, urgency not assigned yet (NVD rates it)"
    assert critical.cvss_score == 9.8
    assert "https://security-tracker.debian.org/tracker/CVE-0000-1006" in critical.links


def test_other_debian_release_matches_only_its_own_entries(loaded) -> None:
    bullseye = Distribution("debian", "11", "bullseye")
    packages = [Package("deb", "libssl3", "1.1.1n-0+deb11u5", "openssl", "1.1.1n-0+deb11u5")]
    assert set(match(bullseye, packages)) == {
        row("CVE-0000-1001", "libssl3", "1.1.1n-0+deb11u5", "1.1.1w-0+deb11u1", "High"),
        row("CVE-0000-1003", "libssl3", "1.1.1n-0+deb11u5", "", "Low"),
        row("CVE-0000-1005", "libssl3", "1.1.1n-0+deb11u5", "", "High"),
    }


def test_debian_testing_without_version_id_uses_its_codename(loaded) -> None:
    assert namespace_of(Distribution("debian", "", "bookworm"), "deb") == "debian:12"
    assert namespace_of(Distribution("alpine", "3.19.1"), "apk") == "alpine:3.19"
    assert namespace_of(Distribution("rocky", "9.3"), "rpm") == "rhel:9"
    assert namespace_of(Distribution("plan9", "4"), "deb") is None


def test_ubuntu_osv_matches_source_package_in_its_release_only(loaded) -> None:
    jammy = Distribution("ubuntu", "22.04", "jammy")
    installed = "3.0.2-0ubuntu1.10"
    packages = [Package("deb", "libssl3", installed, "openssl", installed)]
    assert set(match(jammy, packages)) == {
        row("CVE-0000-1101", "libssl3", installed, "3.0.2-0ubuntu1.12", "Medium"),
        row("CVE-0000-1103", "libssl3", installed, "", "Low"),
        # 1102 is 20.04's, 1104 only Ubuntu Pro's, 1105 fixed in exactly the installed version.
    }


def test_alpine_orders_revisions_and_prereleases(loaded) -> None:
    alpine = Distribution("alpine", "3.19.1")
    packages = [
        Package("apk", "busybox", "1.36.1-r9", "busybox", "1.36.1-r9"),
        Package("apk", "expat", "2.6.0_rc1-r0", "expat", "2.6.0_rc1-r0"),
        Package("apk", "libcrypto3", "3.1.4-r1", "openssl", "3.1.4-r1"),
    ]
    assert set(match(alpine, packages)) == {
        # r9 < r10 (as text "r9" > "r10"); NVD rates it (its primary score, not the CNA's).
        row("CVE-0000-1202", "busybox", "1.36.1-r9", "1.36.1-r10", "High"),
        # _rc1 sorts before the release; NVD rejected the CVE, so no severity comes from it.
        row("CVE-0000-1203", "expat", "2.6.0_rc1-r0", "2.6.0-r0", "Unknown"),
        # Matched by origin: 3.1.4-r1 < 3.1.4_p1-r0; 1201 was fixed in the installed version.
        row("CVE-0000-1208", "libcrypto3", "3.1.4-r1", "3.1.4_p1-r0", "Unknown"),
    }


def test_rhel_family_matches_binary_rpms_with_epochs(loaded) -> None:
    alma = Distribution("almalinux", "9.3")
    packages = [Package("rpm", "openssl-libs", "1:3.0.7-24.el9", "openssl", "1:3.0.7-24.el9")]
    fixed = "1:3.0.7-25.el9_3"
    assert set(match(alma, packages)) == {
        row("CVE-0000-1301", "openssl-libs", "1:3.0.7-24.el9", fixed, "High"),
        row("CVE-0000-1302", "openssl-libs", "1:3.0.7-24.el9", fixed, "High"),
    }


def test_pypi_ranges_last_affected_versions_and_withdrawn(loaded) -> None:
    assert set(match(BOOKWORM, PYTHON_PACKAGES)) == {
        # PYSEC and GHSA records of one CVE are one finding, under the CVE.
        row("CVE-0000-1401", "Jinja2", "3.1.2", "3.1.3", "Medium"),
        # last_affected is inclusive; the withdrawn 1403 is ignored.
        row("PYSEC-0000-1402", "requests", "2.31.0", "", "Critical"),
        # Named in versions[]; 1405 starts at 2.0.0, 1406 was fixed in 1.26.18.
        row("PYSEC-0000-1404", "urllib3", "1.26.18", "", "Unknown"),
        # PEP 440: 4.2rc1 is before 4.2; the name is normalised.
        row("PYSEC-0000-1407", "Django", "4.2rc1", "4.2", "High"),
    }


def test_npm_semver_with_prereleases(loaded) -> None:
    assert set(match(None, NODE_PACKAGES)) == {
        row("CVE-0000-1501", "lodash", "4.17.20", "4.17.21", "High"),
        row("GHSA-0000-0000-1502", "minimist", "1.2.6-beta.1", "1.2.6", "Low"),
    }


def test_unreadable_versions_match_nothing(loaded) -> None:
    packages = [Package("npm", "lodash", "not a version"), Package("deb", "coreutils", "")]
    assert match(BOOKWORM, packages) == []


def test_match_costs_one_query_per_namespace(loaded, django_assert_num_queries) -> None:
    # debian:12, pypi and npm; then the advisories' details and NVD's scores.
    with django_assert_num_queries(5):
        findings = match(BOOKWORM, DEBIAN_IMAGE + PYTHON_PACKAGES + NODE_PACKAGES)
    assert len(findings) == 14

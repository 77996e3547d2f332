"""The matcher: which advisories of the vulnerability database affect an image's packages.

It takes what the indexer found (duck-typed: any objects with the fields of DistributionLike and
PackageLike) and asks the database one query per namespace for every package of the image, then
compares versions in Python with each ecosystem's own ordering (dpkg, apk, rpm, PEP 440, semver),
never as strings. Debian and Ubuntu advisories name source packages, so those packages are looked
up by source name and compared by source version; a finding still names the installed package.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

from debian.debian_support import Version as DebianVersion
from univers.versions import AlpineLinuxVersion, InvalidVersion, PypiVersion, RpmVersion, SemverVersion

from scanning.models import AffectedPackage, FixStatus, Severity, Vulnerability
from scanning.updaters.debian import CODENAMES

logger = logging.getLogger(__name__)

FIXED = "fixed"
NO_FIX = "no fix yet"
# Distributions whose packages are rebuilt from RHEL's sources, matched against the rhel:N namespace.
RED_HAT_FAMILY = {"rhel", "centos", "almalinux", "rocky", "ol"}
PEP503 = re.compile(r"[-_.]+")
# Where the NVD's scores and descriptions are kept (each yearly feed is "nvd-<year>").
NVD_PREFIX = "nvd-"


class DistributionLike(Protocol):
    """The distribution the indexer detected (scanning.indexer.Distribution)."""

    id: str
    version_id: str
    codename: str
    pretty_name: str


class PackageLike(Protocol):
    """One installed package the indexer found (scanning.indexer.Package)."""

    ecosystem: str
    name: str
    version: str
    source_name: str
    source_version: str
    path: str


@dataclass(frozen=True)
class Finding:
    """One vulnerability of one installed package; equality is on what a report row says, not its decoration."""

    vulnerability: str
    package: str
    installed_version: str
    fixed_version: str
    severity: str
    status: str
    namespace: str = field(default="", compare=False)
    source_package: str = field(default="", compare=False)
    path: str = field(default="", compare=False)
    description: str = field(default="", compare=False)
    links: tuple[str, ...] = field(default=(), compare=False)
    cvss_score: float | None = field(default=None, compare=False)
    cvss_vector: str = field(default="", compare=False)


def _parse_debian(text: str) -> Any:
    """A dpkg version (epochs, ~ sorting before everything)."""
    try:
        return DebianVersion(text)
    except ValueError as exc:
        raise InvalidVersion(text) from exc


PARSERS: dict[str, Callable[[str], Any]] = {
    "deb": _parse_debian,
    "apk": AlpineLinuxVersion,
    "rpm": RpmVersion,
    "pypi": PypiVersion,
    "npm": SemverVersion,
}


@lru_cache(maxsize=65536)
def parse(ecosystem: str, text: str) -> Any:
    """The comparable version of an ecosystem, None when the text is not one (logged, never compared as text)."""
    try:
        return PARSERS[ecosystem](text)
    except (InvalidVersion, ValueError, TypeError):
        logger.info("unreadable %s version %r", ecosystem, text)
        return None


def namespace_of(distribution: DistributionLike | None, ecosystem: str) -> str | None:
    """The namespace advisories of a package of this ecosystem on this distribution are filed under."""
    if ecosystem in ("pypi", "npm"):
        return ecosystem
    if distribution is None:
        return None
    release = (distribution.version_id or "").strip()
    kind = (distribution.id or "").lower()
    if kind == "debian":
        major = release.split(".")[0] if release else CODENAMES.get(distribution.codename or "", "")
        return f"debian:{major}" if major else None
    if kind == "ubuntu":
        return f"ubuntu:{release}" if release else None
    if kind == "alpine":
        # 3.19.1 → 3.19; edge's 3.21_alpha20240807 → 3.21.
        return "alpine:" + ".".join(release.split("_")[0].split(".")[:2]) if release else None
    if kind in RED_HAT_FAMILY:
        return f"rhel:{release.split('.')[0]}" if release else None
    return None


def lookup_names(package: PackageLike) -> tuple[str, ...]:
    """The names advisories may file the package under in its namespace."""
    if package.ecosystem == "deb":
        return (package.source_name or package.name,)
    if package.ecosystem == "apk":
        # secdb names the origin package, which is most often the installed one too.
        return tuple(dict.fromkeys(name for name in (package.name, package.source_name) if name))
    if package.ecosystem == "pypi":
        return (PEP503.sub("-", package.name).lower(),)
    return (package.name,)


def compared_version(package: PackageLike) -> str:
    """The version compared against advisories (the source's version for dpkg, as its advisories state)."""
    if package.ecosystem == "deb":
        return package.source_version or package.version
    return package.version


def is_affected(row: dict[str, Any], ecosystem: str, installed: Any) -> bool:
    """Whether one affected-package row covers the installed version."""
    if row["versions"]:
        return any(parse(ecosystem, version) == installed for version in row["versions"])
    introduced = row["introduced"]
    if introduced:
        start = parse(ecosystem, introduced)
        if start is None or installed < start:
            return False
    if row["fixed_version"]:
        fixed = parse(ecosystem, row["fixed_version"])
        return fixed is not None and installed < fixed
    if row["last_affected"]:
        last = parse(ecosystem, row["last_affected"])
        return last is not None and installed <= last
    # No upper bound: an open issue (every version), or an OSV interval still open from `introduced` on.
    return True


def first_fix(rows: list[dict[str, Any]], ecosystem: str, installed: Any) -> str:
    """The lowest fixed version above the installed one among an advisory's rows for a package, "" if none."""
    fixes = []
    for row in rows:
        fixed = parse(ecosystem, row["fixed_version"]) if row["fixed_version"] else None
        if fixed is not None and installed < fixed:
            fixes.append((fixed, row["fixed_version"]))
    return min(fixes, key=lambda fix: fix[0])[1] if fixes else ""


ROW_FIELDS = ("vulnerability_id", "package", "status", "introduced", "fixed_version", "last_affected", "versions")


def _rows(namespace: str, names: Iterable[str]) -> dict[str, dict[int, list[dict[str, Any]]]]:
    """The namespace's rows for the names, by package name then advisory, in one query (withdrawn left out)."""
    rows = (
        AffectedPackage.objects.filter(namespace=namespace, package__in=sorted(set(names)))
        .exclude(status=FixStatus.NOT_AFFECTED)
        .filter(vulnerability__withdrawn__isnull=True)
        .values(*ROW_FIELDS, "severity")
    )
    grouped: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        grouped[row["package"]][row["vulnerability_id"]].append(row)
    return grouped


@dataclass
class _Hit:
    """A package an advisory affects, before the advisory's details are loaded."""

    vulnerability_id: int
    package: PackageLike
    namespace: str
    fixed_version: str
    severity: str


def _hits(namespace: str, packages: list[PackageLike]) -> list[_Hit]:
    """Every (advisory, package) pair of one namespace whose rows cover the package's version."""
    grouped = _rows(namespace, (name for package in packages for name in lookup_names(package)))
    hits = []
    for package in packages:
        installed = parse(package.ecosystem, compared_version(package))
        if installed is None:
            continue
        seen: set[int] = set()
        for name in lookup_names(package):
            for vulnerability_id, rows in grouped.get(name, {}).items():
                if vulnerability_id in seen or not any(is_affected(row, package.ecosystem, installed) for row in rows):
                    continue
                seen.add(vulnerability_id)
                severity = max((row["severity"] for row in rows), key=Severity.rank)
                fixed = first_fix(rows, package.ecosystem, installed)
                hits.append(_Hit(vulnerability_id, package, namespace, fixed, severity))
    return hits


def match(distribution: DistributionLike | None, packages: Iterable[PackageLike]) -> list[Finding]:
    """Every vulnerability affecting the packages, sorted by severity (worst first), then id and package."""
    by_namespace: dict[str, list[PackageLike]] = defaultdict(list)
    for package in packages:
        namespace = namespace_of(distribution, package.ecosystem)
        if namespace is not None and package.ecosystem in PARSERS:
            by_namespace[namespace].append(package)
    hits = [hit for namespace, group in by_namespace.items() for hit in _hits(namespace, group)]
    details = Vulnerability.objects.in_bulk({hit.vulnerability_id for hit in hits})
    nvd = _nvd({details[hit.vulnerability_id].name for hit in hits})
    findings = {_finding(hit, details[hit.vulnerability_id], nvd) for hit in hits}
    return sorted(findings, key=lambda f: (-Severity.rank(f.severity), f.vulnerability, f.package, f.path))


def _nvd(names: set[str]) -> dict[str, Vulnerability]:
    """NVD's record of each CVE, to fill in the severity and description a distribution does not give."""
    rows = Vulnerability.objects.filter(name__in=sorted(names), source__startswith=NVD_PREFIX, withdrawn__isnull=True)
    return {row.name: row for row in rows.only("name", "description", "severity", "cvss_score", "cvss_vector", "links")}


def _finding(hit: _Hit, vulnerability: Vulnerability, nvd: dict[str, Vulnerability]) -> Finding:
    """The report row of a hit, the severity taken from the package's release, the advisory, or NVD, in that order."""
    fallback = nvd.get(vulnerability.name)
    severity = hit.severity
    if severity == Severity.UNKNOWN:
        severity = vulnerability.severity
    if severity == Severity.UNKNOWN and fallback is not None:
        severity = fallback.severity
    package = hit.package
    score = vulnerability.cvss_score if vulnerability.cvss_score is not None else getattr(fallback, "cvss_score", None)
    return Finding(
        vulnerability=vulnerability.name,
        package=package.name,
        installed_version=package.version,
        fixed_version=hit.fixed_version,
        severity=severity,
        status=FIXED if hit.fixed_version else NO_FIX,
        namespace=hit.namespace,
        source_package=package.source_name,
        path=package.path,
        description=vulnerability.description or vulnerability.summary or getattr(fallback, "description", ""),
        links=tuple(vulnerability.links or getattr(fallback, "links", []) or []),
        cvss_score=score,
        cvss_vector=vulnerability.cvss_vector or getattr(fallback, "cvss_vector", ""),
    )

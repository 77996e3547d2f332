"""The Debian security tracker's JSON (https://security-tracker.debian.org/tracker/data/json).

Its shape: {source package: {CVE id: {"description", "scope", "debianbug", "releases": {codename:
{"status": "resolved"|"open"|"undetermined", "fixed_version", "urgency", "repositories": {...}}}}}}.
Packages are source packages. A resolved issue whose fixed version is "0" never affected that
release; an open (or undetermined) one has no fix yet and affects every version.
"""

from __future__ import annotations

from typing import IO

from scanning.models import FixStatus, Severity
from scanning.updaters import Advisory, Affected, FeedFormatError, Updater, load_json
from scanning.updaters.severity import debian_urgency

# Release codenames the tracker uses, by the version number images carry in /etc/os-release.
CODENAMES = {
    "jessie": "8",
    "stretch": "9",
    "buster": "10",
    "bullseye": "11",
    "bookworm": "12",
    "trixie": "13",
    "forky": "14",
    "duke": "15",
    "sid": "unstable",
}
TRACKER_URL = "https://security-tracker.debian.org/tracker/"


def namespace(codename: str) -> str | None:
    """The namespace of a Debian release codename, None for one we do not know."""
    version = CODENAMES.get(codename)
    return f"debian:{version}" if version else None


def affected(package: str, release: str, facts: dict) -> Affected | None:
    """What one release entry says about the package, None for an unknown release."""
    space = namespace(release)
    if space is None or not isinstance(facts, dict):
        return None
    severity = debian_urgency(str(facts.get("urgency", "")))
    fixed = str(facts.get("fixed_version") or "")
    if facts.get("status") == "resolved" and fixed == "0":
        return Affected(space, package, FixStatus.NOT_AFFECTED, severity=severity)
    if facts.get("status") == "resolved" and fixed:
        return Affected(space, package, FixStatus.FIXED, fixed_version=fixed, severity=severity)
    return Affected(space, package, FixStatus.OPEN, severity=severity)


class DebianUpdater(Updater):
    """Debian's security tracker."""

    source = "debian"
    url_setting = "VULNDB_DEBIAN_URL"

    def parse(self, stream: IO[bytes]) -> list[Advisory]:
        """Every CVE of the tracker with its per-release state of every source package it names."""
        document = load_json(stream)
        if not isinstance(document, dict):
            raise FeedFormatError("Debian tracker JSON: expected an object of source packages")
        advisories: dict[str, Advisory] = {}
        for package, issues in document.items():
            if not isinstance(issues, dict):
                raise FeedFormatError(f"Debian tracker JSON: package {package!r} is not an object of issues")
            for name, issue in issues.items():
                # The tracker also lists TEMP-… placeholders for issues without a CVE yet; they are real issues.
                if not isinstance(issue, dict):
                    continue
                advisory = advisories.get(name)
                if advisory is None:
                    advisory = advisories[name] = Advisory(
                        name=name, description=str(issue.get("description") or ""), links=[TRACKER_URL + name]
                    )
                for release, facts in (issue.get("releases") or {}).items():
                    entry = affected(package, release, facts)
                    if entry is not None:
                        advisory.affected.append(entry)
                        if Severity.rank(entry.severity) > Severity.rank(advisory.severity):
                            advisory.severity = entry.severity
        return list(advisories.values())

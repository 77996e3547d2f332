"""The OSV format (https://ossf.github.io/osv-schema/) as osv.dev publishes it: an all.zip of records per ecosystem.

The sources that publish OSV (Ubuntu, AlmaLinux, PyPI, npm) subclass OsvUpdater and say which of
the record's ecosystems they read, under which namespace, and what the record's own severity is.
A record's ECOSYSTEM/SEMVER ranges become one row per introduced..fixed (or ..last_affected)
interval, its `versions[]` list one row more; GIT ranges name commits, not versions, and are skipped.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from typing import IO, Any

from scanning.models import FixStatus, Severity
from scanning.updaters import CVE_ID, Advisory, Affected, FeedFormatError, Updater, merged, timestamp
from scanning.updaters.severity import GITHUB_SEVERITY, best_score

VERSION_RANGES = {"ECOSYSTEM", "SEMVER"}


def intervals(namespace: str, package: str, events: list[dict[str, str]]) -> Iterator[Affected]:
    """The affected intervals of one range's events, in the order OSV lists them."""
    introduced: str | None = None
    for event in events:
        if "introduced" in event:
            if introduced is not None:  # A second start with no end between: the first interval is open.
                yield Affected(namespace, package, FixStatus.OPEN, introduced=introduced)
            introduced = "" if event["introduced"] == "0" else str(event["introduced"])
        elif "fixed" in event:
            start = introduced or ""
            yield Affected(namespace, package, FixStatus.FIXED, introduced=start, fixed_version=str(event["fixed"]))
            introduced = None
        elif "last_affected" in event:
            start = introduced or ""
            yield Affected(namespace, package, FixStatus.OPEN, introduced=start, last_affected=event["last_affected"])
            introduced = None
    if introduced is not None:
        yield Affected(namespace, package, FixStatus.OPEN, introduced=introduced)


class OsvUpdater(Updater):
    """Reads osv.dev's all.zip of one ecosystem; subclasses map ecosystems to namespaces."""

    suffix = ".zip"
    # Where the record's CVE ids are: aliases name the same flaw; distributions' advisories list theirs
    # in upstream (Ubuntu) or related (AlmaLinux).
    cve_fields: tuple[str, ...] = ("aliases", "upstream")

    def namespace(self, ecosystem: str) -> str | None:
        """The namespace of an OSV ecosystem string this source reads, None to skip it."""
        raise NotImplementedError

    def package_name(self, name: str) -> str:
        """The package name as the matcher looks it up."""
        return name

    def own_severity(self, record: dict[str, Any]) -> str | None:
        """The severity the publisher itself gives (beside CVSS), None if it gives none."""
        return None

    def parse(self, stream: IO[bytes]) -> list[Advisory]:
        """Every advisory of the zip's records, those naming one CVE folded together."""
        try:
            archive = zipfile.ZipFile(stream)
        except zipfile.BadZipFile as exc:
            raise FeedFormatError(f"OSV {self.source}: not a zip of OSV records ({exc})") from exc
        advisories: list[Advisory] = []
        with archive:
            for member in archive.namelist():
                if not member.endswith(".json"):
                    continue
                try:
                    record = json.loads(archive.read(member))
                except ValueError as exc:
                    raise FeedFormatError(f"OSV {self.source}: {member} is not JSON ({exc})") from exc
                advisories.extend(self.advisories(record, member))
        return merged(advisories)

    def advisories(self, record: Any, member: str = "") -> list[Advisory]:
        """The advisories of one OSV record: one per CVE it names, or one under its own id."""
        if not isinstance(record, dict) or not isinstance(record.get("id"), str):
            raise FeedFormatError(f"OSV {self.source}: {member or 'a record'} has no id")
        affected = list(self.affected(record))
        if not affected:
            return []
        score = best_score(
            [(item.get("type", ""), item.get("score", "")) for item in record.get("severity") or [] if item]
        )
        github = GITHUB_SEVERITY.get(str((record.get("database_specific") or {}).get("severity", "")).lower())
        severity = self.own_severity(record) or (score.severity if score else None) or github or Severity.UNKNOWN
        own_id = record["id"]
        ids = {own_id, *record.get("aliases", []), *record.get("upstream", []), *record.get("related", [])}
        names = sorted({name for field in self.cve_fields for name in record.get(field) or [] if CVE_ID.match(name)})
        return [
            Advisory(
                name=name,
                summary=str(record.get("summary") or ""),
                description=str(record.get("details") or ""),
                severity=severity,
                cvss_score=score.score if score else None,
                cvss_vector=score.vector if score else "",
                links=[
                    ref["url"] for ref in record.get("references") or [] if isinstance(ref, dict) and ref.get("url")
                ],
                aliases=sorted(ids - {name}),
                published=timestamp(record.get("published")),
                modified=timestamp(record.get("modified")),
                withdrawn=timestamp(record.get("withdrawn")),
                affected=[Affected(**vars(entry)) for entry in affected],
            )
            for name in names or [own_id]
        ]

    def affected(self, record: dict[str, Any]) -> Iterator[Affected]:
        """The rows of the record's affected packages in the ecosystems this source reads."""
        for item in record.get("affected") or []:
            package = item.get("package") or {}
            namespace = self.namespace(str(package.get("ecosystem", "")))
            if namespace is None or not package.get("name"):
                continue
            name = self.package_name(str(package["name"]))
            for version_range in item.get("ranges") or []:
                if version_range.get("type") in VERSION_RANGES:
                    yield from intervals(namespace, name, version_range.get("events") or [])
            versions = [str(version) for version in item.get("versions") or []]
            if versions:
                yield Affected(namespace, name, FixStatus.OPEN, versions=versions)

"""What the scanning pages show, read from the scans: the severity bar of a tag, the totals of a project's images,
and a tag's findings sorted and filtered for its report."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.db.models import Q, QuerySet

from projects.models import Project
from registries.models import Tag
from scanning.models import SEVERITY_ORDER, AllowlistEntry, ImageFinding, ImageScan, ScanState

# Highest first: the bar, the popover and the chart read left to right from the worst.
SEVERITIES_DOWN = list(reversed(SEVERITY_ORDER))
# The report's sort keys (?sort=, a leading "-" reverses) and the columns they order by.
SORTS = {
    "severity": ["-rank", "vulnerability", "package"],
    "cve": ["vulnerability", "package"],
    "package": ["package", "vulnerability"],
}


@dataclass
class Segment:
    """One severity's part of the bar: its count and where it sits (percent of the bar's width)."""

    severity: str
    count: int
    x: float
    width: float


@dataclass
class SeverityBar:
    """What a tag's Vulnerability cell shows: the scan's state, its segments and the hover summary's counts."""

    scan: ImageScan | None
    segments: list[Segment] = field(default_factory=list)
    total: int = 0

    @property
    def state(self) -> str:
        """not_scanned, pending, running, failed, clean or vulnerable."""
        if self.scan is None:
            return "not_scanned"
        if self.scan.state == ScanState.SUCCEEDED or self.scan.matched is not None:
            # A rescan under way still shows the last result beside its state.
            return "vulnerable" if self.total else "clean"
        return str(self.scan.state)

    @property
    def rescan_failed(self) -> bool:
        """Whether the image's latest scan failed while an earlier one's result is still shown."""
        return self.scan is not None and self.scan.matched is not None and self.scan.state == ScanState.FAILED

    @property
    def active(self) -> bool:
        """Whether a scan of the image is queued or running (the table keeps reloading until it is not)."""
        return self.scan is not None and self.scan.state in (ScanState.PENDING, ScanState.RUNNING)


def severity_bar(scan: ImageScan | None) -> SeverityBar:
    """The bar of an image's scan: one segment per severity found, as wide as its share of the findings."""
    bar = SeverityBar(scan)
    counts = (scan.summary or {}) if scan is not None else {}
    bar.total = sum(int(counts.get(severity, 0)) for severity in SEVERITIES_DOWN)
    x = 0.0
    for severity in SEVERITIES_DOWN:
        count = int(counts.get(severity, 0))
        if count and bar.total:
            width = 100.0 * count / bar.total
            bar.segments.append(Segment(severity, count, round(x, 2), round(width, 2)))
            x += width
    return bar


def attach_bars(tags: Iterable[Tag]) -> list[SeverityBar]:
    """Give every tag its `vulnerability` bar, reading the scans of all their images in one query."""
    tags = list(tags)
    scans = {scan.digest: scan for scan in ImageScan.objects.filter(digest__in={tag.digest for tag in tags})}
    bars = []
    for tag in tags:
        tag.vulnerability = severity_bar(scans.get(tag.digest))  # type: ignore[attr-defined]
        bars.append(tag.vulnerability)  # type: ignore[attr-defined]
    return bars


@dataclass
class ProjectTotals:
    """The severities of a project's images: findings per severity (highest first) and how many images are where."""

    counts: dict[str, int]
    images: int
    scanned: int
    vulnerable: int
    failed: int

    @property
    def not_scanned(self) -> int:
        """Images no scan has finished for."""
        return self.images - self.scanned - self.failed

    def chart(self) -> dict[str, list]:
        """The chart's data: the severities found and their counts, highest first."""
        found = [(severity, count) for severity, count in self.counts.items() if count]
        return {"labels": [severity for severity, _ in found], "counts": [count for _, count in found]}


def project_totals(project: Project) -> ProjectTotals:
    """Findings per severity over the project's images (each digest once), and how many were scanned."""
    digests = set(Tag.objects.filter(repository__project=project).values_list("digest", flat=True))
    scans = ImageScan.objects.filter(digest__in=digests).only("state", "summary", "matched")
    counts: Counter[str] = Counter()
    scanned = vulnerable = failed = 0
    for scan in scans:
        if scan.matched is not None:
            scanned += 1
            vulnerable += bool(scan.summary)
            counts.update({severity: int(count) for severity, count in (scan.summary or {}).items()})
        elif scan.state == ScanState.FAILED:
            failed += 1
    ordered = {severity: counts.get(severity, 0) for severity in SEVERITIES_DOWN}
    return ProjectTotals(ordered, len(digests), scanned, vulnerable, failed)


def findings(scan: ImageScan, severity: str = "", text: str = "", sort: str = "severity") -> QuerySet[ImageFinding]:
    """The scan's findings of one severity (or all) whose CVE, package or description holds `text`, sorted."""
    rows = scan.findings.all()
    if severity in SEVERITY_ORDER:
        rows = rows.filter(severity=severity)
    if text:
        matches = Q(vulnerability__icontains=text) | Q(package__icontains=text) | Q(description__icontains=text)
        rows = rows.filter(matches)
    descending = sort.startswith("-")
    columns = SORTS.get(sort.lstrip("-"), SORTS["severity"])
    if descending:
        columns = [column[1:] if column.startswith("-") else f"-{column}" for column in columns]
    return rows.order_by(*columns)


def allowlist_notes(project: Project, today: datetime.date) -> dict[str, str]:
    """CVE -> how it is allowlisted today ("project until 2026-12-31", "system"), the project's entry first."""
    entries = AllowlistEntry.objects.filter(Q(project__isnull=True) | Q(project=project)).filter(
        Q(expires__isnull=True) | Q(expires__gte=today)
    )
    notes: dict[str, str] = {}
    # System entries first so that a project's own entry, read last, is the one named.
    for entry in sorted(entries, key=lambda entry: entry.project_id is not None):
        where = "project" if entry.project_id else "system"
        notes[entry.cve] = f"allowlisted in {where}" + (f" until {entry.expires:%Y-%m-%d}" if entry.expires else "")
    return notes

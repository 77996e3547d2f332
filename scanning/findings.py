"""Keeping what a scan found, whichever scanner made it (the built-in one, Clair, a Harbor adapter): the findings
rows and the scan's summary that the tag lists, reports and the run policy read."""

from __future__ import annotations

from collections import Counter

from django.db import transaction
from django.utils import timezone

from scanning.matcher import Finding
from scanning.models import ImageFinding, ImageScan, ScanState, Severity


def store_findings(scan: ImageScan, findings: list[Finding], distribution: str, packages: int) -> ImageScan:
    """Keep a scan's findings (replacing the last ones) and its summary, whichever scanner made them; the scan
    ends SUCCEEDED. Texts a remote scanner sent are cut to what the columns hold."""
    summary = Counter(finding.severity for finding in findings)
    with transaction.atomic():
        ImageFinding.objects.filter(scan=scan).delete()
        ImageFinding.objects.bulk_create(
            ImageFinding(
                scan=scan,
                vulnerability=finding.vulnerability[:100],
                package=finding.package[:255],
                installed_version=finding.installed_version[:255],
                fixed_version=finding.fixed_version[:255],
                severity=finding.severity,
                rank=Severity.rank(finding.severity),
                status=finding.status[:20],
                namespace=finding.namespace[:40],
                description=finding.description[:4000],
                links=list(finding.links)[:10],
                cvss_score=finding.cvss_score,
            )
            for finding in findings
        )
        scan.distribution = distribution[:200]
        scan.package_count = packages
        scan.summary = dict(summary)
        scan.fixable = sum(1 for finding in findings if finding.fixed_version)
        scan.state, scan.error = ScanState.SUCCEEDED, ""
        scan.matched = timezone.now()
        scan.save()
    return scan

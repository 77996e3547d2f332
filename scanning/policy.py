"""The scanning app's answer to "Prevent vulnerable images from running": an image of the integrated registry runs
when its latest scan found nothing at or above the project's severity that the CVE allowlists do not excuse.

Plugged into projects.policy.check (the one run policy) by ScanningConfig.ready; the /v2/ proxy (a 412 docker
prints) and provisioning ask it there.
"""

from __future__ import annotations

from collections import Counter

from projects.models import Project
from projects.policy import ALLOWED, NOT_SCANNED, Verdict
from registries.models import Tag
from scanning.models import ImageScan, ScanState, Severity
from scanning.services.scans import allowlisted

# Vulnerability ids named in a refusal; the rest are counted.
NAMED = 3


def image_digest(repository: str, reference: str) -> str | None:
    """The manifest digest a reference names: itself, or what the tag points at in the portal's records."""
    if reference.startswith("sha256:"):
        return reference
    return Tag.objects.filter(repository__name=repository, name=reference).values_list("digest", flat=True).first()


def threshold_rank(project: Project) -> int:
    """The rank of the project's severity ("high" refuses High and Critical)."""
    return Severity.rank(project.severity.capitalize())


def vulnerability_verdict(project: Project, repository: str, reference: str) -> Verdict:
    """Whether the image may run under the project's threshold, with the reason when it may not."""
    digest = image_digest(repository, reference)
    scan = ImageScan.objects.filter(digest=digest).first() if digest else None
    if scan is None or scan.matched is None:
        if scan is not None and scan.state == ScanState.FAILED:
            return Verdict(False, f"image could not be scanned: {scan.error}")
        return NOT_SCANNED
    excused = allowlisted(project)
    findings = scan.findings.filter(rank__gte=threshold_rank(project)).order_by("-rank", "vulnerability")
    blocking = [(name, severity) for name, severity in findings.values_list("vulnerability", "severity")]
    blocking = [(name, severity) for name, severity in blocking if name not in excused]
    if not blocking:
        return ALLOWED
    counts = Counter(severity for _, severity in blocking)
    parts = [f"{counts[severity]} {severity.lower()}" for severity in reversed(Severity.values) if counts[severity]]
    names = list(dict.fromkeys(name for name, _ in blocking))
    shown = ", ".join(names[:NAMED]) + (f" and {len(names) - NAMED} more" if len(names) > NAMED else "")
    plural = "ies" if len(blocking) > 1 else "y"
    return Verdict(
        False, f"image has {' and '.join(parts)} vulnerabilit{plural} ({shown}), threshold {project.severity}"
    )

"""Scans made by a remote scanner a ScannerRegistration names: Clair v4 (scanning.clair) or a Harbor pluggable
scanner adapter (scanning.harbor_adapter_client). Either pulls the image from the integrated registry itself, at
the address remote scanners reach it (settings.SCANNER_REGISTRY_URL), with a short-lived pull token of the image's
repository; what it answers is stored as the built-in scanner's findings are (scanner.store_findings).

A remote failure (down, refused, wrong answers, no report in time) fails the scan with the reason and withdraws
the image's earlier verdict, so it is never taken for clean; the error is raised for the job (retried when the
client says `transient`).
"""

from __future__ import annotations

from collections import Counter

from django.conf import settings
from django.utils import timezone

from portal.core.errors import DomainError
from portal.core.jobs import JobContext
from portal.core.secrets import decrypt
from registries.models import Tag
from registries.token import Access, issue
from scanning.clair import DEFAULT_ISSUER, ClairClient
from scanning.findings import store_findings
from scanning.harbor_adapter import DOCKER_MANIFEST
from scanning.harbor_adapter_client import HarborAdapterClient
from scanning.matcher import Finding
from scanning.models import ImageScan, ScannerKind, ScannerRegistration, ScanState

# The subject of the pull tokens an adapter pulls with (the registry's log names it).
ADAPTER_PULL_SUBJECT = "wharf-scanner:adapter"
# How long an adapter's pull token lives beyond the wait for its report: it may still be reading a layer.
PULL_TOKEN_MARGIN = 60


def registry_url() -> str:
    """The integrated registry's address as remote scanners reach it."""
    return (settings.SCANNER_REGISTRY_URL or settings.CLAIR_REGISTRY_URL or settings.REGISTRY_URL).rstrip("/")


def clair_client(registration: ScannerRegistration) -> ClairClient:
    """The Clair client of a registration (its PSK decrypted)."""
    psk = decrypt(registration.psk) if registration.psk else None
    return ClairClient(
        registration.indexer_url,
        registration.matcher_url or registration.indexer_url,
        psk,
        registration.psk_issuer or DEFAULT_ISSUER,
        registry_url=registry_url(),
    )


def adapter_client(registration: ScannerRegistration) -> HarborAdapterClient:
    """The adapter client of a registration (its Authorization decrypted)."""
    authorization = decrypt(registration.authorization) if registration.authorization else ""
    return HarborAdapterClient(registration.adapter_url, authorization)


def adapter_pull_authorization(repository: str) -> str:
    """What an adapter pulls the image with: a bearer token for pulling this one repository, briefly."""
    lifetime = int(settings.SCANNER_REPORT_DEADLINE_SECONDS) + PULL_TOKEN_MARGIN
    token, _ = issue(ADAPTER_PULL_SUBJECT, [Access("repository", repository, ("pull",))], lifetime)
    return f"Bearer {token}"


def _media_type(scan: ImageScan) -> str:
    """The image's manifest media type as the portal recorded it at push (Docker v2 when not known)."""
    known = Tag.objects.filter(digest=scan.digest).exclude(media_type="").values_list("media_type", flat=True)
    return known.first() or DOCKER_MANIFEST


def _distribution(findings: list[Finding]) -> str:
    """An adapter's report names no distribution: the advisories' namespace most findings share ("debian:12")."""
    namespaces = Counter(finding.namespace for finding in findings if ":" in finding.namespace)
    return namespaces.most_common(1)[0][0] if namespaces else ""


def scan_with(scan: ImageScan, registration: ScannerRegistration, context: JobContext | None = None) -> ImageScan:
    """Have the registration's scanner scan the image and keep what it found (or fail the scan, see above)."""
    try:
        if registration.kind == ScannerKind.CLAIR:
            known = scan.remote_state if scan.scanner_id == registration.pk else ""
            report = clair_client(registration).scan(scan.repository, scan.digest, known_state=known)
            findings, distribution, packages = report.findings, report.distribution, report.package_count
            state = report.index_state
        elif registration.kind == ScannerKind.HARBOR_ADAPTER:
            adapter = adapter_client(registration).scan_and_report(
                registry_url(),
                adapter_pull_authorization(scan.repository),
                scan.repository,
                scan.digest,
                _media_type(scan),
                deadline=float(settings.SCANNER_REPORT_DEADLINE_SECONDS),
            )
            # An adapter reports only the packages with findings: those are what the count says.
            findings, distribution, state = adapter.findings, _distribution(adapter.findings), ""
            packages = len({(finding.package, finding.installed_version) for finding in findings})
        else:
            raise DomainError(f"the scanner '{registration.name}' is of no kind Wharf can use")
    except DomainError as exc:
        reason = f"scanner '{registration.name}': {exc.message}"
        ImageScan.objects.filter(pk=scan.pk).update(
            state=ScanState.FAILED,
            error=reason[:2000],
            matched=None,
            scanner=registration,
            scanner_name=registration.name,
            scanner_kind=registration.kind,
        )
        # The job records str(exc): both say which scanner failed. `remote_scanner` tells the scan of all images
        # that this image alone failed (another project's images may use another scanner).
        exc.message, exc.args = reason, (reason,)
        exc.remote_scanner = registration.name  # type: ignore[attr-defined]
        raise
    scan.scanned = timezone.now()
    scan.index, scan.layers = {}, []
    scan.scanner, scan.scanner_name, scan.scanner_kind = registration, registration.name, registration.kind
    scan.remote_state = state[:200]
    return store_findings(scan, findings, distribution, packages)

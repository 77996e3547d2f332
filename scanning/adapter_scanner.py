"""The job of a scan asked for through the Harbor scanner-adapter API (scanning.services.adapter accepts it): pull
the image from the caller's registry with the caller's credentials, index and match it as the built-in scanner
does, keep the report; and what a failed or stopped job leaves behind (a FAILED scan, no credentials)."""

from __future__ import annotations

from django.utils import timezone

from portal.core.errors import DomainError
from portal.core.jobs import JobContext, JobStopped
from portal.core.models import Job
from portal.core.secrets import decrypt
from scanning import adapter_pull, matcher, scanner
from scanning.harbor_adapter import Artifact, VulnerabilityReport
from scanning.models import AdapterScan, ScanState
from scanning.services.adapter import scanner_identity


def _erase_authorization(scan_pk: int) -> None:
    """The caller's credentials are only needed to pull: once the job has ended they are gone."""
    AdapterScan.objects.filter(pk=scan_pk).update(authorization="")


def run_adapter_scan(job: Job, context: JobContext) -> str:
    """Pull the artifact from the caller's registry, index it (stored layer indexes reused), match it, and keep
    the report. A fault ends the job through `adapter_scan_failed`, or retries it when the registry may recover."""
    scan = AdapterScan.objects.get(pk=context.parameters["adapter_scan"])
    AdapterScan.objects.filter(pk=scan.pk).update(state=ScanState.RUNNING)
    authorization = decrypt(scan.authorization) if scan.authorization else ""
    client = adapter_pull.registry_client(scan.registry_url, authorization)
    _, image = scanner.index_reference(client, scan.repository, scan.digest, context, trusted=False)
    findings = matcher.match(image.distribution, image.packages)
    artifact = Artifact(scan.repository, scan.digest, scan.tag, scan.mime_type)
    report = VulnerabilityReport(timezone.now(), artifact, scanner_identity(), tuple(findings))
    AdapterScan.objects.filter(pk=scan.pk).update(
        state=ScanState.SUCCEEDED, report=report.as_dict(), error="", authorization="", finished=timezone.now()
    )
    image_name = f"{scan.registry_url}/{scan.repository}@{scan.digest[:19]}"
    return f"{image_name}: {len(image.packages)} packages, {len(findings)} vulnerabilities"


def adapter_scan_failed(job: Job, exc: Exception) -> None:
    """The job ended without a report (failed for good, or stopped): the scan is FAILED with the reason."""
    scan_pk = job.parameters.get("adapter_scan")
    if isinstance(exc, JobStopped):
        reason = "the scan was stopped before it finished"
    elif isinstance(exc, DomainError):
        reason = exc.message
    else:
        reason = f"the scanner failed unexpectedly ({type(exc).__name__}); see job #{job.pk}"
    AdapterScan.objects.filter(pk=scan_pk).exclude(state=ScanState.SUCCEEDED).update(
        state=ScanState.FAILED, error=reason[:2000], finished=timezone.now()
    )
    _erase_authorization(scan_pk)

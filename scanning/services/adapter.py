"""Scans asked for through the Harbor scanner-adapter API that Wharf serves (/scanner/api/v1/): who may ask,
the scan row and its job, the job's runner, and what the report endpoint answers.

Who may ask: portal administrators (an API token of one, as Harbor registers an adapter with an Authorization
header). The scan pulls another registry's image on the caller's word with the caller's credentials, so it is an
administrator's act, like configuring a registry; a project role says nothing about registries outside Wharf.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from portal.core.audit import Actor, record
from portal.core.errors import Forbidden, NotFound
from portal.core.jobs import create_job
from portal.core.permissions import is_portal_admin
from portal.core.secrets import encrypt
from scanning import adapter_pull
from scanning.harbor_adapter import (
    CONSUMED_TYPES,
    REPORT_TYPES,
    VULNERABILITY_CAPABILITY,
    Capability,
    Scanner,
    ScannerAdapterMetadata,
    ScanRequest,
)
from scanning.models import AdapterScan, FeedSource, ScanState

ADAPTER_SCAN = "adapter_scan"
SCANNER_NAME = "Wharf"
# Seconds a caller is told to wait before asking for a report again while the scan runs.
REFRESH_AFTER = 2


def require_adapter_user(actor: Actor) -> None:
    """Only portal administrators use the scanner-adapter API."""
    if not is_portal_admin(actor.user):
        raise Forbidden("The scanner-adapter API is for Management Portal administrators (use an admin's API token).")


def scanner_identity() -> Scanner:
    """The scanner as reports and metadata name it."""
    return Scanner(SCANNER_NAME, SCANNER_NAME, settings.VERSION)


def metadata(actor: Actor) -> ScannerAdapterMetadata:
    """What GET /metadata answers: the built-in scanner, what it reads and writes, and its database's age."""
    require_adapter_user(actor)
    updated = (
        FeedSource.objects.exclude(last_success=None)
        .order_by("-last_success")
        .values_list("last_success", flat=True)
        .first()
    )
    properties = {"harbor.scanner-adapter/scanner-type": "os-package-vulnerability"}
    if updated is not None:
        properties["harbor.scanner-adapter/vulnerability-database-updated-at"] = updated.isoformat()
    return ScannerAdapterMetadata(
        scanner_identity(), (Capability(CONSUMED_TYPES, REPORT_TYPES, VULNERABILITY_CAPABILITY),), properties
    )


def request_scan(actor: Actor, scan_request: ScanRequest) -> AdapterScan:
    """Accept a scan request: the row (the authorization encrypted) and its job on the scans queue."""
    require_adapter_user(actor)
    registry_url = adapter_pull.check_registry_url(scan_request.registry_url)
    if scan_request.authorization:
        adapter_pull.auth_for(scan_request.authorization)
    artifact = scan_request.artifact
    forget_old_scans()
    with transaction.atomic():
        scan = AdapterScan.objects.create(
            registry_url=registry_url,
            repository=artifact.repository,
            digest=artifact.digest,
            tag=artifact.tag,
            mime_type=artifact.mime_type,
            authorization=encrypt(scan_request.authorization) if scan_request.authorization else "",
            requested_by=actor.name,
        )
        # The parameters name the row only: the authorization never enters the job's row, log or audit entry.
        scan.job = create_job(
            actor, ADAPTER_SCAN, f"{registry_url}/{artifact.repository}@{artifact.digest}", {"adapter_scan": scan.pk}
        )
        scan.save(update_fields=["job"])
        # A scan, like the built-in ones, told apart by where the image comes from and who asked through what.
        record(
            actor,
            "start",
            "scan",
            f"{registry_url}/{artifact.repository}@{artifact.digest}",
            via="scanner-adapter API",
            adapter_scan=str(scan.uuid),
        )
    return scan


def forget_old_scans() -> int:
    """Delete scans (and their reports) that ended more than JOB_RETENTION_DAYS ago, as their jobs are; a caller
    fetches a report moments after it is made, so each new request tidies up after the old ones."""
    cutoff = timezone.now() - datetime.timedelta(days=settings.JOB_RETENTION_DAYS)
    deleted, _ = AdapterScan.objects.filter(finished__lt=cutoff).delete()
    return deleted


def find_scan(actor: Actor, scan_id: str) -> AdapterScan:
    """The scan a report is asked for; NotFound for an id that is not one of ours."""
    require_adapter_user(actor)
    try:
        key = uuid.UUID(scan_id)
    except ValueError:
        raise NotFound(f"no scan has the id '{scan_id[:80]}'") from None
    scan = AdapterScan.objects.filter(uuid=key).first()
    if scan is None:
        raise NotFound(f"no scan has the id '{scan_id}'")
    return scan


@dataclass(frozen=True)
class ReportState:
    """What the report endpoint answers: the report when done, how long to wait while running, or the failure."""

    report: dict | None = None
    refresh_after: int = 0
    error: str = ""


def report_state(scan: AdapterScan) -> ReportState:
    """Done (the report), running (wait REFRESH_AFTER seconds), or failed (the reason)."""
    if scan.state == ScanState.SUCCEEDED:
        return ReportState(report=scan.report)
    if scan.state == ScanState.FAILED:
        return ReportState(error=scan.error or "the scan failed")
    return ReportState(refresh_after=REFRESH_AFTER)

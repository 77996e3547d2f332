"""Job runners of scanning, registered with portal.core.jobs.register(), and the tasks the beat fires."""

from __future__ import annotations

from contextlib import suppress

from celery import shared_task

from portal.core.audit import Actor
from portal.core.errors import Conflict
from portal.core.jobs import register
from scanning import adapter_scanner, scanner, services
from scanning.services import adapter, scans

register(
    services.VULNDB_UPDATE,
    services.run_update,
    exclusive=True,
    busy="a vulnerability database update is already running",
)
# Scans run on their own queue and worker: a scan of all images never holds up provisioning or replication.
register(
    scans.SCAN, scanner.run_scan, exclusive=True, busy="this image is already being scanned", queue=scans.SCAN_QUEUE
)
register(
    scans.SCAN_ALL,
    scanner.run_scan_all,
    exclusive=True,
    busy="a scan of all images is already running",
    queue=scans.SCAN_QUEUE,
)
register(scans.SCAN_REMATCH, scanner.run_rematch, queue=scans.SCAN_QUEUE)
# Scans other systems ask for through the Harbor adapter API (/scanner/api/v1/): many may run, each its own image.
register(
    adapter.ADAPTER_SCAN,
    adapter_scanner.run_adapter_scan,
    on_failed=adapter_scanner.adapter_scan_failed,
    queue=scans.SCAN_QUEUE,
)


@shared_task(name="scanning.scheduled_vulndb_update")
def scheduled_vulndb_update() -> None:
    """The periodic update of the vulnerability database: a job row like an on-demand one, unless one is active."""
    with suppress(Conflict):
        services.start_update(Actor.system("scheduler"))


@shared_task(name="scanning.scheduled_scan_all")
def scheduled_scan_all() -> None:
    """The daily scan of all images (Configuration > Vulnerability Scanning), unless one is running."""
    with suppress(Conflict):
        services.start_scan_all(Actor.system("scheduler"), scheduled=True)

"""The beat schedule kept in the database (django-celery-beat), so it follows the settings."""

from __future__ import annotations

from django.conf import settings
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

# name -> (task, minute, hour): the system's own recurring jobs.
RECURRING = {
    "nightly directory sync": ("portal.scheduled_directory_sync", "0", "2"),
    "daily audit log purge": ("portal.purge_audit_log", "30", "4"),
    "daily job purge": ("portal.purge_jobs", "45", "4"),
    "hourly registry reconcile": ("registries.scheduled_reconcile", "17", "*"),
    # Feeds are fetched only when changed (ETag / Last-Modified), so a check every 6 hours costs little.
    "vulnerability database update": ("scanning.scheduled_vulndb_update", "23", "*/6"),
}
HOST_COLLECTION = "host data collection"
SCAN_ALL = "scheduled vulnerability scan"
JOB_RECOVERY = "job recovery"
EVENT_SWEEP = "registry event sweep"
# Seconds between sweeps for registry events recorded but not applied (their worker was lost).
EVENT_SWEEP_SECONDS = 60


def install_schedules() -> None:
    """Create or update the periodic tasks the system needs."""
    for name, (task, minute, hour) in RECURRING.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*"
        )
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "crontab": crontab, "enabled": True})
    install_host_collection()
    install_job_recovery()
    install_event_sweep()
    install_scan_all()


def install_scan_all() -> None:
    """The scan of all images at the configured time (Configuration > Vulnerability Scanning), or none when off."""
    from portal.core.models import ScanSchedule, SystemSettings

    current = SystemSettings.load()
    if current.scan_schedule == ScanSchedule.OFF:
        PeriodicTask.objects.filter(name=SCAN_ALL).delete()
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(current.scan_time.minute),
        hour=str(current.scan_time.hour),
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.update_or_create(
        name=SCAN_ALL, defaults={"task": "scanning.scheduled_scan_all", "crontab": crontab, "enabled": True}
    )


def install_host_collection() -> None:
    """Run the host collection every HOST_COLLECTION_INTERVAL_SECONDS, following the setting when it changes."""
    _every(HOST_COLLECTION, "hosts.collect_all", settings.HOST_COLLECTION_INTERVAL_SECONDS)


def install_job_recovery() -> None:
    """Look for jobs whose worker was lost every half lease, so one is queued again within 1.5 leases."""
    _every(JOB_RECOVERY, "portal.recover_jobs", max(settings.JOB_LEASE_SECONDS // 2, 1))


def install_event_sweep() -> None:
    """Apply registry events a lost worker left recorded but not applied; each push also asks for it at once."""
    _every(EVENT_SWEEP, "registries.apply_events", EVENT_SWEEP_SECONDS)


def _every(name: str, task: str, seconds: int) -> None:
    """A periodic task run every `seconds`, created or brought in line with them.

    A beat the worker could not take within one interval is dropped rather than queued: the next
    one does the same work, and a backlog would only run cycles back to back.
    """
    interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.update_or_create(
        name=name,
        defaults={"task": task, "interval": interval, "crontab": None, "enabled": True, "expire_seconds": seconds},
    )

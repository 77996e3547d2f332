"""The beat schedule kept in the database (django-celery-beat), so it follows the settings."""

from __future__ import annotations

from django_celery_beat.models import CrontabSchedule, PeriodicTask

# name -> (task, minute, hour): the system's own recurring jobs.
RECURRING = {
    "nightly directory sync": ("portal.scheduled_directory_sync", "0", "2"),
    "daily audit log purge": ("portal.purge_audit_log", "30", "4"),
    "hourly registry reconcile": ("registries.scheduled_reconcile", "17", "*"),
}


def install_schedules() -> None:
    """Create or update the periodic tasks the system needs."""
    for name, (task, minute, hour) in RECURRING.items():
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute, hour=hour, day_of_week="*", day_of_month="*", month_of_year="*"
        )
        PeriodicTask.objects.update_or_create(name=name, defaults={"task": task, "crontab": crontab, "enabled": True})

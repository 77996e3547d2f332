"""Celery tasks of the integrated registry; thin: load the job, call the service, record."""

from __future__ import annotations

from celery import shared_task

from portal.audit import Actor
from portal.jobs import create_job, run_job
from portal.models import Job, JobState
from registries import gc, services


@shared_task(name="registries.reconcile")
def reconcile(job_id: int) -> None:
    """Run one reconcile job."""
    run_job(job_id, services.reconcile)


@shared_task(name="registries.scheduled_reconcile")
def scheduled_reconcile() -> None:
    """The hourly reconcile: a job row like an on-demand one, unless one is still waiting or running."""
    if not Job.objects.filter(kind=services.RECONCILE, state__in=[JobState.PENDING, JobState.RUNNING]).exists():
        create_job(Actor.system("scheduler"), services.RECONCILE, "registry", reconcile.delay)


@shared_task(name="registries.garbage_collect")
def garbage_collect(job_id: int) -> None:
    """Run one garbage collection job."""
    run_job(job_id, gc.garbage_collect)


@shared_task(name="registries.scheduled_gc")
def scheduled_gc() -> None:
    """Garbage collection on the configured schedule."""
    services.start_scheduled_gc(Actor.system("scheduler"))

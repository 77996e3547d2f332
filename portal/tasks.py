"""Celery tasks of the administration core; thin: load the job, call the service, record."""

from __future__ import annotations

from celery import shared_task

from portal import directory
from portal.audit import Actor
from portal.jobs import create_job, run_job
from portal.services import purge_audit_events

DIRECTORY_SYNC = "directory_sync"


@shared_task(name="portal.directory_sync")
def directory_sync(job_id: int) -> None:
    """Run one directory sync job."""
    run_job(job_id, directory.sync_users)


@shared_task(name="portal.scheduled_directory_sync")
def scheduled_directory_sync() -> None:
    """The nightly directory sync: a job row like an on-demand one."""
    if directory.is_configured():
        create_job(Actor.system("scheduler"), DIRECTORY_SYNC, "directory", directory_sync.delay)


@shared_task(name="portal.purge_audit_log")
def purge_audit_log() -> None:
    """Drop audit events past the retention period."""
    purge_audit_events(Actor.system("scheduler"))

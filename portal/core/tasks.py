"""Celery tasks of the administration core; thin: load the job, call the service, record."""

from __future__ import annotations

from contextlib import suppress

from celery import shared_task

from portal.core import directory
from portal.core.audit import Actor
from portal.core.errors import Conflict
from portal.core.jobs import create_job, purge_finished_jobs, recover_jobs, register, run_job
from portal.core.services import purge_audit_events

DIRECTORY_SYNC = directory.SYNC_JOB

register(DIRECTORY_SYNC, directory.sync_users, exclusive=True, busy="directory synchronization is already running")


@shared_task(name="portal.run_job")
def run_job_task(job_id: int) -> None:
    """Run one job of any kind: its runner is looked up by the job's kind."""
    run_job(job_id)


@shared_task(name="portal.recover_jobs")
def recover_jobs_task() -> None:
    """Queue again the jobs whose worker was lost (the beat runs it every half lease)."""
    recover_jobs()


@shared_task(name="portal.scheduled_directory_sync")
def scheduled_directory_sync() -> None:
    """The nightly directory sync: a job row like an on-demand one, unless one is still running."""
    if directory.is_configured():
        with suppress(Conflict):
            create_job(Actor.system("scheduler"), DIRECTORY_SYNC, "directory")


@shared_task(name="portal.purge_audit_log")
def purge_audit_log() -> None:
    """Drop audit events past the retention period."""
    purge_audit_events(Actor.system("scheduler"))


@shared_task(name="portal.purge_jobs")
def purge_jobs() -> None:
    """Drop finished jobs and their logs past the job retention period."""
    purge_finished_jobs()

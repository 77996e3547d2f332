"""Celery tasks and job runners of the integrated registry; thin: load the job, call the service, record."""

from __future__ import annotations

from contextlib import suppress

from celery import shared_task

from portal.core.audit import Actor
from portal.core.errors import Conflict
from portal.core.jobs import create_job, register
from registries import events, gc, services

register(services.RECONCILE, services.reconcile, exclusive=True, busy="a registry reconcile is already running")
register(services.GARBAGE_COLLECTION, gc.garbage_collect, exclusive=True, busy="garbage collection is already running")


@shared_task(name="registries.scheduled_reconcile")
def scheduled_reconcile() -> None:
    """The hourly reconcile: a job row like an on-demand one, unless one is still waiting or running."""
    with suppress(Conflict):
        create_job(Actor.system("scheduler"), services.RECONCILE, "registry")


@shared_task(name="registries.scheduled_gc")
def scheduled_gc() -> None:
    """Garbage collection on the configured schedule."""
    services.start_scheduled_gc(Actor.system("scheduler"))


@shared_task(name="registries.apply_events")
def apply_events() -> None:
    """Apply the registry events the web process recorded (also every minute, for any a lost worker left)."""
    events.apply_pending()

"""Job runners of scanning, registered with portal.core.jobs.register(), and the tasks the beat fires."""

from __future__ import annotations

from contextlib import suppress

from celery import shared_task

from portal.core.audit import Actor
from portal.core.errors import Conflict
from portal.core.jobs import register
from scanning import services

register(
    services.VULNDB_UPDATE,
    services.run_update,
    exclusive=True,
    busy="a vulnerability database update is already running",
)


@shared_task(name="scanning.scheduled_vulndb_update")
def scheduled_vulndb_update() -> None:
    """The periodic update of the vulnerability database: a job row like an on-demand one, unless one is active."""
    with suppress(Conflict):
        services.start_update(Actor.system("scheduler"))

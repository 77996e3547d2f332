"""Job runners of replication, registered with portal.core.jobs.register(), and the beat's scheduled runs."""

from __future__ import annotations

from celery import shared_task

from portal.core import jobs
from replication import execution, services

jobs.register(services.EXECUTION, execution.run_execution)
jobs.register(services.TASK, execution.run_task)


@shared_task(name=services.SCHEDULE_TASK)
def run_scheduled(rule_id: int) -> int | None:
    """The beat fires a scheduled rule: start an execution (the jobs do the work)."""
    started = services.run_scheduled(rule_id)
    return started.pk if started else None

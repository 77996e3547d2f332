"""The processes of one worker-driven test: Celery workers started and killed at will, a beat, TCP relays that
the test opens and closes, all on a queue of the test's own and stopped at the end."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from portal.core.models import Job
from portal.core.schedules import JOB_RECOVERY, install_schedules
from tests.integration.beat import Beat, clock_ahead, start_beat
from tests.integration.tcp_relay import TcpRelay
from tests.integration.worker import Worker, database_url, forget_queue, redis_url, sending_to, start_worker

RETRY_DELAY = 2
LEASE = 6
DEADLINE = 90.0


class Site:
    """Workers, a beat and relays sharing one environment: the test database, Redis and a queue of their own."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp_path = tmp_path
        self.broker = redis_url()
        self.queue = f"wharf-test-{uuid.uuid4().hex[:12]}"
        self.env = {
            "WHARF_BROKER_URL": self.broker,
            "WHARF_DATABASE_URL": database_url(connection.settings_dict),
            "WHARF_TASKS_EAGER": "false",
            "WHARF_JOB_RETRY_DELAY_SECONDS": str(RETRY_DELAY),
            "WHARF_JOB_LEASE_SECONDS": str(LEASE),
            "WHARF_TASK_QUEUE": self.queue,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
            **env,
        }
        self.workers: list[Worker] = []
        self.stoppers: list[Callable[[], None]] = []

    def start_worker(self, scans: bool = True) -> Worker:
        """A worker on the site's queue and, unless `scans` is False, its scans queue."""
        workdir = self.tmp_path / f"worker{len(self.workers)}"
        workdir.mkdir()
        worker = start_worker(self.env, workdir, self.queue, scans)
        self.workers.append(worker)
        return worker

    def start_beat(self, *keep: str, minute_in: int | None = None) -> Beat:
        """celery beat on the database schedule, firing the job recovery and the `keep` entries (to this queue);
        with `minute_in`, its clock's next minute starts that many seconds after it starts (see start_beat)."""
        PeriodicTask.objects.exclude(name__in=[JOB_RECOVERY, *keep]).update(enabled=False)
        ahead = 0 if minute_in is None else clock_ahead(minute_in)
        if ahead:
            # django-celery-beat takes an entry that never ran as last run when it last changed, a time written on
            # the clock of the process that changed it. Web and beat share one clock in production; here the beat's
            # runs ahead, so the entries are stamped on its clock, or an every-minute entry would fire at once for a
            # minute boundary that lies between the two clocks rather than at its next minute.
            stamp = timezone.now() + datetime.timedelta(seconds=ahead)
            PeriodicTask.objects.filter(name__in=keep, last_run_at__isnull=True).update(last_run_at=stamp)
        beat = start_beat(self.env, self.tmp_path, ahead)
        self.stoppers.append(beat.stop)
        return beat

    def open_relay(self, listen_port: int, target_port: int, delay: float = 0.0) -> TcpRelay:
        relay = TcpRelay(listen_port, target_port, delay)
        self.stoppers.append(relay.close)
        return relay

    def logs(self) -> str:
        return "\n".join(f"--- worker {i}\n{w.log()[-3000:]}" for i, w in enumerate(self.workers))

    def close(self) -> None:
        for stop in reversed(self.stoppers):
            stop()
        for worker in self.workers:
            worker.stop()
        forget_queue(self.broker, self.queue)

    def wait_for(self, condition: Callable[[Job], bool], job: Job, what: str, seconds: float = DEADLINE) -> Job:
        """Poll the job's row until `condition` holds; fail with the workers' and the job's logs after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            job.refresh_from_db()
            if condition(job):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"{what}: job is {job.state} after {seconds:.0f} s\n{job.log}\n{self.logs()}")
            time.sleep(0.2)


def site_for(tmp_path: Path, settings: Any, env: dict[str, str]) -> Iterator[Site]:
    """A Site for a test (use from a fixture): the test process's settings match the workers' (short lease, short
    retry delay) and the jobs it starts go to the site's queue."""
    from portal.celery import app

    settings.JOB_LEASE_SECONDS = LEASE
    settings.JOB_RETRY_DELAY_SECONDS = RETRY_DELAY
    install_schedules()
    site = Site(tmp_path, env)
    settings.CELERY_BROKER_URL = site.broker
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        with sending_to(app, site.broker, site.queue):
            yield site
    finally:
        site.close()

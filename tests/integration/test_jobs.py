"""Jobs for real: a Celery worker on Redis runs registry reconcile jobs against the real registry.

The registry is reached through a TCP relay on a fixed port, so the tests decide when it refuses
connections and when it is slow: a job retries until the registry answers, Stop ends a running
job, and a job whose worker is killed with SIGKILL is queued again by celery beat once its lease
lapses and completed by the next worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connection
from django_celery_beat.models import PeriodicTask

from portal.core.audit import Actor
from portal.core.models import Job, JobState, User
from portal.core.schedules import JOB_RECOVERY, install_schedules
from projects.models import Project
from registries import services
from registries.models import Tag
from tests.conftest import client_for
from tests.integration.beat import start_beat
from tests.integration.images import push_image
from tests.integration.registry import Registry, start_registry
from tests.integration.slapd import free_port
from tests.integration.tcp_relay import TcpRelay
from tests.integration.worker import Worker, database_url, forget_queue, redis_url, sending_to, start_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPOSITORIES = 8
RETRY_DELAY = 2
LEASE = 6
DEADLINE = 90.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real registry holding REPOSITORIES repositories of project alpha, each with one tag."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    for index in range(REPOSITORIES):
        push_image(server.url, f"alpha/app{index}", ["1.0"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def relay_port() -> int:
    """The port the worker knows as the registry's; a relay listens there only while a test wants it to."""
    return free_port()


class Site:
    """The processes of one test: workers (started and killed at will), a beat, the relay; all stopped at the end."""

    def __init__(self, tmp_path: Path, relay_port: int, registry: Registry) -> None:
        self.tmp_path = tmp_path
        self.relay_port = relay_port
        self.registry_port = urlsplit(registry.url).port or 0
        self.broker = redis_url()
        self.queue = f"wharf-test-{uuid.uuid4().hex[:12]}"
        self.env = {
            "WHARF_BROKER_URL": self.broker,
            "WHARF_DATABASE_URL": database_url(connection.settings_dict),
            "WHARF_TASKS_EAGER": "false",
            "WHARF_REGISTRY_URL": f"http://127.0.0.1:{relay_port}",
            "WHARF_JOB_RETRY_DELAY_SECONDS": str(RETRY_DELAY),
            "WHARF_JOB_LEASE_SECONDS": str(LEASE),
            "WHARF_TASK_QUEUE": self.queue,
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
        self.workers: list[Worker] = []
        self.stoppers: list[Callable[[], None]] = []

    def start_worker(self) -> Worker:
        workdir = self.tmp_path / f"worker{len(self.workers)}"
        workdir.mkdir()
        worker = start_worker(self.env, workdir, self.queue)
        self.workers.append(worker)
        return worker

    def start_beat(self) -> None:
        """celery beat on the database schedule, firing only the job recovery (to this run's queue)."""
        PeriodicTask.objects.exclude(name=JOB_RECOVERY).update(enabled=False)
        beat = start_beat(self.env, self.tmp_path)
        self.stoppers.append(beat.stop)

    def open_relay(self, delay: float = 0.0) -> TcpRelay:
        relay = TcpRelay(self.relay_port, self.registry_port, delay)
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


@pytest.fixture
def site(tmp_path: Path, relay_port: int, registry: Registry, settings: Any, alpha: Project) -> Iterator[Site]:
    """This test's processes, with the jobs it starts sent to its own queue."""
    from portal.celery import app

    # The test process's settings as the worker's: a short lease (recovery every 3 s), short retry delay.
    settings.JOB_LEASE_SECONDS = LEASE
    settings.JOB_RETRY_DELAY_SECONDS = RETRY_DELAY
    install_schedules()
    the_site = Site(tmp_path, relay_port, registry)
    settings.CELERY_BROKER_URL = the_site.broker
    settings.CELERY_TASK_ALWAYS_EAGER = False
    try:
        with sending_to(app, the_site.broker, the_site.queue):
            yield the_site
    finally:
        the_site.close()


def wait_for(condition: Callable[[Job], bool], job: Job, what: str, site: Site) -> Job:
    """Poll the job's row until `condition` holds; fail with the workers' logs and the job's log after the deadline."""
    deadline = time.monotonic() + DEADLINE
    while True:
        job.refresh_from_db()
        if condition(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: job is {job.state} after {DEADLINE:.0f} s\n{job.log}\n{site.logs()}")
        time.sleep(0.2)


def start_reconcile(admin: User) -> Job:
    """A reconcile job as the Reconcile now button starts it."""
    return services.start_reconcile(Actor(admin, "127.0.0.1"))


def test_a_job_retries_while_the_registry_refuses_connections_and_succeeds_when_it_answers(
    site: Site, portal_admin: User
) -> None:
    site.start_worker()
    job = start_reconcile(portal_admin)

    wait_for(lambda j: j.attempts == 2 and j.state == JobState.RETRYING, job, "two refused attempts", site)
    site.open_relay()
    job = wait_for(lambda j: j.is_finished, job, "the third attempt", site)

    assert job.state == JobState.SUCCEEDED, job.log
    assert job.attempts == 3
    log = job.log
    assert f"attempt 1 failed: the registry at http://127.0.0.1:{site.relay_port} did not answer" in log
    assert "Connection refused" in log and f"trying again in {RETRY_DELAY} s" in log
    assert "attempt 2 failed" in log and f"trying again in {RETRY_DELAY * 2} s" in log
    assert "attempt 3 of 5" in log and f"checked {REPOSITORIES} repositories" in log
    assert Tag.objects.filter(repository__project__name="alpha").count() == REPOSITORIES


def test_stop_ends_a_running_job_as_stopped(site: Site, portal_admin: User) -> None:
    site.start_worker()
    site.open_relay(delay=0.4)
    job = start_reconcile(portal_admin)
    wait_for(lambda j: j.state == JobState.RUNNING and j.done_units >= 1, job, "the first repository", site)

    response = client_for(portal_admin).post(f"/api/v1/jobs/{job.pk}/stop")
    assert response.status_code == 202, response.content
    job = wait_for(lambda j: j.is_finished, job, "the stop", site)

    assert job.state == JobState.STOPPED, job.log
    assert f"stop requested by {portal_admin.username}" in job.log and "stopped" in job.log
    assert job.done_units < REPOSITORIES, "the job ran to its end instead of stopping"
    assert client_for(portal_admin).post(f"/api/v1/jobs/{job.pk}/stop").status_code == 409


def test_a_job_whose_worker_is_killed_is_finished_by_the_next_worker(site: Site, portal_admin: User) -> None:
    first = site.start_worker()
    site.start_beat()
    site.open_relay(delay=0.4)
    job = start_reconcile(portal_admin)
    wait_for(lambda j: j.state == JobState.RUNNING and j.done_units >= 2, job, "the second repository", site)

    first.process.kill()
    first.process.wait(timeout=10)
    done_when_killed = Job.objects.get(pk=job.pk).done_units
    assert done_when_killed < REPOSITORIES, "the job ended before the worker was killed"
    site.start_worker()
    job = wait_for(lambda j: j.is_finished, job, "recovery by the second worker", site)

    assert job.state == JobState.SUCCEEDED, job.log
    assert job.attempts == 2
    assert "attempt 1" in job.log and "was lost: its lease lapsed; queued again" in job.log
    assert "attempt 2 of 5" in job.log and f"checked {REPOSITORIES} repositories" in job.log
    assert Tag.objects.filter(repository__project__name="alpha").count() == REPOSITORIES

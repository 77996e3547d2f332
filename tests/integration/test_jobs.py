"""Jobs for real: a Celery worker on Redis runs registry reconcile jobs against the real registry.

The registry is reached through a TCP relay on a fixed port, so the tests decide when it refuses
connections and when it is slow: a job retries until the registry answers, Stop ends a running
job, and a job whose worker is killed with SIGKILL is queued again by celery beat once its lease
lapses and completed by the next worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from portal.core.audit import Actor
from portal.core.models import Job, JobState, User
from projects.models import Project
from registries import services
from registries.models import Tag
from tests.conftest import client_for
from tests.integration.images import push_image
from tests.integration.registry import Registry, start_registry
from tests.integration.site import RETRY_DELAY, Site, site_for
from tests.integration.slapd import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPOSITORIES = 8


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


@pytest.fixture
def site(tmp_path: Path, relay_port: int, registry: Registry, settings: Any, alpha: Project) -> Iterator[Site]:
    """This test's processes, the worker reaching the registry through the relay port."""
    yield from site_for(tmp_path, settings, {"WHARF_REGISTRY_URL": f"http://127.0.0.1:{relay_port}"})


def open_relay(site: Site, relay_port: int, registry: Registry, delay: float = 0.0) -> None:
    """Let the worker reach the registry (slowly, with a delay)."""
    site.open_relay(relay_port, urlsplit(registry.url).port or 0, delay)


def wait_for(condition: Callable[[Job], bool], job: Job, what: str, site: Site) -> Job:
    """Poll the job's row until `condition` holds (the site's deadline)."""
    return site.wait_for(condition, job, what)


def start_reconcile(admin: User) -> Job:
    """A reconcile job as the Reconcile now button starts it."""
    return services.start_reconcile(Actor(admin, "127.0.0.1"))


def test_a_job_retries_while_the_registry_refuses_connections_and_succeeds_when_it_answers(
    site: Site, portal_admin: User, relay_port: int, registry: Registry
) -> None:
    site.start_worker()
    job = start_reconcile(portal_admin)

    wait_for(lambda j: j.attempts == 2 and j.state == JobState.RETRYING, job, "two refused attempts", site)
    open_relay(site, relay_port, registry)
    job = wait_for(lambda j: j.is_finished, job, "the third attempt", site)

    assert job.state == JobState.SUCCEEDED, job.log
    assert job.attempts == 3
    log = job.log
    assert f"attempt 1 failed: the registry at http://127.0.0.1:{relay_port} did not answer" in log
    assert "connection refused" in log and f"trying again in {RETRY_DELAY} s" in log
    assert "attempt 2 failed" in log and f"trying again in {RETRY_DELAY * 2} s" in log
    assert "attempt 3 of 5" in log and f"checked {REPOSITORIES} repositories" in log
    assert Tag.objects.filter(repository__project__name="alpha").count() == REPOSITORIES


def test_stop_ends_a_running_job_as_stopped(
    site: Site, portal_admin: User, relay_port: int, registry: Registry
) -> None:
    site.start_worker()
    open_relay(site, relay_port, registry, delay=0.4)
    job = start_reconcile(portal_admin)
    wait_for(lambda j: j.state == JobState.RUNNING and j.done_units >= 1, job, "the first repository", site)

    response = client_for(portal_admin).post(f"/api/v1/jobs/{job.pk}/stop")
    assert response.status_code == 202, response.content
    job = wait_for(lambda j: j.is_finished, job, "the stop", site)

    assert job.state == JobState.STOPPED, job.log
    assert f"stop requested by {portal_admin.username}" in job.log and "stopped" in job.log
    assert job.done_units < REPOSITORIES, "the job ran to its end instead of stopping"
    assert client_for(portal_admin).post(f"/api/v1/jobs/{job.pk}/stop").status_code == 409


def test_a_job_whose_worker_is_killed_is_finished_by_the_next_worker(
    site: Site, portal_admin: User, relay_port: int, registry: Registry
) -> None:
    first = site.start_worker()
    site.start_beat()
    open_relay(site, relay_port, registry, delay=0.4)
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

"""Replication through outages, with real Celery workers: the endpoint's registry is reached through a TCP relay
the test opens and closes, and a worker is killed with SIGKILL in the middle of a copy.

What must hold (the seed: "if a replication job fails due to a network issue, it reschedules the job to retry it
a few minutes later"; goharbor/harbor#4081): tasks retry with backoff and then fail with the reason; Retry failed
completes the run without sending again a blob the endpoint received whole; a task whose worker died is taken
over once its lease lapses and finishes. The endpoint's own request log says what it was sent.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from portal.core.audit import Actor
from portal.core.models import Job, JobState, User
from projects.models import Project
from registries.models import Repository, Tag
from replication import services
from replication.models import EndpointKind, Execution, Task, Trigger
from tests.integration.images import push_image
from tests.integration.registry import Registry, start_registry, start_standalone_registry
from tests.integration.site import Site, site_for
from tests.integration.slapd import free_port

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

REPOSITORIES = 4
LAYER = 3 * 1024 * 1024
# Seconds from the beat's start to its next minute, when it fires the every-minute rule: about when recovery ends.
SCHEDULED_MINUTE_IN = 20


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The integrated registry, holding REPOSITORIES images of project web of two 3 MiB layers each."""
    server = start_registry(tmp_path_factory.mktemp("source"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture
def endpoint_registry(tmp_path: Path) -> Iterator[Registry]:
    """A fresh endpoint registry for each test, so its request log holds only that test's copies."""
    server = start_standalone_registry(tmp_path / "endpoint")
    yield server
    server.stop()


@pytest.fixture
def relay_port() -> int:
    return free_port()


@pytest.fixture
def site(tmp_path: Path, settings: Any, source: Registry, relay_port: int) -> Iterator[Site]:
    """Workers reaching the integrated registry directly and the endpoint through the relay; three attempts."""
    settings.REGISTRY_URL = source.url
    settings.JOB_MAX_ATTEMPTS = 3
    env = {
        "WHARF_REGISTRY_URL": source.url,
        "WHARF_JOB_MAX_ATTEMPTS": "3",
        "WHARF_REPLICATION_CONCURRENCY": "2",
    }
    yield from site_for(tmp_path, settings, env)


@pytest.fixture
def web(db: Any, source: Registry) -> Project:
    """Project web with its images in the integrated registry and the rows the event receiver writes."""
    project = Project.objects.create(name="web")
    for index in range(REPOSITORIES):
        name = f"web/app{index}"
        image = push_image(source.url, name, ["1.0"], layer_bytes=LAYER)
        row = Repository.objects.create(project=project, name=name)
        Tag.objects.create(repository=row, name="1.0", digest=image.digest, size=image.size)
    return project


def uploads(registry: Registry) -> Counter[str]:
    """The blobs the registry received whole, by digest, with how many times each was sent."""
    log = registry.log_path.read_text(errors="replace")
    finished = re.findall(r'"PUT /v2/[^ ]+/blobs/uploads/[^ ]*digest=(sha256%3A[0-9a-f]{64})[^ ]* HTTP/1.1" 201', log)
    return Counter(finished)


def start(admin: User, project: Project, relay_port: int, site: Site, registry: Registry) -> Execution:
    """The endpoint (through the relay, which must be open to save it) and an enabled rule: its first run."""
    actor = Actor(admin, "127.0.0.1")
    endpoint = services.create_endpoint(actor, "dr", f"http://127.0.0.1:{relay_port}", EndpointKind.REGISTRY)
    rule = services.create_rule(actor, "to-dr", project, endpoint, enabled=True)
    return Execution.objects.get(rule=rule)


def test_an_outage_fails_the_tasks_with_the_reason_and_retry_failed_sends_only_what_is_missing(
    site: Site, web: Project, portal_admin: User, relay_port: int, endpoint_registry: Registry
) -> None:
    target = urlsplit(endpoint_registry.url).port or 0
    relay = site.open_relay(relay_port, target, delay=0.02)
    execution = start(portal_admin, web, relay_port, site, endpoint_registry)
    site.start_worker()
    site.wait_for(lambda j: sum(uploads(endpoint_registry).values()) >= 2, execution.job, "two blobs on the endpoint")

    relay.close()
    job = site.wait_for(lambda j: j.is_finished, execution.job, "the tasks giving up")

    assert job.state == JobState.FAILED, job.log
    assert "tasks did not succeed" in job.error and "connection refused" in job.error.lower(), job.error
    failed = Job.objects.filter(parent=job, state=JobState.FAILED)
    assert failed.exists()
    log = failed.first().log
    assert "attempt 1 failed" in log and "trying again in 2 s" in log and "failed after 3 attempts" in log, log
    sent_before = uploads(endpoint_registry)
    failed_repositories = sorted(Task.objects.filter(job__in=failed).values_list("repository", flat=True))

    site.open_relay(relay_port, target)
    retry = services.retry_failed(Actor(portal_admin, "127.0.0.1"), execution)
    retried = site.wait_for(lambda j: j.is_finished, retry.job, "the retry")

    assert retried.state == JobState.SUCCEEDED, retried.log
    assert sorted(retry.tasks.values_list("repository", flat=True)) == failed_repositories
    # The blobs the endpoint had whole before the outage were not sent again.
    assert sum(task.bytes_copied for task in retry.tasks.all()) < REPOSITORIES * 2 * LAYER
    sent = uploads(endpoint_registry)
    assert max(sent.values()) == 1, f"blobs sent whole twice: {sent}"
    assert set(sent_before) <= set(sent) and len(sent) == 2 * REPOSITORIES
    assert sum(task.blobs_skipped + task.blobs_mounted for task in retry.tasks.all()) >= 1


def test_a_task_whose_worker_is_killed_finishes_on_the_next_worker_and_the_beat_runs_a_scheduled_rule(
    site: Site, web: Project, portal_admin: User, relay_port: int, endpoint_registry: Registry, source: Registry
) -> None:
    site.open_relay(relay_port, urlsplit(endpoint_registry.url).port or 0, delay=0.02)
    actor = Actor(portal_admin, "127.0.0.1")
    execution = start(portal_admin, web, relay_port, site, endpoint_registry)
    # A scheduled rule on its own project: the beat fires it at its next minute, as it would every night.
    nightly = Project.objects.create(name="nightly")
    image = push_image(source.url, "nightly/tool", ["1.0"])
    Tag.objects.create(repository=Repository.objects.create(project=nightly, name="nightly/tool"), name="1.0",
                       digest=image.digest, size=image.size)  # fmt: skip
    scheduled = services.create_rule(
        actor, "every-minute", nightly, execution.rule.endpoint, trigger=Trigger.SCHEDULED, cron="* * * * *",
        enabled=False,
    )  # fmt: skip
    services.set_rule_enabled(actor, scheduled, True)
    Execution.objects.filter(rule=scheduled).delete()  # the run enabling starts; the beat's is what is checked

    first = site.start_worker()
    # The beat's clock is set so that its next minute starts while the killed worker's task is being recovered
    # (tests/integration/beat.py), rather than up to a minute after the recovery.
    site.start_beat(f"replication rule #{scheduled.pk}", minute_in=SCHEDULED_MINUTE_IN)
    site.wait_for(lambda j: sum(uploads(endpoint_registry).values()) >= 2, execution.job, "two blobs on the endpoint")
    first.process.kill()
    first.process.wait(timeout=10)
    assert not Job.objects.get(pk=execution.job_id).is_finished
    site.start_worker()
    job = site.wait_for(lambda j: j.is_finished, execution.job, "recovery by the second worker")

    assert job.state == JobState.SUCCEEDED, job.log
    assert "was lost: its lease lapsed; queued again" in job.log, job.log
    sent = uploads(endpoint_registry)
    assert max(sent.values()) == 1, f"blobs sent whole twice: {sent}"
    assert len(set(sent)) >= 2 * REPOSITORIES

    fired = site.wait_for(
        lambda j: Execution.objects.filter(
            rule=scheduled, cause=Execution.Cause.SCHEDULED, job__state="succeeded"
        ).exists(),
        execution.job,
        "the beat firing the scheduled rule",
        seconds=75,
    )
    assert fired


def test_disabling_a_rule_stops_its_running_execution(
    site: Site, web: Project, portal_admin: User, relay_port: int, endpoint_registry: Registry
) -> None:
    site.open_relay(relay_port, urlsplit(endpoint_registry.url).port or 0, delay=0.05)
    execution = start(portal_admin, web, relay_port, site, endpoint_registry)
    site.start_worker()
    site.wait_for(lambda j: sum(uploads(endpoint_registry).values()) >= 1, execution.job, "a blob on the endpoint")

    services.set_rule_enabled(Actor(portal_admin, "127.0.0.1"), execution.rule, False)
    job = site.wait_for(lambda j: j.is_finished, execution.job, "the stop")

    assert job.state == JobState.STOPPED, job.log
    assert f"stop requested by {portal_admin.username}" in job.log
    children = Job.objects.filter(parent=job)
    assert not children.filter(state__in=["pending", "running", "retrying"]).exists()
    assert children.filter(state=JobState.STOPPED).exists()
    assert len(uploads(endpoint_registry)) < 2 * REPOSITORIES, "the execution ran to its end instead of stopping"

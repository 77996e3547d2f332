"""Host collection across several real dockerds: one dead endpoint never delays the others; the real beat
and a real worker notice a daemon going down and coming back."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from hosts import collection
from hosts.models import Container, ContainerHost, HostState
from portal.core import credentials, trust
from portal.core.audit import Actor
from portal.core.models import AuditEvent, User
from portal.core.schedules import HOST_COLLECTION, install_schedules
from projects.models import Project
from tests.integration.beat import Beat, start_beat
from tests.integration.dockerd import Dockerd, dockerd_fixture
from tests.integration.worker import Worker, database_url, forget_queue, redis_url, start_worker

pytestmark = pytest.mark.integration
IMAGE = "wharf-test/busybox:1"
TIMEOUT = 2
INTERVAL = 2
# Generous: the beat, the worker and the daemons share two CPUs with other test runs.
STATE_DEADLINE = 90.0


plain_dockerd = dockerd_fixture("A dockerd on plain TCP (no TLS) with a busybox image.", tcp=True, image=IMAGE)
tls_dockerd = dockerd_fixture(
    "A dockerd requiring a client certificate (--tlsverify), with a busybox image.", tcp=True, tls="verify", image=IMAGE
)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """An endpoint whose port takes connections (the kernel's backlog) but never answers a byte."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def add_hosts(project: Project, plain: Dockerd, tls: Dockerd, admin: User) -> tuple[ContainerHost, ContainerHost]:
    """The plain dockerd (no TLS) and the --tlsverify one (full TLS: pinned CA, client certificate) as hosts."""
    actor = Actor(admin)
    keys = tls.ca.client()
    credential = credentials.create_credential(
        actor, "docker-client", "certificate", certificate=keys.cert_pem, private_key=keys.key_pem
    )
    trust.trust(actor, f"127.0.0.1:{tls.port}", tls.ca.pem)
    plain_host = ContainerHost.objects.create(project=project, name="plain", url=plain.url)
    tls_host = ContainerHost.objects.create(project=project, name="full-tls", url=tls.url, credential=credential)
    return plain_host, tls_host


def test_dead_endpoint_costs_one_timeout_and_the_others_update_in_the_same_cycle(
    alpha, portal_admin, plain_dockerd, tls_dockerd, silent_endpoint
) -> None:
    plain_dockerd.ok("run", "-d", "--name", "web", IMAGE, "sleep", "600")
    tls_dockerd.ok("create", "--name", "batch", IMAGE, "true")
    plain, tls = add_hosts(alpha, plain_dockerd, tls_dockerd, portal_admin)
    dead = ContainerHost.objects.create(project=alpha, name="silent", url=silent_endpoint)
    started = timezone.now()

    report = collection.collect_all(timeout=TIMEOUT)

    print(f"\ncycle over 3 hosts (one never answering, timeout {TIMEOUT} s): {report.took:.2f} s")
    for host in (plain, tls, dead):
        host.refresh_from_db()
        assert host.last_collected >= started
    assert dead.state == HostState.UNREACHABLE
    assert "timed out" in dead.last_error
    assert (plain.state, tls.state) == (HostState.ON, HostState.ON), (plain.last_error, tls.last_error)
    assert plain.last_seen >= started and tls.last_seen >= started
    assert Container.objects.get(host=plain, name="web").state == "running"
    assert Container.objects.get(host=tls, name="batch").state == "created"
    assert {o.name for o in report.outcomes} == {"plain", "full-tls", "silent"}
    plain_dockerd.ok("rm", "-f", "web")
    tls_dockerd.ok("rm", "-f", "batch")


@pytest.fixture
def beat_and_worker(transactional_db, tmp_path: Path) -> Iterator[tuple[Beat, Worker]]:
    """The production pair: celery beat on the database schedule firing the collection every 2 s, and a worker."""
    broker = redis_url()
    queue = f"wharf-test-{uuid.uuid4().hex[:12]}"
    with override_settings(HOST_COLLECTION_INTERVAL_SECONDS=INTERVAL):
        install_schedules()
    # Only this run's worker may take the beat's tasks (other runs share the Redis database).
    PeriodicTask.objects.filter(name=HOST_COLLECTION).update(queue=queue)
    env = {
        "WHARF_BROKER_URL": broker,
        "WHARF_DATABASE_URL": database_url(connection.settings_dict),
        "WHARF_TASKS_EAGER": "false",
        "WHARF_HOST_TIMEOUT_SECONDS": str(TIMEOUT),
        "WHARF_HOST_COLLECTION_INTERVAL_SECONDS": str(INTERVAL),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    worker = start_worker(env, tmp_path, queue)
    try:
        beat = start_beat(env, tmp_path)
        try:
            yield beat, worker
        finally:
            beat.stop()
    finally:
        worker.stop()
        forget_queue(broker, queue)


def wait_until(condition: Callable[[], bool], what: str, logs: Callable[[], str]) -> float:
    """Seconds until `condition` holds, polling the database; fails with the processes' logs at the deadline."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > STATE_DEADLINE:
            pytest.fail(f"{what}: not within {STATE_DEADLINE:.0f} s\n{logs()[-6000:]}")
        time.sleep(0.25)
    return time.monotonic() - started


def fresh(host: ContainerHost) -> ContainerHost:
    """The host's row as it is now."""
    return ContainerHost.objects.get(pk=host.pk)


def test_beat_notices_a_daemon_going_down_and_coming_back_while_others_keep_updating(
    alpha, portal_admin, plain_dockerd, tls_dockerd, beat_and_worker
) -> None:
    beat, worker = beat_and_worker
    plain, tls = add_hosts(alpha, plain_dockerd, tls_dockerd, portal_admin)

    def logs() -> str:
        return f"--- beat ---\n{beat.log()[-3000:]}\n--- worker ---\n{worker.log()[-3000:]}"

    wait_until(lambda: fresh(plain).last_seen and fresh(tls).last_seen, "both hosts collected", logs)
    try:
        plain_dockerd.halt()
        took = wait_until(lambda: fresh(plain).state == HostState.UNREACHABLE, "halted host UNREACHABLE", logs)
        print(f"\nhalted dockerd seen UNREACHABLE after {took:.1f} s (interval {INTERVAL} s)")
        seen = fresh(tls).last_seen
        wait_until(lambda: fresh(tls).last_seen > seen, "the other host still updated", logs)
        assert fresh(tls).state == HostState.ON
        assert fresh(plain).last_error
    finally:
        plain_dockerd.restart()
    took = wait_until(lambda: fresh(plain).state == HostState.ON, "restarted host ON again", logs)
    print(f"restarted dockerd seen ON after {took:.1f} s")

    changes = AuditEvent.objects.filter(resource_type="host", action="state", resource_name="plain").order_by("id")
    assert [(e.detail["from"], e.detail["to"]) for e in changes] == [("on", "unreachable"), ("unreachable", "on")]
    assert "Task hosts.collect_all[" in worker.log()

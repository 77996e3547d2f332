"""Health and data collection against a real dockerd: containers discovered and removed, facts, state changes."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from hosts import collection
from hosts.docker import DockerClient
from hosts.models import Container, ContainerHost, ContainerState, HostState
from portal.core.models import AuditEvent
from portal.core.schedules import HOST_COLLECTION, RECURRING, install_schedules
from projects.models import Project
from tests.integration.dockerd import Dockerd, dockerd_fixture, free_port
from tests.loopback import LoopbackServer

IMAGE = "wharf-test/busybox:1"


# A real dockerd: with the other tests of real services (one xdist worker, one after another).
pytestmark = pytest.mark.integration

dockerd = dockerd_fixture(
    "A real dockerd on 127.0.0.1 (plain TCP) with a busybox image imported.", tcp=True, image=IMAGE
)


@pytest.fixture
def host(alpha: Project, dockerd: Dockerd) -> Iterator[ContainerHost]:
    """The dockerd as a host of project alpha; the containers a test creates are removed afterwards."""
    yield ContainerHost.objects.create(project=alpha, name="docker-1", url=dockerd.url)
    ids = dockerd.ok("ps", "-aq").split()
    if ids:
        dockerd.ok("rm", "-f", *ids)


def run_container(dockerd: Dockerd, name: str) -> str:
    """`docker run -d` a busybox sleeping; its full id."""
    return dockerd.ok("run", "-d", "--name", name, IMAGE, "sleep", "600").strip()


def test_container_started_with_the_cli_appears_after_one_cycle_as_not_provisioned(host, dockerd) -> None:
    container_id = run_container(dockerd, "outsider")

    report = collection.collect_all()

    assert report.outcome(host).state == HostState.ON
    row = Container.objects.get(host=host, container_id=container_id)
    assert row.name == "outsider"
    assert row.image == IMAGE
    assert row.command == "sleep 600"
    assert row.state == ContainerState.RUNNING
    assert row.status.startswith("Up")
    assert row.provisioned is False
    assert row.last_seen is not None
    assert row.removed is None


def test_container_removed_with_the_cli_is_marked_removed(host, dockerd) -> None:
    container_id = run_container(dockerd, "short-lived")
    collection.collect_all()
    dockerd.ok("rm", "-f", container_id)

    collection.collect_all()

    row = Container.objects.get(host=host, container_id=container_id)
    assert row.state == ContainerState.REMOVED
    assert row.removed is not None


def test_container_marked_removed_that_the_host_lists_again_is_back(host, dockerd) -> None:
    container_id = run_container(dockerd, "phoenix")
    collection.collect_all()
    # As when a removal through the portal was recorded but the host kept the container.
    Container.objects.filter(container_id=container_id).update(state=ContainerState.REMOVED, removed=timezone.now())

    collection.collect_all()

    row = Container.objects.get(host=host, container_id=container_id)
    assert row.state == ContainerState.RUNNING and row.removed is None


def test_stopped_container_is_updated_in_place(host, dockerd) -> None:
    container_id = run_container(dockerd, "stopper")
    collection.collect_all()
    dockerd.ok("stop", "-t", "0", container_id)

    collection.collect_all()

    row = Container.objects.get(host=host, container_id=container_id)
    assert row.state == ContainerState.EXITED
    assert row.status.startswith("Exited")
    assert Container.objects.filter(host=host, container_id=container_id).count() == 1


def test_provisioned_row_keeps_its_origin_and_a_pending_one_is_left_alone(host, dockerd) -> None:
    container_id = dockerd.ok("create", "--name", "ordered", IMAGE, "sleep", "600").strip()
    ordered = Container.objects.create(
        host=host, container_id=container_id, name="ordered", image=IMAGE, provisioned=True, provisioned_by="dev"
    )
    pending = Container.objects.create(host=host, name="being-made", image=IMAGE, provisioned=True)

    collection.collect_all()

    ordered.refresh_from_db()
    assert ordered.provisioned is True and ordered.provisioned_by == "dev"
    assert ordered.state == ContainerState.CREATED
    pending.refresh_from_db()
    assert pending.container_id == "" and pending.state == ContainerState.CREATED and pending.last_seen is None


def test_facts_are_recorded(host, dockerd) -> None:
    run_container(dockerd, "counted")
    dockerd.ok("create", "--name", "idle", IMAGE, "true")

    collection.collect_all()

    host.refresh_from_db()
    assert host.engine_version == dockerd.ok("version", "--format", "{{.Server.Version}}").strip()
    assert host.operating_system == dockerd.ok("info", "--format", "{{.OperatingSystem}}").strip()
    assert host.cpus == int(dockerd.ok("info", "--format", "{{.NCPU}}"))
    assert host.memory_bytes == int(dockerd.ok("info", "--format", "{{.MemTotal}}"))
    assert (host.containers_running, host.containers_stopped) == (1, 1)
    assert host.images == 1
    assert host.last_seen is not None and host.last_collected is not None and host.last_error == ""


def test_host_going_away_and_coming_back_changes_state_with_audit_events(host, dockerd) -> None:
    ContainerHost.objects.filter(pk=host.pk).update(url=f"http://127.0.0.1:{free_port()}")
    collection.collect_all()
    host.refresh_from_db()
    assert host.state == HostState.UNREACHABLE
    assert "connection refused" in host.last_error
    assert host.last_collected is not None

    ContainerHost.objects.filter(pk=host.pk).update(url=dockerd.url)
    collection.collect_all()
    host.refresh_from_db()
    assert host.state == HostState.ON and host.last_error == ""

    events = list(AuditEvent.objects.filter(resource_type="host", action="state").order_by("id"))
    assert [(e.detail["from"], e.detail["to"]) for e in events] == [("on", "unreachable"), ("unreachable", "on")]
    assert events[0].username == "collector" and events[0].project_name == "alpha"
    assert "connection refused" in events[0].detail["error"]


def test_unreachable_host_keeps_its_containers(host, dockerd) -> None:
    container_id = run_container(dockerd, "kept")
    collection.collect_all()
    ContainerHost.objects.filter(pk=host.pk).update(url=f"http://127.0.0.1:{free_port()}")

    collection.collect_all()

    assert Container.objects.get(host=host, container_id=container_id).state == ContainerState.RUNNING


def test_disabled_host_is_not_polled(host, dockerd) -> None:
    ContainerHost.objects.filter(pk=host.pk).update(state=HostState.DISABLED)
    run_container(dockerd, "unseen")

    report = collection.collect_all()

    assert report.hosts == 0
    assert not Container.objects.filter(host=host).exists()
    host.refresh_from_db()
    assert host.state == HostState.DISABLED and host.last_collected is None


def test_collect_host_by_id_polls_that_host(host, dockerd) -> None:
    run_container(dockerd, "right-away")

    collection.collect_host_by_id(host.pk)

    assert Container.objects.filter(host=host, name="right-away").exists()
    collection.collect_host_by_id(host.pk + 1000)  # a host removed meanwhile is not an error


def test_queries_per_host_do_not_grow_with_containers(host, dockerd) -> None:
    client = DockerClient(dockerd.url)
    for number in range(30):
        client.create(f"many-{number}", {"Image": IMAGE, "Cmd": ["true"]})
    with CaptureQueriesContext(connection) as first:
        collection.collect_all()
    for number in range(30, 60):
        client.create(f"many-{number}", {"Image": IMAGE, "Cmd": ["true"]})
    with CaptureQueriesContext(connection) as second:
        collection.collect_all()
    client.close()

    assert Container.objects.filter(host=host).count() == 60
    # Lock, hosts, known containers, host update, inserts, updates, last seen, unlock: not one per container.
    assert len(first) <= 12, [q["sql"][:80] for q in first.captured_queries]
    assert len(second) <= 12, [q["sql"][:80] for q in second.captured_queries]


class TricklingServer(LoopbackServer):
    """A TCP server that answers every request one byte at a time, slower than any poll may last."""

    def handle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: " + b"." * 1000:
                    if self.stopping.is_set():
                        return
                    connection.sendall(bytes([byte]))
                    time.sleep(0.2)
            except OSError:
                return


def test_host_trickling_its_answer_is_cut_off_at_the_deadline(alpha, host) -> None:
    slow = TricklingServer()
    try:
        trickler = ContainerHost.objects.create(project=alpha, name="trickler", url=slow.url)

        report = collection.collect_all(timeout=1)
    finally:
        slow.close()

    trickler.refresh_from_db()
    assert trickler.state == HostState.UNREACHABLE
    assert "timed out: no complete answer within 1 s" in trickler.last_error
    assert report.outcome(host).state == HostState.ON


def test_cycle_is_skipped_while_another_holds_the_lock(host) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with collection.cycle_lock() as acquired:
            assert acquired
            held.set()
            release.wait(30)
        connections.close_all()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(30)
    try:
        skipped = collection.collect_all()
    finally:
        release.set()
        holder.join()

    assert skipped.skipped and skipped.hosts == 0
    host.refresh_from_db()
    assert host.last_collected is None
    assert not collection.collect_all().skipped


def test_file_lock_used_without_postgresql_admits_one_holder(tmp_path: Path) -> None:
    lock = tmp_path / "host-collection.lock"
    with collection.file_lock(lock) as first, collection.file_lock(lock) as second:
        assert (first, second) == (True, False)
    with collection.file_lock(lock) as again:
        assert again


@pytest.mark.django_db
def test_schedule_runs_the_collection_every_interval_and_follows_the_setting() -> None:
    with override_settings(HOST_COLLECTION_INTERVAL_SECONDS=60):
        install_schedules()
    with override_settings(HOST_COLLECTION_INTERVAL_SECONDS=15):
        install_schedules()

    task = PeriodicTask.objects.get(name=HOST_COLLECTION)
    assert task.task == "hosts.collect_all" and task.enabled
    assert (task.interval.every, task.interval.period) == (15, IntervalSchedule.SECONDS)
    assert task.crontab is None
    assert PeriodicTask.objects.filter(name=HOST_COLLECTION).count() == 1
    for name, (task_name, minute, hour) in RECURRING.items():
        recurring = PeriodicTask.objects.get(name=name)
        assert (recurring.task, recurring.crontab.minute, recurring.crontab.hour) == (task_name, minute, hour)

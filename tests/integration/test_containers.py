"""Provisioning containers from the integrated registry onto a real dockerd, through the API, and what follows.

A real dockerd listens on 127.0.0.1 over plain TCP (the "no TLS" host mode). The portal runs in gunicorn over
HTTPS in front of a real registry (the live-portal fixture of the push/pull tests); an image is pushed there with
the docker CLI, then provisioned through the containers API, whose job asks the daemon to pull it with a pull-only
token the portal signs (X-Registry-Auth "registrytoken"). The daemon keeps no login: only that token opens the
private project. Jobs run eagerly in the test process; the API calls go through Django's test client with the
portal's port set to the gunicorn's, so the portal recognizes its own registry in the image reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rest_framework.response import Response
from rest_framework.test import APIClient

from hosts.docker import DockerClient
from hosts.models import Container, ContainerHost, ContainerState, HostState
from portal.core.audit import Actor
from portal.core.models import Job, JobState, User
from portal.core.services import create_token
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD, client_for
from tests.integration.dockerd import Dockerd, dockerd_fixture
from tests.integration.test_registry_push_pull import (  # noqa: F401  (fixtures)
    Portal,
    _wait_until_events_settle,
    build,
    login,
    portal,
    rootfs,
)

pytestmark = pytest.mark.integration


daemon = dockerd_fixture('A dockerd on 127.0.0.1 over plain TCP: a container host in the "no TLS" mode.', tcp=True)


@pytest.fixture
def alpha_host(transactional_db: None, daemon: Dockerd, portal: Portal, settings: Any) -> Iterator[ContainerHost]:  # noqa: F811
    """Project alpha with the daemon as its host; jobs run eagerly; the portal knows its own address."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PORT = int(portal.host.rsplit(":", 1)[1])
    alpha = Project.objects.create(name="alpha")
    for name, role in (("dev", Role.DEVELOPER), ("viewer", Role.VIEWER)):
        Membership.objects.create(project=alpha, user=User.objects.create_user(name, password=PASSWORD), role=role)
    with DockerClient(daemon.url) as client:
        facts = client.probe()
    host = ContainerHost.objects.create(
        project=alpha, name="docker-1", url=daemon.url, state=HostState.ON, api_version=facts.api_version
    )
    yield host
    daemon.run("rm", "--force", *daemon.ok("ps", "--all", "--quiet").split())
    daemon.run("logout", portal.host)
    daemon.run("image", "prune", "--all", "--force")
    _wait_until_events_settle()


@pytest.fixture
def dev() -> APIClient:
    return client_for(User.objects.get(username="dev"))


@pytest.fixture
def pushed(alpha_host: ContainerHost, daemon: Dockerd, portal: Portal, rootfs: Path) -> Callable[[str], str]:  # noqa: F811
    """Pushes the busybox image as alpha/app:<tag> through the portal and gives its reference."""

    def push(tag: str) -> str:
        """Push with the developer's login, then forget the login and the image."""
        reference = f"{portal.host}/alpha/app:{tag}"
        login(daemon, portal, "dev", create_token(Actor(User.objects.get(username="dev")), "docker")[1])
        build(daemon, rootfs, reference)
        daemon.ok("push", reference)
        daemon.ok("logout", portal.host)
        daemon.ok("rmi", reference)
        return reference

    return push


def provision(dev: APIClient, **fields: object) -> Response:
    """Ask for a container in project alpha through the API (the job runs eagerly, so the answer holds it)."""
    return dev.post("/api/v1/projects/alpha/containers", fields, format="json")


def daemon_containers(daemon: Dockerd) -> list[str]:
    """Names and states of every container on the daemon (docker ps -a)."""
    return daemon.ok("ps", "--all", "--format", "{{.Names}} {{.State}}").split("\n")[:-1]


def assert_no_container_left(daemon: Dockerd) -> None:
    """Nothing half-made: no container on the daemon, and none recorded by the portal."""
    assert daemon_containers(daemon) == []
    assert not Container.objects.exists()


def wait_for(check: Any, what: str, limit: float = 30) -> Any:
    """Poll `check` until it returns something true (a deadline for a remote system, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.3)


def test_provision_run_observe_stop_and_remove(pushed: Callable[[str], str], daemon: Dockerd, dev: APIClient) -> None:
    image = pushed("1.0")
    assert not daemon.ok("images", "--quiet").strip()
    # Without the portal's token the daemon cannot pull from the private project.
    assert daemon.run("pull", image).returncode != 0

    response = provision(
        dev,
        image=image,
        name="hello",
        command='sh -c "echo hello-wharf; sleep 600"',
        environment=["A=1"],
        restart_policy="unless-stopped",
    )
    assert response.status_code == 202, response.json()
    job = response.json()["job"]
    assert job["state"] == JobState.SUCCEEDED, f"{job['error']}\n{job['log']}"
    assert "pulling" in job["log"] and "starting container hello" in job["log"]
    container = response.json()["container"]
    assert container["state"] == "running"
    assert daemon_containers(daemon) == ["hello running"]
    labels = daemon.ok("inspect", "--format", '{{index .Config.Labels "wharf.project"}}', "hello").strip()
    assert labels == "alpha"
    assert "A=1" in daemon.ok("inspect", "--format", "{{.Config.Env}}", "hello")
    assert daemon.ok("inspect", "--format", "{{.HostConfig.RestartPolicy.Name}}", "hello").strip() == "unless-stopped"

    viewer = client_for(User.objects.get(username="viewer"))
    listed = viewer.get("/api/v1/projects/alpha/containers").json()["results"]
    assert [(row["name"], row["state"], row["image"], row["host"]["name"]) for row in listed] == [
        ("hello", "running", image, "docker-1")
    ]
    url = f"/api/v1/projects/alpha/containers/{container['id']}"
    detail = viewer.get(url).json()
    assert detail["inspect"]["State"]["Running"] is True

    stats = viewer.get(f"{url}/stats").json()
    assert stats["memory_used"] > 0
    assert stats["memory_limit"] >= stats["memory_used"]
    assert isinstance(stats["cpu_percent"], float)

    logs = wait_for(lambda: viewer.get(f"{url}/logs").json()["lines"], "the container's first output")
    assert [line["text"] for line in logs] == ["hello-wharf"]
    assert logs[0]["stream"] == "stdout"
    last = viewer.get(f"{url}/logs").json()["last"]
    assert viewer.get(f"{url}/logs", {"since": last}).json()["lines"] == []  # following: nothing new yet

    stopped = dev.post(f"{url}/stop").json()["job"]
    assert stopped["state"] == JobState.SUCCEEDED, stopped["error"]
    assert daemon_containers(daemon) == ["hello exited"]
    assert viewer.get(url).json()["state"] == "exited"

    started = dev.post(f"{url}/start").json()["job"]
    assert started["state"] == JobState.SUCCEEDED, started["error"]
    assert daemon_containers(daemon) == ["hello running"]
    # Following the log: only what the container printed since the last line seen.
    again = wait_for(lambda: viewer.get(f"{url}/logs", {"since": last}).json()["lines"], "output after the start")
    assert [line["text"] for line in again] == ["hello-wharf"]

    removed = dev.delete(url).json()["job"]
    assert removed["state"] == JobState.SUCCEEDED, removed["error"]
    assert daemon_containers(daemon) == []
    row = Container.objects.get(pk=container["id"])
    assert row.state == ContainerState.REMOVED and row.removed is not None
    assert viewer.get("/api/v1/projects/alpha/containers").json()["results"] == []
    assert viewer.get("/api/v1/projects/alpha/containers", {"state": "removed"}).json()["count"] == 1


def test_unlisted_registry_is_refused_before_the_host(
    alpha_host: ContainerHost, daemon: Dockerd, dev: APIClient
) -> None:
    response = provision(dev, image="quay.io/x/y")
    assert response.status_code == 400
    assert response.json()["detail"] == "registry 'quay.io' is not in this project's registry list"
    assert daemon_containers(daemon) == []
    assert not daemon.ok("images", "--quiet").strip()
    assert not Container.objects.exists() and not Job.objects.exists()


def test_missing_image_fails_the_job_and_leaves_nothing_behind(
    alpha_host: ContainerHost,
    daemon: Dockerd,
    portal: Portal,  # noqa: F811
    dev: APIClient,
) -> None:
    response = provision(dev, image=f"{portal.host}/alpha/nothing:1", name="ghost")
    assert response.status_code == 202
    job = response.json()["job"]
    assert job["state"] == JobState.FAILED
    assert "not found" in job["error"] or "manifest unknown" in job["error"], job["error"]
    assert_no_container_left(daemon)
    # The developer reads the failed job under the project.
    shown = dev.get(f"/api/v1/projects/alpha/containers/jobs/{job['id']}").json()
    assert shown["state"] == JobState.FAILED and shown["error"] == job["error"]


def test_failure_after_create_removes_the_container(
    pushed: Callable[[str], str], daemon: Dockerd, dev: APIClient
) -> None:
    # The image has no /bin/nothing: the daemon creates the container, then fails to start it.
    job = provision(dev, image=pushed("2"), name="broken", command="/bin/nothing").json()["job"]
    assert job["state"] == JobState.FAILED
    assert "/bin/nothing" in job["error"]
    assert "removed the half-created container" in job["log"]
    assert_no_container_left(daemon)


def test_content_trust_refuses_unsigned_images(
    alpha_host: ContainerHost,
    daemon: Dockerd,
    portal: Portal,  # noqa: F811
    dev: APIClient,
) -> None:
    Project.objects.filter(name="alpha").update(content_trust=True)
    response = provision(dev, image=f"{portal.host}/alpha/app:1.0")
    assert response.status_code == 403
    assert "image not signed" in response.json()["detail"]
    assert_no_container_left(daemon)


def test_published_ports_are_recorded(pushed: Callable[[str], str], daemon: Dockerd, dev: APIClient) -> None:
    published = ["127.0.0.1::8080", "127.0.0.1::9090/udp"]
    job = provision(dev, image=pushed("3"), name="web", command="sleep 600", ports=published).json()["job"]
    assert job["state"] == JobState.SUCCEEDED, f"{job['error']}\n{job['log']}"
    bindings = daemon.ok("inspect", "--format", "{{json .HostConfig.PortBindings}}", "web")
    assert '"8080/tcp":[{"HostIp":"127.0.0.1","HostPort":""}]' in bindings
    ports = Container.objects.get(name="web").ports
    assert {(port["ip"], port["private"], port["protocol"]) for port in ports} == {
        ("127.0.0.1", 8080, "tcp"),
        ("127.0.0.1", 9090, "udp"),
    }

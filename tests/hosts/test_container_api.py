"""The containers API without a daemon: what is checked before any host is asked, lists, roles and host faults."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from hosts.models import Container, ContainerHost, ContainerState, HostState
from portal.core.models import Job, JobState, User
from projects.models import Project
from registries.models import ExternalRegistry
from tests.conftest import client_for, logged_in
from tests.integration.slapd import free_port

URL = "/api/v1/projects/alpha/containers"


@pytest.fixture
def hub(db: None) -> ExternalRegistry:
    """Docker Hub, enabled (as it is by default)."""
    registry, _ = ExternalRegistry.objects.get_or_create(
        project=None, name="docker-hub", defaults={"address": "https://registry.hub.docker.com"}
    )
    registry.enabled = True
    registry.save()
    return registry


def make_host(project: Project, name: str, state: str = HostState.ON, **fields: Any) -> ContainerHost:
    """A host row pointing at a loopback port where nothing listens."""
    return ContainerHost.objects.create(
        project=project, name=name, url=f"http://127.0.0.1:{free_port()}", state=state, **fields
    )


@pytest.fixture
def host(alpha: Project) -> ContainerHost:
    return make_host(alpha, "docker-1", memory_bytes=8 << 30)


@pytest.fixture
def developer(role_users: dict[str, User | None]) -> Any:
    return client_for(role_users["developer"])


def provision(client: Any, **body: Any) -> Any:
    return client.post(URL, {"image": "busybox", **body}, format="json")


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"name": "-bad name"}, "name", "'-bad name' is not a valid container name"),
        ({"name": "x" * 201}, "name", "at most 200 characters"),
        ({"image": "a/" * 300 + "b"}, "image", "longer than 400 characters"),
        ({"environment": ["GOOD=1", "NO_EQUALS"]}, "environment", "environment line 2 'NO_EQUALS' is not KEY=VALUE"),
        ({"ports": ["8080:80/sctp"]}, "ports", "the protocol must be tcp or udp"),
        ({"ports": ["80000"]}, "ports", "'80000' is not a port number"),
        ({"ports": ["a.b.c:8080:80"]}, "ports", "'a.b.c' is not an IP address"),
        ({"restart_policy": "sometimes"}, "restart_policy", "restart policy 'sometimes' is not one of"),
        ({"command": "sh -c 'unbalanced"}, "command", "cannot be split"),
        ({"image": "quay.io/x/y"}, "image", "registry 'quay.io' is not in this project's registry list"),
    ],
)
def test_bad_input_is_refused_before_any_host_is_asked(
    developer: Any, host: ContainerHost, hub: ExternalRegistry, body: dict[str, Any], field: str, message: str
) -> None:
    response = provision(developer, **body)
    assert response.status_code == 400, response.json()
    assert message in response.json()["detail"]
    assert field in response.json()["errors"]
    assert not Container.objects.exists()
    assert not Job.objects.exists()


def test_no_host_that_is_on(developer: Any, alpha: Project, hub: ExternalRegistry) -> None:
    make_host(alpha, "down", state=HostState.UNREACHABLE)
    make_host(alpha, "off", state=HostState.DISABLED)
    response = provision(developer)
    assert response.status_code == 400
    assert response.json()["detail"] == "project 'alpha' has no container host that is ON: add one or wait for one"


def test_host_of_another_project_is_refused(developer: Any, beta: Project, host: ContainerHost, hub: Any) -> None:
    theirs = make_host(beta, "theirs")
    response = provision(developer, host=theirs.pk)
    assert response.status_code == 400
    assert response.json()["errors"] == {"host": [f"host '{theirs.pk}' is not in project 'alpha'"]}


def test_host_that_is_not_on_is_refused(developer: Any, alpha: Project, hub: ExternalRegistry) -> None:
    down = make_host(alpha, "down", state=HostState.UNREACHABLE)
    response = provision(developer, host="down")
    assert response.status_code == 400
    assert response.json()["detail"] == f"host '{down.name}' is UNREACHABLE: pick a host that is ON"


def test_provisioning_starts_a_job_and_records_the_container(
    developer: Any, alpha: Project, host: ContainerHost, hub: ExternalRegistry
) -> None:
    response = provision(
        developer, name="web", command="sh -c 'echo hi; sleep 5'", environment=["A=1"], ports=["127.0.0.1:8080:80"]
    )
    assert response.status_code == 202, response.json()
    body = response.json()
    assert body["job"]["kind"] == "provision container"
    assert body["job"]["state"] == JobState.PENDING
    assert body["container"]["name"] == "web"
    assert body["container"]["image"] == "docker.io/library/busybox:latest"
    assert body["container"]["host"] == {"id": host.pk, "name": "docker-1"}
    assert body["container"]["provisioned"] is True
    assert body["container"]["provisioned_by"] == "alpha-developer"
    assert body["container"]["ports"] == [{"ip": "127.0.0.1", "private": 80, "public": 8080, "protocol": "tcp"}]
    assert body["container"]["command"] == "sh -c 'echo hi; sleep 5'"
    # The job is readable by the project's members under the project.
    job = client_for(User.objects.get(username="alpha-viewer")).get(f"{URL}/jobs/{body['job']['id']}")
    assert job.status_code == 200 and job.json()["kind"] == "provision container"


def test_name_taken_on_the_host_is_a_conflict(developer: Any, host: ContainerHost, hub: ExternalRegistry) -> None:
    Container.objects.create(host=host, container_id="a" * 64, name="web", image="busybox")
    response = provision(developer, name="web")
    assert response.status_code == 409
    assert response.json()["detail"] == "a container named 'web' already exists on host 'docker-1'"


def test_unnamed_container_gets_a_name_from_its_image(developer: Any, host: ContainerHost, hub: Any) -> None:
    response = provision(developer, image="busybox:1.36")
    assert response.json()["container"]["name"].startswith("busybox-")


def test_least_loaded_on_host_is_chosen(developer: Any, alpha: Project, hub: ExternalRegistry) -> None:
    make_host(alpha, "busy", containers_running=5, memory_bytes=64 << 30)
    make_host(alpha, "small", containers_running=1, memory_bytes=4 << 30)
    make_host(alpha, "big", containers_running=1, memory_bytes=16 << 30)
    make_host(alpha, "idle-but-down", state=HostState.UNREACHABLE)
    assert provision(developer).json()["container"]["host"]["name"] == "big"
    # The container being provisioned on "big" counts: the next one goes to "small".
    assert provision(developer).json()["container"]["host"]["name"] == "small"


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 401), ("viewer", 403), ("other_project_admin", 404), ("project_admin", 202), ("portal_admin", 202)],
)
def test_who_may_provision(
    role_users: dict[str, User | None], host: ContainerHost, hub: ExternalRegistry, role: str, status: int
) -> None:
    assert provision(client_for(role_users[role])).status_code == status


def test_list_hides_removed_and_filters(
    role_users: dict[str, User | None], alpha: Project, beta: Project, host: ContainerHost
) -> None:
    other = make_host(alpha, "docker-2")
    Container.objects.create(host=host, container_id="1" * 64, name="web", image="nginx", state="running")
    Container.objects.create(host=other, container_id="2" * 64, name="db", image="postgres", state="exited")
    Container.objects.create(host=host, container_id="3" * 64, name="old", image="nginx", state="removed")
    Container.objects.create(host=make_host(beta, "b"), container_id="4" * 64, name="theirs", image="nginx")
    viewer = client_for(role_users["viewer"])

    def names(**query: str) -> list[str]:
        response = viewer.get(URL, query)
        assert response.status_code == 200
        return [row["name"] for row in response.json()["results"]]

    assert names() == ["db", "web"]
    assert names(q="nginx") == ["web"]
    assert names(q="222") == ["db"]
    assert names(host="docker-2") == ["db"]
    assert names(host=str(host.pk)) == ["web"]
    assert names(state="running") == ["web"]
    assert names(state="removed") == ["old"]
    assert client_for(role_users["other_project_admin"]).get(URL).status_code == 404


def test_list_query_count_does_not_grow_with_the_page(developer: Any, alpha: Project, host: ContainerHost) -> None:
    for number in range(30):
        target = host if number % 2 else make_host(alpha, f"h{number}")
        Container.objects.create(host=target, container_id=f"{number:064x}", name=f"c{number:02}", image="x")

    def queries(size: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = developer.get(URL, {"page_size": size})
        assert len(response.json()["results"]) == size
        return len(captured)

    assert queries(2) == queries(25)


def test_detail_of_a_container_on_an_unreachable_host_says_why(developer: Any, host: ContainerHost) -> None:
    container = Container.objects.create(host=host, container_id="f" * 64, name="web", image="busybox")
    response = developer.get(f"{URL}/{container.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "web"
    assert body["inspect"] is None
    assert "refused" in body["error"]


def test_live_reads_from_an_unreachable_host_are_bad_gateway(developer: Any, host: ContainerHost) -> None:
    container = Container.objects.create(host=host, container_id="f" * 64, name="web", image="busybox")
    for path in ("logs", "stats"):
        response = developer.get(f"{URL}/{container.pk}/{path}")
        assert response.status_code == 502
        assert "refused" in response.json()["detail"]


def test_bad_log_parameters_are_refused(developer: Any, host: ContainerHost) -> None:
    container = Container.objects.create(host=host, container_id="f" * 64, name="web", image="busybox")
    response = developer.get(f"{URL}/{container.pk}/logs", {"tail": "lots"})
    assert response.status_code == 400
    assert response.json()["errors"] == {"tail": ["Enter a number."]}


def test_actions_need_a_live_container(developer: Any, host: ContainerHost) -> None:
    removed = Container.objects.create(host=host, container_id="e" * 64, name="gone", image="x", state="removed")
    pending = Container.objects.create(host=host, name="coming", image="x", provisioned=True)
    response = developer.post(f"{URL}/{removed.pk}/start")
    assert response.status_code == 409 and response.json()["detail"] == "container 'gone' was removed"
    response = developer.delete(f"{URL}/{pending.pk}")
    assert response.status_code == 409
    assert response.json()["detail"] == "container 'coming' is still being provisioned"


@pytest.mark.parametrize(
    ("role", "status"),
    [("anonymous", 401), ("viewer", 403), ("developer", 202), ("other_project_admin", 404), ("portal_admin", 202)],
)
def test_who_may_operate(role_users: dict[str, User | None], host: ContainerHost, role: str, status: int) -> None:
    container = Container.objects.create(host=host, container_id="d" * 64, name="web", image="x")
    response = client_for(role_users[role]).post(f"{URL}/{container.pk}/stop")
    assert response.status_code == status
    if status == 202:
        assert response.json()["job"]["kind"] == "stop container"
        assert Container.objects.get(pk=container.pk).state == ContainerState.CREATED  # the job has not run


def test_jobs_of_other_projects_are_not_shown(developer: Any, beta: Project) -> None:
    from portal.core.audit import Actor
    from portal.core.jobs import create_job

    theirs = create_job(Actor.system(), "provision container", "beta/web")
    mine_but_other_kind = create_job(Actor.system(), "directory_sync", "alpha/x")
    assert developer.get(f"{URL}/jobs/{theirs.pk}").status_code == 404
    assert developer.get(f"{URL}/jobs/{mine_but_other_kind.pk}").status_code == 404


def test_the_page_and_the_api_filter_containers_alike(client, role_users) -> None:
    alpha = Project.objects.get(name="alpha")
    first = ContainerHost.objects.create(project=alpha, name="edge-1", url="http://127.0.0.1:1")
    second = ContainerHost.objects.create(project=alpha, name="core-1", url="http://127.0.0.1:2")
    Container.objects.create(host=first, container_id="1" * 64, name="web", image="nginx:1")
    Container.objects.create(host=second, container_id="2" * 64, name="db", image="postgres:16", command="postgres")
    api = client_for(role_users["viewer"])
    page = logged_in(client, role_users["viewer"])
    for text, expected in (("edge", {"web"}), ("postgres", {"db"}), ("2222", {"db"}), ("1", {"web", "db"})):
        listed = {row["name"] for row in api.get(f"/api/v1/projects/alpha/containers?q={text}").json()["results"]}
        assert listed == expected, text
        shown = page.get(f"/containers/?project=alpha&q={text}").content.decode()
        assert {name for name in ("web", "db") if f'data-container="{name}"' in shown} == expected, text


INSPECT = {"Id": "f" * 64, "Config": {"Image": "busybox", "Env": ["DB_PASSWORD=Hunter-2-secret", "MODE=prod"]}}


@pytest.fixture
def inspected(monkeypatch: pytest.MonkeyPatch, host: ContainerHost) -> Container:
    """A container whose host answers docker inspect with INSPECT (environment values included)."""
    import contextlib

    from hosts import containers

    class Host:
        def inspect(self, container_id: str) -> dict[str, Any]:
            return INSPECT

    monkeypatch.setattr(containers, "client_for", lambda host: contextlib.nullcontext(Host()))
    return Container.objects.create(host=host, container_id="f" * 64, name="web", image="busybox")


@pytest.mark.parametrize(
    ("role", "environment"),
    [
        ("viewer", ["DB_PASSWORD", "MODE"]),
        ("developer", INSPECT["Config"]["Env"]),
        ("portal_admin", INSPECT["Config"]["Env"]),
    ],
)
def test_viewers_read_environment_names_only(
    role_users, inspected: Container, role: str, environment: list[str]
) -> None:
    body = client_for(role_users[role]).get(f"{URL}/{inspected.pk}").json()
    assert body["inspect"]["Config"]["Env"] == environment
    page = logged_in(Client(), role_users[role]).get(f"/containers/{inspected.pk}/").content.decode()
    assert ("Hunter-2-secret" in page) == (role != "viewer")
    assert "DB_PASSWORD" in page

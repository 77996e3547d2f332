"""Whatever a script sends to the hosts and containers endpoints, the answer is a 4xx with a message (or a 502
naming the unreachable host), never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.models import Container, ContainerHost
from projects.models import Project
from tests.conftest import client_for

CLOSED = "http://127.0.0.1:1"
HOST_BODIES: list[Any] = [
    {},
    {"name": 5, "kind": 7, "url": 9},
    {"name": "x", "kind": "docker", "url": None},
    {"name": "x", "kind": "docker", "url": "ftp://a"},
    {"name": "x" * 500, "kind": "docker", "url": CLOSED},
    {"name": "x", "kind": "docker", "url": "http://127.0.0.1:99999"},
    {"name": "x", "kind": "docker", "url": "http://[::1:2375"},
    {"name": "x", "kind": "docker", "url": CLOSED, "credential": 5},
    {"name": "x", "kind": "docker", "url": CLOSED, "credential": {"a": 1}},
    ["a"],
    "text",
]
CONTAINER_BODIES: list[Any] = [
    {},
    {"image": ""},
    {"image": "a" * 2000},
    {"image": "UPPER/Case::x"},
    {"image": "busybox", "ports": "80"},
    {"image": "busybox", "ports": ["99999:80"]},
    {"image": "busybox", "ports": [None]},
    {"image": "busybox", "environment": {"a": "b"}},
    {"image": "busybox", "environment": [5]},
    {"image": "busybox", "host": -1},
    {"image": "busybox", "host": {"x": 1}},
    {"image": "busybox", "restart_policy": None},
    {"image": "busybox", "command": ["a", "b"]},
    ["a"],
    "text",
]
GETS = [
    "/api/v1/projects/alpha/hosts/abc",
    "/api/v1/projects/alpha/hosts?page_size=-1",
    "/api/v1/projects/alpha/containers/abc",
    "/api/v1/projects/alpha/containers?host=abc&state=bogus",
    "/api/v1/projects/alpha/containers?page=zz",
    "/api/v1/projects/alpha/containers/{container}/logs?tail=abc&since=xyz",
    "/api/v1/projects/alpha/containers/{container}/logs?tail=-5",
]


def _client_error(response: Any) -> bool:
    """A 4xx with the API's error body, or a 502 naming a host that does not answer."""
    return 400 <= response.status_code < 500 or (response.status_code == 502 and "detail" in response.json())


@pytest.mark.parametrize("body", HOST_BODIES)
def test_bad_host_bodies_get_a_client_error(role_users, body: Any) -> None:
    api = client_for(role_users["project_admin"])
    for path in ("/api/v1/projects/alpha/hosts", "/api/v1/projects/alpha/hosts/verify"):
        response = api.post(path, body, format="json")
        assert _client_error(response), (path, response.status_code, response.content[:300])
    assert not ContainerHost.objects.exists()


@pytest.mark.parametrize("body", CONTAINER_BODIES)
def test_bad_provisioning_bodies_get_a_client_error(role_users, body: Any) -> None:
    ContainerHost.objects.create(project=Project.objects.get(name="alpha"), name="docker-1", url=CLOSED)
    response = client_for(role_users["developer"]).post("/api/v1/projects/alpha/containers", body, format="json")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])
    assert not Container.objects.exists()


@pytest.mark.parametrize("path", GETS)
def test_bad_queries_get_a_client_error_or_name_the_host(role_users, path: str) -> None:
    host = ContainerHost.objects.create(project=Project.objects.get(name="alpha"), name="docker-1", url=CLOSED)
    container = Container.objects.create(host=host, container_id="a" * 64, name="web")
    response = client_for(role_users["developer"]).get(path.format(container=container.pk))
    assert response.status_code < 300 or _client_error(response), (path, response.status_code, response.content[:300])

"""The low findings of the attack on the running portal (issue 11, finding 8), reproduced against the live one
(gunicorn over HTTPS, the real registry, a real worker; a real dockerd as container host) and now refused."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from hosts.docker import DockerClient
from hosts.models import Container, ContainerHost, HostState
from portal.core.audit import Actor
from portal.core.models import User
from portal.core.services import create_token
from projects.models import Membership, Project, Role
from tests.integration import test_registry_push_pull as live
from tests.integration.dockerd import Dockerd, dockerd_fixture
from tests.integration.test_registry_push_pull import People, Portal

pytestmark = pytest.mark.integration

# The push/pull tests' live portal, people and busybox root filesystem, as this module's fixtures.
portal = live.portal
people = live.people
rootfs = live.rootfs
daemon = dockerd_fixture("A dockerd on 127.0.0.1 over plain TCP: project alpha's container host.", tcp=True)

API = Callable[..., requests.Response]


def api_as(portal: Portal, user: User) -> API:
    """Requests to the live portal's API with an API token of the user."""
    headers = {"Authorization": f"Bearer {create_token(Actor(user), 'api')[1]}"}

    def call(method: str, path: str, **kwargs: object) -> requests.Response:
        return requests.request(method, f"{portal.url}{path}", headers=headers, verify=portal.ca, timeout=30, **kwargs)

    return call


@pytest.fixture
def bravo(people: People) -> Project:
    """A private project alpha's people are not in, with a viewer whose email is theirs."""
    bravo = Project.objects.create(name="bravo")
    viewer = User.objects.create_user("b-view", password="x", email="b-view@bravo.example")
    Membership.objects.create(project=bravo, user=viewer, role=Role.VIEWER)
    return bravo


@pytest.fixture
def alpha_admin(people: People, portal: Portal) -> API:
    """The API as a DevOps administrator of alpha (and of nothing else)."""
    owner = User.objects.create_user("alpha-owner", password="x")
    Membership.objects.create(project=people.alpha, user=owner, role=Role.ADMIN)
    return api_as(portal, owner)


def test_a_project_admin_reads_no_email_or_role_of_a_private_project(alpha_admin: API, bravo: Project) -> None:
    user = alpha_admin("GET", "/api/v1/users/b-view").json()
    found = alpha_admin("GET", "/api/v1/identities", params={"q": "b-view"}).json()["results"]
    roles = alpha_admin("GET", "/api/v1/users/b-view/projects").json()
    assert user["username"] == "b-view" and (user["email"], user["projects"]) == ("", [])
    assert [(row["name"], row["email"], row["projects"]) for row in found] == [("b-view", "", [])]
    assert roles == []


def test_a_host_conflict_names_no_project_the_caller_cannot_see(alpha_admin: API, bravo: Project) -> None:
    ContainerHost.objects.create(project=bravo, name="b-host", url="https://127.0.0.1:2376", kind="vch")
    body = {"name": "mine", "kind": "vch", "url": "https://127.0.0.1:2376"}
    response = alpha_admin("POST", "/api/v1/projects/alpha/hosts", json=body)
    assert response.status_code == 409
    assert response.json()["detail"] == "host already exists in another project"
    assert "bravo" not in response.text and "b-host" not in response.text


def test_anonymous_v2_cannot_tell_a_missing_project_from_a_private_one(portal: Portal, people: People) -> None:
    def anonymous_pull(project: str) -> requests.Response:
        scope = f"repository:{project}/app:pull"
        token = requests.get(
            f"{portal.url}/service/token", params={"scope": scope}, verify=portal.ca, timeout=10
        ).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        return requests.get(
            f"{portal.url}/v2/{project}/app/manifests/1.0", headers=headers, verify=portal.ca, timeout=10
        )

    missing, private = anonymous_pull("nope"), anonymous_pull("alpha")
    assert missing.status_code == private.status_code == 401
    assert missing.json()["errors"][0]["code"] == private.json()["errors"][0]["code"]
    assert "does not exist" not in missing.text


def test_a_huge_json_body_is_413_before_it_is_read(portal: Portal, people: People) -> None:
    # Only the head and a few bytes are sent: the answer must come without the portal waiting for (or holding) 100 MB.
    token = create_token(Actor(User.objects.get(username="dev")), "api")[1]
    host, port = portal.host.rsplit(":", 1)
    context = ssl.create_default_context(cafile=portal.ca)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.putrequest("POST", "/api/v1/projects")
        for name, value in (
            ("Authorization", f"Bearer {token}"),
            ("Content-Type", "application/json"),
            ("Content-Length", str(100 * 1024 * 1024)),
        ):
            connection.putheader(name, value)
        connection.endheaders(message_body=b'{"name": "')
        response = connection.getresponse()
        status, body = response.status, json.loads(response.read())
    finally:
        connection.close()
    assert status == 413
    assert body["detail"].endswith("at most 1048576 are accepted.") and body["errors"] == {}


def test_deeply_nested_json_is_400(portal: Portal, people: People) -> None:
    token = create_token(Actor(User.objects.get(username="dev")), "api")[1]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    body = "[" * 100_000 + "]" * 100_000
    response = requests.post(f"{portal.url}/api/v1/projects", data=body, headers=headers, verify=portal.ca, timeout=30)
    assert response.status_code == 400, response.text[:300]
    assert "nested deeper than" in response.json()["detail"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_a_member_id_that_is_not_a_number_is_404(alpha_admin: API, method: str) -> None:
    response = alpha_admin(method, "/api/v1/projects/alpha/members/abc", json={"role": "viewer"})
    assert response.status_code == 404, response.text[:300]


def test_pages_carry_hsts_and_a_content_security_policy(portal: Portal, people: People) -> None:
    response = requests.get(f"{portal.url}/login/", verify=portal.ca, timeout=10)
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe" not in policy


@pytest.fixture
def secret_container(people: People, daemon: Dockerd, rootfs: Path) -> Iterator[Container]:
    """A container on alpha's real host whose environment holds a password."""
    daemon.ok("import", str(rootfs), "wharf-test/busybox:1")
    container_id = daemon.ok(
        "create", "--env", "DB_PASSWORD=Hunter-2-secret", "--env", "MODE=prod", "wharf-test/busybox:1", "sh"
    ).strip()
    with DockerClient(daemon.url) as client:
        facts = client.probe()
    host = ContainerHost.objects.create(
        project=people.alpha, name="docker-1", url=daemon.url, state=HostState.ON, api_version=facts.api_version
    )
    yield Container.objects.create(host=host, container_id=container_id, name="db", image="wharf-test/busybox:1")
    daemon.run("rm", "--force", container_id)
    daemon.run("image", "prune", "--all", "--force")


def test_a_viewer_reads_environment_names_not_values(
    portal: Portal, people: People, secret_container: Container
) -> None:
    path = f"/api/v1/projects/alpha/containers/{secret_container.pk}"
    viewer = api_as(portal, User.objects.get(username="viewer"))("GET", path)
    developer = api_as(portal, User.objects.get(username="dev"))("GET", path)
    assert viewer.status_code == developer.status_code == 200
    # The names only (docker does not keep the order the variables were given in).
    names = viewer.json()["inspect"]["Config"]["Env"]
    assert {"DB_PASSWORD", "MODE"} <= set(names) and not any("=" in name for name in names), names
    assert "Hunter-2-secret" not in viewer.text
    assert "DB_PASSWORD=Hunter-2-secret" in developer.json()["inspect"]["Config"]["Env"]

"""The hosts API's checks that need nothing answering: validation, names, endpoints, credentials, roles.

What needs a Docker daemon at the other end (every TLS mode, every connection failure) is in
tests/integration/test_hosts.py against real dockerds.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from hosts.models import Container, ContainerHost, HostState
from portal.core import credentials
from portal.core.audit import Actor
from portal.core.models import AuditEvent, TrustedCertificate, User
from projects.models import Membership, Project, Role
from tests.conftest import client_for
from tests.portal.test_trust import make_certificate

HOSTS = "/api/v1/projects/alpha/hosts"


@pytest.fixture
def admin(role_users) -> APIClient:
    """The API as a DevOps administrator of project alpha."""
    return client_for(role_users["project_admin"])


@pytest.fixture
def certificate_credential(portal_admin: User, alpha: Project):
    """A client-certificate credential of project alpha named "docker-tls"."""
    keys = make_certificate("wharf-client", [])
    return credentials.create_credential(
        Actor(portal_admin), "docker-tls", "certificate", certificate=keys.cert_pem, private_key=keys.key_pem,
        project=alpha,
    )  # fmt: skip


@pytest.fixture
def password_credential(portal_admin: User, alpha: Project):
    """A username/password credential of project alpha named "robot"."""
    return credentials.create_credential(
        Actor(portal_admin), "robot", "password", username="robot", password="Robot-Passw0rd", project=alpha
    )


def make_host(project: Project, name: str = "docker-1", url: str = "http://127.0.0.1:1", **fields) -> ContainerHost:
    """A saved host row (as if added earlier); nothing listens at its URL."""
    return ContainerHost.objects.create(project=project, name=name, url=url, **fields)


def add(client: APIClient, **body) -> tuple[int, dict]:
    """POST a host; (status, JSON body)."""
    payload = {"name": "docker-1", "kind": "docker", "url": "http://127.0.0.1:1", **body}
    response = client.post(HOSTS, payload, format="json")
    return response.status_code, response.json() if response.content else {}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("127.0.0.1:2375", "has no scheme"),
        ("tcp://127.0.0.1:2375", "'tcp://' is not supported"),
        ("https://:2376", "has no host name"),
        ("https://127.0.0.1:99999", "has an invalid port"),
    ],
)
def test_bad_url_is_refused_naming_the_field(admin, url: str, message: str) -> None:
    status, body = add(admin, url=url)
    assert status == 400
    assert message in body["detail"]
    assert "url" in body["errors"]
    assert not ContainerHost.objects.exists()


def test_missing_name_is_refused(admin) -> None:
    status, body = add(admin, name="  ")
    assert status == 400
    assert body["detail"] == "A host name is required."
    assert body["errors"] == {"name": ["This field is required."]}


def test_wrong_kind_is_refused(admin) -> None:
    status, body = add(admin, kind="kubernetes")
    assert status == 400
    assert body["errors"] == {"kind": ["The host type must be docker or vch."]}


def test_password_credential_is_refused(admin, password_credential) -> None:
    status, body = add(admin, url="https://127.0.0.1:1", credential="robot")
    assert status == 400
    assert "credential 'robot' is a username and password" in body["detail"]
    assert body["errors"] == {"credential": ["Pick a certificate credential, or none."]}


def test_certificate_over_plain_http_is_refused(admin, certificate_credential) -> None:
    status, body = add(admin, url="http://127.0.0.1:2375", credential="docker-tls")
    assert status == 400
    assert body["detail"].startswith("a client certificate is only used over TLS: use https://")
    assert body["errors"] == {"credential": ["A certificate needs an https:// URL."]}


def test_unknown_credential_is_refused(admin) -> None:
    status, body = add(admin, url="https://127.0.0.1:1", credential="nothing-by-that-name")
    assert status == 400
    assert "credential" in body["errors"]


def test_duplicate_name_in_the_project_conflicts(admin, alpha) -> None:
    make_host(alpha, "docker-1", "http://127.0.0.1:1")
    status, body = add(admin, name="DOCKER-1", url="http://127.0.0.1:2")
    assert status == 409
    assert body["detail"] == "host 'DOCKER-1' already exists in project 'alpha'"


def test_same_endpoint_in_another_project_conflicts_without_naming_a_project_they_cannot_see(admin, beta) -> None:
    make_host(beta, "vch-1", "https://127.0.0.1:2376", kind="vch")
    # The same endpoint written differently (no port: https means 2376) is still the same endpoint.
    status, body = add(admin, name="vch", kind="vch", url="https://127.0.0.1/")
    assert status == 409
    assert body["detail"] == "host already exists in another project"
    assert body["errors"] == {"url": ["https://127.0.0.1:2376 is already added elsewhere."]}


def test_same_endpoint_in_a_project_they_can_see_conflicts_naming_it(admin, role_users, beta) -> None:
    Membership.objects.create(project=beta, user=role_users["project_admin"], role=Role.VIEWER)
    make_host(beta, "vch-1", "https://127.0.0.1:2376", kind="vch")
    status, body = add(admin, name="vch", kind="vch", url="https://127.0.0.1/")
    assert status == 409
    assert body["detail"] == "host already exists in project 'beta'"
    assert body["errors"] == {"url": ["https://127.0.0.1:2376 is already added as host 'vch-1'."]}


def test_nothing_listening_is_a_refused_connection_and_nothing_is_saved(admin) -> None:
    status, body = add(admin)
    assert status == 502
    assert body["detail"] == "127.0.0.1:1: connection refused"
    assert not ContainerHost.objects.exists()


@pytest.mark.parametrize(("role", "expected"), [("viewer", 403), ("developer", 403), ("other_project_admin", 404)])
def test_only_project_admins_add_hosts(role_users, role: str, expected: int) -> None:
    status, _ = add(client_for(role_users[role]))
    assert status == expected
    assert not ContainerHost.objects.exists()


@pytest.mark.parametrize(("role", "expected"), [("viewer", 403), ("developer", 403), ("other_project_admin", 404)])
def test_only_project_admins_verify_hosts(role_users, role: str, expected: int) -> None:
    response = client_for(role_users[role]).post(f"{HOSTS}/verify", {"url": "http://127.0.0.1:1"}, format="json")
    assert response.status_code == expected


def test_viewer_reads_hosts_and_outsider_gets_404(role_users, alpha) -> None:
    host = make_host(alpha, state=HostState.UNREACHABLE, last_error="127.0.0.1:1: connection refused")
    response = client_for(role_users["viewer"]).get(HOSTS)
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["id"] == host.pk
    assert row["name"] == "docker-1"
    assert row["url"] == "http://127.0.0.1:1"
    assert row["tls_mode"] == "no TLS"
    assert row["state"] == "unreachable"
    assert row["last_error"] == "127.0.0.1:1: connection refused"
    assert row["credential"] is None
    assert client_for(role_users["viewer"]).get(f"{HOSTS}/{host.pk}").json()["name"] == "docker-1"
    assert client_for(role_users["other_project_admin"]).get(HOSTS).status_code == 404
    assert client_for(role_users["other_project_admin"]).get(f"{HOSTS}/{host.pk}").status_code == 404
    assert client_for(None).get(HOSTS).status_code == 401


def test_host_of_another_project_is_not_found_under_this_one(api, beta) -> None:
    host = make_host(beta)
    assert api.get(f"{HOSTS}/{host.pk}").status_code == 404
    assert api.delete(f"{HOSTS}/{host.pk}").status_code == 404
    assert ContainerHost.objects.filter(pk=host.pk).exists()


def test_list_filters_by_name_or_url(api, alpha) -> None:
    make_host(alpha, "docker-1", "http://127.0.0.1:1")
    make_host(alpha, "vch-east", "https://127.0.0.1:2", kind="vch")
    names = [row["name"] for row in api.get(HOSTS, {"q": "east"}).json()["results"]]
    assert names == ["vch-east"]
    names = [row["name"] for row in api.get(HOSTS, {"q": "https://"}).json()["results"]]
    assert names == ["vch-east"]
    assert len(api.get(HOSTS).json()["results"]) == 2


def test_list_query_count_does_not_grow_with_hosts(api, alpha, certificate_credential) -> None:
    def count(hosts: int) -> int:
        ContainerHost.objects.all().delete()
        for number in range(hosts):
            make_host(alpha, f"h{number}", f"https://127.0.0.1:{1000 + number}", credential=certificate_credential)
        with CaptureQueriesContext(connection) as queries:
            response = api.get(HOSTS, {"page_size": 100})
        assert response.status_code == 200 and len(response.json()["results"]) == hosts
        assert response.json()["results"][0]["credential"] == "docker-tls"
        return len(queries)

    assert count(3) == count(30), "the host list issues queries per row"


def test_viewer_cannot_change_or_remove_a_host(role_users, alpha) -> None:
    host = make_host(alpha)
    viewer = client_for(role_users["viewer"])
    assert viewer.patch(f"{HOSTS}/{host.pk}", {"name": "x"}, format="json").status_code == 403
    assert viewer.delete(f"{HOSTS}/{host.pk}").status_code == 403
    assert viewer.post(f"{HOSTS}/{host.pk}/verify").status_code == 403
    host.refresh_from_db()
    assert host.name == "docker-1"


def test_rename_checks_the_name(admin, alpha) -> None:
    host = make_host(alpha, "docker-1", "http://127.0.0.1:1")
    make_host(alpha, "docker-2", "http://127.0.0.1:2")
    response = admin.patch(f"{HOSTS}/{host.pk}", {"name": "docker-2"}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "host 'docker-2' already exists in project 'alpha'"
    response = admin.patch(f"{HOSTS}/{host.pk}", {"name": "web-1"}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "web-1"
    event = AuditEvent.objects.filter(resource_type="host", action="update").get()
    assert event.detail["fields"] == ["name"]


def test_disabling_a_host_needs_no_connection(admin, alpha) -> None:
    host = make_host(alpha)
    response = admin.patch(f"{HOSTS}/{host.pk}", {"enabled": False}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "disabled"
    assert response.json()["enabled"] is False


def test_enabling_a_host_that_does_not_answer_makes_it_unreachable(admin, alpha) -> None:
    host = make_host(alpha, state=HostState.DISABLED)
    response = admin.patch(f"{HOSTS}/{host.pk}", {"enabled": True}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "unreachable"
    assert response.json()["last_error"] == "127.0.0.1:1: connection refused"


def test_recheck_of_a_dead_host_answers_the_failure_and_records_it(admin, alpha) -> None:
    host = make_host(alpha, state=HostState.ON)
    response = admin.post(f"{HOSTS}/{host.pk}/verify")
    assert response.status_code == 502
    assert response.json()["detail"] == "127.0.0.1:1: connection refused"
    host.refresh_from_db()
    assert host.state == HostState.UNREACHABLE
    assert host.last_error == "127.0.0.1:1: connection refused"


def test_remove_forgets_the_host_and_its_containers(admin, alpha) -> None:
    host = make_host(alpha)
    Container.objects.create(host=host, container_id="a" * 64, name="web", image="busybox")
    response = admin.delete(f"{HOSTS}/{host.pk}")
    assert response.status_code == 204
    assert not ContainerHost.objects.exists()
    assert not Container.objects.exists()
    event = AuditEvent.objects.filter(resource_type="host", action="delete").get()
    assert event.resource_name == "docker-1"
    assert event.detail["containers_forgotten"] == 1


def test_project_holding_hosts_cannot_be_deleted(api, alpha) -> None:
    make_host(alpha, "docker-1", "http://127.0.0.1:1")
    make_host(alpha, "docker-2", "http://127.0.0.1:2")
    response = api.delete("/api/v1/projects/alpha")
    assert response.status_code == 409
    assert "2 container hosts" in response.json()["detail"]
    ContainerHost.objects.all().delete()
    assert api.delete("/api/v1/projects/alpha").status_code == 204


def test_credential_used_by_a_host_cannot_be_deleted(api, alpha, certificate_credential) -> None:
    make_host(alpha, "vch-1", "https://127.0.0.1:2376", credential=certificate_credential)
    response = api.delete("/api/v1/credentials/docker-tls")
    assert response.status_code == 409
    assert "host 'vch-1'" in response.json()["detail"]
    assert "host 'vch-1' (project 'alpha')" in api.get("/api/v1/credentials/docker-tls").json()["used_by"]


def test_pinned_certificate_names_the_host_using_it(api, alpha) -> None:
    make_host(alpha, "vch-1", "https://127.0.0.1:2376")
    keys = make_certificate("vch", ["127.0.0.1"])
    response = api.post("/api/v1/certificates", {"address": "127.0.0.1:2376", "pem": keys.cert_pem}, format="json")
    assert response.status_code == 201
    pinned = TrustedCertificate.objects.get()
    assert "host 'vch-1' (project 'alpha')" in api.get(f"/api/v1/certificates/{pinned.pk}").json()["used_by"]

"""Adding container hosts against REAL Docker daemons, in each of the seed's three TLS modes, and every failure.

Three dockerds run for this module: one on plain TCP (no TLS), one with `--tls` (server-side TLS: a
server certificate only) and one with `--tlsverify` (full TLS: the client certificate must be signed
by its CA). A VCH is simulated honestly: a real dockerd (the plain one) behind a small proxy
(tests/integration/vch_proxy.py) that rewrites only /info to report the VIC engine, as no VIC
appliance can run here. The same proxy reporting API 1.20 in /version stands for an engine too old.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest
from rest_framework.test import APIClient

from hosts.docker import DockerClient, DockerError, HostUnreachable
from hosts.models import Container, ContainerHost, HostState
from portal.core.models import AuditEvent, TrustedCertificate
from tests.conftest import client_for
from tests.integration.dockerd import Dockerd, dockerd_fixture, free_port
from tests.integration.tls_pki import CertificateAuthority
from tests.integration.vch_proxy import EngineProxy

HOSTS = "/api/v1/projects/alpha/hosts"
IMAGE = "wharf-test/busybox:1"


# Daemons and stand-ins, one of each per module.


plain = dockerd_fixture(
    "dockerd on http://127.0.0.1:PORT (no TLS), with a busybox image imported.", tcp=True, image=IMAGE
)
server_tls = dockerd_fixture(
    "dockerd --tls on https://127.0.0.1:PORT: a server certificate from its own CA, no client check.",
    tcp=True,
    tls="server",
)
full_tls = dockerd_fixture(
    "dockerd --tlsverify on https://127.0.0.1:PORT: it requires a client certificate signed by its CA.",
    tcp=True,
    tls="verify",
    image=IMAGE,
)


@pytest.fixture(scope="module")
def vch(plain: Dockerd) -> Iterator[EngineProxy]:
    """A stand-in VCH: the plain dockerd with /info rewritten to report vSphere Integrated Containers."""
    proxy = EngineProxy(plain.url, vic=True)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def old_engine(plain: Dockerd) -> Iterator[EngineProxy]:
    """The plain dockerd claiming Docker API 1.20 in /version (older than the 1.24 we manage)."""
    proxy = EngineProxy(plain.url, vic=False, api_version="1.20")
    yield proxy
    proxy.close()


class _NotDocker(BaseHTTPRequestHandler):
    """A web server that is no Docker API: 404 for everything."""

    def do_GET(self) -> None:
        body = b"<html>Not Found</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def web_server() -> Iterator[str]:
    """http://127.0.0.1:PORT of an HTTP server that is not Docker."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotDocker)
    thread = Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose socket accepts connections (the kernel's backlog) and never answers a byte."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


# The portal side.


@pytest.fixture(autouse=True)
def _short_timeout(settings: Any) -> None:
    """Every host answers at once here; a short timeout keeps the failure paths quick."""
    settings.HOST_TIMEOUT_SECONDS = 5


@pytest.fixture
def admin(role_users) -> APIClient:
    """The API as a DevOps administrator of project alpha (the role that adds hosts)."""
    return client_for(role_users["project_admin"])


def add(client: APIClient, url: str, name: str = "docker-1", kind: str = "docker", **body: Any) -> Any:
    """POST a host to project alpha."""
    return client.post(HOSTS, {"name": name, "kind": kind, "url": url, **body}, format="json")


def certificate_credential(api: APIClient, name: str, ca: CertificateAuthority) -> str:
    """A certificate credential of project alpha (its admins add the hosts here), made through the credentials API
    from a client certificate of `ca`."""
    pair = ca.client(stem=f"client-{name}")
    body = {"name": name, "kind": "certificate", "certificate": pair.cert_pem, "private_key": pair.key_pem}
    body["project"] = "alpha"
    response = api.post("/api/v1/credentials", body, format="json")
    assert response.status_code == 201, response.json()
    return name


def trust_presented(client: APIClient, answer: dict[str, Any]) -> None:
    """Accept the certificate a 409 showed, as the trust dialog does: pin exactly that PEM for the project."""
    certificate = answer["certificate"]
    body = {"address": certificate["address"], "pem": certificate["pem"], "project": "alpha"}
    response = client.post("/api/v1/certificates", body, format="json")
    assert response.status_code == 201, response.json()


def pin(client: APIClient, dockerd: Dockerd) -> None:
    """Trust the daemon's server certificate for project alpha through the certificates API."""
    response = client.post("/api/v1/certificates", {"url": dockerd.url, "project": "alpha"}, format="json")
    assert response.status_code == 201, response.json()


# The three TLS modes of the seed.


def test_host_without_tls_is_added_over_http(admin, plain: Dockerd) -> None:
    response = add(admin, plain.url)
    assert response.status_code == 201, response.json()
    host = response.json()
    assert host["url"] == plain.url
    assert host["tls_mode"] == "no TLS"
    assert host["state"] == "on"
    assert host["kind"] == "docker"
    assert host["engine_version"] == plain.ok("version", "--format", "{{.Server.Version}}").strip()
    assert host["api_version"] == "1.41"
    assert host["images"] >= 1
    assert host["cpus"] >= 1 and host["memory_bytes"] > 0
    assert host["last_seen"]
    event = AuditEvent.objects.get(resource_type="host", action="create")
    assert event.resource_name == "docker-1"
    assert event.detail == {"url": plain.url, "kind": "docker", "tls": "no TLS"}


def test_server_side_tls_host_goes_through_the_trust_dialog(admin, server_tls: Dockerd) -> None:
    first = add(admin, server_tls.url)
    assert first.status_code == 409
    answer = first.json()
    assert answer["detail"] == f"the certificate of 127.0.0.1:{server_tls.port} is not trusted"
    assert answer["certificate"]["subject"] == "CN=127.0.0.1"
    assert answer["certificate"]["issuer"] == "CN=wharf-test-ca"
    assert answer["certificate"]["sha256"]
    # Declining pins nothing: asking again is answered the same way.
    assert not TrustedCertificate.objects.exists()
    assert add(admin, server_tls.url).status_code == 409
    trust_presented(admin, answer)
    response = add(admin, server_tls.url)
    assert response.status_code == 201, response.json()
    assert response.json()["tls_mode"] == "server-side TLS"
    assert response.json()["credential"] is None
    assert response.json()["state"] == "on"


def test_full_tls_host_is_added_with_a_certificate_credential(api, admin, full_tls: Dockerd, tmp_path: Path) -> None:
    assert full_tls.ca is not None
    certificate_credential(api, "docker-tls", full_tls.ca)
    pin(admin, full_tls)
    response = add(admin, full_tls.url, credential="docker-tls")
    assert response.status_code == 201, response.json()
    assert response.json()["tls_mode"] == "full TLS"
    assert response.json()["credential"] == "docker-tls"
    # The credential now belongs to the host: it cannot be deleted from under it.
    refused = api.delete("/api/v1/credentials/docker-tls")
    assert refused.status_code == 409
    assert "host 'docker-1'" in refused.json()["detail"]


def test_vch_is_added_as_a_vch(admin, vch: EngineProxy) -> None:
    response = add(admin, vch.url, name="vch-1", kind="vch")
    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == "vch"
    assert response.json()["operating_system"] == "VMware Photon OS/linux"


def test_verify_says_what_the_host_is_and_saves_nothing(admin, vch: EngineProxy) -> None:
    response = admin.post(f"{HOSTS}/verify", {"kind": "vch", "url": vch.url}, format="json")
    assert response.status_code == 200, response.json()
    facts = response.json()
    assert facts["is_vic"] is True
    assert facts["url"] == vch.url
    assert facts["tls_mode"] == "no TLS"
    assert facts["api_version"] == "1.41"
    assert not ContainerHost.objects.exists()


# Every failure, with its exact message.


def test_client_certificate_from_another_ca_is_rejected(api, admin, full_tls: Dockerd, tmp_path: Path) -> None:
    stranger = CertificateAuthority(tmp_path / "other-ca", common_name="someone-else")
    certificate_credential(api, "stranger", stranger)
    pin(admin, full_tls)
    response = add(admin, full_tls.url, credential="stranger")
    assert response.status_code == 502
    assert response.json()["detail"] == (
        f"127.0.0.1:{full_tls.port}: the host rejected the client certificate: it is not signed by a CA the host trusts"
    )
    assert not ContainerHost.objects.exists()


def test_full_tls_host_without_a_client_certificate_says_it_requires_one(admin, full_tls: Dockerd) -> None:
    pin(admin, full_tls)
    response = add(admin, full_tls.url)
    assert response.status_code == 502
    assert response.json()["detail"] == (
        f"127.0.0.1:{full_tls.port}: the host requires a client certificate: pick a certificate credential (full TLS)"
    )


def test_plain_http_to_a_tls_port_says_to_use_https(admin, server_tls: Dockerd) -> None:
    response = add(admin, f"http://127.0.0.1:{server_tls.port}")
    assert response.status_code == 502
    address = f"127.0.0.1:{server_tls.port}"
    assert response.json()["detail"] == f"{address} speaks TLS: use https://{address}"


def test_https_to_a_plain_port_says_the_host_does_not_speak_tls(admin, plain: Dockerd) -> None:
    response = add(admin, f"https://127.0.0.1:{plain.port}")
    assert response.status_code == 502
    assert response.json()["detail"] == (
        f"127.0.0.1:{plain.port}: the host does not speak TLS on this port: use http:// (no TLS) or the host's TLS port"
    )


def test_port_with_nothing_listening_is_refused(admin) -> None:
    port = free_port()
    response = add(admin, f"http://127.0.0.1:{port}")
    assert response.status_code == 502
    assert response.json()["detail"] == f"127.0.0.1:{port}: connection refused"


def test_host_that_never_answers_times_out(admin, settings, silent_port: int) -> None:
    settings.HOST_TIMEOUT_SECONDS = 1
    response = add(admin, f"http://127.0.0.1:{silent_port}")
    assert response.status_code == 502
    assert response.json()["detail"] == f"127.0.0.1:{silent_port}: timed out after 1 s"


def test_web_server_that_is_not_docker_is_named_so(admin, web_server: str) -> None:
    response = add(admin, web_server)
    assert response.status_code == 400
    address = web_server.removeprefix("http://")
    assert response.json()["detail"] == f"{address} is not a Docker API: /_ping answered HTTP 404"
    assert response.json()["errors"] == {"url": [response.json()["detail"]]}


def test_engine_with_an_old_api_is_refused(admin, old_engine: EngineProxy) -> None:
    response = add(admin, old_engine.url)
    assert response.status_code == 400
    address = old_engine.url.removeprefix("http://")
    assert response.json()["detail"] == (
        f"{address} speaks Docker API 1.20, which is too old: the oldest supported is 1.24 (Docker 1.12)"
    )


def test_docker_host_added_as_vch_is_refused(admin, plain: Dockerd) -> None:
    response = add(admin, plain.url, kind="vch")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("host type is not VCH: ")
    assert response.json()["errors"] == {"kind": ["This host is not a VCH."]}


def test_vch_added_as_docker_host_is_refused(admin, vch: EngineProxy) -> None:
    response = add(admin, vch.url, kind="docker")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("host type is VCH: ")
    assert "choose VCH as the host type" in response.json()["detail"]


def test_same_endpoint_in_a_second_project_conflicts(api, admin, vch: EngineProxy, beta) -> None:
    assert add(admin, vch.url, name="vch-1", kind="vch").status_code == 201
    response = api.post("/api/v1/projects/beta/hosts", {"name": "vch-1", "kind": "vch", "url": vch.url}, format="json")
    assert response.status_code == 409
    assert response.json()["detail"] == "host already exists in project 'alpha'"


# After adding.


def test_removing_a_host_leaves_its_containers_running(admin, plain: Dockerd) -> None:
    container_id = plain.ok("run", "-d", "--name", "keep-me", IMAGE, "sleep", "600").strip()
    try:
        host = add(admin, plain.url).json()
        # What a collection would have recorded about the container.
        Container.objects.create(host_id=host["id"], container_id=container_id, name="keep-me", image=IMAGE)
        response = admin.delete(f"{HOSTS}/{host['id']}")
        assert response.status_code == 204
        assert not ContainerHost.objects.exists()
        assert not Container.objects.exists()
        listed = plain.ok("ps", "-a", "--filter", "name=keep-me", "--format", "{{.ID}} {{.State}}").split()
        assert listed == [container_id[:12], "running"]
    finally:
        plain.run("rm", "-f", container_id)


def test_disabled_host_comes_back_on_when_enabled(admin, plain: Dockerd) -> None:
    host = add(admin, plain.url).json()
    response = admin.patch(f"{HOSTS}/{host['id']}", {"enabled": False}, format="json")
    assert response.json()["state"] == "disabled"
    response = admin.patch(f"{HOSTS}/{host['id']}", {"enabled": True}, format="json")
    assert response.status_code == 200
    assert response.json()["state"] == "on"
    assert response.json()["last_error"] == ""
    updates = AuditEvent.objects.filter(resource_type="host", action="update").order_by("pk")
    states = [event.detail["state"] for event in updates]
    assert states == ["disabled", "on"]


def test_recheck_updates_the_facts_of_a_saved_host(admin, plain: Dockerd) -> None:
    host = add(admin, plain.url).json()
    ContainerHost.objects.filter(pk=host["id"]).update(
        state=HostState.UNREACHABLE, last_error="earlier failure", images=0
    )
    response = admin.post(f"{HOSTS}/{host['id']}/verify")
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == "on"
    assert response.json()["last_error"] == ""
    assert response.json()["images"] >= 1


def test_changing_the_credential_is_verified_before_it_is_saved(api, admin, full_tls: Dockerd, tmp_path: Path) -> None:
    assert full_tls.ca is not None
    certificate_credential(api, "docker-tls", full_tls.ca)
    certificate_credential(api, "stranger", CertificateAuthority(tmp_path / "other", "someone-else"))
    pin(admin, full_tls)
    host = add(admin, full_tls.url, credential="docker-tls").json()
    response = admin.patch(f"{HOSTS}/{host['id']}", {"credential": "stranger"}, format="json")
    assert response.status_code == 502
    assert "the host rejected the client certificate" in response.json()["detail"]
    assert ContainerHost.objects.get().credential.name == "docker-tls"


def test_container_calls_present_the_client_certificate_too(api, admin, full_tls: Dockerd) -> None:
    # The probe is not all: every call the client makes for containers goes over the same trust flow.
    assert full_tls.ca is not None
    certificate_credential(api, "docker-tls", full_tls.ca)
    pin(admin, full_tls)
    host = ContainerHost.objects.get(pk=add(admin, full_tls.url, credential="docker-tls").json()["id"])
    with DockerClient(host.url, host.credential, api_version=host.api_version) as client:
        command = ["sh", "-c", "echo hello; echo oops >&2; sleep 600"]
        created = client.create("over-tls", {"Image": IMAGE, "Cmd": command})
        try:
            client.start(created)
            assert client.inspect(created)["State"]["Running"] is True
            assert created in [listed["Id"] for listed in client.containers()]
            assert client.stats(created)["memory_stats"]["usage"] > 0
            assert [(stream, line.partition(" ")[2]) for stream, line in _output(client, created)] == [
                ("stdout", "hello"),
                ("stderr", "oops"),
            ]
            client.stop(created, seconds=0)
            assert client.inspect(created)["State"]["Running"] is False
        finally:
            client.remove(created)
        with pytest.raises(DockerError) as gone:
            client.inspect(created)
    assert (gone.value.status, gone.value.message) == (404, f"No such container: {created}")


def _output(client: DockerClient, container_id: str) -> list[tuple[str, str]]:
    """The container's two lines of output, once it has written both."""
    deadline = time.monotonic() + 10
    while len(lines := client.logs(container_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    return sorted(lines, key=lambda pair: pair[0] == "stderr")


def test_container_calls_without_the_client_certificate_say_it_is_required(admin, full_tls: Dockerd) -> None:
    pin(admin, full_tls)
    with DockerClient(full_tls.url, api_version="1.41") as client, pytest.raises(HostUnreachable) as refused:
        client.containers()
    assert refused.value.message == (
        f"127.0.0.1:{full_tls.port}: the host requires a client certificate: pick a certificate credential (full TLS)"
    )

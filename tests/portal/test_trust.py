"""The trust flow against real TLS servers on 127.0.0.1: unknown certificates, pins, and what failed."""

from __future__ import annotations

import re
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from portal.core import trust
from portal.core.audit import Actor
from portal.core.certificates import alt_names, certificate_builder, key_pem
from portal.core.credentials import create_credential
from portal.core.errors import Forbidden, RemoteUnreachable
from portal.core.models import AuditEvent, TrustedCertificate
from tests.conftest import client_for
from tests.loopback import PlainHttpPort


@dataclass
class KeyPair:
    """A certificate and its private key, as PEM."""

    cert_pem: str
    key_pem: str

    @property
    def sha256(self) -> str:
        cert = x509.load_pem_x509_certificate(self.cert_pem.encode())
        return cert.fingerprint(hashes.SHA256()).hex(":").upper()

    def write(self, folder: Path, stem: str) -> tuple[Path, Path]:
        cert, key = folder / f"{stem}.crt", folder / f"{stem}.key"
        cert.write_text(self.cert_pem)
        key.write_text(self.key_pem)
        return cert, key


def make_certificate(common_name: str, names: list[str], issuer: KeyPair | None = None, is_ca: bool = False) -> KeyPair:
    """A certificate for the names (IP addresses or DNS names), self-signed unless an issuer is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, signing_key = subject, key
    if issuer is not None:
        issuer_name = x509.load_pem_x509_certificate(issuer.cert_pem.encode()).subject
        signing_key = serialization.load_pem_private_key(issuer.key_pem.encode(), None)
    builder = certificate_builder(subject, issuer_name, key.public_key(), days=30)
    if names:
        builder = builder.add_extension(alt_names(names), critical=False)
    if is_ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(signing_key, hashes.SHA256())
    return KeyPair(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key).decode())


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class TlsServer:
    """A running HTTPS server on 127.0.0.1."""

    port: int
    keys: KeyPair

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def serve_tls(tmp_path: Path, keys: KeyPair, client_ca: KeyPair | None = None) -> Iterator[TlsServer]:
    """Serve HTTPS with the keys in a thread; with client_ca, require a client certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*keys.write(tmp_path, f"server-{id(keys)}"))
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cadata=client_ca.cert_pem)
    server = HTTPServer(("127.0.0.1", 0), _Hello)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield TlsServer(server.server_address[1], keys)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def tls_server(tmp_path) -> Iterator[TlsServer]:
    """An HTTPS server with a self-signed certificate for 127.0.0.1."""
    yield from serve_tls(tmp_path, make_certificate("test-server", ["127.0.0.1"]))


@pytest.fixture
def wrong_name_server(tmp_path) -> Iterator[TlsServer]:
    """An HTTPS server on 127.0.0.1 whose certificate names only wrong.example."""
    yield from serve_tls(tmp_path, make_certificate("wrong.example", ["wrong.example"]))


@pytest.fixture
def plain_port() -> Iterator[int]:
    """The port of a PlainHttpPort."""
    server = PlainHttpPort()
    yield server.port
    server.close()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


@pytest.fixture
def admin_actor(portal_admin) -> Actor:
    return Actor(portal_admin, "127.0.0.1")


def test_unknown_certificate_is_untrusted_with_its_thumbprint(db, tls_server) -> None:
    with pytest.raises(trust.UntrustedCertificate) as caught:
        trust.check_tls(tls_server.url)
    certificate = caught.value.certificate
    assert caught.value.status == 409
    assert caught.value.message == f"the certificate of {tls_server.address} is not trusted"
    assert certificate["sha256"] == tls_server.keys.sha256
    assert certificate["address"] == tls_server.address
    assert certificate["subject"] == "CN=test-server"
    assert certificate["issuer"] == "CN=test-server"
    assert certificate["pem"].strip() == tls_server.keys.cert_pem.strip()
    assert set(certificate) == {"address", "subject", "issuer", "not_before", "not_after", "sha1", "sha256", "pem"}


def test_trusted_certificate_passes_check(db, tls_server, admin_actor) -> None:
    pinned = trust.trust(admin_actor, tls_server.address, tls_server.keys.cert_pem)
    trust.check_tls(tls_server.url)
    assert pinned.sha256 == tls_server.keys.sha256
    assert AuditEvent.objects.filter(action="trust", resource_name=tls_server.address).exists()


def test_session_verifies_with_the_pins(db, tls_server, admin_actor) -> None:
    with pytest.raises(requests.exceptions.SSLError) as caught:
        trust.session(tls_server.address).get(tls_server.url, timeout=5)
    error = trust.translate_request_error(caught.value, tls_server.url)
    assert isinstance(error, trust.UntrustedCertificate)
    assert error.certificate["sha256"] == tls_server.keys.sha256
    trust.trust(admin_actor, tls_server.address, tls_server.keys.cert_pem)
    assert trust.session(tls_server.address).get(tls_server.url, timeout=5).text == "hello"


def test_pin_of_another_address_does_not_count(db, tls_server, admin_actor) -> None:
    trust.trust(admin_actor, "127.0.0.1:1", tls_server.keys.cert_pem)
    with pytest.raises(trust.UntrustedCertificate):
        trust.check_tls(tls_server.url)


def test_a_pinned_certificate_is_trusted_for_its_address_whatever_names_it_carries(
    db, wrong_name_server, admin_actor
) -> None:
    with pytest.raises(trust.UntrustedCertificate):
        trust.check_tls(wrong_name_server.url)
    trust.trust(admin_actor, wrong_name_server.address, wrong_name_server.keys.cert_pem)

    trust.check_tls(wrong_name_server.url)
    assert trust.session(wrong_name_server.address).get(wrong_name_server.url, timeout=5).text == "hello"


def test_the_exact_pin_trusts_no_other_certificate_at_that_address(db, tmp_path, admin_actor) -> None:
    pinned = make_certificate("registry.example", ["registry.example"])
    for server in serve_tls(tmp_path, make_certificate("impostor.example", ["impostor.example"])):
        trust.trust(admin_actor, server.address, pinned.cert_pem)
        with pytest.raises(trust.UntrustedCertificate) as caught:
            trust.check_tls(server.url)
        assert caught.value.certificate["subject"] == "CN=impostor.example"


def test_a_certificate_a_public_ca_signed_for_another_name_is_refused(db, tmp_path, admin_actor) -> None:
    ca = make_certificate("test-ca", [], is_ca=True)
    for server in serve_tls(tmp_path, make_certificate("elsewhere", ["elsewhere.example"], issuer=ca)):
        # The CA is pinned (as a system CA would be), not the server's own certificate: names count.
        trust.trust(admin_actor, server.address, ca.cert_pem)
        with pytest.raises(RemoteUnreachable, match=re.escape("not valid for the name '127.0.0.1'")):
            trust.check_tls(server.url)


def test_plain_http_port_is_named_as_such(db, plain_port) -> None:
    with pytest.raises(trust.PlainHttp) as caught:
        trust.check_tls(f"https://127.0.0.1:{plain_port}", timeout=2)
    assert caught.value.status == 400
    assert caught.value.message.startswith(f"127.0.0.1:{plain_port} speaks plain HTTP, not TLS")
    with pytest.raises(trust.PlainHttp):
        trust.fetch_certificate("127.0.0.1", plain_port, timeout=2)
    url = f"https://127.0.0.1:{plain_port}"
    with pytest.raises(requests.RequestException) as failed:
        trust.session(f"127.0.0.1:{plain_port}").get(url, timeout=2)
    assert isinstance(trust.translate_request_error(failed.value, url, 2), trust.PlainHttp)


def test_verify_of_an_https_address_at_a_plain_port_is_a_400_over_the_api(db, plain_port, portal_admin) -> None:
    response = client_for(portal_admin).post(
        "/api/v1/registries/verify", {"address": f"https://127.0.0.1:{plain_port}"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "speaks plain HTTP, not TLS" in response.json()["detail"]


def test_closed_port_says_connection_refused(db, closed_port) -> None:
    with pytest.raises(RemoteUnreachable, match="connection refused"):
        trust.check_tls(f"https://127.0.0.1:{closed_port}")


def test_requests_to_closed_port_say_connection_refused(db, closed_port) -> None:
    url = f"https://127.0.0.1:{closed_port}"
    with pytest.raises(requests.RequestException) as caught:
        trust.session(f"127.0.0.1:{closed_port}").get(url, timeout=2)
    assert "connection refused" in trust.translate_request_error(caught.value, url).message


def test_unresolvable_host_says_so(db) -> None:
    with pytest.raises(RemoteUnreachable, match=re.escape("cannot resolve host name 'no-such-host.invalid'")):
        trust.check_tls("https://no-such-host.invalid:443")


def test_untrust_removes_the_pin(db, tls_server, admin_actor) -> None:
    pinned = trust.trust(admin_actor, tls_server.address, tls_server.keys.cert_pem)
    trust.untrust(admin_actor, pinned)
    with pytest.raises(trust.UntrustedCertificate):
        trust.check_tls(tls_server.url)
    assert AuditEvent.objects.filter(action="untrust", resource_name=tls_server.address).exists()


def test_trusting_twice_keeps_one_pin(db, tls_server, admin_actor) -> None:
    trust.trust(admin_actor, tls_server.url, tls_server.keys.cert_pem)
    trust.trust(admin_actor, tls_server.address, tls_server.keys.cert_pem)
    assert TrustedCertificate.objects.filter(address=tls_server.address).count() == 1


def test_project_admin_trusts_for_own_project_only(db, tls_server, role_users, alpha, beta) -> None:
    actor = Actor(role_users["project_admin"])
    trust.trust(actor, tls_server.address, tls_server.keys.cert_pem, project=alpha)
    with pytest.raises(Forbidden):
        trust.trust(actor, tls_server.address, tls_server.keys.cert_pem, project=beta)
    with pytest.raises(Forbidden):
        trust.trust(actor, tls_server.address, tls_server.keys.cert_pem)


def test_client_certificate_of_a_credential_is_presented(db, tmp_path, admin_actor) -> None:
    client_ca = make_certificate("client-ca", [], is_ca=True)
    client = make_certificate("wharf-client", [], issuer=client_ca)
    server_keys = make_certificate("mtls-server", ["127.0.0.1"])
    credential = create_credential(
        admin_actor, "mtls", "certificate", certificate=client.cert_pem, private_key=client.key_pem
    )
    for server in serve_tls(tmp_path, server_keys, client_ca=client_ca):
        trust.trust(admin_actor, server.address, server_keys.cert_pem)
        assert trust.session(server.address, credential).get(server.url, timeout=5).text == "hello"
        trust.check_tls(server.url, credential=credential)
        with pytest.raises(requests.RequestException):
            trust.session(server.address).get(server.url, timeout=5)


def test_usages_come_from_registered_functions(db, tls_server, admin_actor, monkeypatch) -> None:
    pinned = trust.trust(admin_actor, tls_server.address, tls_server.keys.cert_pem)
    monkeypatch.setattr(
        trust, "CERTIFICATE_USERS", [lambda cs: {c.pk: f"registry 'r-{c.address}'" for c in cs}, lambda cs: {}]
    )
    assert trust.certificate_usages(pinned) == [f"registry 'r-{tls_server.address}'"]


def test_api_check_answers_409_with_the_certificate(api, tls_server) -> None:
    response = api.post("/api/v1/certificates/check", {"url": tls_server.url}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"] == f"the certificate of {tls_server.address} is not trusted"
    assert body["certificate"]["sha256"] == tls_server.keys.sha256
    assert body["certificate"]["address"] == tls_server.address
    assert "BEGIN CERTIFICATE" in body["certificate"]["pem"]
    assert set(body) == {"detail", "errors", "certificate"}


def test_api_trust_by_pem_then_check_passes_and_delete_untrusts(api, tls_server) -> None:
    created = api.post(
        "/api/v1/certificates", {"address": tls_server.address, "pem": tls_server.keys.cert_pem}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created.json()["sha256"] == tls_server.keys.sha256
    assert api.post("/api/v1/certificates/check", {"url": tls_server.url}, format="json").status_code == 204
    listed = api.get("/api/v1/certificates").json()
    assert [c["address"] for c in listed["results"]] == [tls_server.address]
    assert api.delete(f"/api/v1/certificates/{created.json()['id']}").status_code == 204
    assert api.post("/api/v1/certificates/check", {"url": tls_server.url}, format="json").status_code == 409


def test_api_trust_by_url_pins_the_presented_certificate(api, tls_server) -> None:
    fetched = api.post("/api/v1/certificates/fetch", {"url": tls_server.url}, format="json")
    assert fetched.status_code == 200
    assert fetched.json()["sha256"] == tls_server.keys.sha256
    created = api.post(
        "/api/v1/certificates", {"url": tls_server.url, "sha256": fetched.json()["sha256"]}, format="json"
    )
    assert created.status_code == 201, created.content
    trust.check_tls(tls_server.url)


def test_api_trust_by_url_refuses_another_thumbprint(api, tls_server) -> None:
    response = api.post("/api/v1/certificates", {"url": tls_server.url, "sha256": "AB:" * 31 + "AB"}, format="json")
    assert response.status_code == 409
    assert "not the one expected" in response.json()["detail"]
    assert not TrustedCertificate.objects.exists()


def test_api_check_of_closed_port_is_502_naming_the_failure(api, closed_port) -> None:
    response = api.post("/api/v1/certificates/check", {"url": f"https://127.0.0.1:{closed_port}"}, format="json")
    assert response.status_code == 502
    assert "connection refused" in response.json()["detail"]


def test_project_admin_trusts_through_api_for_own_project(role_users, tls_server) -> None:
    client = client_for(role_users["project_admin"])
    body = {"address": tls_server.address, "pem": tls_server.keys.cert_pem}
    assert client.post("/api/v1/certificates", body, format="json").status_code == 403
    response = client.post("/api/v1/certificates", body | {"project": "alpha"}, format="json")
    assert response.status_code == 201
    assert client.post("/api/v1/certificates", body | {"project": "beta"}, format="json").status_code == 404


def test_a_malformed_url_is_a_clear_400_not_a_crash(api) -> None:
    response = api.post("/api/v1/certificates", {"url": "https://[::1:443"}, format="json")
    assert response.status_code == 400
    assert "is not a valid URL" in response.json()["detail"]

"""External registries against real servers: docker-registry in every mode (plain HTTP, HTTPS with a self-signed
certificate, htpasswd basic auth, bearer-token auth), the V1 test server (tests/v1server.py, written from the V1
API spec because no V1 registry is packaged anywhere), and sockets that refuse or hang."""

from __future__ import annotations

import base64
import html
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from portal.core.audit import Actor
from portal.core.credentials import create_credential
from portal.core.errors import Conflict, Forbidden, Invalid
from portal.core.models import AuditEvent, Credential, TrustedCertificate
from portal.core.trust import UntrustedCertificate, certificate_usages, trust
from projects.services import delete_project
from registries import external_services, search
from registries.external import DOCKER_HUB, NotARegistry, Unreachable, WrongCredentials
from registries.models import ExternalRegistry
from tests.conftest import client_for, logged_in, page_text
from tests.integration.registry import (
    Registry,
    push_tiny_image,
    start_standalone_registry,
)
from tests.integration.registry_fixtures import (  # noqa: F401  (the fixtures)
    PASSWORD,
    USERNAME,
    basic_registry_fixture,
    token_registry_fixture,
)
from tests.integration.slapd import free_port
from tests.integration.tls_pki import self_signed_certificate
from tests.integration.token_issuer import TokenIssuer
from tests.loopback import LoopbackServer
from tests.v1server import V1Registry

REPOSITORIES = ["vmware/admiral", "vmware/photon", "library/busybox", "other/app"]


# Servers.


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """V2 over plain HTTP with no auth, holding REPOSITORIES."""
    registry = start_standalone_registry(tmp_path_factory.mktemp("plain"))
    for name in REPOSITORIES:
        push_tiny_image(registry.url, name, ["1.0", "latest"])
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, str]]:
    """V2 over HTTPS with a fresh self-signed certificate; yields the registry and the certificate PEM."""
    workdir = tmp_path_factory.mktemp("tls")
    tls = self_signed_certificate(workdir / "tls")
    registry = start_standalone_registry(workdir, tls=tls)
    push_tiny_image(registry.url, "secure/app", ["v1"], verify=str(tls.cert))
    yield registry, tls.cert_pem
    registry.stop()


@pytest.fixture(scope="module")
def token_app_registry(token_registry: tuple[Registry, TokenIssuer]) -> Registry:
    """The token registry holding team/token-app:3.0 (pushed with a token of its own service)."""
    registry, issuer = token_registry
    scope = "repository:team/token-app:pull,push"
    push_tiny_image(
        registry.url, "team/token-app", ["3.0"], headers={"Authorization": f"Bearer {issuer.token([scope])}"}
    )
    return registry


@pytest.fixture(scope="module")
def v1_registry() -> Iterator[V1Registry]:
    """The V1 test server with two repositories."""
    repositories = {"legacy/tool": {"1.0": "abc123", "latest": "abc123"}, "legacy/other": {"0.1": "def456"}}
    with V1Registry(repositories, {"legacy/tool": "An old tool"}) as server:
        yield server


@pytest.fixture
def hanging() -> Iterator[LoopbackServer]:
    """A socket that accepts connections and never answers: a registry that hangs."""
    server = LoopbackServer()
    yield server
    server.close()


class NotFoundServer:
    """An HTTP server answering 404 to everything: something, but not a registry."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

            def do_GET(self) -> None:
                self.send_response(404)
                self.send_header("Content-Length", "9")
                self.end_headers()
                self.wfile.write(b"not here\n")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# Database fixtures.


@pytest.fixture(autouse=True)
def _no_docker_hub(db) -> None:
    """Tests never reach the internet: the default Docker Hub registry is disabled."""
    ExternalRegistry.objects.filter(address=DOCKER_HUB).update(enabled=False)


@pytest.fixture
def admin_actor(portal_admin) -> Actor:
    return Actor(portal_admin, "127.0.0.1")


@pytest.fixture
def robot(admin_actor) -> Credential:
    return create_credential(admin_actor, "robot", "password", username=USERNAME, password=PASSWORD)


@pytest.fixture
def wrong_robot(admin_actor) -> Credential:
    return create_credential(admin_actor, "wrong-robot", "password", username=USERNAME, password="not-the-password")


def host_of(url: str) -> str:
    return urlsplit(url).netloc


# Verify: each mode, each failure.


def test_plain_http_needs_the_insecure_tick(plain_registry) -> None:
    with pytest.raises(Invalid, match="tick insecure"):
        external_services.verify(plain_registry.url)
    found = external_services.verify(plain_registry.url, insecure=True)
    assert (found.api_version, found.auth_type) == ("v2", "none")


def test_self_signed_registry_asks_for_trust_then_verifies(tls_registry, admin_actor) -> None:
    registry, _ = tls_registry
    with pytest.raises(UntrustedCertificate) as asked:
        external_services.verify(registry.url)
    assert asked.value.certificate["address"] == host_of(registry.url)
    assert asked.value.certificate["subject"] == "CN=wharf-test-registry"
    trust(admin_actor, asked.value.certificate["address"], asked.value.certificate["pem"])
    found = external_services.verify(registry.url)
    assert (found.api_version, found.auth_type) == ("v2", "none")


def test_trust_flow_through_the_api(tls_registry, portal_admin) -> None:
    registry, _ = tls_registry
    api = client_for(portal_admin)
    asked = api.post("/api/v1/registries/verify", {"address": registry.url}, format="json")
    assert asked.status_code == 409, asked.content
    certificate = asked.json()["certificate"]
    assert certificate["sha256"] and certificate["not_after"]
    trust(Actor(portal_admin), certificate["address"], certificate["pem"])
    verified = api.post("/api/v1/registries/verify", {"address": registry.url}, format="json")
    assert verified.status_code == 200, verified.content
    assert verified.json()["api_version"] == "v2"
    created = api.post("/api/v1/registries", {"name": "secure", "address": registry.url}, format="json")
    assert created.status_code == 201, created.content
    assert ExternalRegistry.objects.get(name="secure").last_verified is not None
    pin = TrustedCertificate.objects.get(address=certificate["address"])
    assert certificate_usages(pin) == ["registry 'secure'"]


def test_add_dialog_opens_the_trust_dialog_and_retries(tls_registry, client, portal_admin) -> None:
    registry, _ = tls_registry
    logged_in(client, portal_admin)
    form = {"address": registry.url, "name": "secure-ui", "verify": "1"}
    asked = client.post("/registries/new/", form, HTTP_HX_REQUEST="true")
    assert asked.status_code == 409
    text = page_text(asked)
    assert "Trust this certificate?" in text and "CN=wharf-test-registry" in text
    assert 'name="operation" value="verify"' in text
    pem = re.search(r'name="trust_pem" value="([^"]+)"', text).group(1)
    retry = {"address": registry.url, "name": "secure-ui", "operation": "verify", "trust": "1"}
    retry |= {"trust_address": host_of(registry.url), "trust_pem": html.unescape(pem)}
    verified = client.post("/registries/new/", retry, HTTP_HX_REQUEST="true")
    assert "Verified: a V2 registry with no authentication." in page_text(verified)
    saved = client.post("/registries/new/", {**form, "save": "1"}, HTTP_HX_REQUEST="true")
    assert saved.status_code == 204
    assert ExternalRegistry.objects.filter(name="secure-ui").exists()


def test_basic_auth_right_and_wrong_password(basic_registry, robot, wrong_robot) -> None:
    found = external_services.verify(basic_registry.url, robot, insecure=True)
    assert (found.api_version, found.auth_type) == ("v2", "basic")
    with pytest.raises(WrongCredentials, match="refused the credentials"):
        external_services.verify(basic_registry.url, wrong_robot, insecure=True)
    with pytest.raises(WrongCredentials, match="select a credential"):
        external_services.verify(basic_registry.url, insecure=True)


def test_bearer_token_auth_right_and_wrong_password(token_registry, robot, wrong_robot) -> None:
    registry, _ = token_registry
    found = external_services.verify(registry.url, robot, insecure=True)
    assert (found.api_version, found.auth_type) == ("v2", "bearer")
    with pytest.raises(WrongCredentials):
        external_services.verify(registry.url, wrong_robot, insecure=True)


def test_v1_server_is_detected(v1_registry) -> None:
    found = external_services.verify(v1_registry.url, insecure=True)
    assert (found.api_version, found.auth_type) == ("v1", "none")


def test_v1_server_with_basic_auth(robot, wrong_robot) -> None:
    with V1Registry({"legacy/secret": {"1.0": "abc"}}, username=USERNAME, password=PASSWORD) as server:
        found = external_services.verify(server.url, robot, insecure=True)
        assert (found.api_version, found.auth_type) == ("v1", "basic")
        with pytest.raises(WrongCredentials):
            external_services.verify(server.url, wrong_robot, insecure=True)


def test_failures_are_classified(hanging, settings) -> None:
    settings.EXTERNAL_REGISTRY_TIMEOUT_SECONDS = 1
    cases = {
        "dns": "http://wharf-no-such-host.invalid:5000",
        "refused": f"http://127.0.0.1:{free_port()}",
        "timeout": hanging.url,
    }
    for reason, url in cases.items():
        with pytest.raises(Unreachable) as failed:
            external_services.verify(url, insecure=True)
        assert failed.value.reason == reason, failed.value.message
    with pytest.raises(NotARegistry, match="not as a Docker registry"):
        external_services.verify(NotFoundServer().url, insecure=True)


def test_failure_reason_reaches_the_api(portal_admin) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    response = client_for(portal_admin).post("/api/v1/registries/verify", {"address": url, "insecure": True})
    assert response.status_code == 502
    assert "refused the connection" in response.json()["detail"]


# Saving, browsing, search.


def test_create_verifies_before_saving(admin_actor) -> None:
    with pytest.raises(Unreachable):
        external_services.create_registry(admin_actor, "down", f"http://127.0.0.1:{free_port()}", insecure=True)
    assert not ExternalRegistry.objects.filter(name="down").exists()


def test_catalog_tags_and_namespace(plain_registry, admin_actor, alpha, portal_admin) -> None:
    address = f"{plain_registry.url}/vmware"
    registry = external_services.create_registry(admin_actor, "vmware", address, insecure=True)
    assert registry.namespace == "vmware"
    outcome = search.search(portal_admin, alpha, "")
    assert {r["repository"] for r in outcome.results if r["registry"] == "vmware"} == {
        "vmware/admiral",
        "vmware/photon",
    }
    assert search.tags(portal_admin, alpha, "vmware", "vmware/photon") == ["1.0", "latest"]
    with pytest.raises(Invalid, match="outside the namespace 'vmware'"):
        search.tags(portal_admin, alpha, "vmware", "other/app")
    # The same registry again with another namespace reaches the other repositories.
    external_services.create_registry(admin_actor, "other", f"{plain_registry.url}/other", insecure=True)
    outcome = search.search(portal_admin, alpha, "app")
    assert [(r["registry"], r["repository"]) for r in outcome.results] == [("other", "other/app")]


def test_search_merges_registries_by_relevance(plain_registry, v1_registry, token_app_registry, robot, admin_actor,
                                               alpha, portal_admin) -> None:  # fmt: skip
    external_services.create_registry(admin_actor, "plain", plain_registry.url, insecure=True)
    external_services.create_registry(admin_actor, "old", v1_registry.url, insecure=True)
    external_services.create_registry(admin_actor, "tokens", token_app_registry.url, insecure=True, credential=robot)
    outcome = search.search(portal_admin, alpha, "app")
    assert outcome.partial == []
    found = [(r["registry"], r["repository"]) for r in outcome.results]
    assert ("plain", "other/app") in found and ("tokens", "team/token-app") in found
    assert found.index(("plain", "other/app")) < found.index(("tokens", "team/token-app"))  # exact leaf first
    legacy = search.search(portal_admin, alpha, "tool").results
    assert legacy == [
        {"registry": "old", "global": True, "repository": "legacy/tool", "description": "An old tool",
         "stars": 0, "official": False}
    ]  # fmt: skip
    assert search.tags(portal_admin, alpha, "old", "legacy/tool") == ["1.0", "latest"]
    assert search.tags(portal_admin, alpha, "tokens", "team/token-app") == ["3.0"]


def test_disabled_registry_disappears_from_search(plain_registry, admin_actor, alpha, portal_admin) -> None:
    registry = external_services.create_registry(admin_actor, "plain", plain_registry.url, insecure=True)
    assert search.search(portal_admin, alpha, "busybox").results
    external_services.update_registry(admin_actor, registry, enabled=False)
    assert search.search(portal_admin, alpha, "busybox").results == []


def test_hanging_registry_does_not_hang_the_search(plain_registry, hanging, admin_actor, alpha, portal_admin) -> None:
    external_services.create_registry(admin_actor, "plain", plain_registry.url, insecure=True)
    # Saved as verified earlier; it hangs from now on.
    ExternalRegistry.objects.create(name="stuck", address=hanging.url, insecure=True)
    started = time.monotonic()
    outcome = search.search(portal_admin, alpha, "busybox", deadline=1.5)
    elapsed = time.monotonic() - started
    assert elapsed < 2.5, f"search took {elapsed:.2f} s with a 1.5 s deadline"
    assert [r["repository"] for r in outcome.results] == ["library/busybox"]
    assert [p["registry"] for p in outcome.partial] == ["stuck"]


def test_search_api_names_partial_registries(plain_registry, hanging, admin_actor, settings, role_users) -> None:
    settings.SEARCH_DEADLINE_SECONDS = 1
    external_services.create_registry(admin_actor, "plain", plain_registry.url, insecure=True)
    ExternalRegistry.objects.create(name="stuck", address=hanging.url, insecure=True)
    response = client_for(role_users["viewer"]).get("/api/v1/projects/alpha/images?q=busybox")
    assert response.status_code == 200
    body = response.json()
    assert [r["registry"] for r in body["results"]] == ["plain"]
    assert body["partial"][0]["registry"] == "stuck"
    tags = client_for(role_users["viewer"]).get("/api/v1/projects/alpha/images/plain/library/busybox/tags")
    assert tags.json()["tags"] == ["1.0", "latest"]


# Project registries and permissions.


def test_project_admin_adds_project_registry_and_cannot_touch_globals(plain_registry, v1_registry, admin_actor,
                                                                      role_users, alpha, beta) -> None:  # fmt: skip
    external_services.create_registry(admin_actor, "plain", plain_registry.url, insecure=True)
    project_admin = Actor(role_users["project_admin"])
    own = external_services.create_registry(project_admin, "legacy", v1_registry.url, insecure=True, project=alpha)
    with pytest.raises(Forbidden):
        external_services.delete_registry(project_admin, ExternalRegistry.objects.get(name="plain"))
    with pytest.raises(Forbidden):
        external_services.create_registry(project_admin, "global-try", v1_registry.url, insecure=True)
    with pytest.raises(Conflict):
        external_services.create_registry(project_admin, "plain", v1_registry.url, insecure=True, project=alpha)
    listed = client_for(role_users["viewer"]).get("/api/v1/projects/alpha/registries").json()["results"]
    assert [(r["name"], r["global"]) for r in listed] == [("legacy", False), ("plain", True)]
    refused = client_for(role_users["project_admin"]).delete("/api/v1/projects/alpha/registries/plain")
    assert refused.status_code == 403
    # The project registry is searched for alpha only.
    assert search.search(role_users["portal_admin"], alpha, "tool").results
    assert not search.search(role_users["portal_admin"], beta, "tool").results
    with pytest.raises(Conflict, match="1 registry"):
        delete_project(admin_actor, alpha)
    external_services.delete_registry(project_admin, own)


def test_changing_the_credential_verifies_it_first(basic_registry, robot, wrong_robot, portal_admin) -> None:
    api = client_for(portal_admin)
    body = {"name": "basic", "address": basic_registry.url, "credential": "robot", "insecure": True}
    assert api.post("/api/v1/registries", body, format="json").status_code == 201
    refused = api.patch("/api/v1/registries/basic", {"credential": "wrong-robot"}, format="json")
    assert refused.status_code == 400 and "refused the credentials" in refused.json()["detail"]
    assert ExternalRegistry.objects.get(name="basic").credential == robot
    disabled = api.patch("/api/v1/registries/basic", {"enabled": False}, format="json")
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert disabled.json()["credential"] == "robot" and disabled.json()["auth_type"] == "basic"


def test_credential_in_use_cannot_be_deleted(basic_registry, robot, admin_actor) -> None:
    from portal.core.credentials import delete_credential

    external_services.create_registry(admin_actor, "basic", basic_registry.url, insecure=True, credential=robot)
    with pytest.raises(Conflict, match="registry 'basic'"):
        delete_credential(admin_actor, robot)


def test_secrets_never_in_responses_or_logs(basic_registry, token_app_registry, robot, wrong_robot, portal_admin,
                                            caplog, alpha) -> None:  # fmt: skip
    caplog.set_level(logging.DEBUG)
    api = client_for(portal_admin)
    bodies = [
        api.post(
            "/api/v1/registries/verify",
            {"address": basic_registry.url, "credential": "robot", "insecure": True},
            format="json",
        ),
        api.post(
            "/api/v1/registries/verify",
            {"address": basic_registry.url, "credential": "wrong-robot", "insecure": True},
            format="json",
        ),
        api.post(
            "/api/v1/registries",
            {"name": "basic", "address": basic_registry.url, "credential": "robot", "insecure": True},
            format="json",
        ),
        api.post(
            "/api/v1/registries",
            {"name": "tokens", "address": token_app_registry.url, "credential": "robot", "insecure": True},
            format="json",
        ),
        api.get("/api/v1/registries"),
        api.get("/api/v1/registries/basic"),
        api.get("/api/v1/projects/alpha/registries"),
        api.get("/api/v1/projects/alpha/images?q=app"),
        api.get("/api/v1/projects/alpha/images/tokens/team/token-app/tags"),
    ]
    assert [b.status_code for b in bodies] == [200, 400, 201, 201, 200, 200, 200, 200, 200]
    encoded = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    audit = json.dumps(list(AuditEvent.objects.values("detail", "resource_name")), default=str)
    for text in [*(b.content.decode() for b in bodies), caplog.text, audit]:
        assert PASSWORD not in text and encoded not in text

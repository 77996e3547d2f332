"""Attacks found on the running portal, reproduced against the live one (gunicorn over HTTPS, the real
registry, a real worker) and now refused."""

from __future__ import annotations

import base64
import http.server
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from django.conf import settings

from portal.core import credentials
from portal.core.audit import Actor
from portal.core.models import AuditEvent, User
from portal.core.services import create_token
from projects.models import Membership, Role
from registries.models import RegistryEvent, Repository, Tag
from tests.integration import test_registry_push_pull as live
from tests.integration.images import push_image
from tests.integration.test_registry_push_pull import People, Portal, RawConnection, dev_token

# The push/pull tests' live portal and people, as this module's fixtures.
portal = live.portal
people = live.people

# Forms of /v2/alpha/app/manifests/1.0 that a registry cleaning its paths serves as that manifest,
# but whose first segment or reference is not what the portal would judge by.
PATH_TRICKS = [
    "/v2/library/../alpha/app/manifests/1.0",
    "/v2/alpha/app/./manifests/1.0",
    "/v2/alpha/app/manifests/./1.0",
    "/v2/library/%2e%2e/alpha/app/manifests/1.0",
    "/v2/library/%2E%2E/alpha/app/manifests/1.0",
    "/v2/alpha%2fapp/manifests/1.0",
    "/v2/alpha//app/manifests/1.0",
]


@pytest.mark.parametrize("path", PATH_TRICKS)
def test_content_trust_is_not_bypassed_by_a_path_that_is_not_canonical(
    portal: Portal, people: People, path: str
) -> None:
    push_image(portal.registry.url, "alpha/app", ["1.0"])
    people.alpha.content_trust = True
    people.alpha.save()
    token = dev_token(portal, people, "repository:alpha/app:pull")
    connection = RawConnection(portal)
    try:
        accept = "application/vnd.docker.distribution.manifest.v2+json"
        head = f"Host: {portal.host}\nAuthorization: Bearer {token}\nAccept: {accept}"
        judged = connection.request(f"GET /v2/alpha/app/manifests/1.0 HTTP/1.1\n{head}\n")
        assert judged.status == 412, judged.body[:300]
        tricked = connection.request(f"GET {path} HTTP/1.1\n{head}\n")
    finally:
        connection.close()
    assert tricked.status == 400, f"{path} -> {tricked.status}: {tricked.body[:300]!r}"
    assert b"NAME_INVALID" in tricked.body and b"not canonical" in tricked.body


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A registry-looking server on loopback that asks for Basic auth and records every Authorization it gets."""

    seen: list[str] = []

    def do_GET(self) -> None:
        if self.headers.get("Authorization"):
            type(self).seen.append(self.headers["Authorization"])
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="attacker"')
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def attacker() -> Iterator[tuple[str, list[str]]]:
    """The address of a server that keeps whatever credentials it is sent."""
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Recorder.seen
    server.shutdown()
    server.server_close()


def test_a_project_admin_cannot_send_a_global_credential_to_an_address_of_their_choosing(
    portal: Portal, people: People, attacker: tuple[str, list[str]]
) -> None:
    address, seen = attacker
    admin = Actor(User.objects.create_user("alpha-admin", password="x", is_portal_admin=True))
    credentials.create_credential(admin, "hub-cred", "password", username="hubuser", password="Hub-Secret-42")
    owner = User.objects.create_user("alpha-owner", password="x")
    Membership.objects.create(project=people.alpha, user=owner, role=Role.ADMIN)
    headers = {"Authorization": f"Bearer {create_token(Actor(owner), 'api')[1]}"}

    def api(method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, f"{portal.url}{path}", json=body, headers=headers, verify=portal.ca, timeout=10)

    body = {"address": address, "insecure": True, "credential": "hub-cred"}
    names = [c["name"] for c in api("GET", "/api/v1/credentials").json()["results"]]
    added = api("POST", "/api/v1/projects/alpha/registries", {**body, "name": "x"})
    verified = api("POST", "/api/v1/registries/verify", {**body, "project": "alpha"})
    assert "hub-cred" not in names
    assert added.status_code == 403 and "credential 'hub-cred' may not be used" in added.json()["detail"]
    assert verified.status_code == 403
    assert seen == [], "the global credential reached the attacker's address"
    # The project's own credential is theirs to send where they choose.
    mine = {"name": "alpha-cred", "kind": "password", "username": "me", "password": "Mine-42", "project": "alpha"}
    assert api("POST", "/api/v1/credentials", mine).status_code == 201
    api("POST", "/api/v1/registries/verify", {**body, "credential": "alpha-cred", "project": "alpha"})
    assert seen and all(base64.b64decode(value.split()[1]).startswith(b"me:") for value in seen)


def test_the_registry_does_not_log_the_notification_secret(portal: Portal) -> None:
    # At start-up the registry logged its notification endpoint with its headers, the shared secret among them.
    log = portal.registry.log_path.read_text(errors="replace")
    assert settings.REGISTRY_NOTIFY_SECRET not in log
    assert "configuring endpoint" not in log


def _forge(portal: Portal, event: dict) -> None:
    """Post one event to the portal's notification endpoint as the registry would, secret included."""
    envelope = {"events": [event]}
    posted = requests.post(
        f"{portal.url}/service/notifications",
        json=envelope,
        headers={
            "Authorization": f"Bearer {settings.REGISTRY_NOTIFY_SECRET}",
            "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        },
        timeout=10,
        verify=portal.ca,
    )
    assert posted.status_code == 200, posted.text


def _push_event(repository: str, tag: str, digest: str, actor: str) -> dict:
    return {
        "id": f"forged-{repository}-{tag}-{time.monotonic_ns()}",
        "timestamp": "2026-12-01T00:00:00Z",
        "action": "push",
        "target": {
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "digest": digest,
            "length": 500,
            "repository": repository,
            "url": f"http://registry/v2/{repository}/manifests/{digest}",
            "tag": tag,
        },
        "request": {"id": "r", "addr": "198.51.100.7:4242", "host": "wharf", "method": "PUT"},
        "actor": {"name": actor},
    }


def test_a_forged_push_event_is_not_believed(portal: Portal, people: People) -> None:
    image = push_image(portal.registry.url, "alpha/real", ["1.0"])
    # Someone holding the secret claims pushes the registry never served: a tag that does not exist, and an
    # image that does not exist, "pushed by" the viewer.
    _forge(portal, _push_event("alpha/real", "evil", image.digest, "viewer"))
    _forge(portal, _push_event("alpha/ghost", "1.0", "sha256:" + "0" * 64, "viewer"))
    _forge(portal, _push_event("alpha/real", "1.0", image.digest, "viewer"))
    deadline = time.monotonic() + 20
    while RegistryEvent.objects.filter(event_id__startswith="forged-", applied__isnull=True).exists():
        assert time.monotonic() < deadline, "the worker did not apply the events"
        time.sleep(0.2)
    assert not Tag.objects.filter(repository__name="alpha/real", name="evil").exists()
    assert not Repository.objects.filter(name="alpha/ghost").exists()
    assert not AuditEvent.objects.filter(resource_name__in=["alpha/real:evil", "alpha/ghost:1.0"]).exists()
    # The real tag's push is confirmed, but not "by the viewer": the portal never served the viewer that push.
    assert Tag.objects.get(repository__name="alpha/real", name="1.0").pushed_by != "viewer"
    assert not AuditEvent.objects.filter(username="viewer", action="push").exists()

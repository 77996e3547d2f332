"""The /v2/ proxy in front of a stand-in registry: streaming, URL rewriting, portal rules, the filtered catalog."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client

from portal.core.models import User
from projects.models import Project
from registries.client import manifest_digest
from registries.maintenance import enter_read_only, leave_read_only
from registries.models import ObservedManifest
from registries.token import grant, issue, parse_scope

MANIFEST = b'{"schemaVersion": 2}'


class FakeRegistry(BaseHTTPRequestHandler):
    """Answers like distribution does for the few calls the tests make, and records what it received."""

    received: list[dict[str, Any]]

    def log_message(self, *args: object) -> None:
        pass

    def _record(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        return body

    def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        self._record()
        host = f"127.0.0.1:{self.server.server_port}"
        if self.path == "/v2/":
            self._answer(
                401,
                b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                WWW_Authenticate='Bearer realm="http://somewhere/token",service="wharf-registry"',
            )
        elif self.path.startswith("/v2/_catalog"):
            names = ["alpha/app", "alpha/team/web", "beta/db", "library/busybox", "orphan/x"]
            self._answer(200, json.dumps({"repositories": names}).encode(), Content_Type="application/json")
        elif "/blobs/" in self.path:
            self._answer(206, b"0123456789"[2:6], Content_Range="bytes 2-5/10", Location=f"http://{host}/v2/x")
        else:
            self._answer(
                200,
                MANIFEST,
                Content_Type="application/vnd.oci.image.index.v1+json",
                Docker_Content_Digest=manifest_digest(MANIFEST),
            )

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._record()
        host = f"127.0.0.1:{self.server.server_port}"
        self._answer(202, Location=f"http://{host}/v2/alpha/app/blobs/uploads/u1?_state=abc", Range="0-0")

    def do_PATCH(self) -> None:
        body = self._record()
        self._answer(202, Range=f"0-{len(body) - 1}")


@pytest.fixture
def registry(settings: Any) -> Iterator[list[dict[str, Any]]]:
    """A stand-in registry on the loopback; yields the requests it received."""
    received: list[dict[str, Any]] = []
    handler = type("Handler", (FakeRegistry,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.REGISTRY_URL = f"http://127.0.0.1:{server.server_port}"
    yield received
    server.shutdown()
    server.server_close()


def bearer(user: User | None, scope: str) -> str:
    """An Authorization header with a token the token service would give the user."""
    return "Bearer " + issue(user.username if user else "", grant(user, parse_scope(scope)), 60)[0]


def test_challenge_sends_clients_to_the_portals_token_service(db, registry: list) -> None:
    response = Client().get("/v2/", HTTP_HOST="wharf.example:8282")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Bearer realm="http://wharf.example:8282/service/token"')
    assert 'service="wharf-registry"' in response["WWW-Authenticate"]


def test_upload_location_points_back_at_the_portal(role_users: dict, registry: list) -> None:
    token = bearer(role_users["developer"], "repository:alpha/app:push,pull")
    response = Client().post("/v2/alpha/app/blobs/uploads/", HTTP_HOST="wharf.example:8282", HTTP_AUTHORIZATION=token)
    assert response.status_code == 202
    assert response["Location"] == "http://wharf.example:8282/v2/alpha/app/blobs/uploads/u1?_state=abc"
    assert registry[-1]["headers"]["Authorization"] == token


def test_upload_body_reaches_the_registry(role_users: dict, registry: list) -> None:
    token = bearer(role_users["developer"], "repository:alpha/app:push,pull")
    blob = bytes(range(256)) * 4096
    response = Client().generic(
        "PATCH",
        "/v2/alpha/app/blobs/uploads/u1?_state=abc",
        blob,
        content_type="application/octet-stream",
        HTTP_AUTHORIZATION=token,
    )
    assert response.status_code == 202
    assert response["Range"] == f"0-{len(blob) - 1}"
    assert registry[-1]["body"] == blob
    assert registry[-1]["path"] == "/v2/alpha/app/blobs/uploads/u1?_state=abc"


@pytest.mark.parametrize(
    ("who", "scope", "credentials"),
    [(None, "", False), ("viewer", "repository:alpha/app:pull", True), ("developer", "repository:beta/db:push", True)],
)
def test_a_body_the_token_may_not_push_is_never_read(
    role_users: dict, registry: list, who: str | None, scope: str, credentials: bool
) -> None:
    # The registry would refuse it: it gets the request without the body (and, with no token, without credentials)
    # and answers; a client trickling the body never holds a web thread.
    headers = {"HTTP_AUTHORIZATION": bearer(role_users[who], scope)} if who else {}
    response = Client().generic(
        "PATCH",
        "/v2/alpha/app/blobs/uploads/u1?_state=abc",
        b"x" * 4096,
        content_type="application/octet-stream",
        **headers,
    )
    assert response.status_code == 202  # what the stand-in registry answers to anything
    assert registry[-1]["body"] == b""
    assert registry[-1]["headers"]["Content-Length"] == "0"
    assert ("Authorization" in registry[-1]["headers"]) is credentials


def test_range_requests_stream_the_partial_blob(role_users: dict, registry: list) -> None:
    token = bearer(role_users["viewer"], "repository:alpha/app:pull")
    response = Client().get("/v2/alpha/app/blobs/sha256:abc", HTTP_AUTHORIZATION=token, HTTP_RANGE="bytes=2-5")
    assert response.status_code == 206
    assert b"".join(response.streaming_content) == b"2345"
    assert response["Content-Range"] == "bytes 2-5/10"
    assert registry[-1]["headers"]["Range"] == "bytes=2-5"


def test_head_keeps_the_content_length(role_users: dict, registry: list) -> None:
    token = bearer(role_users["viewer"], "repository:alpha/app:pull")
    response = Client().head("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=token)
    assert response.status_code == 200
    assert response["Content-Length"] == str(len(MANIFEST))
    assert response["Content-Type"] == "application/vnd.oci.image.index.v1+json"


def test_index_passes_through_untouched(role_users: dict, registry: list) -> None:
    token = bearer(role_users["viewer"], "repository:alpha/app:pull")
    response = Client().get("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=token)
    assert b"".join(response.streaming_content) == MANIFEST


def test_policy_refuses_manifest_pulls_with_412(role_users: dict, alpha: Project, registry: list) -> None:
    alpha.prevent_vulnerable = True
    alpha.save()
    token = bearer(role_users["viewer"], "repository:alpha/app:pull")
    response = Client().get("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=token)
    assert response.status_code == 412
    error = response.json()["errors"][0]
    assert error["code"] == "PROJECT_POLICY_VIOLATION"
    assert "not scanned" in error["message"]
    assert not registry, "a refused pull must not reach the registry (it would count as a pull)"
    # Layers stay reachable (they are not images), and callers without pull access get the registry's 401.
    assert Client().get("/v2/alpha/app/blobs/sha256:abc", HTTP_AUTHORIZATION=token).status_code == 206
    outsider = bearer(role_users["other_project_admin"], "repository:alpha/app:pull")
    assert Client().get("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=outsider).status_code == 200
    assert registry[-1]["path"] == "/v2/alpha/app/manifests/1"


def test_content_trust_withholds_an_unsigned_manifest_the_registry_served(
    role_users: dict, alpha: Project, registry: list
) -> None:
    """The registry is asked (the signature must name the digest it serves now), its answer is withheld."""
    alpha.content_trust = True
    alpha.save()
    token = bearer(role_users["viewer"], "repository:alpha/app:pull")
    for method in ("get", "head"):
        response = getattr(Client(), method)("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=token)
        assert response.status_code == 412
        assert MANIFEST not in response.content
    assert registry[-1]["path"] == "/v2/alpha/app/manifests/1"
    error = Client().get("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=token).json()["errors"][0]
    assert error["code"] == "PROJECT_POLICY_VIOLATION"
    assert error["message"].startswith("image not signed: no trust data"), error
    # The refused pull is not one the portal served: the registry's pull event will not be counted.
    assert not ObservedManifest.objects.filter(action="pull").exists()
    # Blobs are not images, and callers without pull access get the registry's own answer.
    assert Client().get("/v2/alpha/app/blobs/sha256:abc", HTTP_AUTHORIZATION=token).status_code == 206
    outsider = bearer(role_users["other_project_admin"], "repository:alpha/app:pull")
    assert Client().get("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=outsider).status_code == 200


def test_missing_project_is_named_to_a_portal_admin(role_users: dict, registry: list) -> None:
    token = bearer(role_users["portal_admin"], "repository:nope/app:push,pull")
    response = Client().post("/v2/nope/app/blobs/uploads/", HTTP_AUTHORIZATION=token)
    assert response.status_code == 403
    assert response.json()["errors"][0] == {
        "code": "DENIED",
        "message": "project 'nope' does not exist",
        "detail": None,
    }
    assert not registry


@pytest.mark.parametrize("user", ["anonymous", "developer"])
def test_missing_project_is_answered_as_a_private_one(role_users: dict, registry: list, beta, user: str) -> None:
    """Whoever may not see every project gets the registry's answer for a repository their token grants nothing
    on, for a missing project as for a private one they are not in."""
    for project in ("nope", "beta"):
        token = bearer(role_users[user], f"repository:{project}/app:pull")
        response = Client().get(f"/v2/{project}/app/manifests/1", HTTP_AUTHORIZATION=token)
        assert response.status_code == 200  # the stand-in registry's answer, whatever the token
        assert registry[-1]["path"] == f"/v2/{project}/app/manifests/1"


def test_read_only_refuses_writes_and_serves_reads(role_users: dict, registry: list) -> None:
    token = bearer(role_users["developer"], "repository:alpha/app:push,pull")
    enter_read_only()
    try:
        response = Client().post("/v2/alpha/app/blobs/uploads/", HTTP_AUTHORIZATION=token)
        assert response.status_code == 405
        assert response.json()["errors"][0]["message"] == "registry is read-only for maintenance"
        assert Client().get("/v2/alpha/app/manifests/1", HTTP_AUTHORIZATION=token).status_code == 200
    finally:
        leave_read_only()


def _catalog(user: User | None, **params: str) -> Any:
    response = Client().get("/v2/_catalog", params, HTTP_AUTHORIZATION=bearer(user, "registry:catalog:*"))
    assert response.status_code == 200, response.content
    return response


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("anonymous", ["library/busybox"]),
        ("viewer", ["alpha/app", "alpha/team/web", "library/busybox"]),
        ("other_project_admin", ["beta/db", "library/busybox"]),
    ],
)
def test_catalog_lists_only_what_the_caller_may_pull(
    role_users: dict, registry: list, role: str, expected: list[str]
) -> None:
    Project.objects.create(name="library", public=True)
    assert _catalog(role_users[role]).json()["repositories"] == expected


def test_catalog_is_the_registrys_own_for_portal_admins(role_users: dict, registry: list) -> None:
    names = json.loads(b"".join(_catalog(role_users["portal_admin"]).streaming_content))["repositories"]
    assert "orphan/x" in names


def test_catalog_pages(role_users: dict, registry: list) -> None:
    first = _catalog(role_users["viewer"], n="1")
    assert first.json()["repositories"] == ["alpha/app"]
    assert first["Link"] == '</v2/_catalog?last=alpha/app&n=1>; rel="next"'
    assert _catalog(role_users["viewer"], n="5", last="alpha/app").json()["repositories"] == ["alpha/team/web"]

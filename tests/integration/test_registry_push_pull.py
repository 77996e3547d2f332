"""docker login / push / pull through the portal's token service and /v2/ proxy, with a real dockerd and registry.

The portal runs in gunicorn over HTTPS with its own certificate, as `make run` serves it. dockerd treats registries
on 127.0.0.0/8 as insecure (HTTPS without verification, then plain HTTP), so no CA needs installing; HTTPS avoids
the 10-second TLS timeout each plain-HTTP fallback would cost. gunicorn rather than pytest-django's live_server:
docker uploads blobs with chunked request bodies, which Django's development server cannot read.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from portal.core.audit import Actor
from portal.core.certificates import ensure_pki, pki_paths
from portal.core.models import User
from portal.core.services import create_token
from portal.launcher import trust_bundle, web_command
from projects.models import Membership, Project, Role
from registries.maintenance import enter_read_only, leave_read_only
from tests.conftest import PASSWORD
from tests.integration.dockerd import Dockerd, busybox_rootfs, start_dockerd
from tests.integration.registry import Registry, start_registry
from tests.integration.slapd import free_port
from tests.integration.worker import BASE_DIR, database_url, forget_queue, redis_url, start_worker

pytestmark = pytest.mark.integration
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


@dataclass
class Portal:
    """The portal in gunicorn in front of a real registry."""

    host: str
    process: subprocess.Popen
    registry: Registry
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def ca(self) -> str:
        return str(pki_paths().ca_cert)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    daemon = start_dockerd()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("rootfs") / "busybox.tar")


@contextlib.contextmanager
def live_portal(workdir: Path, threads: int = 8, **knobs: str) -> Iterator[Portal]:
    """gunicorn (2 workers of `threads` threads) serving the portal on the test database, the /v2/ proxy pointing at
    a real registry, and a Celery worker on Redis applying the registry's events as in production; `knobs` are
    extra WHARF_* settings of the web processes."""
    from django.db import connection

    port = free_port()
    pki = pki_paths()
    with pytest.MonkeyPatch.context() as patch:
        # The registry's Go client must trust the portal's HTTPS for its notifications, as the launcher arranges.
        patch.setenv("SSL_CERT_FILE", str(trust_bundle(pki, workdir / "ca-bundle.crt")))
        registry = start_registry(workdir, notify_url=f"https://127.0.0.1:{port}/service/notifications")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "WHARF_DATABASE_URL": database_url(connection.settings_dict),
        "WHARF_DATA_DIR": str(settings.DATA_DIR),
        "WHARF_REGISTRY_URL": registry.url,
        "WHARF_TASKS_EAGER": "false",
        "WHARF_BROKER_URL": redis_url(),
        "WHARF_TASK_QUEUE": f"wharf-test-{uuid.uuid4().hex[:12]}",
    }
    worker = start_worker(env, workdir, env["WHARF_TASK_QUEUE"])
    log_path = workdir / "gunicorn.log"
    command = web_command(f"127.0.0.1:{port}", pki.server_cert, pki.server_key, 2, threads, "--timeout", "120")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=BASE_DIR, env={**env, **knobs}, stdout=log, stderr=subprocess.STDOUT)
    server = Portal(f"127.0.0.1:{port}", process, registry, log_path)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, f"gunicorn exited with {process.returncode}:\n{server.log()}"
        try:
            if requests.get(f"{server.url}/v2/", timeout=10, verify=server.ca).status_code == 401:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"the portal did not answer on {server.url}:\n{server.log()}"
        time.sleep(0.2)
    try:
        yield server
    finally:
        process.terminate()
        process.wait(timeout=20)
        worker.stop()
        forget_queue(env["WHARF_BROKER_URL"], worker.queue)
        registry.stop()


@pytest.fixture(scope="module")
def portal(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The live portal of these tests (see live_portal)."""
    with live_portal(tmp_path_factory.mktemp("portal")) as server:
        yield server


@dataclass
class People:
    """Projects and users of the push/pull tests, with the docker login secret of each user."""

    alpha: Project
    public: Project
    secrets: dict[str, str]


def _wait_until_events_settle(quiet_seconds: float = 1.5, limit: float = 15) -> None:
    """Wait until the registry stops delivering notifications to the portal.

    The portal process writes them into the test database; a write racing the database flush at
    the end of a test can deadlock that flush.
    """
    from portal.core.models import AuditEvent

    deadline = time.monotonic() + limit
    last, quiet_since = AuditEvent.objects.count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_seconds:
        time.sleep(0.25)
        current = AuditEvent.objects.count()
        if current != last:
            last, quiet_since = current, time.monotonic()


@pytest.fixture
def people(transactional_db: None) -> Iterator[People]:
    """Private `alpha` (developer, viewer) and public `library`; an outsider; API tokens as docker passwords."""
    alpha = Project.objects.create(name="alpha")
    public = Project.objects.create(name="library", public=True)
    secrets = {}
    for name, role in (("dev", Role.DEVELOPER), ("viewer", Role.VIEWER), ("outsider", None)):
        user = User.objects.create_user(name, password=PASSWORD)
        if role:
            Membership.objects.create(project=alpha, user=user, role=role)
        if name == "dev":
            Membership.objects.create(project=public, user=user, role=Role.DEVELOPER)
        secrets[name] = create_token(Actor(user), "docker")[1]
    yield People(alpha, public, secrets)
    _wait_until_events_settle()


@pytest.fixture
def docker(dockerd: Dockerd, portal: Portal, rootfs: Path) -> Iterator[Dockerd]:
    """The private daemon with no images and no login left from an earlier test."""
    yield dockerd
    dockerd.run("logout", portal.host)
    dockerd.run("image", "prune", "--all", "--force")


def login(docker: Dockerd, portal: Portal, username: str, secret: str) -> None:
    docker.ok("login", portal.host, "--username", username, "--password-stdin", input=secret)


def build(docker: Dockerd, rootfs: Path, reference: str) -> str:
    """Import the busybox root filesystem as `reference`; returns the image ID."""
    return docker.ok("import", str(rootfs), reference).strip()


def push_as_dev(docker: Dockerd, portal: Portal, rootfs: Path, people: People, image: str) -> None:
    """Log in as the developer, import the busybox image as `image` and push it through the portal, then remove
    the local copy, so that a pull fetches it through the portal again."""
    login(docker, portal, "dev", people.secrets["dev"])
    build(docker, rootfs, image)
    docker.ok("push", image)
    docker.ok("rmi", image)


def refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """Check the docker command failed with every word in its error output; returns the output."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"expected a refusal, but it worked:\n{output}"
    for word in words:
        assert word in output, f"{word!r} not in the docker error:\n{output}"
    return output


def dev_token(portal: Portal, people: People, scope: str) -> str:
    """A registry token for the developer from the portal's token service."""
    return requests.get(
        f"{portal.url}/service/token",
        params={"service": "wharf-registry", "scope": scope},
        auth=("dev", people.secrets["dev"]),
        timeout=10,
        verify=portal.ca,
    ).json()["token"]


def test_password_login_push_and_pull(docker: Dockerd, portal: Portal, rootfs: Path, people: People) -> None:
    # A real password (not an API token): hashed as the portal process hashes them.
    user = User.objects.get(username="dev")
    hasher = PBKDF2PasswordHasher()
    user.password = hasher.encode(PASSWORD, hasher.salt())
    user.save()
    login(docker, portal, "dev", PASSWORD)
    image = f"{portal.host}/alpha/app:1.0"
    built = build(docker, rootfs, image)
    docker.ok("push", image)
    # Nothing local any more, so the pull fetches every blob through the proxy.
    docker.ok("image", "prune", "--all", "--force")
    docker.ok("pull", image)
    assert docker.ok("image", "inspect", "--format", "{{.Id}}", image).strip() == built


def test_developer_pushes_viewer_pulls_but_cannot_push(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People
) -> None:
    image = f"{portal.host}/alpha/team/web:2"
    push_as_dev(docker, portal, rootfs, people, image)

    login(docker, portal, "viewer", people.secrets["viewer"])
    docker.ok("pull", image)
    docker.ok("tag", image, f"{portal.host}/alpha/team/web:viewer")
    refused(docker.run("push", f"{portal.host}/alpha/team/web:viewer"), "denied")


def test_outsider_cannot_pull_a_private_project(docker: Dockerd, portal: Portal, rootfs: Path, people: People) -> None:
    image = f"{portal.host}/alpha/secret:1"
    push_as_dev(docker, portal, rootfs, people, image)
    login(docker, portal, "outsider", people.secrets["outsider"])
    refused(docker.run("pull", image), "denied")


def test_anonymous_pulls_a_public_project(docker: Dockerd, portal: Portal, rootfs: Path, people: People) -> None:
    image = f"{portal.host}/library/busybox:latest"
    push_as_dev(docker, portal, rootfs, people, image)
    docker.ok("logout", portal.host)
    docker.ok("pull", image)
    refused(docker.run("pull", f"{portal.host}/alpha/anything:1"))


def test_push_to_a_missing_project_names_it_to_a_portal_admin(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People
) -> None:
    image = f"{portal.host}/nope/app:1"
    build(docker, rootfs, image)
    # Anyone else is refused as for a private project they are not in: a missing project is not told apart.
    login(docker, portal, "dev", people.secrets["dev"])
    assert "does not exist" not in refused(docker.run("push", image), "denied")
    admin = User.objects.create_user("root-admin", password=PASSWORD, is_portal_admin=True)
    login(docker, portal, "root-admin", create_token(Actor(admin), "docker")[1])
    refused(docker.run("push", image), "project 'nope' does not exist")


@pytest.mark.parametrize(
    ("rule", "reason"), [("content_trust", "image not signed"), ("prevent_vulnerable", "not scanned")]
)
def test_pull_blocked_by_policy_shows_the_reason(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People, rule: str, reason: str
) -> None:
    image = f"{portal.host}/alpha/guarded:1"
    push_as_dev(docker, portal, rootfs, people, image)
    setattr(people.alpha, rule, True)
    people.alpha.save()
    refused(docker.run("pull", image), reason)
    setattr(people.alpha, rule, False)
    people.alpha.save()
    docker.ok("pull", image)


def test_policy_does_not_stand_in_the_way_of_pushes(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People
) -> None:
    people.alpha.content_trust = people.alpha.prevent_vulnerable = True
    people.alpha.save()
    image = f"{portal.host}/alpha/guarded:2"
    push_as_dev(docker, portal, rootfs, people, image)


def test_pushes_are_refused_in_read_only_mode_and_pulls_continue(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People
) -> None:
    image = f"{portal.host}/alpha/maint:1"
    push_as_dev(docker, portal, rootfs, people, image)
    enter_read_only()
    try:
        docker.ok("pull", image)
        docker.ok("tag", image, f"{portal.host}/alpha/maint:2")
        refused(docker.run("push", f"{portal.host}/alpha/maint:2"), "read-only for maintenance")
    finally:
        leave_read_only()


def _blob(layout: Path, data: bytes, media_type: str) -> dict[str, object]:
    """Store a blob in an OCI layout; returns its descriptor."""
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _json_blob(layout: Path, document: dict[str, object], media_type: str) -> dict[str, object]:
    return _blob(layout, json.dumps(document).encode(), media_type)


def oci_multi_arch_layout(layout: Path, rootfs: Path, tag: str) -> str:
    """An OCI layout whose `tag` is an image index of linux/amd64 and linux/arm64 images; returns the index digest."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    raw = rootfs.read_bytes()
    layer = _blob(layout, gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip")
    manifests = []
    for arch in ("amd64", "arm64"):
        config = _json_blob(
            layout,
            {
                "architecture": arch,
                "os": "linux",
                "config": {"Cmd": ["/bin/sh"]},
                "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(raw).hexdigest()}"]},
            },
            "application/vnd.oci.image.config.v1+json",
        )
        manifest = _json_blob(
            layout, {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer]}, OCI_MANIFEST
        )
        manifests.append({**manifest, "platform": {"architecture": arch, "os": "linux"}})
    index = _json_blob(layout, {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}, OCI_INDEX)
    index["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [index]}))
    return str(index["digest"])


def test_multi_arch_index_is_pushed_and_pulled_untouched(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People, tmp_path: Path
) -> None:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not installed: apt-get install skopeo (make test does)"
    digest = oci_multi_arch_layout(tmp_path / "layout", rootfs, "1")
    copy = subprocess.run(
        [
            skopeo, "--insecure-policy", "copy", "--all", "--dest-tls-verify=false",
            "--dest-creds", f"dev:{people.secrets['dev']}",
            f"oci:{tmp_path / 'layout'}:1", f"docker://{portal.host}/alpha/multi:1",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert copy.returncode == 0, f"skopeo copy failed:\n{copy.stdout}\n{copy.stderr}"

    # The index comes back byte for byte, with its media type and digest.
    token = dev_token(portal, people, "repository:alpha/multi:pull")
    index = requests.get(
        f"{portal.url}/v2/alpha/multi/manifests/1",
        headers={"Authorization": f"Bearer {token}", "Accept": OCI_INDEX},
        timeout=10,
        verify=portal.ca,
    )
    assert index.status_code == 200, index.text
    assert index.headers["Content-Type"] == OCI_INDEX
    assert index.headers["Docker-Content-Digest"] == digest
    assert "sha256:" + hashlib.sha256(index.content).hexdigest() == digest

    login(docker, portal, "viewer", people.secrets["viewer"])
    docker.ok("pull", f"{portal.host}/alpha/multi:1")
    assert docker.ok("image", "inspect", "--format", "{{.Architecture}}", f"{portal.host}/alpha/multi:1").strip() == (
        "amd64"
    )


def _wait_for_tags(repository: str, tags: set[str], portal: Portal) -> None:
    """Wait until the registry's push notifications have recorded the tags (deadline 20 s)."""
    from registries.models import Tag

    deadline = time.monotonic() + 20
    while set(Tag.objects.filter(repository__name=repository).values_list("name", flat=True)) != tags:
        assert time.monotonic() < deadline, f"tags {sorted(tags)} of {repository} never arrived:\n{portal.log()}"
        time.sleep(0.2)


def test_deleting_one_of_two_tags_on_a_digest_leaves_the_other_pullable(
    docker: Dockerd, portal: Portal, rootfs: Path, people: People
) -> None:
    admin = User.objects.create_user("registry-admin", is_portal_admin=True)
    api_token = create_token(Actor(admin), "api")[1]
    login(docker, portal, "dev", people.secrets["dev"])
    first, second = f"{portal.host}/alpha/twins:1.0", f"{portal.host}/alpha/twins:latest"
    build(docker, rootfs, first)
    docker.ok("tag", first, second)
    docker.ok("push", first)
    docker.ok("push", second)
    _wait_for_tags("alpha/twins", {"1.0", "latest"}, portal)

    deleted = requests.delete(
        f"{portal.url}/api/v1/projects/alpha/repositories/twins/tags/1.0",
        headers={"Authorization": f"Bearer {api_token}"},
        verify=portal.ca,
        timeout=30,
    )
    assert deleted.status_code == 204, deleted.text

    docker.ok("image", "prune", "--all", "--force")
    docker.ok("pull", second)
    refused(docker.run("pull", first), "not found")


@dataclass
class RawResponse:
    status: int
    headers: Any
    body: bytes


class RawConnection:
    """One kept-alive HTTPS connection to the portal, writing requests byte for byte (framing included)."""

    def __init__(self, portal: Portal) -> None:
        host, port = portal.host.split(":")
        context = ssl.create_default_context(cafile=portal.ca)
        self.sock = context.wrap_socket(socket.create_connection((host, int(port)), timeout=30), server_hostname=host)

    def request(self, head: str, *body: bytes) -> RawResponse:
        """Send the head (lines joined with \\n, CRLF on the wire) and the body pieces; read the whole answer."""
        self.sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for piece in body:
            self.sock.sendall(piece)
        response = http.client.HTTPResponse(self.sock)
        response.begin()
        return RawResponse(response.status, response.headers, response.read())

    def close(self) -> None:
        self.sock.close()


def test_uploads_read_off_the_socket_keep_every_byte_and_the_connection(portal: Portal, people: People) -> None:
    # Uploads are read straight off gunicorn's socket (registries/bodies.py): odd chunk framing, a trailer and a
    # Content-Length body on one kept-alive connection all reach the registry intact.
    token = dev_token(portal, people, "repository:alpha/raw:push,pull")
    auth = f"Authorization: Bearer {token}\nHost: {portal.host}"
    first, second = os.urandom(300_000), os.urandom(70_000)
    wire = (
        b"1;ext=1\r\n" + first[:1] + b"\r\n"
        + b"FFFF\r\n" + first[1:65536] + b"\r\n"
        + b"%x\r\n" % (len(first) - 65536) + first[65536:] + b"\r\n"
        + b"0\r\nX-Trailer: ignored\r\n\r\n"
    )  # fmt: skip
    connection = RawConnection(portal)
    try:
        start = connection.request(f"POST /v2/alpha/raw/blobs/uploads/ HTTP/1.1\n{auth}\nContent-Length: 0\n")
        assert start.status == 202
        location = urlsplit(start.headers["Location"])
        upload = f"{location.path}?{location.query}"
        # The chunked body in odd writes, some splitting the framing.
        pieces = [wire[i : i + 1000] for i in range(0, 5000, 1000)] + [wire[5000:]]
        patched = connection.request(
            f"PATCH {upload} HTTP/1.1\n{auth}\nTransfer-Encoding: chunked\nContent-Type: application/octet-stream\n",
            *pieces,
        )
        assert patched.status == 202, patched.headers
        assert patched.headers["Range"] == f"0-{len(first) - 1}"
        location = urlsplit(patched.headers["Location"])
        upload = f"{location.path}?{location.query}"
        # The same connection goes on with a Content-Length body, then the PUT that checks the digest.
        patched = connection.request(
            f"PATCH {upload} HTTP/1.1\n{auth}\nContent-Length: {len(second)}\nContent-Type: application/octet-stream\n",
            second,
        )
        assert patched.status == 202, patched.headers
        location = urlsplit(patched.headers["Location"])
        digest = "sha256:" + hashlib.sha256(first + second).hexdigest()
        done = connection.request(
            f"PUT {location.path}?{location.query}&digest={digest} HTTP/1.1\n{auth}\nContent-Length: 0\n"
        )
        assert done.status == 201, done.headers
    finally:
        connection.close()
    blob = requests.get(
        f"{portal.url}/v2/alpha/raw/blobs/{digest}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        verify=portal.ca,
    )
    assert blob.status_code == 200
    assert blob.content == first + second


def test_malformed_chunked_upload_is_a_400_naming_the_fault(portal: Portal, people: People) -> None:
    token = dev_token(portal, people, "repository:alpha/raw:push,pull")
    auth = f"Authorization: Bearer {token}\nHost: {portal.host}"
    connection = RawConnection(portal)
    try:
        start = connection.request(f"POST /v2/alpha/raw/blobs/uploads/ HTTP/1.1\n{auth}\nContent-Length: 0\n")
        location = urlsplit(start.headers["Location"])
        # After the bad size line comes what could pass for another request: it must not be served.
        response = connection.request(
            f"PATCH {location.path}?{location.query} HTTP/1.1\n{auth}\nTransfer-Encoding: chunked\n",
            # Separate writes, so separate TLS records: the reader stops at the bad line, the GET stays unread.
            b"4\r\nabcd\r\n",
            b"zz\r\n",
            f"GET /v2/ HTTP/1.1\r\nHost: {portal.host}\r\n\r\n".encode(),
        )
        try:
            after = connection.sock.recv(1024)
        except (ssl.SSLError, OSError):
            after = b""
    finally:
        connection.close()
    # The portal answered the PATCH and closed the connection, rather than serve the smuggled GET.
    assert after == b""
    assert response.status == 400
    error = json.loads(response.body)["errors"][0]
    assert error["code"] == "BLOB_UPLOAD_INVALID"
    assert error["message"] == "the request body was not received: invalid chunk size b'zz'"


def test_an_upload_the_registry_refuses_early_leaves_the_connection_usable(portal: Portal, people: People) -> None:
    # The registry answers an unknown upload session at once, without reading the 4 MiB body. The rest of the
    # body is still on the client's connection: the portal must skip it, and serve the next request on it.
    token = dev_token(portal, people, "repository:alpha/raw:push,pull")
    auth = f"Authorization: Bearer {token}\nHost: {portal.host}"
    body = os.urandom(4 << 20)
    connection = RawConnection(portal)
    try:
        refused = connection.request(
            f"PATCH /v2/alpha/raw/blobs/uploads/00000000-0000-0000-0000-000000000000 HTTP/1.1\n{auth}\n"
            f"Content-Length: {len(body)}\nContent-Type: application/octet-stream\n",
            body,
        )
        following = connection.request(f"GET /v2/ HTTP/1.1\n{auth}\n")
    finally:
        connection.close()
    # The registry's own answer (a session it never issued), passed on.
    assert refused.status == 404
    assert json.loads(refused.body)["errors"][0]["message"] == "blob upload invalid"
    assert following.status == 200


def test_a_renewed_server_certificate_is_served_without_a_restart(portal: Portal) -> None:
    # gunicorn keeps one TLS context (portal/gunicorn_hooks.py); a certificate renewed on disk must still be
    # what the next client sees, as it was when gunicorn built a context per connection.
    host, port = portal.host.split(":")

    def served() -> str:
        return ssl.get_server_certificate((host, int(port)), ca_certs=portal.ca)

    before = served()
    assert served() == before
    pki = pki_paths()
    pki.server_cert.unlink()
    ensure_pki()
    after = served()
    assert after != before
    assert after.strip() in pki.server_cert.read_text()

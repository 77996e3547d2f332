"""The one registry client against real docker-registry processes: anonymous, HTTP Basic, bearer tokens from a
token service, and the integrated registry's system tokens; lists paged with Link headers, manifests of every
kind, and blobs streamed in both directions without holding one whole."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from registries import client_auth
from registries.client import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    RegistryClient,
    UnexpectedStatus,
)
from registries.client_auth import AuthenticationFailed, ChallengeAuth, Login, SystemTokenAuth
from tests.integration.registry import (
    Registry,
    push_tiny_image,
    start_registry,
    start_standalone_registry,
)
from tests.integration.registry_fixtures import (  # noqa: F401  (the fixtures)
    PASSWORD,
    USERNAME,
    basic_registry_fixture,
    token_registry_fixture,
)
from tests.integration.token_issuer import TokenIssuer

pytestmark = pytest.mark.integration

CHUNK = 256 * 1024


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Recorder:
    """A requests session that remembers every request it sent: method, path, status, Authorization, body."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.sent: list[dict[str, Any]] = []
        self.session.hooks["response"].append(self._record)

    def _record(self, response: requests.Response, **kwargs: object) -> None:
        request = response.request
        self.sent.append(
            {
                "method": request.method,
                "path": requests.utils.urlparse(request.url).path,
                "url": request.url,
                "status": response.status_code,
                "authorization": request.headers.get("Authorization", ""),
                "body": request.body,
            }
        )

    def calls(self, method: str, contains: str = "") -> list[dict[str, Any]]:
        return [sent for sent in self.sent if sent["method"] == method and contains in sent["url"]]


# Servers.


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """An anonymous registry over plain HTTP."""
    registry = start_standalone_registry(tmp_path_factory.mktemp("plain"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def integrated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry configured as Wharf's own, trusting tokens signed with the portal's key."""
    registry = start_registry(tmp_path_factory.mktemp("integrated"), notify_url="http://127.0.0.1:1/notifications")
    yield registry
    registry.stop()


def anonymous(registry: Registry, recorder: Recorder | None = None, **kwargs: Any) -> RegistryClient:
    return RegistryClient(registry.url, session=(recorder or Recorder()).session, **kwargs)


def write_image(client: RegistryClient, repository: str, tag: str, media_type: str = DOCKER_MANIFEST) -> Manifest:
    """A config and one random layer uploaded with the client, and a manifest of the media type under the tag."""
    oci = media_type == OCI_MANIFEST
    layer = os.urandom(2048)
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()
    for blob in (layer, config):
        client.upload_blob(repository, digest_of(blob), io.BytesIO(blob))
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json"
            if oci
            else "application/vnd.docker.container.image.v1+json",
            "size": len(config),
            "digest": digest_of(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                if oci
                else "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "size": len(layer),
                "digest": digest_of(layer),
            }
        ],
    }
    content = json.dumps(document).encode()
    manifest = Manifest(content, media_type, digest_of(content))
    assert client.put_manifest(repository, tag, manifest) == manifest.digest
    return manifest


def index_of(media_type: str, *children: Manifest) -> Manifest:
    """A manifest list or OCI index of the manifests, one platform each."""
    entries = [
        {
            "mediaType": child.media_type,
            "size": len(child.content),
            "digest": child.digest,
            "platform": {"architecture": architecture, "os": "linux"},
        }
        for child, architecture in zip(children, ("amd64", "arm64"), strict=False)
    ]
    content = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()
    return Manifest(content, media_type, digest_of(content))


# Lists.


def test_catalog_and_tags_follow_link_pages(plain: Registry) -> None:
    names = [f"paged/app-{index}" for index in range(5)]
    for name in names:
        push_tiny_image(plain.url, name, ["1.0"], mount_from="paged/app-0" if name != names[0] else None)
    push_tiny_image(plain.url, "paged/tagged", [f"v{index}" for index in range(7)])
    recorder = Recorder()
    client = anonymous(plain, recorder, page_size=2)

    assert [name for name in client.catalog() if name.startswith("paged/")] == sorted([*names, "paged/tagged"])
    catalog_pages = recorder.calls("GET", "/v2/_catalog")
    assert len(catalog_pages) >= 3
    assert all("n=2" in page["url"] for page in catalog_pages)

    # docker-registry 2.8 answers a tag list whole (tests/registries/test_client_unit.py pages one).
    assert sorted(client.tags("paged/tagged")) == [f"v{index}" for index in range(7)]
    assert client.tags("paged/never-pushed") == []


def test_a_list_stops_after_max_pages(plain: Registry) -> None:
    for index in range(6):
        push_tiny_image(plain.url, f"capped/app-{index}", ["1.0"])
    assert len(list(anonymous(plain, page_size=2, max_pages=2).catalog())) == 4


# Manifests.


def test_docker_v2_manifest_head_get_put_delete(plain: Registry) -> None:
    client = anonymous(plain)
    manifest = write_image(client, "manifests/docker", "1.0")
    assert client.head_manifest("manifests/docker", "1.0") == (manifest.digest, DOCKER_MANIFEST)
    fetched = client.get_manifest("manifests/docker", "1.0")
    assert fetched == manifest
    assert client.image_size("manifests/docker", fetched) == sum(
        part["size"] for part in [manifest.document()["config"], *manifest.document()["layers"]]
    )
    assert client.put_manifest("manifests/docker", "copy", fetched) == manifest.digest
    assert client.delete_manifest("manifests/docker", manifest.digest)
    assert client.head_manifest("manifests/docker", "1.0") is None
    assert client.get_manifest("manifests/docker", "copy") is None
    assert not client.delete_manifest("manifests/docker", manifest.digest)


def test_oci_manifest_and_indexes_keep_their_media_types(plain: Registry) -> None:
    client = anonymous(plain)
    oci = write_image(client, "manifests/multi", "oci", OCI_MANIFEST)
    docker = write_image(client, "manifests/multi", "docker")
    assert client.head_manifest("manifests/multi", "oci") == (oci.digest, OCI_MANIFEST)

    oci_index = index_of(OCI_INDEX, oci, write_image(client, "manifests/multi", "oci-arm", OCI_MANIFEST))
    assert client.put_manifest("manifests/multi", "index", oci_index) == oci_index.digest
    fetched = client.get_manifest("manifests/multi", "index")
    assert fetched == oci_index and fetched.is_index
    assert client.head_manifest("manifests/multi", oci_index.digest) == (oci_index.digest, OCI_INDEX)

    docker_list = index_of(DOCKER_MANIFEST_LIST, docker)
    client.put_manifest("manifests/multi", "list", docker_list)
    assert client.head_manifest("manifests/multi", "list") == (docker_list.digest, DOCKER_MANIFEST_LIST)
    assert client.image_size("manifests/multi", docker_list) == client.image_size("manifests/multi", docker)


# Blobs.


def test_blob_head_and_ranged_get(plain: Registry) -> None:
    client = anonymous(plain)
    data = os.urandom(300 * 1024)
    digest = client.upload_blob("blobs/ranged", digest_of(data), io.BytesIO(data))
    assert client.head_blob("blobs/ranged", digest) == len(data)
    assert client.head_blob("blobs/ranged", digest_of(b"nothing")) is None

    with client.get_blob("blobs/ranged", digest) as whole:
        assert whole.size == len(data)
        assert b"".join(whole.chunks(64 * 1024)) == data
    with client.get_blob("blobs/ranged", digest, start=1000, end=1999) as part:
        assert part.content_range == f"bytes 1000-1999/{len(data)}"
        assert b"".join(part.chunks()) == data[1000:2000]
    with client.get_blob("blobs/ranged", digest, start=len(data) - 10) as tail:
        assert b"".join(tail.chunks()) == data[-10:]
    with pytest.raises(UnexpectedStatus) as missing:
        client.get_blob("blobs/ranged", digest_of(b"nothing"))
    assert missing.value.status_code == 404


def test_blob_is_mounted_across_repositories(plain: Registry) -> None:
    recorder = Recorder()
    client = anonymous(plain, recorder)
    data = os.urandom(4096)
    digest = client.upload_blob("mounts/source", digest_of(data), io.BytesIO(data))
    puts_before = len(recorder.calls("PUT"))

    assert client.mount_blob("mounts/target", digest, "mounts/source")
    assert client.head_blob("mounts/target", digest) == len(data)
    assert len(recorder.calls("PUT")) == puts_before  # mounted, not uploaded again

    assert not client.mount_blob("mounts/other", digest, "mounts/nowhere")
    # The upload the registry opened instead of mounting was cancelled.
    assert [call["status"] for call in recorder.calls("DELETE", "/mounts/other/blobs/uploads/")] == [204]


def pieces(data: bytes, size: int) -> Iterator[bytes]:
    """The data in pieces of an odd size, as a network stream would give it."""
    for offset in range(0, len(data), size):
        yield data[offset : offset + size]


def test_chunked_upload_from_a_stream_sends_one_chunk_at_a_time(plain: Registry) -> None:
    recorder = Recorder()
    client = anonymous(plain, recorder)
    data = os.urandom(2 * CHUNK + CHUNK // 2)
    digest = client.upload_blob("uploads/chunked", digest_of(data), pieces(data, 100_001), chunk_size=CHUNK)

    assert digest == digest_of(data)
    patches = recorder.calls("PATCH")
    assert [len(patch["body"]) for patch in patches] == [CHUNK, CHUNK, CHUNK // 2]
    assert [patch["status"] for patch in patches] == [202, 202, 202]
    (done,) = recorder.calls("PUT", "/uploads/chunked/")
    assert f"digest={digest.replace(':', '%3A')}" in done["url"] and not done["body"]
    with client.get_blob("uploads/chunked", digest) as blob:
        assert hashlib.sha256(b"".join(blob.chunks())).hexdigest() == digest.split(":")[1]


def test_monolithic_upload_streams_a_file(plain: Registry, tmp_path: Any) -> None:
    recorder = Recorder()
    client = anonymous(plain, recorder)
    data = os.urandom(3 * CHUNK)
    path = tmp_path / "layer.bin"
    path.write_bytes(data)
    with path.open("rb") as stream:
        digest = client.upload_blob("uploads/monolithic", digest_of(data), stream)

    assert client.head_blob("uploads/monolithic", digest) == len(data)
    (put,) = recorder.calls("PUT", "/uploads/monolithic/")
    assert not isinstance(put["body"], bytes)  # a generator: the file was streamed, never read whole
    assert recorder.calls("PATCH") == []


def test_upload_with_a_wrong_digest_is_refused_and_cancelled(plain: Registry) -> None:
    recorder = Recorder()
    client = anonymous(plain, recorder)
    with pytest.raises(UnexpectedStatus) as refused:
        client.upload_blob("uploads/wrong", digest_of(b"other"), pieces(b"x" * 5000, 999), chunk_size=2048)
    assert refused.value.status_code == 400 and not refused.value.transient
    assert recorder.calls("DELETE", "/uploads/wrong/blobs/uploads/")


def test_image_is_copied_between_two_registries(plain: Registry, token_registry: tuple[Registry, TokenIssuer]) -> None:
    """What replication does: blob HEAD on the target, streamed GET from the source, chunked upload, manifest PUT."""
    registry, _ = token_registry
    source = anonymous(plain)
    target = RegistryClient(registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))
    manifest = write_image(source, "copy/app", "1.0")
    document = manifest.document()
    for part in [document["config"], *document["layers"]]:
        if target.head_blob("copy/app", part["digest"]) is None:
            with source.get_blob("copy/app", part["digest"]) as blob:
                target.upload_blob("copy/app", part["digest"], blob.chunks(), chunk_size=1024)
    assert target.put_manifest("copy/app", "1.0", source.get_manifest("copy/app", "1.0")) == manifest.digest
    assert target.get_manifest("copy/app", "1.0") == manifest


# Authentication.


def test_anonymous_registry_is_never_sent_credentials(plain: Registry) -> None:
    recorder = Recorder()
    client = anonymous(plain, recorder)
    write_image(client, "anonymous/app", "1.0")
    assert "anonymous/app" in client.catalog()
    assert client.auth.kind == "none"
    assert {sent["authorization"] for sent in recorder.sent} == {""}


def test_basic_auth_is_sent_up_front_once_asked_for(basic_registry: Registry) -> None:
    recorder = Recorder()
    client = RegistryClient(basic_registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)), session=recorder.session)
    write_image(client, "basic/app", "1.0")
    assert client.tags("basic/app") == ["1.0"]
    assert client.auth.kind == "basic"
    assert [sent["status"] for sent in recorder.sent].count(401) == 1
    expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert all(sent["authorization"] == expected for sent in recorder.sent[1:])


def test_basic_auth_refused_or_missing(basic_registry: Registry) -> None:
    wrong = RegistryClient(basic_registry.url, ChallengeAuth(Login(USERNAME, "not-the-password")))
    with pytest.raises(AuthenticationFailed, match="refused the credentials"):
        wrong.tags("basic/app")
    with pytest.raises(AuthenticationFailed, match="select a credential"):
        RegistryClient(basic_registry.url).tags("basic/app")


def test_bearer_tokens_are_cached_per_scope(token_registry: tuple[Registry, TokenIssuer]) -> None:
    registry, issuer = token_registry
    client = RegistryClient(registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))
    write_image(client, "bearer/one", "1.0")
    write_image(client, "bearer/two", "1.0")
    issuer.requests.clear()

    assert client.tags("bearer/one") == ["1.0"]
    assert client.head_manifest("bearer/one", "1.0") is not None
    assert client.get_manifest("bearer/one", "1.0") is not None
    assert len(issuer.requests) == 1
    assert "scope=repository%3Abearer%2Fone%3Apull" in issuer.requests[0]

    assert client.tags("bearer/two") == ["1.0"]
    assert client.tags("bearer/one") == ["1.0"]
    assert len(issuer.requests) == 2

    assert {"bearer/one", "bearer/two"} <= set(client.catalog())
    assert "scope=registry%3Acatalog%3A%2A" in issuer.requests[2]
    assert client.auth.kind == "bearer"


def test_bearer_token_is_fetched_again_once_it_expires(
    token_registry: tuple[Registry, TokenIssuer], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry, issuer = token_registry
    client = RegistryClient(registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))
    write_image(client, "bearer/expiring", "1.0")
    issuer.requests.clear()
    client.tags("bearer/expiring")
    # The issuer's tokens live 300 s: with a margin longer than that, every cached token counts as expired.
    monkeypatch.setattr(client_auth, "TOKEN_MARGIN", 301)
    client.tags("bearer/expiring")
    assert len(issuer.requests) == 2


def test_bearer_token_service_refuses_a_wrong_password(token_registry: tuple[Registry, TokenIssuer]) -> None:
    registry, _ = token_registry
    client = RegistryClient(registry.url, ChallengeAuth(Login(USERNAME, "not-the-password")))
    with pytest.raises(AuthenticationFailed, match=r"token service .* refused the credentials"):
        client.tags("bearer/one")


def test_integrated_registry_takes_system_tokens_for_each_scope(integrated: Registry) -> None:
    recorder = Recorder()
    client = RegistryClient(integrated.url, SystemTokenAuth(), session=recorder.session)
    manifest = write_image(client, "system/app", "1.0")
    assert client.tags("system/app") == ["1.0"]
    assert "system/app" in client.catalog()
    assert client.delete_manifest("system/app", manifest.digest)
    assert [sent["status"] for sent in recorder.sent].count(401) == 0
    # One token per scope: pushing, reading, listing the catalog and deleting each asked for their own.
    assert len({sent["authorization"] for sent in recorder.sent}) == 4


def test_a_refused_system_token_is_not_retried(token_registry: tuple[Registry, TokenIssuer]) -> None:
    registry, _ = token_registry
    recorder = Recorder()
    client = RegistryClient(registry.url, SystemTokenAuth(), session=recorder.session)
    with pytest.raises(UnexpectedStatus, match="answered GET /v2/_catalog with 401") as refused:
        list(client.catalog())
    assert not refused.value.transient
    assert len(recorder.sent) == 1

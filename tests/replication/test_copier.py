"""The copier between two real docker-registry processes: a plain HTTP source and destinations asking for HTTP
Basic credentials or bearer tokens (answered through ChallengeAuth); what it sends is read from the destination's
access log."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import os
import re
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from portal.core.errors import RemoteUnreachable
from registries.client import DOCKER_MANIFEST, DOCKER_MANIFEST_V1, OCI_INDEX, OCI_MANIFEST, Manifest, RegistryClient
from registries.client_auth import AuthenticationFailed, ChallengeAuth, Login
from registries.token import libtrust_key_id
from replication.copier import Copier, CopyFailed, CopyStats
from tests.integration.registry import Registry, start_standalone_registry
from tests.integration.registry_fixtures import (  # noqa: F401  (the fixtures)
    PASSWORD,
    USERNAME,
    basic_registry_fixture,
    token_registry_fixture,
)
from tests.integration.token_issuer import TokenIssuer

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
# The access log line of each request: "METHOD /path?query HTTP/1.1" status.
ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/1\.1" (\d{3})')


@dataclass
class Pushed:
    """An image written into the source: its manifest and the sizes of its blobs by digest."""

    manifest: Manifest
    blobs: dict[str, int]

    @property
    def size(self) -> int:
        return sum(self.blobs.values())


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The source registry: plain HTTP, anonymous, accepting schema 1 manifests and foreign layers."""
    # Schema 1 manifests are refused unless asked for: the source holds one to show the copier refuses it.
    registry = start_standalone_registry(
        tmp_path_factory.mktemp("source"),
        extra_config={
            "compatibility": {"schema1": {"enabled": True}},
            # Foreign layers (pulled from their URLs, never pushed) are accepted from these addresses.
            "validation": {"manifests": {"urls": {"allow": ["^https://foreign\\.example/"]}}},
        },
    )
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def source_client(source: Registry) -> RegistryClient:
    return RegistryClient(source.url, ChallengeAuth())


@pytest.fixture
def destination(basic_registry: Registry) -> RegistryClient:
    """A client of the destination asking for HTTP Basic credentials."""
    return RegistryClient(basic_registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push(client: RegistryClient, repository: str, tags: list[str], layers: list[int], oci: bool = False) -> Pushed:
    """Upload a config and random layers of the sizes given and put the manifest under the tags (or by digest)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    blobs = {digest_of(config): len(config)}
    client.upload_blob(repository, digest_of(config), io.BytesIO(config))
    descriptors = []
    for size in layers:
        data = os.urandom(size)
        client.upload_blob(repository, digest_of(data), io.BytesIO(data))
        blobs[digest_of(data)] = size
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "size": size})
        descriptors[-1]["digest"] = digest_of(data)
    media_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
    document = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config)},
        "layers": descriptors,
    }
    document["config"]["digest"] = digest_of(config)
    content = json.dumps(document).encode()
    manifest = Manifest(content, media_type, digest_of(content))
    for tag in tags or [manifest.digest]:
        client.put_manifest(repository, tag, manifest)
    return Pushed(manifest, blobs)


def push_index(client: RegistryClient, repository: str, tag: str) -> tuple[Manifest, list[Pushed]]:
    """An OCI index of two platform images (each pushed by digest only) under the tag."""
    platforms = [push(client, repository, [], [2048], oci=True) for _ in range(2)]
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.manifest.digest,
                "size": len(image.manifest.content),
                "platform": {"architecture": arch, "os": "linux"},
            }
            for image, arch in zip(platforms, ("amd64", "arm64"), strict=True)
        ],
    }
    content = json.dumps(document).encode()
    index = Manifest(content, OCI_INDEX, digest_of(content))
    client.put_manifest(repository, tag, index)
    return index, platforms


def requests_since(registry: Registry, offset: int) -> list[tuple[str, str, int]]:
    """(method, path, status) of each request the registry answered since the log had `offset` bytes."""
    text = registry.log_path.read_bytes()[offset:].decode(errors="replace")
    return [(m[1], m[2], int(m[3])) for m in ACCESS.finditer(text)]


def log_size(registry: Registry) -> int:
    return registry.log_path.stat().st_size


def uploads(sent: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    """The requests that open, feed or finish a blob upload (a mount opens one too)."""
    return [request for request in sent if "/blobs/uploads/" in request[1]]


@pytest.fixture(scope="module")
def app(source_client: RegistryClient) -> dict[str, object]:
    """The source repository "team/app": 1.0 and latest on one digest, 2.0, and an OCI index "multi"."""
    first = push(source_client, "team/app", ["1.0", "latest"], [4096, 300 * 1024])
    second = push(source_client, "team/app", ["2.0"], [8192])
    index, platforms = push_index(source_client, "team/app", "multi")
    return {"first": first, "second": second, "index": index, "platforms": platforms}


TAGS = ["1.0", "latest", "2.0", "multi"]


def test_copies_every_tag_and_an_index_through_basic_auth(
    app: dict, source_client: RegistryClient, destination: RegistryClient, basic_registry: Registry
) -> None:
    copier = Copier(source_client, destination)
    stats = copier.copy_repository("team/app", "mirror/app", TAGS)

    assert sorted(destination.tags("mirror/app")) == sorted(TAGS)
    for tag in TAGS:
        expected = source_client.head_manifest("team/app", tag).digest
        assert destination.head_manifest("mirror/app", tag).digest == expected
    copied = destination.get_manifest("mirror/app", "multi")
    assert copied.content == app["index"].content and copied.media_type == OCI_INDEX
    for image in app["platforms"]:
        assert destination.get_manifest("mirror/app", image.manifest.digest).content == image.manifest.content
        assert all(destination.blob_exists("mirror/app", digest) for digest in image.blobs)
    all_blobs = {**app["first"].blobs, **app["second"].blobs}
    for image in app["platforms"]:
        all_blobs.update(image.blobs)
    assert stats.tags_copied == 4 and stats.tags_failed == 0
    # "latest" shares 1.0's blobs: they are found by HEAD, not sent twice.
    assert stats.blobs_copied == len(all_blobs)
    assert stats.bytes_copied == sum(all_blobs.values())
    assert stats.blobs_skipped == len(app["first"].blobs)
    assert copier.stats == stats


def test_rerun_sends_no_blob(
    app: dict, source_client: RegistryClient, destination: RegistryClient, basic_registry: Registry
) -> None:
    Copier(source_client, destination).copy_repository("team/app", "rerun/app", TAGS)
    offset = log_size(basic_registry)

    stats = Copier(source_client, destination).copy_repository("team/app", "rerun/app", TAGS)

    assert stats.tags_skipped == 4 and stats.tags_copied == 0
    assert stats.blobs_copied == 0 and stats.bytes_copied == 0
    assert stats.bytes_skipped > 300 * 1024
    sent = requests_since(basic_registry, offset)
    assert uploads(sent) == []
    assert [request for request in sent if request[0] in ("PUT", "PATCH", "POST", "DELETE")] == []


def test_blob_of_another_destination_repository_is_mounted(
    app: dict, source_client: RegistryClient, destination: RegistryClient, basic_registry: Registry
) -> None:
    copier = Copier(source_client, destination)
    copier.copy_tag("team/app", "2.0", "one/app")
    before = dataclasses.replace(copier.stats)
    offset = log_size(basic_registry)

    assert copier.copy_tag("team/app", "2.0", "two/app") == "copied"

    after = copier.stats.since(before)
    assert after.blobs_mounted == 2 and after.blobs_copied == 0 and after.bytes_copied == 0
    mounts = [request for request in uploads(requests_since(basic_registry, offset)) if "mount=" in request[1]]
    assert len(mounts) == 2 and all(status == 201 for _, _, status in mounts)
    assert destination.head_manifest("two/app", "2.0").digest == app["second"].manifest.digest


def test_large_blob_is_streamed_in_chunks(
    source_client: RegistryClient, token_registry: tuple[Registry, TokenIssuer]
) -> None:
    registry, _ = token_registry
    destination = RegistryClient(registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))
    image = push(source_client, "team/big", ["1"], [40 * MIB])
    seen: list[int] = []
    copier = Copier(
        source_client,
        destination,
        chunk_size=2 * MIB,
        chunked_above=8 * MIB,
        on_progress=lambda stats: seen.append(stats.bytes_copied),
    )
    offset = log_size(registry)

    tracemalloc.start()
    try:
        copier.copy_tag("team/big", "1", "mirror/big")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert destination.head_manifest("mirror/big", "1").digest == image.manifest.digest
    patches = [r for r in uploads(requests_since(registry, offset)) if r[0] == "PATCH" and r[2] == 202]
    assert len(patches) == 20
    # Progress came while the 40 MiB streamed, not only once it was done.
    assert len([done for done in seen if 0 < done < 40 * MIB]) >= 5
    assert seen == sorted(seen) and seen[-1] == image.size
    # A 2 MiB chunk (and its copies on the way out) and a network read in memory, never the 40 MiB blob.
    assert peak < 12 * MIB


def test_delete_tag_keeps_sibling_tags(app: dict, source_client: RegistryClient, destination: RegistryClient) -> None:
    copier = Copier(source_client, destination)
    copier.copy_repository("team/app", "delete/app", ["1.0", "latest", "2.0"])

    assert copier.delete_tag("delete/app", "1.0") is True

    assert sorted(destination.tags("delete/app")) == ["2.0", "latest"]
    assert destination.head_manifest("delete/app", "latest").digest == app["first"].manifest.digest
    assert copier.delete_tag("delete/app", "1.0") is False
    assert copier.stats.tags_deleted == 1


def test_copy_cut_by_an_outage_resumes_without_sending_finished_blobs_again(
    source_client: RegistryClient, token_registry: tuple[Registry, TokenIssuer]
) -> None:
    registry, _ = token_registry
    destination = RegistryClient(registry.url, ChallengeAuth(Login(USERNAME, PASSWORD)))
    image = push(source_client, "team/layers", ["1"], [6 * MIB] * 6)
    sizes = list(image.blobs.values())
    # The config and three layers are in; the fourth layer is half-way when the registry dies.
    cut_after = sum(sizes[:4]) + 4 * MIB

    def outage(stats: CopyStats) -> None:
        if stats.bytes_copied >= cut_after and registry.process.poll() is None:
            registry.kill()

    try:
        with pytest.raises(RemoteUnreachable) as fault:
            Copier(source_client, destination, on_progress=outage).copy_repository("team/layers", "cut/layers", ["1"])
        assert fault.value.transient, fault.value
    finally:
        registry.restart()
    # The image is not visible with a layer missing.
    assert destination.head_manifest("cut/layers", "1") is None
    offset = log_size(registry)

    copier = Copier(source_client, destination)
    assert copier.copy_tag("team/layers", "1", "cut/layers") == "copied"

    assert copier.stats.blobs_skipped == 4 and copier.stats.blobs_copied == 3
    assert copier.stats.bytes_copied == sum(sizes[4:]) < image.size
    assert copier.stats.bytes_skipped == sum(sizes[:4])
    finished = [r for r in uploads(requests_since(registry, offset)) if r[0] == "PUT" and r[2] == 201]
    assert len(finished) == 3
    assert destination.head_manifest("cut/layers", "1").digest == image.manifest.digest


def test_blob_missing_at_the_source_fails_its_tag_and_the_others_are_copied(
    source: Registry, source_client: RegistryClient, destination: RegistryClient
) -> None:
    broken = push(source_client, "team/broken", ["bad"], [1024, 2048])
    good = push(source_client, "team/broken", ["good"], [4096])
    missing = list(broken.blobs)[-1]
    (source.storage / "docker/registry/v2/blobs/sha256" / missing[7:9] / missing[7:] / "data").unlink()
    logged: list[str] = []
    copier = Copier(source_client, destination, log=logged.append)

    with pytest.raises(CopyFailed) as failure:
        copier.copy_repository("team/broken", "mirror/broken", ["bad", "good"])

    assert failure.value.transient is False
    assert missing in failure.value.message and "bad" in failure.value.message
    assert destination.tags("mirror/broken") == ["good"]
    assert destination.head_manifest("mirror/broken", "good").digest == good.manifest.digest
    assert copier.stats.tags_failed == 1 and copier.stats.tags_copied == 1 and copier.stats.blobs_failed == 1
    assert any(line.startswith("failed team/broken:bad") and missing in line for line in logged)


def signed_schema1(repository: str, tag: str, layer_digest: str) -> bytes:
    """A schema 1 manifest of one layer, signed as libtrust signs it (the registry verifies the signature)."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    payload = json.dumps(
        {
            "schemaVersion": 1,
            "name": repository,
            "tag": tag,
            "architecture": "amd64",
            "fsLayers": [{"blobSum": layer_digest}],
            "history": [{"v1Compatibility": json.dumps({"id": os.urandom(32).hex()})}],
        },
        indent=3,
    ).encode()
    # The signature covers the payload; "signatures" goes in before its closing brace.
    format_length = payload.rstrip().rindex(b"}")
    format_length = len(payload[:format_length].rstrip())
    protected = b64url(
        json.dumps(
            {
                "formatLength": format_length,
                "formatTail": b64url(payload[format_length:]),
                "time": "2026-12-01T00:00:00Z",
            }
        ).encode()
    )
    r, s = decode_dss_signature(key.sign(f"{protected}.{b64url(payload)}".encode(), ec.ECDSA(hashes.SHA256())))
    jwk = {
        "crv": "P-256",
        "kid": libtrust_key_id(key.public_key()),
        "kty": "EC",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
    }
    signature = {
        "header": {"jwk": jwk, "alg": "ES256"},
        "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    signatures = json.dumps([signature], indent=3).replace("\n", "\n   ").encode()
    return payload[:format_length] + b',\n   "signatures": ' + signatures + payload[format_length:]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_schema1_manifest_is_refused_by_name(source_client: RegistryClient, destination: RegistryClient) -> None:
    layer = os.urandom(1024)
    source_client.upload_blob("team/old", digest_of(layer), io.BytesIO(layer))
    content = signed_schema1("team/old", "1", digest_of(layer))
    source_client.put_manifest("team/old", "1", Manifest(content, DOCKER_MANIFEST_V1, digest_of(content)))
    push(source_client, "team/old", ["2"], [1024])
    assert source_client.get_manifest("team/old", "1").media_type == DOCKER_MANIFEST_V1

    with pytest.raises(CopyFailed) as failure:
        Copier(source_client, destination).copy_repository("team/old", "mirror/old", ["1", "2"])

    assert "schema 1 manifests cannot be replicated" in failure.value.message and not failure.value.transient
    assert destination.tags("mirror/old") == ["2"]


def test_refused_credentials_stop_the_copy_at_once(
    app: dict, source_client: RegistryClient, basic_registry: Registry
) -> None:
    wrong = RegistryClient(basic_registry.url, ChallengeAuth(Login(USERNAME, "not-the-password")))
    copier = Copier(source_client, wrong)

    with pytest.raises(AuthenticationFailed) as refused:
        copier.copy_repository("team/app", "refused/app", TAGS)

    assert refused.value.transient is False
    assert copier.stats.tags_failed == 0 and copier.stats.tags_copied == 0


def test_foreign_layers_are_left_out(source_client: RegistryClient) -> None:
    image = push(source_client, "team/windows", [], [1024])
    document = json.loads(image.manifest.content)
    foreign = {
        "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "size": 5 * MIB,
        "digest": digest_of(b"never pushed"),
        "urls": ["https://foreign.example/base.tar.gz"],
    }
    document["layers"].insert(0, foreign)
    content = json.dumps(document).encode()
    source_client.put_manifest("team/windows", "1", Manifest(content, DOCKER_MANIFEST, digest_of(content)))
    logged: list[str] = []
    # Within one registry (it accepts foreign layers): the copier needs no second one to show it.
    copier = Copier(source_client, source_client, log=logged.append)

    assert copier.copy_tag("team/windows", "1", "mirror/windows") == "copied"

    assert source_client.head_manifest("mirror/windows", "1").digest == digest_of(content)
    assert not source_client.blob_exists("mirror/windows", foreign["digest"])
    assert copier.stats.blobs_copied == 2 and copier.stats.blobs_failed == 0
    assert any(foreign["digest"] in line and "foreign" in line for line in logged)

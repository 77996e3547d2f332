"""Tiny images written straight into a real registry over its HTTP API, and pulls of them, for tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import requests

from registries.client import DOCKER_MANIFEST, OCI_MANIFEST, RegistryClient, manifest_digest
from registries.token import Access, issue

# Pass as a tag to push the manifest by digest only (untagged).
BY_DIGEST = "@"


@dataclass
class Image:
    """An image written straight into the registry: its manifest digest and total size (config + layer)."""

    digest: str
    size: int
    manifest: bytes


def user_headers(repository: str) -> dict[str, str]:
    """A user's (not the portal's) token for pushing to and pulling from the repository."""
    token = issue("tester", [Access("repository", repository, ("pull", "push"))], 120)[0]
    return {"Authorization": f"Bearer {token}"}


def _upload(url: str, repository: str, data: bytes) -> str:
    """A blob upload in one PUT after opening the session; returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers = user_headers(repository)
    opened = requests.post(f"{url}/v2/{repository}/blobs/uploads/", headers=headers, timeout=30)
    assert opened.status_code == 202, opened.text
    location = urljoin(url, opened.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = requests.put(f"{location}{separator}digest={digest}", data=data, headers=headers, timeout=30)
    assert done.status_code == 201, done.text
    return digest


def random_layer_tar(size: int) -> bytes:
    """An uncompressed tar holding one file of `size` random bytes: a layer no other test image shares."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        payload = os.urandom(size)
        info = tarfile.TarInfo("data.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    return tar.getvalue()


def push_image(url: str, repository: str, tags: list[str], layer_bytes: int = 1024) -> Image:
    """Write a tiny image (a config and one gzipped tar layer of random bytes) and tag its manifest (or BY_DIGEST)."""
    tar = random_layer_tar(layer_bytes)
    layer = gzip.compress(tar)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _upload(url, repository, config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _upload(url, repository, layer),
                }
            ],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    for tag in tags:
        response = requests.put(
            f"{url}/v2/{repository}/manifests/{digest if tag == BY_DIGEST else tag}",
            data=manifest,
            headers={**user_headers(repository), "Content-Type": DOCKER_MANIFEST},
            timeout=30,
        )
        assert response.status_code == 201, response.text
    return Image(digest, len(config) + len(layer), manifest)


def pull_manifest(url: str, repository: str, reference: str) -> requests.Response:
    """GET a manifest as `docker pull` does (the registry notifies a pull); asserts it is found."""
    response = requests.get(
        f"{url}/v2/{repository}/manifests/{reference}",
        headers={**user_headers(repository), "Accept": DOCKER_MANIFEST},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response


def write_oci_layout(layout: Path, tag: str, layer_bytes: int = 1024) -> str:
    """A tiny single-image OCI layout on disk (one gzipped tar layer of random bytes), for `skopeo copy oci:...`;
    returns the manifest digest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}

    tar = random_layer_tar(layer_bytes)
    layer = blob(gzip.compress(tar), "application/vnd.oci.image.layer.v1.tar+gzip")
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    config_blob = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_blob, "layers": [layer]}
    descriptor = blob(json.dumps(manifest).encode(), OCI_MANIFEST)
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": tag}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return str(descriptor["digest"])


@dataclass
class DescribedImage:
    """An image pushed with a full config (author, labels, build history): the digests the tag details name."""

    digest: str
    platforms: dict[str, str]
    layer_sizes: list[int]


def push_described_index(client: RegistryClient, repository: str, tag: str) -> DescribedImage:
    """Push an OCI index of linux/amd64 and linux/arm64/v8 images, each a config with created, author, labels and
    history, and two gzipped layers, through the registry client; tag the index."""
    from registries.client import OCI_INDEX, Manifest

    def blob(data: bytes, media_type: str) -> dict[str, object]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        client.upload_blob(repository, digest, [data])
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    layers_raw = [random_layer_tar(2048), random_layer_tar(8192)]
    layers = [blob(gzip.compress(raw, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip") for raw in layers_raw]
    diff_ids = ["sha256:" + hashlib.sha256(raw).hexdigest() for raw in layers_raw]
    entries, platforms = [], {}
    for architecture, variant in (("amd64", ""), ("arm64", "v8")):
        config = {
            "created": "2026-11-30T08:15:42.123456789Z",
            "author": "Wharf Builders <build@wharf.example>",
            "architecture": architecture,
            "os": "linux",
            **({"variant": variant} if variant else {}),
            "config": {"Cmd": ["/bin/sh"], "Labels": {"org.opencontainers.image.title": "demo", "tier": "web"}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2026-11-30T08:15:40Z", "created_by": "/bin/sh -c #(nop) ADD file:base in / "},
                {"created": "2026-11-30T08:15:41Z", "created_by": "LABEL tier=web", "empty_layer": True},
                {"created": "2026-11-30T08:15:42Z", "created_by": "RUN /bin/sh -c make install", "comment": "buildkit"},
            ],
        }
        config_descriptor = blob(json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json")
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor, "layers": layers}
        ).encode()
        digest = client.put_manifest(repository, manifest_digest(manifest), Manifest(manifest, OCI_MANIFEST, ""))
        platform = {"os": "linux", "architecture": architecture, **({"variant": variant} if variant else {})}
        entries.append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest), "platform": platform})
        platforms["/".join(platform.values())] = digest
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    digest = client.put_manifest(repository, tag, Manifest(index, OCI_INDEX, ""))
    return DescribedImage(digest, platforms, [int(layer["size"]) for layer in layers])  # type: ignore[call-overload]

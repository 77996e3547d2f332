"""The indexer reading images from a real docker-registry through the one registry client."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from portal.core.errors import NotFound
from registries.client import Blob, RegistryClient
from scanning.indexer import ImageIndex, UnreadableImage, index_image, index_layer, read_image, resolve_image
from tests.integration.registry import Registry
from tests.integration.registry_fixtures import quiet_registry  # noqa: F401  (the `registry` fixture)
from tests.scanning import fixtures
from tests.scanning.image_builder import (
    GZIP,
    LAYER_MEDIA_TYPES,
    ZSTD,
    BuiltImage,
    ImageSpec,
    LayerSpec,
    build_image,
    digest_of,
    push_built_image,
    push_image_index,
    registry_client,
    write_oci_layout,
)

pytestmark = pytest.mark.integration


class CountingClient(RegistryClient):
    """The registry client, counting the blobs it downloads."""

    downloads: list[str]

    def get_blob(self, repository: str, digest: str, start: int = 0, end: int | None = None) -> Blob:
        self.downloads.append(digest)
        return super().get_blob(repository, digest, start, end)


def counting_client(registry: Registry) -> CountingClient:
    client = CountingClient(registry.url, auth=registry_client(registry.url).auth)
    client.downloads = []
    return client


def from_bytes(image: BuiltImage) -> ImageIndex:
    """The index of the image read straight from its blobs."""
    blobs = zip(image.layer_digests, image.layers, strict=True)
    return index_image(index_layer(digest, io.BytesIO(blob)) for digest, blob in blobs)


@pytest.mark.parametrize("build", [fixtures.debian_image, fixtures.alpine_image, fixtures.rocky_image])
def test_reading_through_the_registry_gives_the_index_of_the_bytes(
    registry: Registry, build: Callable[[], BuiltImage]
) -> None:
    image = build()
    digest = push_built_image(registry.url, "scan/fixture", build.__name__, image)
    client = counting_client(registry)

    digests, layers = read_image(client, "scan/fixture", build.__name__)

    assert digest == image.digest
    assert digests == image.layer_digests == client.downloads
    assert index_image(layers) == from_bytes(image)


def test_known_layers_are_not_downloaded_again(registry: Registry) -> None:
    image = fixtures.debian_image()
    push_built_image(registry.url, "scan/rescan", "1", image)
    _, layers = read_image(registry_client(registry.url), "scan/rescan", "1")
    client = counting_client(registry)

    _, again = read_image(client, "scan/rescan", "1", known={layer.digest: layer for layer in layers[:2]})

    assert client.downloads == [image.layer_digests[2]]
    assert again == layers


def test_an_index_is_read_for_linux_amd64(registry: Registry) -> None:
    arm = fixtures.alpine_image()
    amd = fixtures.ubuntu_image()
    push_image_index(registry.url, "scan/multi", "latest", [(arm, "arm64"), (amd, "amd64")])

    found = resolve_image(registry_client(registry.url), "scan/multi", "latest")
    _, layers = read_image(registry_client(registry.url), "scan/multi", "latest")

    assert found.manifest_digest == amd.digest
    assert index_image(layers).distribution == fixtures.UBUNTU_DISTRIBUTION


def test_an_index_without_linux_amd64_and_a_missing_tag_are_refused(registry: Registry) -> None:
    push_image_index(registry.url, "scan/armonly", "latest", [(fixtures.alpine_image(), "arm64")])
    client = registry_client(registry.url)

    with pytest.raises(UnreadableImage, match="no linux/amd64 variant \\(it has: linux/arm64\\)"):
        read_image(client, "scan/armonly", "latest")
    with pytest.raises(NotFound, match="scan/armonly:nope is not in the registry"):
        read_image(client, "scan/armonly", "nope")


def test_oci_layout_holds_every_blob_of_the_image(tmp_path: Path) -> None:
    image = fixtures.debian_image()

    digest = write_oci_layout(tmp_path / "layout", "bookworm", image)

    blobs = tmp_path / "layout" / "blobs" / "sha256"
    assert digest == image.digest
    for blob in [image.manifest, image.config, *image.layers]:
        assert (blobs / digest_of(blob).removeprefix("sha256:")).read_bytes() == blob


def test_layers_are_read_by_their_bytes_not_their_media_type(registry: Registry) -> None:
    built = build_image(ImageSpec([LayerSpec({"etc/os-release": fixtures.ALPINE_OS_RELEASE}, compression=ZSTD)]))
    manifest = json.loads(built.manifest)
    # The manifest claims gzip; the blob is zstd.
    manifest["layers"][0]["mediaType"] = LAYER_MEDIA_TYPES[GZIP]
    lying = BuiltImage(built.layers, built.config, json.dumps(manifest).encode())
    push_built_image(registry.url, "scan/lying", "1", lying)

    _, layers = read_image(registry_client(registry.url), "scan/lying", "1")

    assert index_image(layers).distribution == fixtures.ALPINE_DISTRIBUTION

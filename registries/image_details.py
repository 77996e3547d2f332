"""What a tag's image is made of, read from the integrated registry: the manifest's media type, the platforms
of an index, and for each image its OS/architecture, created time, author, labels, layers and build history.

The manifest and the image config are read with the registry client and kept in the cache under the manifest's
digest: content under a digest never changes, so an entry is never stale, only evicted. A registry that cannot
be reached raises RemoteUnreachable, which the page shows as a message and the API answers with 502.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from django.core.cache import cache
from django.http import HttpRequest
from django.urls import reverse
from django.utils.dateparse import parse_datetime

from portal.core.errors import NotFound
from projects.models import Project
from registries.client import DOCKER_MANIFEST_V1, MAX_INDEX_ENTRIES, Manifest, RegistryClient
from registries.models import Tag

# A day: entries never go stale (keyed by digest), the timeout only bounds how long memory is held.
CACHE_SECONDS = 24 * 60 * 60
CACHE_VERSION = 1
# An image config is a few kilobytes; one larger than this is not read into memory.
MAX_CONFIG_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Layer:
    """One layer of an image: its digest, media type and compressed size."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class HistoryStep:
    """One step of the build history in the image config (a Dockerfile instruction, usually)."""

    created: datetime | None
    created_by: str
    comment: str
    empty_layer: bool


@dataclass(frozen=True)
class PlatformImage:
    """One image: a platform manifest of an index, or the tag's own manifest."""

    digest: str
    media_type: str
    os: str
    architecture: str
    variant: str
    created: datetime | None
    author: str
    labels: dict[str, str]
    config_digest: str
    layers: list[Layer]
    history: list[HistoryStep]
    # Why the config could not be read (a schema 1 manifest, a missing blob); empty when it was.
    problem: str = ""

    @property
    def platform(self) -> str:
        """ "linux/arm64/v8" style, as `docker` names a platform."""
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part) or "unknown"

    @property
    def size(self) -> int:
        """Bytes of the layers (compressed, as pulled)."""
        return sum(layer.size for layer in self.layers)


@dataclass(frozen=True)
class ImageDetails:
    """A tag's manifest as the registry holds it and the images it stands for (one, or one per platform)."""

    digest: str
    media_type: str
    is_index: bool
    images: list[PlatformImage] = field(default_factory=list)


class Commands(NamedTuple):
    """The image reference of a tag and the commands that pull it and provision a container from it."""

    image: str
    pull: str
    provision: str


def commands(request: HttpRequest, project: Project, tag: Tag) -> Commands:
    """`docker pull` of the tag through this portal, and the API call that provisions a container from it."""
    image = f"{request.get_host()}/{tag.repository.name}:{tag.name}"
    url = request.build_absolute_uri(reverse("container-list", kwargs={"project_name": project.name}))
    body = json.dumps({"image": image})
    provision = f"curl -u {request.user.get_username()} -X POST -H 'Content-Type: application/json' -d '{body}' {url}"
    return Commands(image, f"docker pull {image}", provision)


def for_tag(tag: Tag) -> ImageDetails:
    """The details of the tag's manifest, from the cache or the integrated registry.

    NotFound when the registry no longer holds the manifest; RemoteUnreachable when it cannot be asked.
    """
    if not tag.digest:
        # Without a digest the tag is read by name, which may move: nothing is kept.
        return read(RegistryClient(), tag.repository.name, tag.name)
    key = f"image-details:{tag.digest}"
    details = cache.get(key, version=CACHE_VERSION)
    if details is None:
        details = read(RegistryClient(), tag.repository.name, tag.digest)
        cache.set(key, details, CACHE_SECONDS, version=CACHE_VERSION)
    return details


def read(client: RegistryClient, repository: str, reference: str) -> ImageDetails:
    """Read the manifest (and, for an index, each platform manifest) and the image configs from the registry."""
    manifest = _manifest(client, repository, reference)
    if not manifest.is_index:
        return ImageDetails(manifest.digest, manifest.media_type, False, [_image(client, repository, manifest, {})])
    images = []
    for entry in manifest.document().get("manifests", [])[:MAX_INDEX_ENTRIES]:
        child = _manifest(client, repository, entry.get("digest", ""))
        images.append(_image(client, repository, child, entry.get("platform") or {}))
    return ImageDetails(manifest.digest, manifest.media_type, True, images)


def _manifest(client: RegistryClient, repository: str, reference: str) -> Manifest:
    """The manifest, or NotFound naming it."""
    manifest = client.get_manifest(repository, reference)
    if manifest is None:
        raise NotFound(f"The registry no longer holds the manifest {reference} of {repository}.")
    return manifest


def _image(client: RegistryClient, repository: str, manifest: Manifest, platform: dict[str, Any]) -> PlatformImage:
    """One image manifest with what its config says; the index entry's platform fills what the config lacks."""
    document = manifest.document()
    layers = [
        Layer(str(layer.get("digest", "")), str(layer.get("mediaType", "")), int(layer.get("size", 0)))
        for layer in document.get("layers", [])
    ]
    config_digest = str((document.get("config") or {}).get("digest", ""))
    config: dict[str, Any] = {}
    problem = ""
    if manifest.media_type == DOCKER_MANIFEST_V1:
        problem = "A schema 1 manifest has no image config."
    elif config_digest:
        config, problem = _config(client, repository, config_digest)
    settings_ = config.get("config") or {}
    return PlatformImage(
        digest=manifest.digest,
        media_type=manifest.media_type,
        os=str(config.get("os") or platform.get("os", "")),
        architecture=str(config.get("architecture") or platform.get("architecture", "")),
        variant=str(config.get("variant") or platform.get("variant", "")),
        created=_time(config.get("created")),
        author=str(config.get("author") or ""),
        labels={str(k): str(v) for k, v in (settings_.get("Labels") or {}).items()},
        config_digest=config_digest,
        layers=layers,
        history=[_step(step) for step in config.get("history") or [] if isinstance(step, dict)],
        problem=problem,
    )


def _config(client: RegistryClient, repository: str, digest: str) -> tuple[dict[str, Any], str]:
    """The image config blob parsed, or ({}, why not) when it is missing, too large or not JSON."""
    if (size := client.head_blob(repository, digest)) is None:
        return {}, f"The registry does not hold the image config {digest}."
    if size > MAX_CONFIG_BYTES:
        return {}, f"The image config is {size} bytes, more than is read."
    with client.get_blob(repository, digest) as blob:
        content = b"".join(blob.chunks())
    try:
        config = json.loads(content)
    except ValueError:
        return {}, "The image config is not JSON."
    return (config, "") if isinstance(config, dict) else ({}, "The image config is not a JSON object.")


def _step(step: dict[str, Any]) -> HistoryStep:
    """A history entry of the config."""
    return HistoryStep(
        created=_time(step.get("created")),
        created_by=str(step.get("created_by") or ""),
        comment=str(step.get("comment") or ""),
        empty_layer=bool(step.get("empty_layer")),
    )


def _time(value: Any) -> datetime | None:
    """An RFC 3339 time of the config (nanoseconds cut to what Python keeps), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    # Go writes up to nine fractional digits; Python reads six.
    if "." in text:
        head, _, tail = text.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        return parse_datetime(text)
    except ValueError:
        return None

"""The copier: one repository's images from a source registry to a destination registry.

It knows nothing of rules or executions: a runner hands it two `RegistryClient`s (the one client
of the registry API, with whatever authentication each side needs) and the tags to copy.

For each tag it HEADs the destination and skips a tag already on the same digest. Otherwise it
copies what the manifest names that the destination lacks - the platform manifests of an index
first, the config and layers of an image manifest (HEAD first, then a cross-repository mount from
a destination repository it already put the blob into, else a stream from the source: one PUT, or
PATCHes of `chunk_size` for blobs above `chunked_above`) - and puts the manifest last with the
source's exact bytes, so the destination shows an image only once all of it is there. A copy that
dies half-way therefore leaves only whole blobs behind, and the next attempt skips them (HEAD).

Faults: a transient RemoteUnreachable (network, 5xx) leaves the copier at once so the job retries
the task; anything another attempt cannot mend fails the tag as a non-transient `CopyFailed`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import requests

from portal.core.errors import DomainError, RemoteUnreachable
from portal.core.trust import UntrustedCertificate
from registries.client import (
    DOCKER_MANIFEST_V1,
    UPLOAD_CHUNK,
    Blob,
    Manifest,
    RegistryClient,
    Unavailable,
    UnexpectedStatus,
)
from registries.client_auth import AuthenticationFailed, AuthenticationUnsupported

MIB = 1024 * 1024
# Blobs larger than this go up in PATCHes of `chunk_size` (a registry or proxy may cap one request's body).
CHUNKED_ABOVE = 64 * MIB
# on_progress is told at most once per this many bytes streamed (and after each blob).
PROGRESS_STEP = 4 * MIB
SCHEMA1_TYPES = (DOCKER_MANIFEST_V1, "application/vnd.docker.distribution.manifest.v1+json")
# Faults of a whole registry, not of one tag: every other tag would fail alike, so the copy stops at once.
ENDPOINT_FAULTS = (AuthenticationFailed, AuthenticationUnsupported, UntrustedCertificate)
# The failed tags the final error names (the log names each).
NAMED_FAILURES = 10


class CopyFailed(RemoteUnreachable):
    """A copy that another attempt cannot mend (a blob missing at the source, a schema 1 manifest, failed tags)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


@dataclass
class CopyStats:
    """What a copier did: tags and blobs copied, skipped (already there; mounted blobs count here in bytes), failed."""

    tags_copied: int = 0
    tags_skipped: int = 0
    tags_deleted: int = 0
    tags_failed: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    blobs_failed: int = 0
    bytes_copied: int = 0
    bytes_skipped: int = 0

    def add(self, other: CopyStats) -> None:
        """Add another copier's counts to these (e.g. an execution summing its tasks)."""
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def since(self, earlier: CopyStats) -> CopyStats:
        """The counts added since an earlier copy of these stats."""
        return CopyStats(**{f.name: getattr(self, f.name) - getattr(earlier, f.name) for f in dataclasses.fields(self)})

    def as_dict(self) -> dict[str, int]:
        """The counts by name (for a job's result or an API body)."""
        return dataclasses.asdict(self)


def _noop() -> None:
    """The checkpoint of a copy nobody can stop."""


class Copier:
    """Copies tags of one repository between two registries; `stats` sums everything it did.

    `checkpoint` is called between blobs and tags and raises to stop the copy (JobContext.checkpoint);
    `on_progress` gets the live stats (not a copy) after each blob or skipped tag and every PROGRESS_STEP
    bytes of a blob being streamed; `log` gets one line per tag copied, failed or deleted. `blob_homes`
    (digest -> destination repository holding it) may be shared by the copiers of one execution so that
    they mount each other's blobs; a plain dict is safe across threads for this.
    """

    def __init__(
        self,
        source: RegistryClient,
        destination: RegistryClient,
        *,
        checkpoint: Callable[[], None] = _noop,
        on_progress: Callable[[CopyStats], None] | None = None,
        log: Callable[[str], None] | None = None,
        chunk_size: int = UPLOAD_CHUNK,
        chunked_above: int = CHUNKED_ABOVE,
        blob_homes: MutableMapping[str, str] | None = None,
    ) -> None:
        self.source = source
        self.destination = destination
        self.checkpoint = checkpoint
        self.on_progress = on_progress
        self.log = log or (lambda line: None)
        self.chunk_size = chunk_size
        self.chunked_above = chunked_above
        self.blob_homes: MutableMapping[str, str] = {} if blob_homes is None else blob_homes
        self.stats = CopyStats()
        self._reported_bytes = 0

    # Repositories and tags.

    def copy_repository(self, source_repository: str, destination_repository: str, tags: Iterable[str]) -> CopyStats:
        """Copy each tag; returns what this call did. A transient fault, refused credentials or an untrusted
        certificate propagate at once; tags that fail otherwise are logged and counted, the others copied, and
        CopyFailed names them at the end."""
        before = dataclasses.replace(self.stats)
        failed: dict[str, str] = {}
        for tag in tags:
            self.checkpoint()
            try:
                self.copy_tag(source_repository, tag, destination_repository)
            except DomainError as exc:
                if isinstance(exc, ENDPOINT_FAULTS) or (isinstance(exc, RemoteUnreachable) and exc.transient):
                    raise
                failed[tag] = exc.message
                self.stats.tags_failed += 1
                self.log(f"failed {source_repository}:{tag}: {exc.message}")
        if failed:
            reasons = "; ".join(f"{tag}: {message}" for tag, message in list(failed.items())[:NAMED_FAILURES])
            more = f"; and {len(failed) - NAMED_FAILURES} more" if len(failed) > NAMED_FAILURES else ""
            raise CopyFailed(f"{len(failed)} tag(s) of {source_repository} could not be copied: {reasons}{more}")
        return self.stats.since(before)

    def copy_tag(self, source_repository: str, tag: str, destination_repository: str) -> str:
        """Copy one tag unless the destination has it on the same digest; returns "copied" or "skipped"."""
        manifest = self._source_manifest(source_repository, tag)
        current = self.destination.head_manifest(destination_repository, tag)
        if current is not None and current.digest == manifest.digest:
            self.stats.tags_skipped += 1
            self.stats.bytes_skipped += self.source.image_size(source_repository, manifest)
            self._progress(force=True)
            return "skipped"
        self._copy_manifest(source_repository, manifest, destination_repository, tag)
        self.stats.tags_copied += 1
        self.log(f"copied {source_repository}:{tag} to {destination_repository}:{tag} ({manifest.digest})")
        return "copied"

    def delete_tag(self, destination_repository: str, tag: str) -> bool:
        """Delete a tag at the destination, keeping the other tags on its digest; False when it was not there."""
        removed = self.destination.remove_tag(destination_repository, tag)
        if removed:
            self.stats.tags_deleted += 1
            self.log(f"deleted {destination_repository}:{tag}")
        return removed

    # Manifests.

    def _source_manifest(self, repository: str, reference: str) -> Manifest:
        """The source's manifest of a tag or digest, byte for byte; CopyFailed when absent or schema 1."""
        manifest = self.source.get_manifest(repository, reference)
        if manifest is None:
            raise CopyFailed(f"the source registry has no manifest {repository}:{reference}")
        if manifest.media_type in SCHEMA1_TYPES or _schema_version(manifest) == 1:
            raise CopyFailed(f"{repository}:{reference}: schema 1 manifests cannot be replicated")
        return manifest

    def _copy_manifest(self, source_repository: str, manifest: Manifest, destination: str, reference: str) -> None:
        """Copy what the manifest names, then put its exact bytes under the reference (last, so it shows whole)."""
        document = manifest.document()
        if manifest.is_index:
            for entry in document.get("manifests", []):
                self._copy_platform_manifest(source_repository, entry["digest"], destination)
        else:
            for descriptor in [document.get("config"), *document.get("layers", [])]:
                if descriptor:
                    self._copy_blob(source_repository, descriptor, destination)
        stored = self.destination.put_manifest(destination, reference, manifest)
        if stored != manifest.digest:
            raise CopyFailed(
                f"the destination stored {destination}:{reference} as {stored}, not as the source's {manifest.digest}"
            )

    def _copy_platform_manifest(self, source_repository: str, digest: str, destination: str) -> None:
        """Copy one manifest an index names, by digest, unless the destination holds it already."""
        if self.destination.head_manifest(destination, digest) is not None:
            return
        self._copy_manifest(source_repository, self._source_manifest(source_repository, digest), destination, digest)

    # Blobs.

    def _copy_blob(self, source_repository: str, descriptor: dict[str, Any], destination: str) -> None:
        """Make the destination hold one blob: already there, mounted, or streamed from the source."""
        digest, size = descriptor["digest"], int(descriptor.get("size", 0))
        if descriptor.get("urls"):
            # A foreign (non-distributable) layer is fetched from its URLs by whoever pulls; no registry holds it.
            self.log(f"left out foreign layer {digest} of {source_repository}")
            return
        if self.destination.head_blob(destination, digest) is not None:
            self.stats.blobs_skipped += 1
            self.stats.bytes_skipped += size
        elif self._mount(digest, destination):
            self.stats.blobs_mounted += 1
            self.stats.bytes_skipped += size
        else:
            self._stream(source_repository, digest, destination)
            self.stats.blobs_copied += 1
        self.blob_homes[digest] = destination
        self._progress(force=True)
        self.checkpoint()

    def _mount(self, digest: str, destination: str) -> bool:
        """Mount the blob from a destination repository it was copied to before; False when there is none or the
        registry declines (a mount only saves bytes, so a refusal falls back to copying)."""
        home = self.blob_homes.get(digest)
        if home is None or home == destination:
            return False
        try:
            return self.destination.mount_blob(destination, digest, home)
        except RemoteUnreachable as exc:
            if exc.transient:
                raise
            return False

    def _stream(self, source_repository: str, digest: str, destination: str) -> None:
        """Stream a blob from the source into an upload at the destination, one network chunk held at a time."""
        before = self.stats.bytes_copied
        try:
            with self._source_blob(source_repository, digest) as blob:
                chunk_size = self.chunk_size if blob.size > self.chunked_above else None
                self.destination.upload_blob(destination, digest, self._counted(blob, source_repository), chunk_size)
        except BaseException:
            # Only blobs that arrived whole count their bytes as copied.
            self.stats.bytes_copied = before
            self.stats.blobs_failed += 1
            raise

    def _counted(self, blob: Blob, source_repository: str) -> Iterator[bytes]:
        """The blob's bytes as they arrive, counted into bytes_copied; a broken download is the source's fault."""
        try:
            for piece in blob.chunks():
                self.stats.bytes_copied += len(piece)
                self._progress()
                yield piece
        except requests.RequestException as exc:
            raise Unavailable(self.source.base_url, self.source.url(f"/v2/{source_repository}/blobs/"), exc) from None

    def _source_blob(self, repository: str, digest: str) -> Blob:
        """The source's blob as a stream; CopyFailed when the source lacks a blob its manifest names."""
        try:
            return self.source.get_blob(repository, digest)
        except UnexpectedStatus as exc:
            if exc.status_code == 404:
                raise CopyFailed(f"the source registry lacks blob {digest} that {repository} names") from None
            raise

    def _progress(self, force: bool = False) -> None:
        """Tell on_progress the stats after a blob, or when another PROGRESS_STEP bytes streamed."""
        if self.on_progress is None:
            return
        if force or self.stats.bytes_copied - self._reported_bytes >= PROGRESS_STEP:
            self._reported_bytes = self.stats.bytes_copied
            self.on_progress(self.stats)


def _schema_version(manifest: Manifest) -> int | None:
    """The manifest's schemaVersion (1 for the old signed Docker manifests), None when it is not JSON."""
    try:
        document = manifest.document()
    except ValueError:
        return None
    return document.get("schemaVersion") if isinstance(document, dict) else None

"""The indexer: which distribution and packages an image holds, read from its layers.

A layer is read once, as a stream (tar, gzip or zstd, told apart by their first bytes, never by the
media type alone), into a `LayerIndex`: only the files that matter (release files, package
databases, language package manifests, already parsed into packages), every symlink, and the
whiteouts and opaque directories that hide what lower layers hold. The index of a layer depends only
on its bytes and `INDEXER_VERSION`, so it can be stored by layer digest and shared between images.

`index_image` applies the layer indexes in order, like the container's root filesystem is built
(later files replace earlier ones, `.wh.NAME` deletes NAME, `.wh..wh..opq` empties a directory of
what lower layers put there), resolves symlinks across layers and lists what the result holds.
`read_image` does the same for an image in a registry through the one registry client.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import posixpath
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import zstandard

from portal.core.errors import Invalid, NotFound
from registries.client import Manifest, RegistryClient
from scanning.package_readers import (
    RELEASE_FILES,
    Distribution,
    Package,
    distribution_from,
    is_release_file,
    path_matters,
    reader_for,
)

__all__ = [
    "INDEXER_VERSION",
    "Distribution",
    "ImageIndex",
    "ImageLayers",
    "LayerIndex",
    "Package",
    "UnreadableImage",
    "index_image",
    "index_layer",
    "read_image",
    "read_layer",
    "resolve_image",
]

# Bump when the same layer bytes would give a different LayerIndex (new files kept, a parser fixed):
# stored layer indexes of another version are read again.
INDEXER_VERSION = 1

# A file that matters but is bigger than this is not read (it still hides what lower layers had there).
MAX_FILE_SIZE = 64 * 1024 * 1024
# Release files are a few lines; more than this of one is not a release file.
MAX_RELEASE_FILE = 64 * 1024
# Tar extension headers (long names, pax records) are read whole by tarfile: refuse big ones first.
MAX_EXTENSION_HEADER = 1024 * 1024
MAX_LINK_TARGET = 4096
# Symlinks and whiteouts kept per layer; a layer with more is not an image a system builds.
MAX_ENTRIES = 500_000
# Symlinks followed while resolving one path (Linux's own limit is 40).
MAX_SYMLINK_HOPS = 40
READ_CHUNK = 1024 * 1024

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
PLATFORM = ("linux", "amd64")
EXTENSION_TYPES = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE)
# Contents kept for hard links to them later in the same layer, when small.
MAX_LINKED_CONTENT = 1024 * 1024


class UnreadableImage(Invalid):
    """A layer or manifest the indexer cannot read: not a tar, damaged, hostile, or not what its digest says."""


# What the indexer produces.


@dataclass(frozen=True)
class LayerIndex:
    """What one layer holds that the indexer needs, by path relative to the root.

    `release_files`: the text of the files that name the distribution; `packages`: for each package
    database or manifest in the layer, the packages it lists (empty when unreadable or too big: it
    still replaces the lower layers' file); `symlinks`: path -> target as written; `whiteouts`:
    paths this layer deletes from lower layers; `opaque_dirs`: directories whose lower content it hides.
    """

    digest: str
    release_files: dict[str, str] = field(default_factory=dict)
    packages: dict[str, tuple[Package, ...]] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    whiteouts: tuple[str, ...] = ()
    opaque_dirs: tuple[str, ...] = ()
    indexer_version: int = INDEXER_VERSION

    def as_dict(self) -> dict[str, Any]:
        """The layer index as JSON-able data."""
        return {
            "digest": self.digest,
            "indexer_version": self.indexer_version,
            "release_files": dict(self.release_files),
            "packages": {path: [package.as_dict() for package in found] for path, found in self.packages.items()},
            "symlinks": dict(self.symlinks),
            "whiteouts": list(self.whiteouts),
            "opaque_dirs": list(self.opaque_dirs),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LayerIndex:
        """The layer index from as_dict()'s data."""
        return cls(
            digest=data["digest"],
            release_files=dict(data.get("release_files", {})),
            packages={
                path: tuple(Package.from_dict(item) for item in found)
                for path, found in data.get("packages", {}).items()
            },
            symlinks=dict(data.get("symlinks", {})),
            whiteouts=tuple(data.get("whiteouts", ())),
            opaque_dirs=tuple(data.get("opaque_dirs", ())),
            indexer_version=int(data.get("indexer_version", 0)),
        )


@dataclass(frozen=True)
class ImageIndex:
    """What an image holds: its distribution (None when no release file says) and its packages, sorted."""

    distribution: Distribution | None
    packages: tuple[Package, ...]

    def as_dict(self) -> dict[str, Any]:
        """The image index as JSON-able data."""
        return {
            "distribution": self.distribution.as_dict() if self.distribution else None,
            "packages": [package.as_dict() for package in self.packages],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageIndex:
        """The image index from as_dict()'s data."""
        distribution = data.get("distribution")
        return cls(
            Distribution.from_dict(distribution) if distribution else None,
            tuple(Package.from_dict(item) for item in data.get("packages", ())),
        )


# Reading a layer.


class _ChunkReader(io.RawIOBase):
    """A file over an iterator of byte chunks, hashing what it reads so the digest can be checked at the end."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = memoryview(b"")
        self.hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """Take the next non-empty chunk; False at the end."""
        for chunk in self._chunks:
            if chunk:
                self.hash.update(chunk)
                self._buffer = memoryview(bytes(self._buffer) + chunk) if self._buffer else memoryview(chunk)
                return True
        return False

    def peek_start(self, length: int) -> bytes:
        """The first bytes not read yet (fewer at the end of the stream), without consuming them."""
        while len(self._buffer) < length and self._fill():
            pass
        return bytes(self._buffer[:length])

    def readinto(self, target: Any) -> int:
        if not self._buffer and not self._fill():
            return 0
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        self._buffer = self._buffer[count:]
        return count

    def drain(self) -> None:
        """Read to the end (what follows the tar's end blocks counts for the digest too)."""
        self._buffer = memoryview(b"")
        while self._fill():
            self._buffer = memoryview(b"")


def _decompressed(raw: _ChunkReader) -> IO[bytes]:
    """The tar stream inside: gunzipped, un-zstd'ed, or as it is."""
    start = raw.peek_start(4)
    buffered = io.BufferedReader(raw, READ_CHUNK)
    if start.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=buffered, mode="rb")
    if start == ZSTD_MAGIC:
        return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
    return buffered


class _GuardedTarInfo(tarfile.TarInfo):
    """A tar header that refuses extension headers (long names, pax records) too big to be honest: tarfile
    reads those whole into memory before any member is seen."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in EXTENSION_TYPES and self.size > MAX_EXTENSION_HEADER:
            raise UnreadableImage(f"a tar extension header of {self.size} bytes is not one a layer needs")
        return super()._proc_member(archive)  # type: ignore[misc]


def clean_path(name: str) -> str | None:
    """A member's path relative to the root ("./etc/x" -> "etc/x"); None for absolute paths and paths with ".."."""
    if name.startswith("/"):
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


@dataclass
class _LayerReader:
    """What is gathered while one layer streams by."""

    max_file_size: int
    release_files: dict[str, str] = field(default_factory=dict)
    packages: dict[str, tuple[Package, ...]] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)
    whiteouts: list[str] = field(default_factory=list)
    opaque_dirs: list[str] = field(default_factory=list)
    contents: dict[str, bytes] = field(default_factory=dict)

    def take(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """Keep what the member tells, if anything."""
        path = clean_path(member.name)
        if path is None:
            return
        directory, name = posixpath.split(path)
        if name == OPAQUE_MARKER:
            self._count(self.opaque_dirs).append(directory)
        elif name.startswith(WHITEOUT_PREFIX):
            self._count(self.whiteouts).append(posixpath.join(directory, name[len(WHITEOUT_PREFIX) :]))
        elif member.issym():
            # A later member of the same path replaces an earlier one, whatever their kinds.
            self.release_files.pop(path, None)
            self.packages.pop(path, None)
            if len(member.linkname) <= MAX_LINK_TARGET and len(self.symlinks) < MAX_ENTRIES:
                self.symlinks[path] = member.linkname
        elif member.isreg() and path_matters(path):
            self.symlinks.pop(path, None)
            self._read(path, archive, member)
        elif member.islnk() and path_matters(path):
            # A hard link shares the content of a member earlier in this layer (kept only if it mattered).
            self._parse(path, self.contents.get(clean_path(member.linkname) or "", b""))

    def _count(self, entries: list[str]) -> list[str]:
        if len(entries) >= MAX_ENTRIES:
            raise UnreadableImage(f"the layer holds more than {MAX_ENTRIES} whiteouts")
        return entries

    def _read(self, path: str, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        limit = MAX_RELEASE_FILE if is_release_file(path) else self.max_file_size
        if member.size > limit:
            self._parse(path, None)
            return
        source = archive.extractfile(member)
        content = source.read(limit + 1) if source else b""
        if len(content) <= MAX_LINKED_CONTENT:
            self.contents[path] = content
        self._parse(path, content)

    def _parse(self, path: str, content: bytes | None) -> None:
        if is_release_file(path):
            self.release_files[path] = (content or b"").decode("utf-8", "replace")
            return
        reader = reader_for(path)
        self.packages[path] = tuple(reader(content, path)) if reader and content else ()

    def result(self, digest: str) -> LayerIndex:
        """The layer index of what was gathered."""
        return LayerIndex(
            digest,
            self.release_files,
            self.packages,
            self.symlinks,
            tuple(self.whiteouts),
            tuple(self.opaque_dirs),
        )


def index_layer(
    digest: str,
    stream: IO[bytes] | Iterable[bytes],
    *,
    max_file_size: int = MAX_FILE_SIZE,
    verify_digest: bool = True,
) -> LayerIndex:
    """Read a layer blob (tar, gzip or zstd) from a file or an iterable of chunks, holding at most one file that
    matters and a chunk of the stream in memory; with `verify_digest`, the bytes must hash to `digest`."""
    chunks = iter(lambda: stream.read(READ_CHUNK), b"") if hasattr(stream, "read") else stream
    raw = _ChunkReader(chunks)  # type: ignore[arg-type]
    reader = _LayerReader(max_file_size)
    try:
        with tarfile.open(fileobj=_decompressed(raw), mode="r|", tarinfo=_GuardedTarInfo) as archive:
            for member in archive:
                reader.take(archive, member)
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, zstandard.ZstdError) as exc:
        raise UnreadableImage(f"layer {digest} is not a readable tar (plain, gzip or zstd): {exc}") from None
    if verify_digest:
        raw.drain()
        actual = f"sha256:{raw.hash.hexdigest()}"
        if digest.startswith("sha256:") and actual != digest:
            raise UnreadableImage(f"layer {digest} does not match its digest (its bytes hash to {actual})")
    return reader.result(digest)


# Applying layers.


class _View:
    """The image's root filesystem as far as the indexer sees it: path -> ("link", target) |
    ("release", text) | ("packages", packages)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[str, Any]] = {}

    def apply(self, layer: LayerIndex) -> None:
        """Put a layer on top: first what it hides of the layers below, then what it holds."""
        for directory in layer.opaque_dirs:
            self._delete_under(directory, include_self=False)
        for path in layer.whiteouts:
            self._delete_under(path, include_self=True)
        self.entries.update((path, ("link", target)) for path, target in layer.symlinks.items())
        self.entries.update((path, ("release", text)) for path, text in layer.release_files.items())
        self.entries.update((path, ("packages", found)) for path, found in layer.packages.items())

    def _delete_under(self, path: str, include_self: bool) -> None:
        prefix = f"{path}/" if path else ""
        doomed = [key for key in self.entries if key.startswith(prefix) or (include_self and key == path)]
        for key in doomed:
            del self.entries[key]

    def resolve(self, path: str) -> str | None:
        """The path with every symlink on the way followed, as the kernel would inside the image (absolute targets
        start at the image root, ".." stops at the root); None when the links loop or go too deep."""
        pending = path.split("/")
        resolved: list[str] = []
        hops = 0
        while pending:
            part = pending.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            entry = self.entries.get(candidate)
            if entry is None or entry[0] != "link":
                resolved.append(part)
                continue
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                return None
            target = entry[1]
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
        return "/".join(resolved)

    def release_files(self) -> dict[str, str]:
        """The text of each release file, found through symlinks where the image links them."""
        found = {}
        for path in RELEASE_FILES:
            real = self.resolve(path)
            entry = self.entries.get(real) if real else None
            if entry is not None and entry[0] == "release":
                found[path] = entry[1]
        return found

    def packages(self) -> tuple[Package, ...]:
        """Every package listed by a database or manifest still in the image."""
        found = {package for kind, value in self.entries.values() if kind == "packages" for package in value}
        return tuple(sorted(found))


def index_image(layers: Iterable[LayerIndex]) -> ImageIndex:
    """The distribution and packages of the image made of these layers, lowest first."""
    view = _View()
    for layer in layers:
        view.apply(layer)
    return ImageIndex(distribution_from(view.release_files()), view.packages())


# Reading through the registry.


@dataclass(frozen=True)
class ImageLayers:
    """The image manifest the indexer reads (the linux/amd64 one of an index) and its layer digests, lowest first."""

    manifest_digest: str
    layers: tuple[str, ...]


def resolve_image(client: RegistryClient, repository: str, reference: str) -> ImageLayers:
    """The layers of a tag or digest; an index (multi-platform image) is read for linux/amd64."""
    manifest = _manifest(client, repository, reference)
    if manifest.is_index:
        entry = _platform_entry(manifest.document())
        manifest = _manifest(client, repository, entry)
    document = manifest.document()
    if document.get("schemaVersion") == 1 or "fsLayers" in document:
        raise UnreadableImage(f"{repository}:{reference} is a schema 1 manifest, which the indexer does not read")
    layers = document.get("layers")
    if not isinstance(layers, list) or not all(isinstance(layer, dict) and "digest" in layer for layer in layers):
        raise UnreadableImage(f"{repository}:{reference} is not an image manifest (it lists no layers)")
    return ImageLayers(manifest.digest, tuple(str(layer["digest"]) for layer in layers))


def _manifest(client: RegistryClient, repository: str, reference: str) -> Manifest:
    manifest = client.get_manifest(repository, reference)
    if manifest is None:
        raise NotFound(f"{repository}:{reference} is not in the registry")
    try:
        manifest.document()
    except ValueError:
        raise UnreadableImage(f"the manifest of {repository}:{reference} is not JSON") from None
    return manifest


def _platform_entry(document: dict[str, Any]) -> str:
    """The digest of the linux/amd64 manifest of an index."""
    entries = [entry for entry in document.get("manifests", []) if isinstance(entry, dict)]
    for entry in entries:
        platform = entry.get("platform") or {}
        if (platform.get("os"), platform.get("architecture")) == PLATFORM and entry.get("digest"):
            return str(entry["digest"])
    offered = ", ".join(
        f"{(entry.get('platform') or {}).get('os')}/{(entry.get('platform') or {}).get('architecture')}"
        for entry in entries
    )
    raise UnreadableImage(f"the image has no {'/'.join(PLATFORM)} variant (it has: {offered or 'none'})")


def read_layer(client: RegistryClient, repository: str, digest: str) -> LayerIndex:
    """Index one layer blob of the repository, streamed from the registry and checked against its digest."""
    with client.get_blob(repository, digest) as blob:
        return index_layer(digest, blob.chunks())


def read_image(
    client: RegistryClient, repository: str, reference: str, known: Mapping[str, LayerIndex] | None = None
) -> tuple[list[str], list[LayerIndex]]:
    """The layer digests of an image and their indexes; layers in `known` (by digest, of this INDEXER_VERSION)
    are not downloaded again."""
    layers = resolve_image(client, repository, reference).layers
    known = known or {}
    indexes = []
    for digest in layers:
        cached = known.get(digest)
        usable = cached is not None and cached.indexer_version == INDEXER_VERSION
        indexes.append(cached if usable else read_layer(client, repository, digest))  # type: ignore[arg-type]
    return list(layers), indexes

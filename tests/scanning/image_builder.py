"""Images for the scanner's tests, built from a spec, with their package databases in the real formats.

The dpkg databases are dpkg's own writing: tiny packages built with `dpkg-deb --build` and installed
with `dpkg --root` (`DpkgRoot`); the rpm database is rpm's own (rpmbuild, then `rpm --dbpath ...
--justdb`). The apk database, Python dist-info and npm manifests follow their formats byte for
byte. Layers are tars (plain, gzip or zstd) built without timestamps, so the same files give the
same layer digest. `build_image(spec)` makes the blobs; `push_built_image` writes them into a real
registry, `write_oci_layout` onto disk.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from registries.client import OCI_INDEX, OCI_MANIFEST, Manifest, RegistryClient
from registries.client_auth import SystemTokenAuth

PLAIN, GZIP, ZSTD = "tar", "gzip", "zstd"
LAYER_MEDIA_TYPES = {
    PLAIN: "application/vnd.oci.image.layer.v1.tar",
    GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
    ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
}
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"


# Describing an image.


@dataclass(frozen=True)
class Symlink:
    """A symbolic link in a layer, pointing at `target` as written (relative or absolute)."""

    target: str


@dataclass
class LayerSpec:
    """One layer: files (path -> bytes or Symlink), paths it deletes from the layers below, directories it makes
    opaque, and how it is compressed."""

    files: dict[str, bytes | Symlink] = field(default_factory=dict)
    whiteouts: tuple[str, ...] = ()
    opaque_dirs: tuple[str, ...] = ()
    compression: str = GZIP


@dataclass
class ImageSpec:
    """An image: its layers, lowest first, and its platform."""

    layers: list[LayerSpec]
    architecture: str = "amd64"
    os: str = "linux"


@dataclass(frozen=True)
class BuiltImage:
    """An image as a registry stores it: layer blobs, config and OCI manifest, all bytes."""

    layers: list[bytes]
    config: bytes
    manifest: bytes

    @property
    def layer_digests(self) -> list[str]:
        """The digests of the layer blobs, lowest first."""
        return [digest_of(layer) for layer in self.layers]

    @property
    def digest(self) -> str:
        """The manifest's digest."""
        return digest_of(self.manifest)


def digest_of(data: bytes) -> str:
    """The sha256 content digest of bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(spec: LayerSpec) -> bytes:
    """The uncompressed tar of a layer: parent directories first, then files, links, whiteouts and opaque markers."""
    entries: dict[str, bytes | Symlink | None] = {}
    for path, content in spec.files.items():
        entries[path] = content
    for path in spec.whiteouts:
        directory, _, name = path.rpartition("/")
        entries[f"{directory}/.wh.{name}" if directory else f".wh.{name}"] = b""
    for directory in spec.opaque_dirs:
        entries[f"{directory}/.wh..wh..opq"] = b""
    directories = sorted(
        {"/".join(path.split("/")[:depth]) for path in entries for depth in range(1, path.count("/") + 1)}
    )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            archive.addfile(info)
        for path in sorted(entries):
            _add(archive, path, entries[path])
    return buffer.getvalue()


def _add(archive: tarfile.TarFile, path: str, content: bytes | Symlink | None) -> None:
    info = tarfile.TarInfo(path)
    if isinstance(content, Symlink):
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, content.target, 0o777
        archive.addfile(info)
        return
    info.size, info.mode = len(content or b""), 0o644
    archive.addfile(info, io.BytesIO(content or b""))


def compress(tar: bytes, compression: str) -> bytes:
    """The layer blob: the tar as it is, gzipped (no timestamp) or zstd-compressed."""
    if compression == GZIP:
        return gzip.compress(tar, mtime=0)
    if compression == ZSTD:
        return zstandard.ZstdCompressor().compress(tar)
    return tar


def build_image(spec: ImageSpec) -> BuiltImage:
    """The layer blobs, config and OCI manifest of an image spec."""
    tars = [layer_tar(layer) for layer in spec.layers]
    blobs = [compress(tar, layer.compression) for tar, layer in zip(tars, spec.layers, strict=True)]
    config = json.dumps(
        {
            "architecture": spec.architecture,
            "os": spec.os,
            "rootfs": {"type": "layers", "diff_ids": [digest_of(tar) for tar in tars]},
            "config": {},
        }
    ).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(config), "size": len(config)},
        "layers": [
            {"mediaType": LAYER_MEDIA_TYPES[layer.compression], "digest": digest_of(blob), "size": len(blob)}
            for blob, layer in zip(blobs, spec.layers, strict=True)
        ],
    }
    return BuiltImage(blobs, config, json.dumps(manifest).encode())


# Writing images where the scanner reads them.


def registry_client(registry_url: str) -> RegistryClient:
    """A client of a test registry (token auth trusting the portal's key, as start_registry configures it)."""
    return RegistryClient(registry_url, auth=SystemTokenAuth())


def push_built_image(registry_url: str, repository: str, tag: str, image: BuiltImage) -> str:
    """Upload the image's blobs and tag its manifest in a real registry; returns the manifest digest."""
    client = registry_client(registry_url)
    for blob in [image.config, *image.layers]:
        if not client.blob_exists(repository, digest_of(blob)):
            client.upload_blob(repository, digest_of(blob), io.BytesIO(blob))
    return client.put_manifest(repository, tag, Manifest(image.manifest, OCI_MANIFEST, image.digest))


def push_image_index(registry_url: str, repository: str, tag: str, images: list[tuple[BuiltImage, str]]) -> str:
    """Push each image (with its architecture) by digest and tag an OCI index of them; returns the index digest."""
    entries = []
    for image, architecture in images:
        push_built_image(registry_url, repository, image.digest, image)
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": image.digest,
                "size": len(image.manifest),
                "platform": {"os": "linux", "architecture": architecture},
            }
        )
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    return registry_client(registry_url).put_manifest(repository, tag, Manifest(index, OCI_INDEX, digest_of(index)))


def write_oci_layout(layout: Path, tag: str, image: BuiltImage) -> str:
    """The image as an OCI image layout directory (for `skopeo copy oci:DIR:TAG`); returns the manifest digest."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    for blob in [image.config, *image.layers, image.manifest]:
        (blobs / digest_of(blob).removeprefix("sha256:")).write_bytes(blob)
    descriptor = {
        "mediaType": OCI_MANIFEST,
        "digest": image.digest,
        "size": len(image.manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    return image.digest


# Package databases made by the real tools.


@dataclass(frozen=True)
class Deb:
    """A tiny Debian package: `source` is its Source: field as written ("" for none), `conffile` gives it a
    configuration file (so removing it leaves it in "config-files" state)."""

    name: str
    version: str
    source: str = ""
    conffile: bool = False


def build_deb(workdir: Path, deb: Deb) -> Path:
    """A .deb built by dpkg-deb from a control file and one documentation file."""
    tree = workdir / f"{deb.name}_{deb.version.replace(':', '%3a')}"
    (tree / "DEBIAN").mkdir(parents=True)
    control = [f"Package: {deb.name}", f"Version: {deb.version}"]
    control += [f"Source: {deb.source}"] if deb.source else []
    control += ["Architecture: all", "Maintainer: Wharf Tests <tests@wharf.invalid>", f"Description: {deb.name}"]
    (tree / "DEBIAN" / "control").write_text("\n".join(control) + "\n")
    doc = tree / "usr" / "share" / "doc" / deb.name / "README"
    doc.parent.mkdir(parents=True)
    doc.write_text(f"{deb.name} {deb.version}\n")
    if deb.conffile:
        conf = tree / "etc" / deb.name / f"{deb.name}.conf"
        conf.parent.mkdir(parents=True)
        conf.write_text("setting = 1\n")
        (tree / "DEBIAN" / "conffiles").write_text(f"/etc/{deb.name}/{deb.name}.conf\n")
    package = workdir / f"{tree.name}.deb"
    _run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(package)])
    return package


class DpkgRoot:
    """A directory dpkg installs into and removes from, so its var/lib/dpkg/status is dpkg's own."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir / "root"
        admin = self.root / "var" / "lib" / "dpkg"
        for sub in ("info", "updates", "triggers"):
            (admin / sub).mkdir(parents=True, exist_ok=True)
        for name in ("status", "available"):
            (admin / name).touch()

    def _dpkg(self, *arguments: str) -> None:
        _run(["dpkg", f"--root={self.root}", "--force-all", "--log=/dev/null", *arguments])

    def install(self, *debs: Deb) -> None:
        """Build and install the packages (an installed package of the same name is upgraded)."""
        # dpkg-deb runs are independent and mostly wait on the disk: a few at once make a 500-package image quick.
        with ThreadPoolExecutor(max_workers=4) as pool:
            built = list(pool.map(lambda deb: str(build_deb(self.workdir, deb)), debs))
        self._dpkg("-i", *built)

    def remove(self, *names: str) -> None:
        """Remove the packages (their configuration files stay)."""
        self._dpkg("-r", *names)

    def files(self) -> dict[str, bytes | Symlink]:
        """Every file under the root as a layer holds it (dpkg's lock and backup files left out)."""
        found: dict[str, bytes | Symlink] = {}
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root).as_posix()
            if path.is_file() and not path.name.startswith("lock") and not path.name.endswith("-old"):
                found[relative] = path.read_bytes()
        return found


def changed_files(before: dict[str, bytes | Symlink], after: dict[str, bytes | Symlink]) -> dict[str, bytes | Symlink]:
    """What a layer on top of `before` must hold to give `after` (deleted files go to LayerSpec.whiteouts)."""
    return {path: content for path, content in after.items() if before.get(path) != content}


@dataclass(frozen=True)
class Rpm:
    """A tiny rpm package; `subpackages` are more binaries built from the same source rpm."""

    name: str
    version: str
    release: str
    epoch: int | None = None
    subpackages: tuple[str, ...] = ()


def build_rpms(workdir: Path, rpm: Rpm) -> list[Path]:
    """The binary rpms of one source package, built by rpmbuild (noarch, no files)."""
    lines = [f"Name: {rpm.name}", f"Version: {rpm.version}", f"Release: {rpm.release}"]
    lines += [f"Epoch: {rpm.epoch}"] if rpm.epoch is not None else []
    lines += ["Summary: tiny", "License: MIT", "BuildArch: noarch", "%description", "tiny", "%files"]
    for sub in rpm.subpackages:
        lines += [f"%package -n {sub}", f"Summary: {sub}", f"%description -n {sub}", "tiny", f"%files -n {sub}"]
    workdir.mkdir(parents=True, exist_ok=True)
    spec = workdir / f"{rpm.name}.spec"
    spec.write_text("\n".join(lines) + "\n")
    top = workdir / "rpmbuild"
    _run(["rpmbuild", "--quiet", "--define", f"_topdir {top}", "-bb", str(spec)])
    return sorted((top / "RPMS" / "noarch").glob("*.rpm"))


def rpm_database(rpms: list[Rpm]) -> bytes:
    """rpmdb.sqlite as rpm writes it with these packages installed (database only, no files)."""
    with tempfile.TemporaryDirectory(prefix="wharf-rpm-") as directory:
        workdir = Path(directory)
        dbpath = workdir / "db"
        dbpath.mkdir()
        _run(["rpm", "--dbpath", str(dbpath), "--initdb"])
        packages: list[str] = []
        for rpm in rpms:
            packages += [str(path) for path in build_rpms(workdir / rpm.name, rpm)]
        _run(["rpm", "--dbpath", str(dbpath), "-i", "--justdb", "--nodeps", "--noscripts", *packages])
        return (dbpath / "rpmdb.sqlite").read_bytes()


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise RuntimeError(f"{command[0]} is not installed (apt-get install dpkg-dev rpm)")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


# Formats written directly.


@dataclass(frozen=True)
class Apk:
    """An entry of Alpine's installed database: name, version, origin (the source package)."""

    name: str
    version: str
    origin: str


def apk_installed(packages: list[Apk]) -> bytes:
    """lib/apk/db/installed as apk writes it: one stanza per package, with the files it owns."""
    stanzas = []
    for package in packages:
        stanzas.append(
            "\n".join(
                [
                    "C:Q1" + hashlib.sha1(package.name.encode()).hexdigest()[:26] + "=",
                    f"P:{package.name}",
                    f"V:{package.version}",
                    "A:x86_64",
                    "S:1024",
                    "I:4096",
                    f"T:{package.name}",
                    "U:https://wharf.invalid/",
                    "L:MIT",
                    f"o:{package.origin}",
                    "m:Wharf Tests <tests@wharf.invalid>",
                    "t:1700000000",
                    "c:0000000000000000000000000000000000000000",
                    "F:usr/share/doc",
                    f"R:{package.name}.txt",
                    "Z:Q1AAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                ]
            )
        )
    return ("\n\n".join(stanzas) + "\n\n").encode()


def python_dist_info(site: str, name: str, version: str, style: str = "dist-info") -> dict[str, bytes | Symlink]:
    """An installed Python distribution: `site`/NAME-VERSION.dist-info/METADATA, .egg-info/PKG-INFO
    (style "egg-info") or a bare .egg-info file (style "egg-file")."""
    metadata = (
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: {name} for tests\n\n"
        f"# {name}\n\nLong description. Name: not-{name}\nVersion: 0\n"
    ).encode()
    stem = f"{name.replace('-', '_')}-{version}"
    if style == "dist-info":
        return {f"{site}/{stem}.dist-info/METADATA": metadata, f"{site}/{stem}.dist-info/RECORD": b""}
    if style == "egg-info":
        return {f"{site}/{stem}.egg-info/PKG-INFO": metadata}
    return {f"{site}/{stem}.egg-info": metadata}


def npm_package(modules: str, name: str, version: str) -> dict[str, bytes | Symlink]:
    """An installed npm package: `modules`/NAME/package.json (NAME may be @scope/name) and its code."""
    manifest = {"name": name, "version": version, "main": "index.js", "license": "MIT"}
    return {
        f"{modules}/{name}/package.json": json.dumps(manifest, indent=2).encode(),
        f"{modules}/{name}/index.js": b"module.exports = {};\n",
    }


def os_release(**values: str) -> bytes:
    """An os-release file, every value quoted the way distributions quote them."""
    return "".join(f'{key}="{value}"\n' for key, value in values.items()).encode()

"""What the indexer reads in a file of an image: which paths matter, and the packages or release they name.

Each reader takes the bytes of one file and never raises on bad content: a stanza it cannot read is
left out, so one damaged record does not hide the rest of an image. The paths are relative to the
image root, without a leading slash.
"""

from __future__ import annotations

import email.parser
import json
import re
import shlex
import sqlite3
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from debian import deb822

DEB, APK, RPM, PYPI, NPM = "deb", "apk", "rpm", "pypi", "npm"


@dataclass(frozen=True, order=True)
class Package:
    """One installed package: its ecosystem, name and version, the source package it was built from, and the
    file that listed it."""

    ecosystem: str
    name: str
    version: str
    source_name: str = ""
    source_version: str = ""
    path: str = ""

    def as_dict(self) -> dict[str, str]:
        """The package as JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Package:
        """The package from as_dict()'s data."""
        return cls(**{name: str(data.get(name, "")) for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Distribution:
    """The operating system of an image, as its os-release (or release file) names it."""

    id: str
    version_id: str = ""
    codename: str = ""
    pretty_name: str = ""

    def as_dict(self) -> dict[str, str]:
        """The distribution as JSON-able data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Distribution:
        """The distribution from as_dict()'s data."""
        return cls(**{name: str(data.get(name, "")) for name in cls.__dataclass_fields__})


# Files that tell the distribution: kept whole (they are a few lines).
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
DEBIAN_VERSION = "etc/debian_version"
ALPINE_RELEASE = "etc/alpine-release"
REDHAT_RELEASE = "etc/redhat-release"
RELEASE_FILES = frozenset((*OS_RELEASE, DEBIAN_VERSION, ALPINE_RELEASE, REDHAT_RELEASE))

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_DIR = "var/lib/dpkg/status.d"
APK_INSTALLED = "lib/apk/db/installed"
# Fedora 36+ and openSUSE keep the database under /usr (var/lib/rpm is a symlink to it).
RPM_SQLITE = frozenset(("var/lib/rpm/rpmdb.sqlite", "usr/lib/sysimage/rpm/rpmdb.sqlite"))

# Debian releases by major version, for a debian_version that gives only the number.
DEBIAN_CODENAMES = {
    "7": "wheezy",
    "8": "jessie",
    "9": "stretch",
    "10": "buster",
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
    "14": "forky",
}


def reader_for(path: str) -> Callable[[bytes, str], list[Package]] | None:
    """The reader of the packages a file lists, or None when the path holds no package database."""
    if path == DPKG_STATUS:
        return read_dpkg_status
    if path.startswith(DPKG_STATUS_DIR + "/") and "/" not in path[len(DPKG_STATUS_DIR) + 1 :]:
        # Distroless images write one stanza per package here, next to its .md5sums.
        return None if path.endswith(".md5sums") else read_dpkg_status_d
    if path == APK_INSTALLED:
        return read_apk_installed
    if path in RPM_SQLITE:
        return read_rpm_sqlite
    if path.endswith((".dist-info/METADATA", ".egg-info/PKG-INFO")) or path.endswith(".egg-info"):
        return read_python_metadata
    if is_npm_manifest(path):
        return read_npm_package
    return None


def is_npm_manifest(path: str) -> bool:
    """Whether the path is the package.json of an installed npm package (node_modules/NAME or @SCOPE/NAME).

    A package.json deeper inside a package (a "type": "module" marker, a test fixture) is not a
    package of its own, and the project's own package.json outside node_modules is the application,
    not a dependency: neither is listed.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith((".", "@"))
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


# dpkg.


def read_dpkg_status(content: bytes, path: str) -> list[Package]:
    """The packages dpkg's status file marks as installed ("install ok installed", or held)."""
    return list(_dpkg_packages(content, path, require_status=True))


def read_dpkg_status_d(content: bytes, path: str) -> list[Package]:
    """The packages of a distroless status.d file, whose stanzas may carry no Status at all."""
    return list(_dpkg_packages(content, path, require_status=False))


def _dpkg_packages(content: bytes, path: str, require_status: bool) -> Iterator[Package]:
    lines = content.decode("utf-8", "replace").splitlines()
    for stanza in deb822.Deb822.iter_paragraphs(lines, use_apt_pkg=False):
        name, version = stanza.get("Package", "").strip(), stanza.get("Version", "").strip()
        status = stanza.get("Status", "").split()
        if not name or not version:
            continue
        # The third word is the state; "install"/"hold" and "ok" are the wish and the error flag.
        installed = len(status) == 3 and status[1] == "ok" and status[2] == "installed"
        if (status and not installed) or (require_status and not status):
            continue
        source_name, source_version = _dpkg_source(stanza.get("Source", ""), name, version)
        yield Package(DEB, name, version, source_name, source_version, path)


def _dpkg_source(field: str, name: str, version: str) -> tuple[str, str]:
    """The source package of a binary: "src", "src (1.2-3)" (a binNMU carries its own version), or the binary."""
    match = re.fullmatch(r"\s*([^\s(]+)\s*(?:\(\s*([^)\s]+)\s*\))?\s*", field)
    if not match:
        return name, version
    return match.group(1), match.group(2) or version


# apk.


def read_apk_installed(content: bytes, path: str) -> list[Package]:
    """The packages of Alpine's lib/apk/db/installed: P: name, V: version, o: origin (the source package)."""
    packages = []
    for stanza in re.split(r"\n\s*\n", content.decode("utf-8", "replace")):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if len(line) > 2 and line[1] == ":":
                # The first occurrence counts: later lines with the same letter describe files.
                fields.setdefault(line[0], line[2:].strip())
        if fields.get("P") and fields.get("V"):
            name, version = fields["P"], fields["V"]
            packages.append(Package(APK, name, version, fields.get("o") or name, version, path))
    return packages


# rpm.

RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH, RPMTAG_SOURCERPM = 1000, 1001, 1002, 1003, 1044
RPM_INT32, RPM_STRING, RPM_STRING_ARRAY, RPM_I18NSTRING = 4, 6, 8, 9
# A header with more index entries or data than this is not one rpm wrote.
RPM_MAX_ENTRIES = 100_000
RPM_MAX_DATA = 256 * 1024 * 1024


def read_rpm_sqlite(content: bytes, path: str) -> list[Package]:
    """The packages of an rpm 4.16+ SQLite database: each row of Packages is one package's header blob."""
    with tempfile.NamedTemporaryFile(suffix=".sqlite") as copy:
        copy.write(content)
        copy.flush()
        try:
            # immutable: no lock or journal files are looked for or written next to our copy.
            with sqlite3.connect(f"file:{copy.name}?mode=ro&immutable=1", uri=True) as connection:
                blobs = [row[0] for row in connection.execute("SELECT blob FROM Packages ORDER BY hnum")]
            connection.close()
        except sqlite3.Error:
            return []
    packages = []
    for blob in blobs:
        tags = rpm_header_tags(bytes(blob))
        package = _rpm_package(tags, path) if tags else None
        if package is not None:
            packages.append(package)
    return packages


def rpm_header_tags(blob: bytes) -> dict[int, Any]:
    """The name, version, release, epoch and source rpm of an rpm header blob (as rpmdb stores it, without
    the lead and magic): index count and data length, 16-byte index entries, then the data; {} when damaged."""
    if len(blob) < 8:
        return {}
    count, data_length = struct.unpack(">II", blob[:8])
    start = 8 + 16 * count
    if count > RPM_MAX_ENTRIES or data_length > RPM_MAX_DATA or start + data_length > len(blob):
        return {}
    data = blob[start : start + data_length]
    tags: dict[int, Any] = {}
    wanted = (RPMTAG_NAME, RPMTAG_VERSION, RPMTAG_RELEASE, RPMTAG_EPOCH, RPMTAG_SOURCERPM)
    for index in range(count):
        tag, kind, offset, _count = struct.unpack(">iiii", blob[8 + 16 * index : 24 + 16 * index])
        if tag not in wanted or not 0 <= offset < len(data):
            continue
        if kind == RPM_INT32 and offset + 4 <= len(data):
            tags[tag] = struct.unpack(">i", data[offset : offset + 4])[0]
        elif kind in (RPM_STRING, RPM_STRING_ARRAY, RPM_I18NSTRING):
            end = data.find(b"\0", offset)
            tags[tag] = data[offset : end if end >= 0 else len(data)].decode("utf-8", "replace")
    return tags


def _rpm_package(tags: dict[int, Any], path: str) -> Package | None:
    name, version, release = tags.get(RPMTAG_NAME), tags.get(RPMTAG_VERSION), tags.get(RPMTAG_RELEASE)
    # gpg-pubkey entries are the imported signing keys, not software.
    if not name or not version or name == "gpg-pubkey":
        return None
    epoch = tags.get(RPMTAG_EPOCH)
    full = f"{epoch}:{version}" if epoch is not None else version
    full = f"{full}-{release}" if release else full
    source_name, source_version = name, full
    source_rpm = str(tags.get(RPMTAG_SOURCERPM) or "")
    if source_rpm.endswith(".src.rpm") and source_rpm.count("-") >= 2:
        source_name, source_version, source_release = source_rpm.removesuffix(".src.rpm").rsplit("-", 2)
        # The source rpm's file name has no epoch; the binary shares its source's.
        epoch_prefix = f"{epoch}:" if epoch is not None else ""
        source_version = f"{epoch_prefix}{source_version}-{source_release}"
    return Package(RPM, name, full, source_name, source_version, path)


# Language packages.


def read_python_metadata(content: bytes, path: str) -> list[Package]:
    """The distribution a *.dist-info/METADATA, *.egg-info/PKG-INFO or *.egg-info file describes (only headers
    are read: the long description after them is skipped)."""
    headers = email.parser.BytesHeaderParser().parsebytes(content)
    name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
    if not name or not version:
        return []
    return [Package(PYPI, name, version, name, version, path)]


def read_npm_package(content: bytes, path: str) -> list[Package]:
    """The package an installed package.json names (both name and version, or nothing)."""
    try:
        document = json.loads(content)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    name, version = document.get("name"), document.get("version")
    if not isinstance(name, str) or not isinstance(version, str) or not name or not version:
        return []
    return [Package(NPM, name, version, name, version, path)]


# The distribution.


def parse_os_release(text: str) -> dict[str, str]:
    """KEY=value pairs of an os-release file, with shell quoting undone (bad lines are skipped)."""
    values = {}
    for line in text.splitlines():
        key, separator, raw = line.strip().partition("=")
        if not separator or not re.fullmatch(r"[A-Z0-9_]+", key):
            continue
        try:
            values[key] = " ".join(shlex.split(raw))
        except ValueError:
            values[key] = raw.strip().strip("\"'")
    return values


def distribution_from(release_files: dict[str, str]) -> Distribution | None:
    """The distribution named by the release files found (path -> text): os-release first, then the
    older files of Debian, Alpine and the Red Hat family."""
    os_release = next((release_files[path] for path in OS_RELEASE if path in release_files), None)
    debian_version = release_files.get(DEBIAN_VERSION, "").strip()
    if os_release is not None:
        values = parse_os_release(os_release)
        if values.get("ID"):
            return _from_os_release(values, debian_version)
    if ALPINE_RELEASE in release_files:
        version = release_files[ALPINE_RELEASE].strip()
        return Distribution("alpine", version, "", f"Alpine Linux v{version}")
    if REDHAT_RELEASE in release_files:
        return _from_redhat_release(release_files[REDHAT_RELEASE].strip())
    if debian_version:
        return _debian(debian_version, {})
    return None


def _from_os_release(values: dict[str, str], debian_version: str) -> Distribution:
    identifier = values["ID"].lower()
    if identifier == "debian" and not values.get("VERSION_CODENAME"):
        return _debian(debian_version, values)
    codename = values.get("VERSION_CODENAME", "")
    if not codename:
        # Older releases put it only in VERSION: "9 (stretch)", "16.04.7 LTS (Xenial Xerus)".
        match = re.search(r"\(([A-Za-z]+)", values.get("VERSION", ""))
        codename = match.group(1).lower() if match and identifier in ("debian", "ubuntu") else ""
    return Distribution(identifier, values.get("VERSION_ID", ""), codename, values.get("PRETTY_NAME", ""))


def _debian(debian_version: str, values: dict[str, str]) -> Distribution:
    """Debian whose os-release names no codename: /etc/debian_version says "12.4" or "trixie/sid"."""
    version_id = values.get("VERSION_ID", "")
    codename = ""
    if debian_version[:1].isdigit():
        version_id = version_id or debian_version.split(".")[0]
        codename = DEBIAN_CODENAMES.get(version_id, "")
    elif debian_version:
        codename = debian_version.split("/")[0]
    if not codename:
        match = re.search(r"\(([a-z]+)\)", values.get("VERSION", ""))
        codename = match.group(1) if match else ""
    return Distribution("debian", version_id, codename, values.get("PRETTY_NAME", ""))


def _from_redhat_release(text: str) -> Distribution:
    """ "CentOS Linux release 7.9.2009 (Core)", "Red Hat Enterprise Linux Server release 6.10 (Santiago)"."""
    match = re.match(r"(.+?)\s+release\s+([\d.]+)", text)
    if not match:
        return Distribution("rhel", "", "", text)
    name = match.group(1).lower()
    identifier = "centos" if "centos" in name else "fedora" if "fedora" in name else "rhel"
    version = match.group(2)
    # os-release gives the major version for these families; keep the same shape.
    return Distribution(identifier, version if identifier == "fedora" else version.split(".")[0], "", text)


def is_release_file(path: str) -> bool:
    """Whether the file may name the distribution: the usual paths, and any file named os-release, since
    etc/os-release may link to one anywhere (NixOS: /etc/static/os-release, itself under a linked directory)."""
    return path in RELEASE_FILES or path.endswith("/os-release")


def path_matters(path: str) -> bool:
    """Whether the indexer keeps this regular file of a layer."""
    return is_release_file(path) or reader_for(path) is not None

"""The indexer on real layer blobs: exact package sets, whiteouts, symlinks, compressions and hostile tars."""

from __future__ import annotations

import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest

from scanning.indexer import (
    Distribution,
    ImageIndex,
    LayerIndex,
    Package,
    UnreadableImage,
    index_image,
    index_layer,
)
from scanning.package_readers import distribution_from, read_dpkg_status, read_dpkg_status_d
from tests.scanning import fixtures
from tests.scanning.image_builder import (
    GZIP,
    PLAIN,
    ZSTD,
    BuiltImage,
    ImageSpec,
    LayerSpec,
    Symlink,
    build_image,
    compress,
    digest_of,
    layer_tar,
    npm_package,
    os_release,
)


def layer_indexes(image: BuiltImage, **options: int) -> list[LayerIndex]:
    """Each layer of the built image read from its bytes."""
    blobs = zip(image.layer_digests, image.layers, strict=True)
    return [index_layer(digest, io.BytesIO(blob), **options) for digest, blob in blobs]


def index_of(*layers: LayerSpec) -> ImageIndex:
    """The index of an image made of these layers."""
    return index_image(layer_indexes(build_image(ImageSpec(list(layers)))))


@pytest.mark.parametrize(
    ("build", "distribution", "packages"),
    [
        (fixtures.debian_image, fixtures.DEBIAN_DISTRIBUTION, fixtures.DEBIAN_PACKAGES),
        (fixtures.ubuntu_image, fixtures.UBUNTU_DISTRIBUTION, fixtures.UBUNTU_PACKAGES),
        (fixtures.alpine_image, fixtures.ALPINE_DISTRIBUTION, fixtures.ALPINE_PACKAGES),
        (fixtures.rocky_image, fixtures.ROCKY_DISTRIBUTION, fixtures.ROCKY_PACKAGES),
    ],
    ids=["debian", "ubuntu", "alpine", "rocky"],
)
def test_fixture_images_give_exactly_their_packages(build, distribution: Distribution, packages: frozenset) -> None:
    index = index_image(layer_indexes(build()))

    assert index.distribution == distribution
    assert set(index.packages) == packages
    assert len(index.packages) == len(packages)


def test_first_debian_layer_alone_holds_the_packages_before_upgrade_and_removals() -> None:
    first = layer_indexes(fixtures.debian_image())[0]

    assert set(index_image([first]).packages) == fixtures.DEBIAN_BASE_PACKAGES


def test_dpkg_upgrade_removal_and_whiteout_of_a_dist_info_directory() -> None:
    first, second, _ = layer_indexes(fixtures.debian_image())

    found = {(p.ecosystem, p.name, p.version) for p in index_image([first, second]).packages}

    assert ("deb", "libtiny1", "2.4.1-4") in found and ("deb", "libtiny1", "2.4.1-3+b1") not in found
    # dpkg keeps the removed package's stanza as "deinstall ok config-files": not installed.
    assert b"Package: tinyconf\nStatus: deinstall ok config-files" in dpkg_status(fixtures.debian_image(), 1)
    assert not any(name == "tinyconf" for _, name, _ in found)
    assert not any(name == "tinyrequests" for _, name, _ in found)
    # Before the opaque third layer: every installed npm package, nested ones too, but no marker or app file.
    assert {(name, version) for ecosystem, name, version in found if ecosystem == "npm"} == {
        ("tiny-lodash", "4.17.20"),
        ("@tiny/parser", "1.0.0-beta.2"),
        ("tiny-dep", "0.1.0"),
    }


def dpkg_status(image: BuiltImage, layer: int) -> bytes:
    """var/lib/dpkg/status as the layer holds it (written by dpkg itself)."""
    import gzip

    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(image.layers[layer]))) as archive:
        member = archive.extractfile("var/lib/dpkg/status")
        assert member is not None
        return member.read()


def test_opaque_directory_hides_lower_content_but_not_its_own() -> None:
    lower = LayerSpec({**npm_package("app/node_modules", "a", "1.0.0"), **npm_package("app/other", "b", "1.0.0")})
    upper = LayerSpec(npm_package("app/node_modules", "c", "2.0.0"), opaque_dirs=("app/node_modules",))

    assert {p.name for p in index_of(lower, upper).packages} == {"c"}
    assert {p.name for p in index_of(lower).packages} == {"a"}


def test_whiteout_of_a_file_and_recreation_in_a_later_layer() -> None:
    release = {"etc/os-release": fixtures.DEBIAN_OS_RELEASE}

    assert index_of(LayerSpec(release), LayerSpec(whiteouts=("etc/os-release",))).distribution is None
    recreated = index_of(
        LayerSpec(release),
        LayerSpec(whiteouts=("etc/os-release",)),
        LayerSpec({"etc/os-release": fixtures.UBUNTU_OS_RELEASE}),
    )
    assert recreated.distribution == fixtures.UBUNTU_DISTRIBUTION


def test_symlinks_resolve_across_layers_relative_absolute_and_chained() -> None:
    target = LayerSpec({"usr/lib/os-release": fixtures.DEBIAN_OS_RELEASE})
    chained = LayerSpec({"etc/os-release": Symlink("release"), "etc/release": Symlink("/usr/lib/os-release")})
    climbing = LayerSpec({"etc/os-release": Symlink("../../../../usr/lib/os-release")})

    assert index_of(target, chained).distribution == fixtures.DEBIAN_DISTRIBUTION
    # Only resolving finds this one: a relative link into a directory that is itself an absolute link.
    elsewhere = LayerSpec({"opt/system/etc/os-release": fixtures.UBUNTU_OS_RELEASE})
    linked = LayerSpec({"etc/os-release": Symlink("static/os-release"), "etc/static": Symlink("/opt/system/etc")})
    assert index_of(target, elsewhere, linked).distribution == fixtures.UBUNTU_DISTRIBUTION
    # ".." stops at the image's root, as it does in the container.
    assert index_of(target, climbing).distribution == fixtures.DEBIAN_DISTRIBUTION
    # A later layer that deletes the target leaves a dangling link: usr/lib/os-release is gone too.
    gone = index_of(target, chained, LayerSpec(whiteouts=("usr/lib/os-release",)))
    assert gone.distribution is None


def test_directory_symlink_reaches_the_rpm_database_under_usr() -> None:
    image = fixtures.rocky_image()
    database = layer_indexes(image)[0].packages[fixtures.RPMDB]
    relocated = [Package(p.ecosystem, p.name, p.version, p.source_name, p.source_version, "") for p in database]
    layer = LayerIndex(
        "sha256:fedora",
        release_files={"usr/lib/os-release": os_release(ID="fedora", VERSION_ID="39").decode()},
        packages={"usr/lib/sysimage/rpm/rpmdb.sqlite": tuple(relocated)},
        symlinks={"var/lib/rpm": "../../usr/lib/sysimage/rpm", "etc/os-release": "../usr/lib/os-release"},
    )

    index = index_image([layer])

    assert index.distribution == Distribution("fedora", "39", "", "")
    assert {p.name for p in index.packages} == {"tinyssl", "tinyssl-libs", "tinybash"}


def test_symlink_loops_end_and_never_leave_the_image() -> None:
    looping = LayerSpec({"etc/os-release": Symlink("os-release2"), "etc/os-release2": Symlink("os-release")})
    # The machine running the tests has /etc/os-release; a link pointing "out" must not read it.
    outward = LayerSpec({"etc/os-release": Symlink("../../../../../../etc/hostname")})

    assert index_of(looping).distribution is None
    assert index_of(outward).distribution is None


@pytest.mark.parametrize("compression", [PLAIN, GZIP, ZSTD])
def test_plain_gzip_and_zstd_layers_give_the_same_index(compression: str) -> None:
    tar = layer_tar(LayerSpec({"etc/os-release": fixtures.ALPINE_OS_RELEASE}))
    blob = compress(tar, compression)

    layer = index_layer(digest_of(blob), io.BytesIO(blob))

    assert layer.release_files == {"etc/os-release": fixtures.ALPINE_OS_RELEASE.decode()}
    # A stream of tiny chunks (as the network may deliver them) reads the same.
    chunks = (blob[offset : offset + 3] for offset in range(0, len(blob), 3))
    assert index_layer(digest_of(blob), chunks) == layer


def test_layer_index_round_trips_through_json() -> None:
    layers = layer_indexes(fixtures.debian_image())
    image = index_image(layers)

    for layer in layers:
        assert LayerIndex.from_dict(json.loads(json.dumps(layer.as_dict()))) == layer
    assert ImageIndex.from_dict(json.loads(json.dumps(image.as_dict()))) == image
    assert index_image(LayerIndex.from_dict(layer.as_dict()) for layer in layers) == image


# Hostile and broken layers.


def raw_tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A tar of hand-made members (names and types a normal build would refuse)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        for info, content in members:
            archive.addfile(info, io.BytesIO(content) if content else None)
    return buffer.getvalue()


def member(name: str, content: bytes = b"", kind: bytes = tarfile.REGTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, len(content) if kind == tarfile.REGTYPE else 0
    return info, content


def test_absolute_and_parent_paths_and_device_files_are_ignored() -> None:
    status = b"Package: evil\nStatus: install ok installed\nVersion: 1\n"
    tar = raw_tar(
        [
            member("/etc/os-release", fixtures.DEBIAN_OS_RELEASE),
            member("../etc/os-release", fixtures.DEBIAN_OS_RELEASE),
            member("usr/../../lib/apk/db/installed", b"P:evil\nV:1\n"),
            member("var/lib/dpkg/status", kind=tarfile.CHRTYPE),
            member("var/lib/dpkg/status.d/evil", kind=tarfile.FIFOTYPE),
            member("./var/lib/dpkg/status.d/good", status.replace(b"evil", b"good")),
        ]
    )

    layer = index_layer(digest_of(tar), io.BytesIO(tar))

    assert layer.release_files == {}
    assert layer.packages == {
        "var/lib/dpkg/status.d/good": (Package("deb", "good", "1", "good", "1", "var/lib/dpkg/status.d/good"),)
    }


def test_a_hard_link_shares_the_content_of_its_target() -> None:
    link = tarfile.TarInfo("etc/os-release")
    link.type, link.linkname = tarfile.LNKTYPE, "usr/lib/os-release"
    tar = raw_tar([member("usr/lib/os-release", fixtures.UBUNTU_OS_RELEASE), (link, b"")])

    layer = index_layer(digest_of(tar), io.BytesIO(tar))

    assert layer.release_files["etc/os-release"] == fixtures.UBUNTU_OS_RELEASE.decode()
    assert index_image([layer]).distribution == fixtures.UBUNTU_DISTRIBUTION


def test_a_huge_file_is_skipped_without_being_held_in_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.tar"
    size = 65 * 1024 * 1024
    with tarfile.open(path, "w") as archive:
        info = tarfile.TarInfo("var/lib/dpkg/status")
        info.size = size
        archive.addfile(info, Zeros(size))
    tracemalloc.start()
    try:
        with path.open("rb") as stream:
            layer = index_layer(digest_of(b""), stream, verify_digest=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    # The big file still hides what lower layers had at that path, but lists nothing.
    assert layer.packages == {"var/lib/dpkg/status": ()}
    assert peak < 8 * 1024 * 1024, peak


class Zeros(io.RawIOBase):
    """`size` zero bytes as a stream, never all in memory."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray) -> int:
        count = min(len(target), self.left)
        target[:count] = bytes(count)
        self.left -= count
        return count


def test_a_file_over_the_cap_hides_the_lower_copy() -> None:
    lower = LayerSpec({"lib/apk/db/installed": b"P:tiny\nV:1.0-r0\no:tiny\n"})
    upper = LayerSpec({"lib/apk/db/installed": b"P:tiny\nV:2.0-r0\no:tiny\n" + b"x" * 4096})
    image = build_image(ImageSpec([lower, upper]))

    layers = layer_indexes(image, max_file_size=1024)

    assert layers[1].packages == {"lib/apk/db/installed": ()}
    assert index_image(layers).packages == ()


def test_a_giant_extension_header_is_refused_before_it_is_read() -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type, header.size = tarfile.GNUTYPE_LONGNAME, 512 * 1024 * 1024
    # Only the header is sent: the indexer must refuse from the size alone, not try to read 512 MiB.
    blob = header.tobuf(format=tarfile.GNU_FORMAT)

    with pytest.raises(UnreadableImage, match="extension header"):
        index_layer(digest_of(blob), io.BytesIO(blob))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"this is not a tar at all" * 40, "not a readable tar"),
        (compress(layer_tar(LayerSpec({"etc/os-release": b"ID=x\n"})), GZIP)[:60], "not a readable tar"),
        (compress(layer_tar(LayerSpec({"etc/os-release": b"ID=x\n"})), ZSTD)[:-8], "not a readable tar"),
    ],
    ids=["garbage", "truncated-gzip", "truncated-zstd"],
)
def test_unreadable_layers_are_refused_with_a_reason(blob: bytes, message: str) -> None:
    with pytest.raises(UnreadableImage, match=message):
        index_layer(digest_of(blob), io.BytesIO(blob))


def test_a_layer_that_does_not_match_its_digest_is_refused() -> None:
    blob = compress(layer_tar(LayerSpec({"etc/os-release": b"ID=x\n"})), GZIP)

    with pytest.raises(UnreadableImage, match="does not match its digest"):
        index_layer(digest_of(blob + b"!"), io.BytesIO(blob))


# The readers on their own.


def test_dpkg_lists_installed_and_held_packages_only() -> None:
    status = b"""Package: held
Status: hold ok installed
Version: 1.0-1

Package: half
Status: install ok half-installed
Version: 1.0-1

Package: gone
Status: deinstall ok config-files
Version: 1.0-1

Package: nmu
Status: install ok installed
Source: upstream (2:1.0-1)
Version: 2:1.0-1+b2
"""

    assert read_dpkg_status(status, "s") == [
        Package("deb", "held", "1.0-1", "held", "1.0-1", "s"),
        Package("deb", "nmu", "2:1.0-1+b2", "upstream", "2:1.0-1", "s"),
    ]


def test_distroless_status_d_stanzas_need_no_status_and_md5sums_are_not_read() -> None:
    stanza = b"Package: libc6\nSource: glibc\nVersion: 2.36-9+deb12u4\nArchitecture: amd64\n"
    layer = LayerSpec(
        {
            "var/lib/dpkg/status.d/libc6": stanza,
            "var/lib/dpkg/status.d/libc6.md5sums": b"Package: bogus\nVersion: 1\n",
        }
    )

    assert index_of(layer).packages == (
        Package("deb", "libc6", "2.36-9+deb12u4", "glibc", "2.36-9+deb12u4", "var/lib/dpkg/status.d/libc6"),
    )
    assert read_dpkg_status_d(b"Package: x\nStatus: deinstall ok config-files\nVersion: 1\n", "p") == []


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"etc/os-release": 'ID=debian\nPRETTY_NAME="Debian trixie/sid"\n', "etc/debian_version": "trixie/sid\n"},
            Distribution("debian", "", "trixie", "Debian trixie/sid"),
        ),
        (
            {"etc/os-release": 'ID=debian\nVERSION_ID="12"\nVERSION="12 (bookworm)"\n', "etc/debian_version": "12.4\n"},
            Distribution("debian", "12", "bookworm", ""),
        ),
        ({"etc/debian_version": "11.9\n"}, Distribution("debian", "11", "bullseye", "")),
        ({"etc/alpine-release": "3.18.6\n"}, Distribution("alpine", "3.18.6", "", "Alpine Linux v3.18.6")),
        (
            {"etc/redhat-release": "CentOS Linux release 7.9.2009 (Core)\n"},
            Distribution("centos", "7", "", "CentOS Linux release 7.9.2009 (Core)"),
        ),
        (
            {"etc/os-release": 'NAME="Ubuntu"\nVERSION="16.04.7 LTS (Xenial Xerus)"\nID=ubuntu\nVERSION_ID="16.04"\n'},
            Distribution("ubuntu", "16.04", "xenial", ""),
        ),
        ({"etc/os-release": "garbage without equals\n"}, None),
    ],
    ids=["debian-sid", "debian-no-codename", "debian-version-only", "alpine-release", "centos-7", "xenial", "garbage"],
)
def test_distribution_fallbacks(files: dict[str, str], expected: Distribution | None) -> None:
    assert distribution_from(files) == expected

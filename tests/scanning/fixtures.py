"""The fixture images every scanner test shares, and exactly what each holds.

`debian_image()`, `ubuntu_image()`, `alpine_image()`, `rocky_image()` are built once per process
(see tests/scanning/image_builder.py for how); `*_PACKAGES` and `*_DISTRIBUTION` are what the
indexer must find in them: every package listed, nothing else.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

from scanning.indexer import Distribution, Package
from tests.scanning.image_builder import (
    PLAIN,
    ZSTD,
    Apk,
    BuiltImage,
    Deb,
    DpkgRoot,
    ImageSpec,
    LayerSpec,
    Rpm,
    Symlink,
    apk_installed,
    build_image,
    changed_files,
    npm_package,
    os_release,
    python_dist_info,
    rpm_database,
)

# The openssl of the images the scan tests build (what the fixture feeds say of it: see test_scans.FINDINGS).
DEBIAN_OS_RELEASE = os_release(
    PRETTY_NAME="Debian GNU/Linux 12 (bookworm)",
    NAME="Debian GNU/Linux",
    VERSION_ID="12",
    VERSION="12 (bookworm)",
    VERSION_CODENAME="bookworm",
    ID="debian",
    HOME_URL="https://www.debian.org/",
)
UBUNTU_OS_RELEASE = os_release(
    PRETTY_NAME="Ubuntu 22.04.4 LTS",
    NAME="Ubuntu",
    VERSION_ID="22.04",
    VERSION="22.04.4 LTS (Jammy Jellyfish)",
    VERSION_CODENAME="jammy",
    ID="ubuntu",
    ID_LIKE="debian",
    UBUNTU_CODENAME="jammy",
)
# Alpine writes ID and VERSION_ID unquoted.
ALPINE_OS_RELEASE = (
    b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.19.1\nPRETTY_NAME="Alpine Linux v3.19"\n'
    b'HOME_URL="https://alpinelinux.org/"\n'
)
ROCKY_OS_RELEASE = os_release(
    NAME="Rocky Linux",
    VERSION="9.3 (Blue Onyx)",
    ID="rocky",
    ID_LIKE="rhel centos fedora",
    VERSION_ID="9.3",
    PLATFORM_ID="platform:el9",
    PRETTY_NAME="Rocky Linux 9.3 (Blue Onyx)",
)


# The shared images.

DEBIAN_DISTRIBUTION = Distribution("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")
DPKG_STATUS = "var/lib/dpkg/status"
DEBIAN_SITE = "usr/lib/python3/dist-packages"
APP_MODULES = "srv/app/node_modules"

DEBIAN_BASE_DEBS = (
    # A binNMU: the binary's version differs from its source's, which the Source: field then carries.
    Deb("libtiny1", "2.4.1-3+b1", "tinylib (2.4.1-3)"),
    Deb("libtinyssl3", "1:3.0.11-1~deb12u2", "tinyssl"),
    Deb("tinytools", "0.9~rc1-1"),
    Deb("tinyconf", "1.0-1", conffile=True),
)
DEBIAN_UPGRADE = Deb("libtiny1", "2.4.1-4", "tinylib")


@functools.cache
def debian_image() -> BuiltImage:
    """Debian 12 in three layers.

    1 (gzip): os-release in usr/lib with etc/os-release a relative symlink to it, four dpkg packages,
      three Python distributions (dist-info, egg-info directory, egg-info file);
    2 (gzip): dpkg upgrades libtiny1 and removes tinyconf (which stays as "config-files"), pip's
      removal of tinyrequests whites out its dist-info directory, an app with node_modules arrives;
    3 (zstd): node_modules made opaque and filled again with one package.
    """
    with tempfile.TemporaryDirectory(prefix="wharf-dpkg-") as directory:
        dpkg = DpkgRoot(Path(directory))
        dpkg.install(*DEBIAN_BASE_DEBS)
        base = dpkg.files()
        dpkg.install(DEBIAN_UPGRADE)
        dpkg.remove("tinyconf")
        upgraded = dpkg.files()
    first = {
        **base,
        "usr/lib/os-release": DEBIAN_OS_RELEASE,
        "etc/os-release": Symlink("../usr/lib/os-release"),
        "etc/debian_version": b"12.5\n",
        **python_dist_info(DEBIAN_SITE, "tinyrequests", "2.25.1"),
        **python_dist_info(DEBIAN_SITE, "Tiny-YAML", "5.3.1", style="egg-info"),
        **python_dist_info(DEBIAN_SITE, "tinysix", "1.15.0", style="egg-file"),
    }
    second = {
        **changed_files(base, upgraded),
        "srv/app/package.json": b'{"name": "wharf-app", "version": "1.0.0", "private": true}',
        **npm_package(APP_MODULES, "tiny-lodash", "4.17.20"),
        # A marker file inside a package is not a package of its own.
        f"{APP_MODULES}/tiny-lodash/esm/package.json": b'{"type": "module"}',
        **npm_package(APP_MODULES, "@tiny/parser", "1.0.0-beta.2"),
        **npm_package(f"{APP_MODULES}/tiny-lodash/node_modules", "tiny-dep", "0.1.0"),
    }
    removed = tuple(sorted(set(base) - set(upgraded)))
    return build_image(
        ImageSpec(
            [
                LayerSpec(first),
                LayerSpec(second, whiteouts=(*removed, f"{DEBIAN_SITE}/tinyrequests-2.25.1.dist-info")),
                LayerSpec(
                    npm_package(APP_MODULES, "tiny-lodash", "4.17.21"), opaque_dirs=(APP_MODULES,), compression=ZSTD
                ),
            ]
        )
    )


DEBIAN_PACKAGES = frozenset(
    {
        Package("deb", "libtiny1", "2.4.1-4", "tinylib", "2.4.1-4", DPKG_STATUS),
        Package("deb", "libtinyssl3", "1:3.0.11-1~deb12u2", "tinyssl", "1:3.0.11-1~deb12u2", DPKG_STATUS),
        Package("deb", "tinytools", "0.9~rc1-1", "tinytools", "0.9~rc1-1", DPKG_STATUS),
        Package("pypi", "Tiny-YAML", "5.3.1", "Tiny-YAML", "5.3.1", f"{DEBIAN_SITE}/Tiny_YAML-5.3.1.egg-info/PKG-INFO"),
        Package("pypi", "tinysix", "1.15.0", "tinysix", "1.15.0", f"{DEBIAN_SITE}/tinysix-1.15.0.egg-info"),
        Package("npm", "tiny-lodash", "4.17.21", "tiny-lodash", "4.17.21", f"{APP_MODULES}/tiny-lodash/package.json"),
    }
)
# What the first layer alone holds (before the upgrade, the removal and the whiteouts).
DEBIAN_BASE_PACKAGES = frozenset(
    {
        Package("deb", "libtiny1", "2.4.1-3+b1", "tinylib", "2.4.1-3", DPKG_STATUS),
        Package("deb", "libtinyssl3", "1:3.0.11-1~deb12u2", "tinyssl", "1:3.0.11-1~deb12u2", DPKG_STATUS),
        Package("deb", "tinytools", "0.9~rc1-1", "tinytools", "0.9~rc1-1", DPKG_STATUS),
        Package("deb", "tinyconf", "1.0-1", "tinyconf", "1.0-1", DPKG_STATUS),
        Package(
            "pypi",
            "tinyrequests",
            "2.25.1",
            "tinyrequests",
            "2.25.1",
            f"{DEBIAN_SITE}/tinyrequests-2.25.1.dist-info/METADATA",
        ),
        Package("pypi", "Tiny-YAML", "5.3.1", "Tiny-YAML", "5.3.1", f"{DEBIAN_SITE}/Tiny_YAML-5.3.1.egg-info/PKG-INFO"),
        Package("pypi", "tinysix", "1.15.0", "tinysix", "1.15.0", f"{DEBIAN_SITE}/tinysix-1.15.0.egg-info"),
    }
)

UBUNTU_DISTRIBUTION = Distribution("ubuntu", "22.04", "jammy", "Ubuntu 22.04.4 LTS")
UBUNTU_DEBS = (
    Deb("libtiny1", "2.4.1-3ubuntu0.1", "tinylib"),
    Deb("tinytools", "1:0.9-2build1", "tinytools-src (1:0.9-2)"),
)


@functools.cache
def ubuntu_image() -> BuiltImage:
    """Ubuntu 22.04 in one plain (uncompressed) tar layer; etc/os-release is an absolute symlink."""
    with tempfile.TemporaryDirectory(prefix="wharf-dpkg-") as directory:
        dpkg = DpkgRoot(Path(directory))
        dpkg.install(*UBUNTU_DEBS)
        files = dpkg.files()
    files |= {"usr/lib/os-release": UBUNTU_OS_RELEASE, "etc/os-release": Symlink("/usr/lib/os-release")}
    return build_image(ImageSpec([LayerSpec(files, compression=PLAIN)]))


UBUNTU_PACKAGES = frozenset(
    {
        Package("deb", "libtiny1", "2.4.1-3ubuntu0.1", "tinylib", "2.4.1-3ubuntu0.1", DPKG_STATUS),
        Package("deb", "tinytools", "1:0.9-2build1", "tinytools-src", "1:0.9-2", DPKG_STATUS),
    }
)

ALPINE_DISTRIBUTION = Distribution("alpine", "3.19.1", "", "Alpine Linux v3.19")
APK_INSTALLED = "lib/apk/db/installed"
ALPINE_SITE = "usr/lib/python3.11/site-packages"
ALPINE_APKS = [
    Apk("tinybusybox", "1.36.1-r15", "tinybusybox"),
    Apk("libtinycrypto3", "3.1.4-r5", "tinyssl"),
    Apk("libtinyssl3", "3.1.4-r5", "tinyssl"),
    Apk("tinycurl", "8.5.0_rc1-r0", "tinycurl"),
    Apk("tinyz", "1.3_p1-r0", "tinyzlib"),
]


@functools.cache
def alpine_image() -> BuiltImage:
    """Alpine 3.19 in two gzip layers: the second rewrites the apk database upgrading libtinycrypto3 and
    libtinyssl3 to -r6, and adds a Python distribution."""
    upgraded = [Apk(p.name, "3.1.4-r6", p.origin) if p.origin == "tinyssl" else p for p in ALPINE_APKS]
    first = {
        "etc/os-release": ALPINE_OS_RELEASE,
        "etc/alpine-release": b"3.19.1\n",
        APK_INSTALLED: apk_installed(ALPINE_APKS),
    }
    second = {APK_INSTALLED: apk_installed(upgraded), **python_dist_info(ALPINE_SITE, "tinyjinja", "3.1.2")}
    return build_image(ImageSpec([LayerSpec(first), LayerSpec(second)]))


ALPINE_PACKAGES = frozenset(
    {
        Package("apk", "tinybusybox", "1.36.1-r15", "tinybusybox", "1.36.1-r15", APK_INSTALLED),
        Package("apk", "libtinycrypto3", "3.1.4-r6", "tinyssl", "3.1.4-r6", APK_INSTALLED),
        Package("apk", "libtinyssl3", "3.1.4-r6", "tinyssl", "3.1.4-r6", APK_INSTALLED),
        Package("apk", "tinycurl", "8.5.0_rc1-r0", "tinycurl", "8.5.0_rc1-r0", APK_INSTALLED),
        Package("apk", "tinyz", "1.3_p1-r0", "tinyzlib", "1.3_p1-r0", APK_INSTALLED),
        Package(
            "pypi", "tinyjinja", "3.1.2", "tinyjinja", "3.1.2", f"{ALPINE_SITE}/tinyjinja-3.1.2.dist-info/METADATA"
        ),
    }
)

ROCKY_DISTRIBUTION = Distribution("rocky", "9.3", "", "Rocky Linux 9.3 (Blue Onyx)")
RPMDB = "var/lib/rpm/rpmdb.sqlite"
ROCKY_RPMS = [
    Rpm("tinyssl", "3.0.7", "25.el9_3", epoch=1, subpackages=("tinyssl-libs",)),
    Rpm("tinybash", "5.1.8", "6.el9_1"),
]


@functools.cache
def rocky_image() -> BuiltImage:
    """Rocky Linux 9.3 in one gzip layer with an rpm SQLite database written by rpm itself."""
    files = {"etc/os-release": ROCKY_OS_RELEASE, "etc/redhat-release": b"Rocky Linux release 9.3 (Blue Onyx)\n"}
    files[RPMDB] = rpm_database(ROCKY_RPMS)
    return build_image(ImageSpec([LayerSpec(files)]))


ROCKY_PACKAGES = frozenset(
    {
        Package("rpm", "tinyssl", "1:3.0.7-25.el9_3", "tinyssl", "1:3.0.7-25.el9_3", RPMDB),
        Package("rpm", "tinyssl-libs", "1:3.0.7-25.el9_3", "tinyssl", "1:3.0.7-25.el9_3", RPMDB),
        Package("rpm", "tinybash", "5.1.8-6.el9_1", "tinybash", "5.1.8-6.el9_1", RPMDB),
    }
)

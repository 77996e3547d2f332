"""A vulnerable image pushed to the real registry and scanned in process: what the scan, policy, API and
provisioning tests share (their fixtures are in tests/scanning/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from portal.core.audit import Actor
from portal.core.jobs import run_job
from projects.models import Project
from registries.models import Repository, Tag
from scanning import services
from scanning.models import ImageScan
from tests.integration.registry import Registry
from tests.scanning.fixtures import DEBIAN_OS_RELEASE
from tests.scanning.image_builder import BuiltImage, Deb, DpkgRoot, ImageSpec, LayerSpec, build_image, push_built_image

OPENSSL = "3.0.11-1~deb12u1"
# What the fixture feeds say about openssl 3.0.11-1~deb12u1 on bookworm (see test_matcher.py for why).
FINDINGS = {
    ("CVE-0000-1001", "libssl3", OPENSSL, "3.0.11-1~deb12u2", "High"),
    ("CVE-0000-1001", "openssl", OPENSSL, "3.0.11-1~deb12u2", "High"),
    ("CVE-0000-1004", "libssl3", OPENSSL, "", "Negligible"),
    ("CVE-0000-1004", "openssl", OPENSSL, "", "Negligible"),
    ("CVE-0000-1006", "libssl3", OPENSSL, "", "Critical"),
    ("CVE-0000-1006", "openssl", OPENSSL, "", "Critical"),
}


def build_vulnerable_image(folder: Path) -> BuiltImage:
    """Debian 12 with openssl and libssl3 (source openssl) installed by dpkg, in two layers."""
    root = DpkgRoot(folder)
    root.install(Deb("libssl3", OPENSSL, "openssl"), Deb("openssl", OPENSSL))
    packages = root.files()
    return build_image(ImageSpec([LayerSpec({"etc/os-release": DEBIAN_OS_RELEASE}), LayerSpec(packages)]))


def pushed(registry: Registry, project: Project, name: str, tag: str, image: BuiltImage) -> Tag:
    """Push the image to the real registry and record its tag as the registry's event would."""
    digest = push_built_image(registry.url, name, tag, image)
    repository, _ = Repository.objects.get_or_create(project=project, name=name)
    return Tag.objects.create(repository=repository, name=tag, digest=digest, size=sum(map(len, image.layers)))


def findings(scan: ImageScan) -> set[tuple[str, str, str, str, str]]:
    """The scan's findings as (vulnerability, package, installed, fixed, severity)."""
    rows = scan.findings.values_list("vulnerability", "package", "installed_version", "fixed_version", "severity")
    return set(rows)


def scanned(tag: Tag, admin: Actor) -> ImageScan:
    """Scan the tag's image through the service and run the job in process."""
    image_scan = services.start_scan(admin, tag)
    run_job(image_scan.job_id)
    return ImageScan.objects.get(pk=image_scan.pk)

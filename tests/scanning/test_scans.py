"""Scans for real, in process: an image built with dpkg's own database is pushed to the real registry, the fixture
feeds are imported (no network), and the scan job indexes and matches it; then the run policy refuses its pull
with the reason docker prints, until the CVEs are allowlisted.

Each test asserts the exact findings: every expected one present, nothing else.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from portal.core.audit import Actor
from portal.core.errors import Conflict, Forbidden
from portal.core.jobs import run_job
from portal.core.models import Job, JobState, User
from projects.models import Project
from projects.policy import check
from registries import events
from registries.models import Repository, Tag
from registries.token import grant, issue, parse_scope
from scanning import services
from scanning.models import AffectedPackage, ImageScan, IndexedLayer, ScanState
from tests.integration.registry import Registry
from tests.scanning.fixtures import OPENSSL
from tests.scanning.image_builder import BuiltImage, push_built_image

pytestmark = pytest.mark.integration

# What the fixture feeds say about openssl 3.0.11-1~deb12u1 on bookworm (see test_matcher.py for why).
FINDINGS = {
    ("CVE-0000-1001", "libssl3", OPENSSL, "3.0.11-1~deb12u2", "High"),
    ("CVE-0000-1001", "openssl", OPENSSL, "3.0.11-1~deb12u2", "High"),
    ("CVE-0000-1004", "libssl3", OPENSSL, "", "Negligible"),
    ("CVE-0000-1004", "openssl", OPENSSL, "", "Negligible"),
    ("CVE-0000-1006", "libssl3", OPENSSL, "", "Critical"),
    ("CVE-0000-1006", "openssl", OPENSSL, "", "Critical"),
}


@pytest.fixture
def web(db: Any) -> Project:
    return Project.objects.create(name="web", prevent_vulnerable=True, severity="high")


def pushed(registry: Registry, project: Project, name: str, tag: str, image: BuiltImage) -> Tag:
    digest = push_built_image(registry.url, name, tag, image)
    repository, _ = Repository.objects.get_or_create(project=project, name=name)
    return Tag.objects.create(repository=repository, name=tag, digest=digest, size=sum(map(len, image.layers)))


def blob_reads(registry: Registry) -> int:
    return len(re.findall(r'"GET /v2/[^ ]+/blobs/sha256:', registry.log_path.read_text(errors="replace")))


def findings(scan: ImageScan) -> set[tuple[str, str, str, str, str]]:
    rows = scan.findings.values_list("vulnerability", "package", "installed_version", "fixed_version", "severity")
    return set(rows)


def scanned(tag: Tag, admin: Actor) -> ImageScan:
    image_scan = services.start_scan(admin, tag)
    run_job(image_scan.job_id)
    return ImageScan.objects.get(pk=image_scan.pk)


def test_a_scan_finds_exactly_what_the_feeds_say_and_a_rescan_downloads_no_layer(
    wired: Registry, loaded: None, web: Project, vulnerable_image: BuiltImage, portal_admin: User
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    tag = pushed(wired, web, "web/app", "1.0", vulnerable_image)

    first = scanned(tag, admin)

    assert first.state == ScanState.SUCCEEDED, first.error
    assert first.job.state == JobState.SUCCEEDED, first.job.log
    assert findings(first) == FINDINGS
    assert first.summary == {"Critical": 2, "High": 2, "Negligible": 2}
    assert first.fixable == 2 and first.package_count == 2
    assert first.distribution == "Debian GNU/Linux 12 (bookworm)"
    assert IndexedLayer.objects.filter(digest__in=vulnerable_image.layer_digests).count() == 2
    reads = blob_reads(wired)

    # Another repository holding the same layers, and a rescan: nothing downloaded again.
    copy = pushed(wired, web, "web/copy", "1.0", vulnerable_image)
    assert copy.digest == tag.digest
    again = scanned(copy, admin)
    assert findings(again) == FINDINGS
    assert blob_reads(wired) == reads, "a rescan downloaded layers"


def test_the_policy_refuses_a_vulnerable_image_until_its_cves_are_allowlisted(
    wired: Registry, loaded: None, web: Project, vulnerable_image: BuiltImage, portal_admin: User, make_user: Any
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    tag = pushed(wired, web, "web/app", "2.0", vulnerable_image)
    assert check(web, "web/app", "2.0").reason == "image not scanned yet"
    scanned(tag, admin)

    verdict = check(web, "web/app", "2.0")
    assert not verdict.allowed
    assert verdict.reason == (
        "image has 2 critical and 2 high vulnerabilities (CVE-0000-1006, CVE-0000-1001), threshold high"
    )
    # The pull through the /v2/ front door: 412 with the reason docker prints.
    viewer = make_user("viewer-1")
    web.memberships.create(user=viewer, role="viewer")
    token = "Bearer " + issue(viewer.username, grant(viewer, parse_scope("repository:web/app:pull")), 60)[0]
    refused = Client().get("/v2/web/app/manifests/2.0", HTTP_AUTHORIZATION=token)
    assert refused.status_code == 412
    assert refused.json()["errors"][0]["message"] == verdict.reason

    services.add_allowlist_entry(admin, "CVE-0000-1006")  # system-wide
    assert check(web, "web/app", "2.0").reason.startswith("image has 2 high vulnerabilities (CVE-0000-1001)")
    web.severity = "critical"
    web.save()
    assert check(web, "web/app", "2.0").allowed
    web.severity = "high"
    web.save()
    services.add_allowlist_entry(admin, "cve-0000-1001", web, expires=timezone.localdate())
    assert check(web, "web/app", "2.0").allowed
    oci = "application/vnd.oci.image.manifest.v1+json"
    allowed = Client().get("/v2/web/app/manifests/2.0", HTTP_AUTHORIZATION=token, HTTP_ACCEPT=oci)
    assert allowed.status_code == 200, b"".join(allowed.streaming_content)[:300]
    # An expired entry no longer counts.
    later = timezone.localdate() + datetime.timedelta(days=1)
    assert "CVE-0000-1001" not in services.allowlisted(web, today=later)
    with pytest.raises(Conflict, match="already on the allowlist of project 'web'"):
        services.add_allowlist_entry(admin, "CVE-0000-1001", web)
    with pytest.raises(Forbidden):
        services.add_allowlist_entry(Actor(viewer, "127.0.0.1"), "CVE-0000-1002", web)


def test_a_new_database_is_matched_against_stored_indexes_without_downloading(
    wired: Registry, loaded: None, web: Project, vulnerable_image: BuiltImage, portal_admin: User
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    tag = pushed(wired, web, "web/app", "3.0", vulnerable_image)
    scanned(tag, admin)
    reads = blob_reads(wired)
    AffectedPackage.objects.filter(vulnerability__name="CVE-0000-1001").delete()

    job = services.start_rematch(admin)
    run_job(job.pk)

    image_scan = ImageScan.objects.get(digest=tag.digest)
    assert findings(image_scan) == {row for row in FINDINGS if row[0] != "CVE-0000-1001"}
    assert blob_reads(wired) == reads


def test_a_push_to_a_project_that_scans_on_push_queues_a_scan(
    wired: Registry, loaded: None, web: Project, vulnerable_image: BuiltImage
) -> None:
    tag = pushed(wired, web, "web/app", "4.0", vulnerable_image)
    for followup in events.PUSH_FOLLOWUPS:
        followup(tag)
    assert not ImageScan.objects.filter(digest=tag.digest).exists(), "scanned although the project does not ask"

    web.auto_scan = True
    web.save()
    for followup in events.PUSH_FOLLOWUPS:
        followup(tag)
    image_scan = ImageScan.objects.get(digest=tag.digest)
    assert image_scan.job.kind == "scan" and image_scan.job.created_by == "scan on push"
    run_job(image_scan.job_id)
    image_scan.refresh_from_db()
    assert findings(image_scan) == FINDINGS


def test_scan_now_scans_every_image_once_in_two_hours(
    wired: Registry, loaded: None, web: Project, vulnerable_image: BuiltImage, portal_admin: User, make_user: Any
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    pushed(wired, web, "web/app", "5.0", vulnerable_image)
    pushed(wired, web, "web/other", "1.0", vulnerable_image)
    with pytest.raises(Forbidden):
        services.start_scan_all(Actor(make_user("someone"), "127.0.0.1"))

    job = services.start_scan_all(admin)
    with pytest.raises(Conflict, match="at most once in two hours: the next one may start at"):
        services.start_scan_all(admin)
    assert services.next_scan_all() is not None
    run_job(job.pk)
    job = Job.objects.get(pk=job.pk)

    assert job.state == JobState.SUCCEEDED, job.log
    assert "1 images scanned" in job.log  # one digest in two repositories
    assert findings(ImageScan.objects.get()) == FINDINGS
    # The daily schedule is not held back by the throttle.
    scheduled = services.start_scan_all(Actor.system("scheduler"), scheduled=True)
    assert scheduled.kind == "scan_all"

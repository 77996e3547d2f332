"""Scanners across portals, live. Portal A and portal B each run in gunicorn over HTTPS with their own registry and
a Celery worker on their own queue (tests/integration/test_registry_push_pull.live_portal; both keep their rows in
the test database, as those tests do). Through A's REST API an administrator registers B's /scanner/api/v1/ as a
Harbor scanner adapter (Test Connection first meets B's unknown certificate, as the trust dialog would), makes the
project use it and scans the fixture image pushed to A: A's worker asks B, B's worker pulls the image from A's
registry with A's short-lived pull token and scans it, and the findings A stores are exactly the built-in scanner's
for the same image. The same through the Clair stand-in, and a scanner that is down fails the job with the reason
and leaves the image refused.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from portal.core import trust
from portal.core.audit import Actor
from portal.core.models import JobState, User
from portal.core.services import create_token
from projects.models import Project
from projects.policy import check
from registries.models import Tag
from scanning import services
from scanning.models import AdapterScan, ImageScan, ScanState
from tests.integration.test_registry_push_pull import Portal, _wait_until_events_settle, live_portal
from tests.scanning.clair_server import ClairServer
from tests.scanning.image_builder import BuiltImage, push_built_image
from tests.scanning.scanned_images import FINDINGS
from tests.scanning.test_clair import canned_report
from tests.scanning.test_harbor_adapter_live import built_in_findings

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEADLINE = 120.0


@pytest.fixture(scope="module")
def portals(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Portal, Portal]]:
    """Portal A (whose images are scanned) and portal B (the scanner); B's adapter may pull from loopback."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WHARF_SCANNER_ADAPTER_ALLOWED_NETWORKS", "127.0.0.0/8")
        patch.setenv("WHARF_SCANNER_REPORT_DEADLINE_SECONDS", "90")
        patch.setenv("WHARF_CLAIR_INDEX_DEADLINE_SECONDS", "30")
        patch.setenv("WHARF_JOB_MAX_ATTEMPTS", "1")
        with (
            live_portal(tmp_path_factory.mktemp("portal-a")) as a,
            live_portal(tmp_path_factory.mktemp("portal-b")) as b,
        ):
            yield a, b


class Api:
    """Portal A's REST API as its administrator."""

    def __init__(self, portal: Portal, user: User) -> None:
        self.portal = portal
        self.headers = {"Authorization": f"Bearer {create_token(Actor(user, '127.0.0.1'), 'api')[1]}"}

    def __call__(self, method: str, path: str, body: Any = None) -> requests.Response:
        url = f"{self.portal.url}/api/v1/{path}"
        return requests.request(method, url, json=body, headers=self.headers, verify=self.portal.ca, timeout=60)


def pushed_to(portal: Portal, image: BuiltImage) -> Tag:
    """The image pushed to the portal's registry as web/app:1.0, recorded by the portal from the registry's event."""
    push_built_image(portal.registry.url, "web/app", "1.0", image)
    deadline = time.monotonic() + 30
    while not (tag := Tag.objects.filter(repository__name="web/app", name="1.0").first()):
        assert time.monotonic() < deadline, portal.log()
        time.sleep(0.2)
    return tag


def scanned_by(api: Api, tag: Tag) -> ImageScan:
    """Scan Now of the tag through A's API; the scan once A's worker ended its job."""
    answer = api("post", "projects/web/repositories/web/app/tags/1.0/scan")
    assert answer.status_code == 202, answer.text
    deadline = time.monotonic() + DEADLINE
    while True:
        scan = ImageScan.objects.select_related("job").get(digest=tag.digest)
        if scan.job and scan.job.state in (JobState.SUCCEEDED, JobState.FAILED):
            return scan
        assert time.monotonic() < deadline, f"{scan.state} {scan.job and scan.job.log}\n{api.portal.log()}"
        time.sleep(0.5)


def rows(scan: ImageScan) -> set[tuple[Any, ...]]:
    return set(
        scan.findings.values_list(
            "vulnerability", "package", "installed_version", "fixed_version", "severity", "status", "namespace",
            "cvss_score",
        )
    )  # fmt: skip


def test_portal_a_scans_with_portal_bs_adapter_with_clair_and_fails_when_the_scanner_is_down(
    portals: tuple[Portal, Portal], vulnerable_image: BuiltImage, feed_dir: Path, portal_admin: User
) -> None:
    a, b = portals
    admin = Actor(portal_admin, "127.0.0.1")
    services.import_path(admin, feed_dir)
    web = Project.objects.create(name="web", prevent_vulnerable=True, severity="high")
    tag = pushed_to(a, vulnerable_image)
    expected = {
        (f.vulnerability, f.package, f.installed_version, f.fixed_version, f.severity, f.status, f.namespace,
         f.cvss_score)
        for f in built_in_findings(a.registry.url, "web/app", tag.digest)
    }  # fmt: skip
    assert {row[:5] for row in expected} == FINDINGS
    api = Api(a, portal_admin)
    token = create_token(admin, "portal-a")[1]

    # Register B's adapter; Test Connection meets B's certificate first (the trust dialog's question).
    created = api(
        "post",
        "scanners",
        {
            "name": "portal-b",
            "kind": "harbor_adapter",
            "adapter_url": f"{b.url}/scanner",
            "authorization": f"Bearer {token}",
        },
    )
    assert created.status_code == 201 and "authorization" not in created.json(), created.text
    untrusted = api("post", "scanners/portal-b/test")
    assert untrusted.status_code == 409 and untrusted.json()["certificate"], untrusted.text
    trust.trust(admin, b.host, Path(b.ca).read_text())
    tested = api("post", "scanners/portal-b/test").json()
    assert tested["ok"] is True and tested["metadata"]["scanner"]["name"] == "Wharf", tested
    assert api("put", "projects/web/scanner", {"scanner": "portal-b"}).json()["effective"] == "portal-b"

    by_b = scanned_by(api, tag)

    assert by_b.state == ScanState.SUCCEEDED and by_b.job.state == JobState.SUCCEEDED, (by_b.error, by_b.job.log)
    assert by_b.scanner_name == "portal-b" and by_b.scanner_kind == "harbor_adapter" and by_b.job.worker
    assert rows(by_b) == expected
    assert by_b.summary == {"Critical": 2, "High": 2, "Negligible": 2} and by_b.fixable == 2
    assert by_b.distribution == "debian:12"
    # B made the scan: its adapter scan pulled from A's registry, and its worker ran it.
    [remote] = AdapterScan.objects.select_related("job").all()
    assert remote.state == ScanState.SUCCEEDED and remote.registry_url == a.registry.url
    assert remote.digest == tag.digest and remote.job.worker and remote.authorization == ""
    report = api("get", "projects/web/repositories/web/app/tags/1.0/scan").json()
    assert report["scanner"] == "portal-b" and report["state"] == "succeeded"
    assert not check(web, "web/app", "1.0").allowed

    # The Clair stand-in, fetching the layers from A's registry with A's pull token, stores the same rows.
    clair = ClairServer()
    try:
        clair.reports[tag.digest] = canned_report(vulnerable_image)
        assert api("post", "scanners", {"name": "clair", "kind": "clair", "indexer_url": clair.url}).status_code == 201
        api("put", "projects/web/scanner", {"scanner": "clair"})
        by_clair = scanned_by(api, tag)
        assert by_clair.state == ScanState.SUCCEEDED, (by_clair.error, by_clair.job.log)
        assert by_clair.scanner_name == "clair" and {row[:5] for row in rows(by_clair)} == FINDINGS
        assert by_clair.distribution == "Debian GNU/Linux 12 (bookworm)" and by_clair.package_count == 2
        assert [fetch.status for fetch in clair.fetches[tag.digest]] == [200, 200]
    finally:
        clair.close()

    # Clair gone: the job fails with the reason, and the image is refused as not scanned, never taken for clean.
    failed = scanned_by(api, tag)
    assert failed.state == ScanState.FAILED and failed.job.state == JobState.FAILED
    assert failed.error.startswith("scanner 'clair': Clair at ") and "did not answer" in failed.error, failed.error
    assert failed.error in failed.job.error
    assert check(web, "web/app", "1.0").reason == f"image could not be scanned: {failed.error}"

    # Back on the built-in scanner: the very rows B made.
    api("put", "projects/web/scanner", {"scanner": None})
    by_wharf = scanned_by(api, tag)
    assert by_wharf.scanner_name == "wharf" and rows(by_wharf) == expected
    _wait_until_events_settle()

"""Scans by a Harbor scanner adapter, in process, against the loopback stand-in of test_harbor_adapter_client: the
scan request names the registry as remote scanners reach it and a pull token of the one repository; the report's
findings become the image's; every bad answer (a 500, malformed JSON, a report never ready, nobody listening) fails
the scan job with the reason and leaves the image refused as not scanned.
"""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from portal.core.audit import Actor
from portal.core.jobs import run_job
from portal.core.models import JobState, User
from projects.models import Project
from projects.policy import check
from registries.models import Repository, Tag
from scanning.harbor_adapter import METADATA_V11, SCAN_RESPONSE, VULNERABILITY_REPORT
from scanning.models import ImageScan, ScanState
from scanning.services import scanners
from scanning.services.scans import start_scan_all
from tests.scanning import test_harbor_adapter_client
from tests.scanning.scanned_images import scanned
from tests.scanning.test_harbor_adapter_client import (
    DIGEST,
    FINDINGS,
    REPORT_PATH,
    SCAN_ID,
    StandIn,
    as_json,
    metadata,
    report,
)

MALFORMED = lambda request: (200, {"Content-Type": VULNERABILITY_REPORT}, b"{not json")  # noqa: E731
NEVER_READY = lambda request: (302, {"Refresh-After": "1"}, b"")  # noqa: E731


# The stand-in adapter fixture of the client's tests.
stand_in = test_harbor_adapter_client.stand_in


@pytest.fixture
def tag(db: Any) -> Tag:
    web = Project.objects.create(name="web", prevent_vulnerable=True, severity="high")
    repository = Repository.objects.create(project=web, name="web/app")
    return Tag.objects.create(repository=repository, name="1.0", digest=DIGEST)


@pytest.fixture
def adapter(
    stand_in: StandIn,
    tag: Tag,
    portal_admin: User,
    settings: Any,
) -> StandIn:
    """Project web scans with the stand-in (a v1.2 adapter answering the scan request)."""
    settings.SCANNER_REGISTRY_URL = "https://wharf.example:8443"
    settings.SCANNER_REPORT_DEADLINE_SECONDS = 2
    settings.JOB_MAX_ATTEMPTS = 1
    admin = Actor(portal_admin, "127.0.0.1")
    registration = scanners.create_scanner(
        admin,
        {"name": "trivy", "kind": "harbor_adapter", "adapter_url": stand_in.url, "authorization": "Bearer adapter"},
    )
    scanners.set_project_scanner(admin, tag.repository.project, registration)
    stand_in.routes[("GET", "/api/v1/metadata")] = as_json(200, metadata(VULNERABILITY_REPORT), METADATA_V11)
    stand_in.routes[("POST", "/api/v1/scan")] = as_json(202, {"id": SCAN_ID}, SCAN_RESPONSE)
    return stand_in


def test_the_adapters_findings_become_the_images_and_it_pulls_with_a_token_of_the_repository(
    adapter: StandIn, tag: Tag, portal_admin: User
) -> None:
    adapter.routes[("GET", REPORT_PATH)] = as_json(200, report(), VULNERABILITY_REPORT)

    scan = scanned(tag, Actor(portal_admin, "127.0.0.1"))

    assert scan.state == ScanState.SUCCEEDED, scan.error
    assert scan.scanner_name == "trivy" and scan.scanner_kind == "harbor_adapter"
    stored = set(
        scan.findings.values_list("vulnerability", "package", "installed_version", "fixed_version", "severity")
    )
    assert stored == {(f.vulnerability, f.package, f.installed_version, f.fixed_version, f.severity) for f in FINDINGS}
    assert scan.summary == {"Critical": 1, "Low": 1, "Unknown": 1} and scan.fixable == 1
    assert scan.distribution == "debian:12" and scan.package_count == 3
    posted = json.loads(next(request for request in adapter.seen if request.method == "POST").body)
    assert posted["registry"]["url"] == "https://wharf.example:8443"
    assert posted["artifact"] == {
        "repository": "web/app",
        "digest": DIGEST,
        "tag": "",
        "mime_type": "application/vnd.docker.distribution.manifest.v2+json",
    }
    token = posted["registry"]["authorization"].removeprefix("Bearer ")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "web/app", "actions": ["pull"]}]
    assert claims["exp"] - claims["iat"] == 2 + 60
    assert all(request.headers["Authorization"] == "Bearer adapter" for request in adapter.seen)
    assert check(tag.repository.project, "web/app", "1.0").reason.startswith("image has 1 critical vulnerability")


@pytest.mark.parametrize(
    ("route", "reason"),
    [
        (
            as_json(500, {"error": {"message": "trivy crashed"}}, "application/json"),
            "could not scan the image: trivy crashed",
        ),
        (MALFORMED, "malformed JSON"),
        (NEVER_READY, "had not made the report of scan"),
        (None, "did not answer"),
    ],
    ids=["500", "malformed", "never-ready", "down"],
)
def test_a_bad_answer_fails_the_job_with_the_reason_and_the_image_is_refused(
    adapter: StandIn, tag: Tag, portal_admin: User, route: Any, reason: str
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    if route is None:
        scanners.update_scanner(
            admin, scanners.project_choice(tag.repository.project), {"adapter_url": "http://127.0.0.1:1"}
        )
    else:
        adapter.routes[("GET", REPORT_PATH)] = route

    scan = scanned(tag, admin)

    assert scan.state == ScanState.FAILED and scan.matched is None and not scan.findings.exists()
    assert scan.error.startswith("scanner 'trivy': the scanner adapter at ") and reason in scan.error, scan.error
    assert scan.job.state == JobState.FAILED and scan.error in scan.job.error
    assert check(tag.repository.project, "web/app", "1.0").reason == f"image could not be scanned: {scan.error}"


def test_a_scan_of_all_images_goes_on_when_a_projects_remote_scanner_is_down(
    adapter: StandIn, tag: Tag, portal_admin: User
) -> None:
    admin = Actor(portal_admin, "127.0.0.1")
    scanners.update_scanner(
        admin, scanners.project_choice(tag.repository.project), {"adapter_url": "http://127.0.0.1:1"}
    )

    job = run_job(start_scan_all(admin).pk)

    assert job.state == JobState.SUCCEEDED, job.log
    assert "1 images scanned, 1 could not be read" in job.log
    scan = ImageScan.objects.get(digest=tag.digest)
    assert scan.state == ScanState.FAILED and "did not answer" in scan.error
    assert not check(tag.repository.project, "web/app", "1.0").allowed

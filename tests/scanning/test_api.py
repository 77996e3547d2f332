"""The scanning API for real: an image pushed to the real registry, fixture feeds imported (or uploaded), a scan
started through the API and its job run in process, then the report read back with exactly the findings the feeds
say; Scan Now's throttle; the CVE allowlists and what they do to the run policy."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from rest_framework.test import APIClient
from schemathesis.core.transport import Response

from portal.core.jobs import run_job
from portal.core.models import Job, JobState, ScanSchedule, SystemSettings, User
from projects.models import Membership, Project, Role
from projects.policy import check
from registries.models import Tag
from scanning.models import AllowlistEntry, FeedSource, ImageScan, Severity
from tests.conftest import client_for
from tests.integration.registry import Registry
from tests.scanning.image_builder import BuiltImage
from tests.scanning.scanned_images import FINDINGS, pushed
from tests.test_api_schema import published_schema

pytestmark = pytest.mark.integration

TAGS = "/api/v1/projects/web/repositories/web/app/tags"
SCAN = "/api/v1/projects/{project_name}/repositories/{repository}/tags/{tag}/scan"
REFUSED = "image has 2 critical and 2 high vulnerabilities (CVE-0000-1006, CVE-0000-1001), threshold high"


@pytest.fixture
def people(web: Project, make_user: Any, portal_admin: User) -> dict[str, APIClient]:
    """API clients of web's DevOps administrator, a developer and a viewer of web, and a portal admin."""
    clients = {"portal_admin": client_for(portal_admin)}
    for name, role in (("web-admin", Role.ADMIN), ("web-dev", Role.DEVELOPER), ("web-viewer", Role.VIEWER)):
        user = make_user(name)
        Membership.objects.create(project=web, user=user, role=role)
        clients[name] = client_for(user)
    return clients


@pytest.fixture
def tag(wired: Registry, web: Project, vulnerable_image: BuiltImage) -> Tag:
    return pushed(wired, web, "web/app", "1.0", vulnerable_image)


def assert_documented(response: Any, path: str, method: str) -> None:
    """The answer is what the published schema says this operation answers (schemathesis' response checks)."""
    request = requests.Request(method, f"http://testserver{response.wsgi_request.get_full_path()}").prepare()
    headers = {name: [value] for name, value in response.items()}
    answer = Response(response.status_code, headers, response.content, request, 0.0, True)
    schemathesis.openapi.from_dict(published_schema())[path][method].validate_response(answer)


def scan_through_api(client: APIClient, tag: Tag) -> dict[str, Any]:
    """POST the scan, run its job in process, and GET the whole report."""
    url = f"{TAGS}/{tag.name}/scan"
    started = client.post(url)
    assert started.status_code == 202, started.json()
    assert started.json()["state"] == "pending" and started.json()["digest"] == tag.digest
    run_job(started.json()["job"])
    report = client.get(url, {"page_size": 100})
    assert report.status_code == 200, report.json()
    assert_documented(started, SCAN, "POST")
    assert_documented(report, SCAN, "GET")
    return report.json()


def rows(report: dict[str, Any]) -> set[tuple[str, str, str, str, str]]:
    return {
        (row["vulnerability"], row["package"], row["installed_version"], row["fixed_version"], row["severity"])
        for row in report["findings"]["results"]
    }


def test_a_project_admin_scans_a_tag_and_reads_exactly_its_findings_worst_first(
    loaded: None, tag: Tag, people: dict[str, APIClient]
) -> None:
    report = scan_through_api(people["web-admin"], tag)

    assert report["state"] == "succeeded", report["error"]
    assert rows(report) == FINDINGS
    assert report["findings"]["count"] == len(FINDINGS)
    ranks = [Severity.rank(row["severity"]) for row in report["findings"]["results"]]
    assert ranks == sorted(ranks, reverse=True), "findings are not worst first"
    assert report["summary"] == {"Critical": 2, "High": 2, "Negligible": 2}
    assert (report["fixable"], report["package_count"]) == (2, 2)
    assert report["distribution"] == "Debian GNU/Linux 12 (bookworm)"
    assert report["scanned"] and report["matched"] and report["error"] == ""
    assert all(row["allowlisted"] is None for row in report["findings"]["results"])
    # Any member reads the report, filtered by severity and by text.
    viewer = people["web-viewer"]
    critical = viewer.get(f"{TAGS}/1.0/scan", {"severity": "Critical"}).json()
    assert {(row["vulnerability"], row["package"]) for row in critical["findings"]["results"]} == {
        ("CVE-0000-1006", "libssl3"),
        ("CVE-0000-1006", "openssl"),
    }
    libssl = viewer.get(f"{TAGS}/1.0/scan", {"q": "libssl"}).json()["findings"]["results"]
    assert {row["vulnerability"] for row in libssl} == {"CVE-0000-1001", "CVE-0000-1004", "CVE-0000-1006"}
    assert {row["package"] for row in libssl} == {"libssl3"}
    by_cve = viewer.get(f"{TAGS}/1.0/scan", {"q": "cve-0000-1004"}).json()["findings"]
    assert by_cve["count"] == 2
    page = viewer.get(f"{TAGS}/1.0/scan", {"page_size": 4, "page": 2}).json()["findings"]
    assert page["count"] == 6 and len(page["results"]) == 2 and page["next"] is None
    assert viewer.get(f"{TAGS}/1.0/scan", {"severity": "Dreadful"}).status_code == 400
    # The tags list shows each tag's scan state and counts.
    answer = viewer.get(TAGS)
    assert_documented(answer, "/api/v1/projects/{project_name}/repositories/{repository}/tags", "GET")
    listed = answer.json()["results"]
    assert listed[0]["scan"]["state"] == "succeeded"
    assert listed[0]["scan"]["summary"] == {"Critical": 2, "High": 2, "Negligible": 2}
    assert listed[0]["scan"]["fixable"] == 2


def test_only_administrators_scan_and_an_unscanned_tag_has_no_report(
    loaded: None, tag: Tag, people: dict[str, APIClient]
) -> None:
    url = f"{TAGS}/1.0/scan"
    for who in ("web-viewer", "web-dev"):
        refused = people[who].post(url)
        assert refused.status_code == 403, refused.json()
        assert refused.json()["detail"] == "Only administrators of project 'web' may scan its images."
    assert not ImageScan.objects.exists()
    missing = people["web-viewer"].get(url)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "web/app:1.0 has not been scanned: POST to this address to scan it"
    assert people["web-viewer"].get(TAGS).json()["results"][0]["scan"] is None
    assert people["web-admin"].post(f"{TAGS}/2.0/scan").status_code == 404
    # A portal admin may scan any project's images; asking again while queued keeps the one job.
    first = people["portal_admin"].post(url).json()
    again = people["portal_admin"].post(url).json()
    assert first["job"] == again["job"]
    assert people["web-viewer"].get(TAGS).json()["results"][0]["scan"]["state"] == "pending"


def test_scan_now_runs_once_in_two_hours_and_says_when_it_may_run_again(
    loaded: None, tag: Tag, people: dict[str, APIClient]
) -> None:
    admin = people["portal_admin"]
    before = admin.get("/api/v1/scans/all").json()
    next_scheduled = datetime.datetime.fromisoformat(before.pop("next_scheduled"))
    assert before == {"schedule": "daily", "time": "03:00:00", "last": None, "next_allowed": None}
    # The next 03:00 on the portal's clock, within a day.
    local = timezone.localtime(next_scheduled)
    assert (local.hour, local.minute) == (3, 0)
    assert timezone.now() < next_scheduled <= timezone.now() + datetime.timedelta(days=1)
    assert people["web-admin"].post("/api/v1/scans/all").status_code == 403
    assert people["web-admin"].get("/api/v1/scans/all").status_code == 403

    started = admin.post("/api/v1/scans/all")
    assert started.status_code == 202
    job = started.json()
    throttled = admin.post("/api/v1/scans/all")
    assert throttled.status_code == 409
    created = Job.objects.get(pk=job["id"]).created
    allowed = created + datetime.timedelta(hours=2)
    when = timezone.localtime(allowed).strftime("%Y-%m-%d %H:%M")
    assert throttled.json()["detail"] == (
        f"a manual scan of all images runs at most once in two hours: the next one may start at {when}"
    )
    assert datetime.datetime.fromisoformat(throttled.json()["next_allowed"]) == allowed
    run_job(job["id"])
    answer = admin.get("/api/v1/scans/all")
    assert_documented(answer, "/api/v1/scans/all", "GET")
    assert_documented(throttled, "/api/v1/scans/all", "POST")
    state = answer.json()
    assert state["last"]["id"] == job["id"] and state["last"]["state"] == JobState.SUCCEEDED
    assert datetime.datetime.fromisoformat(state["next_allowed"].replace("Z", "+00:00")) == allowed
    assert rows_of(ImageScan.objects.get(digest=tag.digest)) == FINDINGS


def test_no_next_scheduled_scan_when_the_schedule_is_off(people: dict[str, APIClient]) -> None:
    settings_row = SystemSettings.load()
    settings_row.scan_schedule = ScanSchedule.OFF
    settings_row.save()
    state = people["portal_admin"].get("/api/v1/scans/all").json()
    assert state["schedule"] == "off" and state["next_scheduled"] is None


def rows_of(scan: ImageScan) -> set[tuple[str, str, str, str, str]]:
    return set(scan.findings.values_list("vulnerability", "package", "installed_version", "fixed_version", "severity"))


def test_an_uploaded_feed_is_imported_and_a_bad_file_is_refused_with_the_reason(
    db: Any, feed_dir: Path, people: dict[str, APIClient]
) -> None:
    admin = people["portal_admin"]
    upload = SimpleUploadedFile("debian.json", (feed_dir / "debian.json").read_bytes())
    imported = admin.post("/api/v1/vulndb/import", {"file": upload}, format="multipart")
    assert imported.status_code == 200, imported.json()
    [feed] = imported.json()["feeds"]
    assert feed["name"] == "debian" and feed["counts"]["vulnerabilities"] > 0
    answer = admin.get("/api/v1/vulndb")
    assert_documented(answer, "/api/v1/vulndb", "GET")
    assert_documented(imported, "/api/v1/vulndb/import", "POST")
    sources = answer.json()["results"]
    assert [(row["name"], row["source"], row["url"], row["error"]) for row in sources] == [("debian", "debian", "", "")]
    assert sources[0]["loaded"] == feed["counts"] and sources[0]["last_success"] and sources[0]["last_changed"]

    damaged = SimpleUploadedFile("debian.json", b'{"openssl": ["not a package"]}')
    refused = admin.post("/api/v1/vulndb/import", {"file": damaged}, format="multipart")
    assert refused.status_code == 400
    assert refused.json()["detail"] == "Debian tracker JSON: package 'openssl' is not an object of issues"
    stray = SimpleUploadedFile("notes.txt", b"hello")
    refused = admin.post("/api/v1/vulndb/import", {"file": stray}, format="multipart")
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith("notes.txt: not a feed file (name it after its source: ")
    assert admin.post("/api/v1/vulndb/import", {}, format="multipart").status_code == 400
    # The damaged file changed nothing.
    assert FeedSource.objects.get().loaded == feed["counts"]
    for who in ("web-admin", "web-viewer"):
        file = SimpleUploadedFile("debian.json", b"{}")
        assert people[who].post("/api/v1/vulndb/import", {"file": file}, format="multipart").status_code == 403
        assert people[who].get("/api/v1/vulndb").status_code == 403
        assert people[who].post("/api/v1/vulndb/update", {}, format="json").status_code == 403


def test_an_update_of_the_database_is_a_job(db: Any, people: dict[str, APIClient]) -> None:
    admin = people["portal_admin"]
    started = admin.post("/api/v1/vulndb/update", {"sources": ["debian"]}, format="json")
    assert started.status_code == 202
    assert started.json()["kind"] == "vulndb_update" and started.json()["state"] == "pending"
    unknown = admin.post("/api/v1/vulndb/update", {"sources": ["gentoo"]}, format="json")
    assert unknown.status_code == 400
    assert unknown.json()["detail"].startswith("unknown vulnerability source gentoo: choose from ")


def test_allowlists_through_the_api_let_the_image_run_until_they_expire(
    loaded: None, tag: Tag, web: Project, people: dict[str, APIClient]
) -> None:
    admin, web_admin, viewer = people["portal_admin"], people["web-admin"], people["web-viewer"]
    scan_through_api(admin, tag)
    assert check(web, "web/app", "1.0").reason == REFUSED

    # The system list is the portal admins'; the project's, its administrators'.
    assert web_admin.post("/api/v1/system/cve-allowlist", {"cve": "CVE-0000-1006"}, format="json").status_code == 403
    assert web_admin.get("/api/v1/system/cve-allowlist").status_code == 403
    system = admin.post("/api/v1/system/cve-allowlist", {"cve": "cve-0000-1006"}, format="json")
    assert system.status_code == 201, system.json()
    assert system.json()["cve"] == "CVE-0000-1006" and system.json()["expires"] is None
    assert check(web, "web/app", "1.0").reason == ("image has 2 high vulnerabilities (CVE-0000-1001), threshold high")
    project_list = "/api/v1/projects/web/cve-allowlist"
    today = timezone.localdate()
    body = {"cve": "CVE-0000-1001", "expires": today.isoformat()}
    assert viewer.post(project_list, body, format="json").status_code == 403
    created = web_admin.post(project_list, body, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["created_by"] == "web-admin"
    assert check(web, "web/app", "1.0").allowed
    assert [row["cve"] for row in viewer.get(project_list).json()["results"]] == ["CVE-0000-1001"]
    assert viewer.get(f"{project_list}/CVE-0000-1001").json()["expires"] == today.isoformat()

    # The report flags what is excused, by which list and until when.
    answer = viewer.get(f"{TAGS}/1.0/scan", {"page_size": 100})
    assert_documented(answer, SCAN, "GET")
    report = answer.json()
    flagged = {row["vulnerability"]: row["allowlisted"] for row in report["findings"]["results"]}
    assert flagged == {
        "CVE-0000-1006": {"where": "system", "until": None},
        "CVE-0000-1001": {"where": "project", "until": today.isoformat()},
        "CVE-0000-1004": None,
    }
    # Bad input: a past expiry, a duplicate, not a vulnerability id.
    yesterday = (today - datetime.timedelta(days=1)).isoformat()
    past = web_admin.post(project_list, {"cve": "CVE-0000-1004", "expires": yesterday}, format="json")
    assert past.status_code == 400 and past.json()["errors"] == {"expires": ["The expiry date is in the past."]}
    duplicate = web_admin.post(project_list, body, format="json")
    assert duplicate.status_code == 409
    assert duplicate.json()["detail"] == "CVE-0000-1001 is already on the allowlist of project 'web'"
    assert web_admin.post(project_list, {"cve": "not an id"}, format="json").status_code == 400

    # Tomorrow the project's entry has expired: the High findings count again.
    AllowlistEntry.objects.filter(project=web).update(expires=today - datetime.timedelta(days=1))
    assert check(web, "web/app", "1.0").reason == ("image has 2 high vulnerabilities (CVE-0000-1001), threshold high")
    AllowlistEntry.objects.filter(project=web).update(expires=today)
    assert viewer.delete(f"{project_list}/CVE-0000-1001").status_code == 403
    assert web_admin.delete(f"{project_list}/cve-0000-1001").status_code == 204
    assert web_admin.delete(f"{project_list}/CVE-0000-1001").status_code == 404
    assert not check(web, "web/app", "1.0").allowed
    assert admin.delete("/api/v1/system/cve-allowlist/CVE-0000-1006").status_code == 204
    assert check(web, "web/app", "1.0").reason == REFUSED

"""The scanning pages with real scan data: an image built with dpkg's database is pushed to the real registry, the
fixture feeds are imported, and the scan job runs in process; then each role sees what it may.

The tags table's Vulnerability column and Scan button, a tag's vulnerability report (sort, filter, allowlist
marks), the project Summary's chart data, the project's CVE allowlist, and Administration > Configuration's
Vulnerability Scanning section (database status, Scan Now and its throttle, Update now, upload, system allowlist).
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from portal.core.audit import Actor
from portal.core.jobs import run_job
from portal.core.models import Job, User
from projects.models import Membership, Project, Role
from registries.models import Tag
from scanning import services
from scanning.models import AllowlistEntry, FeedSource, ImageScan, ScanState
from tests.conftest import logged_in, page_text
from tests.integration.registry import Registry
from tests.scanning.image_builder import BuiltImage
from tests.scanning.test_scans import FINDINGS, pushed, scanned

pytestmark = pytest.mark.integration


@pytest.fixture
def tags(
    wired: Registry, loaded: None, alpha: Project, vulnerable_image: BuiltImage, role_users: dict[str, User | None]
) -> dict[str, Tag]:
    """alpha/app:1.0 pushed and scanned for real; alpha/app:2.0 on another digest, never scanned."""
    admin = Actor(role_users["portal_admin"], "127.0.0.1")
    scanned_tag = pushed(wired, alpha, "alpha/app", "1.0", vulnerable_image)
    scanned(scanned_tag, admin)
    other = Tag.objects.create(repository=scanned_tag.repository, name="2.0", digest="sha256:" + "e" * 64, size=10)
    return {"scanned": scanned_tag, "unscanned": other}


def as_role(role_users: dict[str, User | None], role: str) -> Client:
    """A browser session of the role's user."""
    return logged_in(Client(), role_users[role])


def tags_url() -> str:
    return reverse("repository-detail", args=["alpha", "app"])


def report_url(tag: str = "1.0", project: str = "alpha") -> str:
    return reverse("tag-vulnerabilities", args=[project, "app", tag])


def row(html: str, attribute: str, value: str) -> str:
    """The HTML of the table row whose data attribute has the value."""
    found = re.search(rf'<tr {attribute}="{re.escape(value)}".*?</tr>', html, re.S)
    assert found, f"no row {attribute}={value}"
    return found.group(0)


def report_rows(html: str) -> list[tuple[str, str, str]]:
    """(CVE, package, severity) of every row of the report, in order."""
    rows = re.findall(r'<tr data-cve="([^"]+)" data-package="([^"]+)">.*?data-field="severity">(\w+)<', html, re.S)
    return [(cve, package, severity) for cve, package, severity in rows]


# --- the tags table ---------------------------------------------------------------------------------------


def test_a_developer_sees_the_severity_bar_and_its_summary_but_no_scan_button(
    tags: dict[str, Tag], role_users: dict[str, User | None]
) -> None:
    html = page_text(as_role(role_users, "developer").get(tags_url()))

    cell = row(html, "data-tag", "1.0")
    segments = re.findall(r'data-severity="(\w+)" data-count="(\d+)"', cell)
    assert segments == [("Critical", "2"), ("High", "2"), ("Negligible", "2")]
    # Widths follow the counts: a third each, laid side by side from the worst.
    assert re.findall(r'x="([\d.]+)" width="([\d.]+)"', cell) == [
        ("0.00", "33.33"),
        ("33.33", "33.33"),
        ("66.67", "33.33"),
    ]
    assert "6 vulnerabilities found" in cell
    # The summary is the bar's description for assistive technology, one id per tag ("1.0" and "10" differ).
    described = re.search(r'aria-describedby="([^"]+)"', cell).group(1)
    assert f'id="{described}"' in cell and described == f"vuln-summary-{tags['scanned'].pk}"
    assert re.search(r'data-field="fixable">2<', cell) and re.search(r'data-field="packages">2<', cell)
    assert "Debian GNU/Linux 12 (bookworm)" in cell
    scan = ImageScan.objects.get(digest=tags["scanned"].digest)
    assert timezone.localtime(scan.scanned).strftime("%Y-%m-%d %H:%M") in cell
    assert report_url() in cell
    assert "Not scanned" in row(html, "data-tag", "2.0")
    assert 'data-action="scan"' not in html and 'type="checkbox"' not in html
    assert "data-polling" not in html
    outsider = as_role(role_users, "other_project_admin")
    assert outsider.get(reverse("tag-vulnerability-cell", args=["alpha", "app", "1.0"])).status_code == 404


def test_a_project_admin_scans_the_selected_tags_and_the_table_reloads_while_they_run(
    tags: dict[str, Tag], role_users: dict[str, User | None]
) -> None:
    client = as_role(role_users, "project_admin")
    page = page_text(client.get(tags_url()))
    assert 'data-action="scan"' in page and 'type="checkbox" name="tag" value="2.0"' in page

    response = client.post(reverse("tag-scan", args=["alpha", "app"]), {"tag": ["2.0", "1.0"]}, HTTP_HX_REQUEST="true")

    assert response.status_code == 204 and response["HX-Redirect"] == tags_url()
    queued = ImageScan.objects.get(digest=tags["unscanned"].digest)
    assert queued.state == ScanState.PENDING and queued.job.kind == "scan"
    assert ImageScan.objects.get(digest=tags["scanned"].digest).job.state == "pending"
    html = page_text(client.get(tags_url()))
    assert "Scan of 1.0, 2.0 queued." in html
    assert "Queued" in row(html, "data-tag", "2.0") and "data-polling" in row(html, "data-tag", "2.0")
    # The last result stays on the bar while its image is scanned again.
    assert 'data-severity="Critical"' in row(html, "data-tag", "1.0")

    # The cell polls itself until the scan ends (2.0 names no image the registry holds: the scan fails).
    run_job(queued.job_id)
    cell = page_text(
        client.get(reverse("tag-vulnerability-cell", args=["alpha", "app", "2.0"]), HTTP_HX_REQUEST="true")
    )
    assert "Failed" in cell and "data-polling" not in cell
    assert "The scan failed:" in cell


def test_nothing_selected_is_a_message_and_a_developer_may_not_scan(
    tags: dict[str, Tag], role_users: dict[str, User | None]
) -> None:
    url = reverse("tag-scan", args=["alpha", "app"])
    response = as_role(role_users, "project_admin").post(url, {}, follow=True)
    assert "Select at least one tag to scan." in page_text(response)
    assert as_role(role_users, "developer").post(url, {"tag": "2.0"}).status_code == 403
    assert not ImageScan.objects.filter(digest=tags["unscanned"].digest).exists()


def test_a_failed_scan_says_so(tags: dict[str, Tag], role_users: dict[str, User | None]) -> None:
    ImageScan.objects.create(
        digest=tags["unscanned"].digest, repository="alpha/app", state=ScanState.FAILED, error="manifest unknown"
    )
    html = page_text(as_role(role_users, "viewer").get(tags_url()))
    cell = row(html, "data-tag", "2.0")
    assert "Failed" in cell and "The scan failed: manifest unknown" in cell


def test_a_failed_rescan_says_so_beside_the_earlier_result(
    tags: dict[str, Tag], role_users: dict[str, User | None]
) -> None:
    ImageScan.objects.filter(digest=tags["scanned"].digest).update(state=ScanState.FAILED, error="registry down")
    cell = row(page_text(as_role(role_users, "viewer").get(tags_url())), "data-tag", "1.0")
    assert "data-rescan-failed" in cell
    assert "The last scan failed: registry down. Shown: the result of the scan before it." in cell
    assert 'data-severity="Critical"' in cell, "the earlier result stays on the bar"


# --- the vulnerability report ---------------------------------------------------------------------------


def test_the_report_lists_every_finding_sorted_by_severity(
    tags: dict[str, Tag], role_users: dict[str, User | None]
) -> None:
    html = page_text(as_role(role_users, "developer").get(report_url()))

    rows = report_rows(html)
    assert {(cve, package, severity) for cve, package, _, _, severity in FINDINGS} == set(rows)
    assert [severity for _, _, severity in rows] == ["Critical", "Critical", "High", "High", "Negligible", "Negligible"]
    high = row(html, "data-cve", "CVE-0000-1001")
    assert "3.0.11-1~deb12u1" in high and "3.0.11-1~deb12u2" in high
    assert "no fix yet" in row(html, "data-cve", "CVE-0000-1006")
    assert "6 vulnerabilities, 2 fixable, in 2 packages of Debian GNU/Linux 12 (bookworm)" in html


def test_the_report_sorts_and_filters(tags: dict[str, Tag], role_users: dict[str, User | None]) -> None:
    client = as_role(role_users, "developer")

    by_package = report_rows(page_text(client.get(report_url(), {"sort": "package"})))
    assert [package for _, package, _ in by_package] == ["libssl3"] * 3 + ["openssl"] * 3
    by_cve_down = report_rows(page_text(client.get(report_url(), {"sort": "-cve"})))
    assert [cve for cve, _, _ in by_cve_down][:2] == ["CVE-0000-1006", "CVE-0000-1006"]
    critical = report_rows(page_text(client.get(report_url(), {"severity": "Critical"}, HTTP_HX_REQUEST="true")))
    assert critical == [("CVE-0000-1006", "libssl3", "Critical"), ("CVE-0000-1006", "openssl", "Critical")]
    text = report_rows(page_text(client.get(report_url(), {"q": "1004", "sort": "package"})))
    assert text == [("CVE-0000-1004", "libssl3", "Negligible"), ("CVE-0000-1004", "openssl", "Negligible")]
    none = page_text(client.get(report_url(), {"q": "no-such-thing"}))
    assert "No vulnerabilities match." in none


def test_the_report_marks_allowlisted_cves(tags: dict[str, Tag], role_users: dict[str, User | None]) -> None:
    admin = Actor(role_users["portal_admin"], "127.0.0.1")
    until = timezone.localdate() + datetime.timedelta(days=30)
    services.add_allowlist_entry(admin, "CVE-0000-1006")
    services.add_allowlist_entry(admin, "CVE-0000-1001", Project.objects.get(name="alpha"), expires=until)

    html = page_text(as_role(role_users, "viewer").get(report_url()))

    assert "allowlisted in system<" in row(html, "data-cve", "CVE-0000-1006").replace("</span>", "<")
    assert f"allowlisted in project until {until:%Y-%m-%d}" in row(html, "data-cve", "CVE-0000-1001")
    assert "allowlisted" not in row(html, "data-cve", "CVE-0000-1004")


def test_an_unscanned_tag_has_no_report_yet_and_other_projects_see_nothing(
    tags: dict[str, Tag], role_users: dict[str, User | None], make_user: Any
) -> None:
    assert "has not been scanned yet" in page_text(as_role(role_users, "viewer").get(report_url("2.0")))
    viewer_of_beta = make_user("beta-viewer")
    Membership.objects.create(project=Project.objects.get(name="beta"), user=viewer_of_beta, role=Role.VIEWER)
    assert logged_in(Client(), viewer_of_beta).get(report_url()).status_code == 404
    assert logged_in(Client(), viewer_of_beta).get(tags_url()).status_code == 404
    outsider = as_role(role_users, "other_project_admin")
    assert outsider.get(report_url()).status_code == 404
    assert outsider.get(tags_url()).status_code == 404
    assert outsider.post(reverse("tag-scan", args=["alpha", "app"]), {"tag": "1.0"}).status_code == 404
    assert as_role(role_users, "viewer").get(report_url("9.9")).status_code == 404


# --- the project's Summary and Configuration ---------------------------------------------------------------


def test_the_project_summary_charts_the_severities_of_its_images(
    tags: dict[str, Tag], role_users: dict[str, User | None]
) -> None:
    html = page_text(as_role(role_users, "viewer").get(reverse("project-detail", args=["alpha"])))

    data = json.loads(re.search(r'id="vulnerability-chart-data"[^>]*>(.*?)</script>', html, re.S).group(1))
    assert data == {"labels": ["Critical", "High", "Negligible"], "counts": [2, 2, 2]}
    assert "2 images: 1 scanned (1 with vulnerabilities), 1 not scanned." in html
    assert "chart.umd.js" in html and "scanning_chart.js" in html


def test_the_project_allowlist_is_changed_by_its_admins_only(
    alpha: Project, role_users: dict[str, User | None]
) -> None:
    add = reverse("project-allowlist-add", args=["alpha"])
    admin = as_role(role_users, "project_admin")
    until = (timezone.localdate() + datetime.timedelta(days=3)).isoformat()

    page = page_text(admin.post(add, {"allowlist-cve": "cve-2024-1234", "allowlist-expires": until}, follow=True))

    assert f"CVE-2024-1234 allowlisted until {until}." in page
    assert f'<td class="left">{until}</td>' in row(page, "data-cve", "CVE-2024-1234")
    assert "Prevent vulnerable images from running" in page and "Automatically scan images on push" in page
    refused = page_text(admin.post(add, {"allowlist-cve": "not a cve"}, follow=True))
    assert "Give a vulnerability id such as CVE-2024-1234" in refused
    developer = as_role(role_users, "developer")
    assert 'action="' + add not in page_text(developer.get(reverse("project-configuration", args=["alpha"])))
    assert developer.post(add, {"allowlist-cve": "CVE-2024-9"}).status_code == 403
    entry = AllowlistEntry.objects.get(project=alpha)
    remove = reverse("project-allowlist-remove", args=["alpha", entry.pk])
    assert developer.post(remove).status_code == 403
    assert as_role(role_users, "other_project_admin").post(remove).status_code == 404
    assert "CVE-2024-1234 is no longer allowlisted." in page_text(admin.post(remove, follow=True))
    assert not AllowlistEntry.objects.exists()


# --- Administration > Configuration ---------------------------------------------------------------------


def test_configuration_shows_each_feed_of_the_database(loaded: None, role_users: dict[str, User | None]) -> None:
    FeedSource.objects.filter(name="debian").update(error="debian: the server answered 503")

    html = page_text(as_role(role_users, "portal_admin").get(reverse("configuration")))

    debian = row(html, "data-feed", "debian")
    feed = FeedSource.objects.get(name="debian")
    assert timezone.localtime(feed.last_success).strftime("%Y-%m-%d %H:%M") in debian
    assert f'<td class="left">{feed.loaded["vulnerabilities"]}</td>' in debian
    assert "the server answered 503" in debian
    assert "imported from a file" in row(html, "data-feed", "alpine-v3.19-main")
    assert FeedSource.objects.count() == len(re.findall(r"<tr data-feed=", html))


def test_scan_now_is_disabled_with_when_it_may_run_again(db: Any, role_users: dict[str, User | None]) -> None:
    client = as_role(role_users, "portal_admin")
    assert "available again" not in page_text(client.get(reverse("configuration")))

    started = page_text(client.post(reverse("scan-all"), follow=True))

    job = Job.objects.get(kind="scan_all")
    assert f"Scan of all images started (job #{job.pk})." in started
    again = timezone.localtime(job.created + services.ALL_SCAN_INTERVAL).strftime("%H:%M")
    assert f"available again at {again}" in started
    assert re.search(r'<button type="submit" class="btn btn-primary btn-sm" disabled[^>]*>Scan Now', started)
    refused = page_text(client.post(reverse("scan-all"), follow=True))
    assert "at most once in two hours: the next one may start at" in refused
    assert Job.objects.filter(kind="scan_all").count() == 1
    assert as_role(role_users, "project_admin").post(reverse("scan-all")).status_code == 403


def test_update_now_starts_a_database_update(db: Any, role_users: dict[str, User | None]) -> None:
    page = page_text(as_role(role_users, "portal_admin").post(reverse("vulndb-update"), follow=True))
    job = Job.objects.get(kind="vulndb_update")
    assert f"Vulnerability database update started (job #{job.pk})." in page
    assert as_role(role_users, "project_admin").post(reverse("vulndb-update")).status_code == 403


def test_an_uploaded_feed_is_loaded_and_a_bad_file_is_refused_with_the_reason(
    feed_dir: Path, role_users: dict[str, User | None]
) -> None:
    client = as_role(role_users, "portal_admin")
    url = reverse("vulndb-upload")
    debian = SimpleUploadedFile("debian.json", (feed_dir / "debian.json").read_bytes())

    page = page_text(client.post(url, {"vulndb-file": debian}, follow=True))

    feed = FeedSource.objects.get(name="debian")
    counts = feed.loaded
    assert f"Loaded debian.json: debian: {counts['vulnerabilities']} advisories, {counts['packages']} packages." in page
    assert row(page, "data-feed", "debian")
    bad = SimpleUploadedFile("notes.txt", b"hello")
    refused = page_text(client.post(url, {"vulndb-file": bad}, follow=True))
    assert "notes.txt was not loaded: notes.txt: not a feed file (name it after its source" in refused
    broken = SimpleUploadedFile("alpine-v3.19-main.json", b"{not json")
    refused = page_text(client.post(url, {"vulndb-file": broken}, follow=True))
    assert "alpine-v3.19-main.json was not loaded: not a JSON document: Expecting property name" in refused
    assert "Choose a bundle or feed file" in page_text(client.post(url, {}, follow=True))
    other = SimpleUploadedFile("debian.json", b"{}")
    assert as_role(role_users, "project_admin").post(url, {"vulndb-file": other}).status_code == 403


def test_the_system_allowlist_is_managed_by_portal_admins(db: Any, role_users: dict[str, User | None]) -> None:
    client = as_role(role_users, "portal_admin")
    page = page_text(client.post(reverse("system-allowlist-add"), {"allowlist-cve": "CVE-2023-44487"}, follow=True))
    assert "CVE-2023-44487 allowlisted." in page
    assert "Never" in row(page, "data-cve", "CVE-2023-44487")
    again = page_text(client.post(reverse("system-allowlist-add"), {"allowlist-cve": "CVE-2023-44487"}, follow=True))
    assert "CVE-2023-44487 is already on the allowlist of the system" in again
    past = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    data = {"allowlist-cve": "CVE-2023-1", "allowlist-expires": past}
    assert "The expiry date is in the past." in page_text(
        client.post(reverse("system-allowlist-add"), data, follow=True)
    )
    entry = AllowlistEntry.objects.get()
    project_admin = as_role(role_users, "project_admin")
    assert project_admin.post(reverse("system-allowlist-add"), {"allowlist-cve": "CVE-1-2"}).status_code == 403
    assert project_admin.post(reverse("system-allowlist-remove", args=[entry.pk])).status_code == 403
    client.post(reverse("system-allowlist-remove", args=[entry.pk]))
    assert not AllowlistEntry.objects.exists()


def test_an_upload_may_be_longer_than_other_requests(
    feed_dir: Path, settings: Any, role_users: dict[str, User | None]
) -> None:
    settings.MAX_REQUEST_BODY_BYTES = 1024
    client = as_role(role_users, "portal_admin")
    debian = SimpleUploadedFile("debian.json", (feed_dir / "debian.json").read_bytes())
    assert debian.size > 1024

    page = page_text(client.post(reverse("vulndb-upload"), {"vulndb-file": debian}, follow=True))

    assert "Loaded debian.json: debian:" in page
    padded = {"allowlist-cve": "CVE-2024-1", "padding": "x" * 2048}
    assert client.post(reverse("system-allowlist-add"), padded).status_code == 413
    settings.VULNDB_UPLOAD_MAX_BYTES = 1024
    debian.seek(0)
    assert client.post(reverse("vulndb-upload"), {"vulndb-file": debian}).status_code == 413

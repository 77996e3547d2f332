"""Vulnerability scanning in a real browser: an image built with dpkg's database in a real registry, scanned
against the fixture feeds; the tags table's severity bar and its hover summary, Scan on a selected tag (run by a
real worker while the cell polls), the report's sort and filters, the project Summary's chart drawn by Chart.js,
and Configuration's upload and Scan Now."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from portal.core.audit import Actor
from portal.core.models import User
from projects.models import Project
from registries.models import Tag
from scanning import services
from scanning.models import ImageScan, ScanState
from tests.e2e.conftest import Portal
from tests.integration.registry import Registry, point_portal_at, start_registry
from tests.integration.worker import database_url, forget_queue, redis_url, sending_to, start_worker
from tests.scanning.conftest import write_feeds
from tests.scanning.fixtures import DEBIAN_OS_RELEASE
from tests.scanning.image_builder import ImageSpec, LayerSpec, build_image
from tests.scanning.scanned_images import build_vulnerable_image
from tests.scanning.test_scans import pushed

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A real docker-registry (its events go nowhere: the test records the tags itself)."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture
def shipyard(settings: Any, registry: Registry, transactional_db: None, admin: User, tmp_path: Path) -> dict[str, Tag]:
    """shipyard/app:1.0, vulnerable and scanned; shipyard/app:2.0, clean and not scanned yet. Scans run in the
    process that starts them (the live server's, when the page asks), as no worker runs here."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    point_portal_at(settings, registry)
    services.import_path(Actor.system("test"), write_feeds(tmp_path / "feeds"))
    project = Project.objects.create(name="shipyard")
    vulnerable = pushed(registry, project, "shipyard/app", "1.0", build_vulnerable_image(tmp_path / "dpkg"))
    clean = build_image(ImageSpec([LayerSpec({"etc/os-release": DEBIAN_OS_RELEASE})]))
    other = pushed(registry, project, "shipyard/app", "2.0", clean)
    services.start_scan(Actor(admin, "127.0.0.1"), vulnerable)
    assert ImageScan.objects.get(digest=vulnerable.digest).state == ScanState.SUCCEEDED
    return {"vulnerable": vulnerable, "clean": other}


def test_the_severity_bar_shows_its_summary_on_hover_and_scan_fills_it(
    portal: Portal, shipyard: dict[str, Tag], admin: User
) -> None:
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/projects/shipyard/repositories/app/")

    vulnerable = page.locator('tr[data-tag="1.0"]')
    expect(vulnerable.locator("svg.wharf-severity-bar rect")).to_have_count(3)
    summary = vulnerable.locator(".wharf-vuln-summary")
    expect(summary).to_be_hidden()
    vulnerable.locator(".wharf-vuln").hover()
    expect(summary).to_be_visible()
    expect(summary).to_contain_text("6 vulnerabilities found")
    expect(summary).to_contain_text("Debian GNU/Linux 12 (bookworm)")
    expect(summary.locator('[data-field="fixable"]')).to_have_text("2")
    # The bar's segments are as wide as their share: three severities, two findings each.
    widths = vulnerable.locator("svg.wharf-severity-bar rect").evaluate_all(
        "rects => rects.map(r => Math.round(r.getBoundingClientRect().width))"
    )
    assert len(set(widths)) == 1 and widths[0] > 0, widths

    clean = page.locator('tr[data-tag="2.0"]')
    expect(clean).to_contain_text("Not scanned")
    page.get_by_label("Select 2.0").check()
    page.get_by_role("button", name="Scan", exact=True).click()
    portal.expect_message("Scan of 2.0 queued.")
    expect(page.locator('tr[data-tag="2.0"] [data-field="scan-state"]')).to_have_text("No vulnerabilities")


def test_the_report_sorts_and_filters_its_findings(portal: Portal, shipyard: dict[str, Tag], admin: User) -> None:
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/projects/shipyard/repositories/app/")
    page.get_by_role("link", name="Vulnerability report of 1.0").click()

    expect(page.get_by_role("heading", name="Vulnerabilities of shipyard/app:1.0")).to_be_visible()
    rows = page.locator("table.wharf-finding-table tbody tr")
    expect(rows).to_have_count(6)
    expect(rows.first.locator('[data-field="severity"]')).to_have_text("Critical")
    page.get_by_role("link", name="Package").click()
    expect(rows.first).to_have_attribute("data-package", "libssl3")
    expect(rows.last).to_have_attribute("data-package", "openssl")

    page.get_by_label("Severity", exact=True).select_option("High")
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-cve", "CVE-0000-1001")
    expect(rows.first).to_contain_text("3.0.11-1~deb12u2")

    page.get_by_label("Severity", exact=True).select_option("")
    page.get_by_placeholder("CVE, package or text").fill("1006")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("no fix yet")
    # The order chosen survives filtering.
    expect(rows.first).to_have_attribute("data-package", "libssl3")


def test_the_project_summary_draws_its_vulnerability_chart(
    portal: Portal, shipyard: dict[str, Tag], admin: User
) -> None:
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/projects/shipyard/")

    expect(page.locator('[data-field="image-counts"]')).to_contain_text("2 images: 1 scanned")
    expect(page.locator("#vulnerability-chart")).to_have_attribute("data-drawn", "3")
    expect(page.locator('li[data-severity="Critical"]')).to_contain_text("2")


def test_configuration_refuses_a_bad_upload_and_throttles_scan_now(
    portal: Portal, admin: User, transactional_db: None, tmp_path: Path
) -> None:
    page = portal.page
    portal.log_in(admin.username)
    portal.open_nav("Configuration")
    section = page.locator("section", has=page.get_by_role("heading", name="Vulnerability Scanning"))
    expect(section).to_contain_text("The vulnerability database is empty")

    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    page.get_by_label("Upload a bundle or feed file (air-gapped sites)").set_input_files(str(bad))
    section.get_by_role("button", name="Upload", exact=True).click()
    portal.expect_message("notes.txt was not loaded: notes.txt: not a feed file")

    section = page.locator("section", has=page.get_by_role("heading", name="Vulnerability Scanning"))
    section.get_by_role("button", name="Scan Now").click()
    portal.expect_message("Scan of all images started")
    section = page.locator("section", has=page.get_by_role("heading", name="Vulnerability Scanning"))
    expect(section.get_by_role("button", name="Scan Now")).to_be_disabled()
    expect(section).to_contain_text("available again at")


def test_a_scan_run_by_the_worker_fills_the_cell_without_a_reload(
    portal: Portal, shipyard: dict[str, Tag], admin: User, settings: Any, registry: Registry, tmp_path: Path
) -> None:
    from django.db import connection

    from portal.celery import app

    page = portal.page
    broker, queue = redis_url(), f"wharf-test-{uuid.uuid4().hex[:12]}"
    settings.CELERY_BROKER_URL = broker
    with sending_to(app, broker, queue):
        portal.log_in(admin.username)
        page.goto("/projects/shipyard/repositories/app/")
        page.get_by_label("Select 2.0").check()
        page.get_by_role("button", name="Scan", exact=True).click()
        portal.expect_message("Scan of 2.0 queued.")
        cell = page.locator('tr[data-tag="2.0"] .wharf-vuln-cell')
        expect(cell).to_have_attribute("data-polling", "")
        expect(cell.locator('[data-field="scan-state"]')).to_have_text("Queued")
        page.get_by_label("Select 1.0").check()

        # Only now does a worker take the queued scan: the cell changes while the page stays as it is.
        env = {
            "WHARF_BROKER_URL": broker,
            "WHARF_DATABASE_URL": database_url(connection.settings_dict),
            "WHARF_DATA_DIR": str(settings.DATA_DIR),
            "WHARF_REGISTRY_URL": registry.url,
            "WHARF_TASKS_EAGER": "false",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
        (tmp_path / "worker").mkdir()
        worker = start_worker(env, tmp_path / "worker", queue)
        try:
            expect(cell.locator('[data-field="scan-state"]')).to_have_text("No vulnerabilities", timeout=60_000)
        finally:
            worker.stop()
            forget_queue(broker, queue)
    expect(cell).not_to_have_attribute("data-polling", "")
    expect(page.get_by_label("Select 1.0")).to_be_checked()

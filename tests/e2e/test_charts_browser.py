"""Charts and the Home dashboard in a real browser, at 1440 and 800 px: every chart is drawn (its canvas has pixels,
its Chart.js instance holds the numbers the database has) with its table kept for screen readers; without
JavaScript the table is what shows; Home lists what the user may see and its links lead there."""

from __future__ import annotations

import re
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from hosts.models import Container, ContainerHost, ContainerState, HostSample, HostState
from portal.core.models import AuditEvent, Job, JobLogLine, JobState, Outcome, User
from projects.models import Membership, Project, Role
from registries.models import DailyPulls, Repository, Tag
from registries.services import GARBAGE_COLLECTION
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal

pytestmark = pytest.mark.e2e
WIDTHS = [1440, 800]
MIB = 1024 * 1024


class Site:
    """What the charts show, written to the database: a project with images and pulls, GC runs, audit events, a
    host with samples and containers; and a second project the developer may not see."""

    def __init__(self) -> None:
        now = timezone.now()
        self.today = now.astimezone(UTC).date()
        self.alpha = Project.objects.create(name="alpha")
        self.beta = Project.objects.create(name="beta")
        self.developer = User.objects.create_user("e2e-dev", password=PASSWORD)
        Membership.objects.create(project=self.alpha, user=self.developer, role=Role.DEVELOPER)
        web = Repository.objects.create(project=self.alpha, name="alpha/web")
        api = Repository.objects.create(project=self.alpha, name="alpha/api")
        Tag.objects.create(repository=web, name="1.0", digest="sha256:" + "a" * 64, size=30 * MIB, pushed_by="dev")
        Tag.objects.create(repository=api, name="2.0", digest="sha256:" + "b" * 64, size=12 * MIB, pushed_by="dev")
        hidden = Repository.objects.create(project=self.beta, name="beta/secret")
        Tag.objects.create(repository=hidden, name="1", digest="sha256:" + "c" * 64, size=MIB, pushed_at=now)
        self.pulls = {self.today - timedelta(days=age): count for age, count in [(0, 9), (1, 4), (5, 12)]}
        for day, count in self.pulls.items():
            DailyPulls.objects.create(project=self.alpha, day=day, count=count)
        self.freed = [7 * MIB, 0, 3 * MIB]
        for number, freed in enumerate(self.freed):
            job = Job.objects.create(kind=GARBAGE_COLLECTION, state=JobState.SUCCEEDED, finished=now,
                                     created=now - timedelta(days=3 - number), created_by="e2e-admin")  # fmt: skip
            JobLogLine.objects.create(job=job, text=f"freed {freed} bytes: 2 blobs deleted, 0 untagged manifests")
        for age, outcome in [(0, Outcome.SUCCESS), (0, Outcome.FAILURE), (3, Outcome.FAILURE), (3, Outcome.SUCCESS)]:
            AuditEvent.objects.create(time=now - timedelta(days=age), action="push", resource_type="repository",
                                      project=self.alpha, project_name="alpha", outcome=outcome)  # fmt: skip
        self.host = ContainerHost.objects.create(project=self.alpha, name="docker-1", url="http://127.0.0.1:2375")
        self.cpu = [5.0, 40.0, 22.5, 61.0]
        for index, cpu in enumerate(self.cpu):
            HostSample.objects.create(
                host=self.host,
                time=now - timedelta(minutes=50 - index * 15),
                cpu_percent=cpu,
                memory_used_bytes=(100 + 50 * index) * MIB,
                memory_total_bytes=1024 * MIB,
            )
        for index, state in enumerate([ContainerState.RUNNING] * 3 + [ContainerState.EXITED]):
            Container.objects.create(host=self.host, container_id=f"{index:064x}", name=f"c{index}", image="busybox",
                                     state=state)  # fmt: skip
        self.down = ContainerHost.objects.create(
            project=self.alpha,
            name="docker-down",
            url="http://127.0.0.1:2377",
            state=HostState.UNREACHABLE,
            last_error="connection refused",
        )
        ContainerHost.objects.create(project=self.beta, name="beta-down", url="http://127.0.0.1:2378",
                                     state=HostState.UNREACHABLE)  # fmt: skip
        self.failed = Job.objects.create(
            kind="hosts.provision",
            target="alpha/web",
            state=JobState.FAILED,
            created_by="e2e-dev",
            error="no container host that is ON",
            finished=now,
        )
        Job.objects.create(kind="hosts.provision", target="someone-else", state=JobState.FAILED, created_by="other")


@pytest.fixture
def site(transactional_db: None) -> Site:
    return Site()


def shot(page: Page, name: str, width: int, showing: str = "figure[data-chart-figure]") -> None:
    """Save a screenshot of the page scrolled to what it is about (the content pane scrolls, not the page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(showing).first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"charts-{name}-{width}.png"), full_page=True)


AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"


def assert_accessible(page: Page, *parts: str) -> None:
    """axe-core finds no critical or serious violation in these parts of the page (the charts, Home's sections);
    the rest of each page is the accessibility pass's to check."""
    # Evaluated rather than added as a script tag: the page's Content-Security-Policy refuses inline scripts.
    page.evaluate("source => { (0, eval)(source); }", AXE.read_text())
    found = page.evaluate(
        """async parts => (await axe.run({include: parts.map(part => [part])}))
            .violations.filter(v => ["critical", "serious"].includes(v.impact))
            .map(v => v.id + ": " + v.nodes.map(n => n.target.join(" ")).join(", "))""",
        list(parts or ["figure[data-chart-figure]"]),
    )
    assert not found, found


def drawn(page: Page, chart_id: str) -> dict[str, Any]:
    """The drawn chart's data as its Chart.js instance holds it, and whether its canvas has painted pixels."""
    canvas = page.locator(f"canvas#{chart_id}")
    expect(canvas).to_have_attribute("data-drawn", re.compile(r"^\d+$"))
    expect(canvas).to_be_visible()
    return canvas.evaluate(
        """canvas => {
            const chart = Chart.getChart(canvas);
            const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let painted = 0;
            for (let i = 3; i < pixels.length; i += 4) if (pixels[i] !== 0) painted += 1;
            const table = canvas.closest("figure").querySelector("table");
            return {
                labels: chart.data.labels,
                values: chart.data.datasets.map(d => d.data),
                painted: painted,
                tableHidden: table.classList.contains("clr-sr-only"),
                tableRows: table.querySelectorAll("tbody tr").length,
                label: canvas.getAttribute("aria-label"),
            };
        }"""
    )


def check(page: Page, chart_id: str) -> dict[str, Any]:
    """A drawn chart with pixels, its table kept for screen readers (one row per label); its data."""
    chart = drawn(page, chart_id)
    assert chart["painted"] > 500, chart_id
    assert chart["tableHidden"] and chart["tableRows"] == len(chart["labels"]), chart_id
    return chart


@pytest.mark.parametrize("width", WIDTHS)
def test_every_chart_draws_the_numbers_of_the_database(page: Page, portal: Portal, site: Site, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    User.objects.create_user("e2e-admin", password=PASSWORD, is_portal_admin=True)
    portal.log_in("e2e-admin")

    page.goto("/projects/alpha/")
    pulls = check(page, "pulls-chart")
    assert pulls["labels"][-1] == site.today.isoformat() and len(pulls["labels"]) == 30
    expected = [site.pulls.get(site.today - timedelta(days=age), 0) for age in range(29, -1, -1)]
    assert pulls["values"] == [expected]
    storage = check(page, "storage-chart")
    assert (storage["labels"], storage["values"]) == (["alpha/web", "alpha/api"], [[30 * MIB, 12 * MIB]])
    expect(page.locator("[data-field=storage-used]")).to_have_text("42.0\xa0MB")
    shot(page, "project-summary", width, "[data-chart-figure=pulls-chart]")
    assert_accessible(page)

    page.goto("/configuration/")
    gc = check(page, "gc-freed-chart")
    assert gc["values"] == [site.freed]
    shot(page, "configuration-gc", width, "[data-chart-figure=gc-freed-chart]")

    page.goto("/logs/")
    activity = check(page, "audit-activity-chart")
    succeeded, failed = activity["values"]
    assert failed[-1] == 1 and failed[-4] == 1 and succeeded[-4] == 1 and sum(failed) == 2
    assert succeeded[-1] == AuditEvent.objects.filter(outcome=Outcome.SUCCESS, time__date=site.today).count()
    shot(page, "logs", width)

    page.goto(f"/hosts/{site.host.pk}/")
    cpu = check(page, "host-cpu-chart")
    assert cpu["values"] == [site.cpu] and cpu["label"].endswith("CPU now 61 %.")
    memory = check(page, "host-memory-chart")
    assert memory["values"][0] == [(100 + 50 * index) * MIB for index in range(4)]
    states = check(page, "container-state-chart")
    assert (states["labels"], states["values"]) == (["Running", "Exited"], [[3, 1]])
    shot(page, "host", width, "#host-usage-heading")
    assert_accessible(page)


@pytest.mark.parametrize("width", WIDTHS)
def test_dashboard_lists_what_the_developer_may_see_and_links_there(
    page: Page, portal: Portal, site: Site, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    portal.log_in("e2e-dev")

    projects = page.locator("table[data-list=my-projects]")
    expect(projects.locator("tbody tr")).to_have_count(1)
    expect(projects).to_contain_text("alpha")
    expect(projects).to_contain_text("Developer")
    pushes = page.locator("table[data-list=recent-pushes]")
    expect(pushes.locator("tbody tr")).to_have_count(2)
    expect(pushes).not_to_contain_text("beta")
    hosts = page.locator("table[data-list=hosts-not-on]")
    expect(hosts.locator("tbody tr")).to_have_count(1)
    expect(hosts).to_contain_text("connection refused")
    jobs = page.locator("table[data-list=failed-jobs]")
    expect(jobs.locator("tbody tr")).to_have_count(1)
    expect(jobs).to_contain_text("no container host that is ON")
    states = check(page, "container-state-chart")
    assert states["values"] == [[3, 1]]
    shot(page, "home-developer", width, "h2")
    assert_accessible(page, "main .wharf-dashboard")

    pushes.get_by_role("link", name="alpha/web:1.0").click()
    expect(page).to_have_url(re.compile(r"/projects/alpha/repositories/web/$"))
    expect(page.get_by_role("heading", name="alpha/web")).to_be_visible()
    page.go_back()
    page.locator("table[data-list=hosts-not-on]").get_by_role("link", name="docker-down").click()
    expect(page.get_by_role("heading", name="docker-down")).to_be_visible()
    page.go_back()
    page.locator("table[data-list=failed-jobs]").get_by_role("link", name="View log").click()
    expect(page.locator("#home-job-panel")).to_contain_text("no container host that is ON")
    shot(page, "home-developer-job", width, "#home-job-panel")


def test_without_javascript_the_charts_are_their_tables(browser: Browser, live_server, plain_http, site) -> None:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1440, "height": 900},
                                  java_script_enabled=False)  # fmt: skip
    page = context.new_page()
    try:
        page.goto("/login/")
        page.get_by_label("User name").fill("e2e-dev")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.goto("/projects/alpha/")
        table = page.locator("[data-chart-figure=pulls-chart] table")
        expect(table).to_be_visible()
        today = table.locator("tbody tr").last
        expect(today.locator("th")).to_have_text(site.today.isoformat())
        expect(today.locator("td")).to_have_text("9")
        expect(page.locator("canvas#pulls-chart")).to_be_hidden()
        shot(page, "project-summary-no-js", 1440, "[data-chart-figure=pulls-chart]")
    finally:
        context.close()

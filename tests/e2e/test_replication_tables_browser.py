"""The replication tables in a real browser, at 1440 and 800 px: Replication Rules and Replication Endpoints take
several rows at once (check boxes with a select-all header), Enable, Disable and Delete act on every ticked row and
the page says which were done and which were refused and why, Edit still takes one row, and the sort and page size
are kept in the URL across a reload.

Before, the rules' Enable, Disable and Delete and the endpoints' Delete needed exactly one row (data-needs="one"),
the views took one selection, and neither table had a select-all box, sortable headers or a page size.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from portal.core.models import Job, JobState, User
from projects.models import Project
from replication import services
from replication.models import Endpoint, EndpointKind, Execution, Rule, Trigger
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.e2e.test_tables_browser import choose_page_size, expect_enabled, rows

pytestmark = [pytest.mark.e2e]

RULES_URL = "/registries/replication/rules/"
ENDPOINTS_URL = "/registries/replication/endpoints/"


def snap(page: Page, table: str, step: str, width: int) -> None:
    """Save a screenshot of a step (test-output/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"replication_tables_{table}_{step}_{width}px.png"), full_page=True)


def running_execution(rule: Rule) -> Execution:
    """An execution of the rule that is still running (so the rule cannot be deleted)."""
    job = Job.objects.create(kind=services.EXECUTION, target=rule.name, state=JobState.RUNNING)
    return Execution.objects.create(rule=rule, job=job, cause=Execution.Cause.MANUAL)


@pytest.fixture
def site(admin: User) -> dict[str, Endpoint]:
    """Projects shipyard and harbor; endpoint dr-east used by every rule, spare-0 ... spare-11 used by none; enabled
    manual rules rule-00 ... rule-11 (shipyard's even, harbor's odd; rule-05 scheduled), and rule 'busy' with a
    running execution."""
    shipyard = Project.objects.create(name="shipyard")
    harbor = Project.objects.create(name="harbor")
    east = Endpoint.objects.create(name="dr-east", kind=EndpointKind.REGISTRY, url="https://east.example:443")
    endpoints = {"dr-east": east}
    for n in range(12):
        # The URLs run the other way round from the names, so sorting by URL reverses the table.
        url = f"https://{chr(ord('z') - n)}.example:443"
        endpoints[f"spare-{n:02}"] = Endpoint.objects.create(name=f"spare-{n:02}", kind=EndpointKind.REGISTRY, url=url)
    for n in range(12):
        trigger = Trigger.SCHEDULED if n == 5 else Trigger.MANUAL
        Rule.objects.create(
            name=f"rule-{n:02}",
            project=harbor if n % 2 else shipyard,
            endpoint=east,
            trigger=trigger,
            cron="0 2 * * *" if trigger == Trigger.SCHEDULED else "",
            enabled=True,
        )
    running_execution(Rule.objects.create(name="busy", project=shipyard, endpoint=east, enabled=True))
    return endpoints


def test_rules_select_several_disable_two_delete_with_a_refusal_and_sort(
    portal: Portal, admin: User, site: dict[str, Endpoint], width: int
):
    page = portal.page
    portal.log_in(admin.username)
    page.goto(RULES_URL)
    expect_enabled(page, [], ["Edit", "Enable", "Disable", "Delete"])

    page.get_by_label("Select rule-00").check()
    expect_enabled(page, ["Edit", "Enable", "Disable", "Delete"], [])
    page.get_by_label("Select rule-01").check()
    # Two rules: Edit takes one, the others take both.
    expect_enabled(page, ["Enable", "Disable", "Delete"], ["Edit"])
    expect(page.locator("[data-selection-count='rule-form']")).to_have_text("2 selected")
    snap(page, "rules", "two_selected", width)

    page.get_by_role("button", name="Disable", exact=True).click()
    portal.expect_message("Disabled rules rule-00, rule-01")
    for name in ("rule-00", "rule-01"):
        expect(page.locator(f'tr[data-rule="{name}"] [data-field="enabled"]')).to_have_text("Disabled")
    expect(page.locator('tr[data-rule="rule-02"] [data-field="enabled"]')).to_have_text("Enabled")
    assert list(Rule.objects.filter(enabled=False).order_by("name").values_list("name", flat=True)) == [
        "rule-00",
        "rule-01",
    ]

    # Delete names every ticked rule; the busy one is refused, the other goes.
    page.get_by_label("Select rule-00").check()
    page.get_by_label("Select busy").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text("Delete these 2 replication rules")
    expect(dialog.locator("li")).to_have_text(["busy", "rule-00"])
    snap(page, "rules", "delete_dialog", width)
    dialog.get_by_role("button", name="Delete").click()
    portal.expect_message("Deleted rule rule-00.")
    portal.expect_message("Not deleted: busy: rule 'busy' has 1 running execution")
    expect(page.locator('tr[data-rule="rule-00"]')).to_have_count(0)
    expect(page.locator('tr[data-rule="busy"]')).to_have_count(1)
    snap(page, "rules", "deleted_with_a_refusal", width)

    # Select all ticks the page's rows.
    page.get_by_label("Select all rows on this page").check()
    expect(page.locator("[data-selection-count='rule-form']")).to_have_text(f"{len(rows(page, 'data-rule'))} selected")
    page.get_by_label("Select all rows on this page").uncheck()

    # Sort by Enabled (disabled first), then by Project descending; the order survives a reload.
    page.get_by_role("link", name="Enabled", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=enabled"))
    assert rows(page, "data-rule")[0] == "rule-01"
    page.get_by_role("link", name="Project", exact=True).click()
    page.get_by_role("link", name="Project", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=-project"))
    choose_page_size(page, "10")
    page.reload()
    expect(page).to_have_url(re.compile(r"sort=-project"))
    expect(page.get_by_label("Rows per page")).to_have_value("10")
    expect(page.locator("th[aria-sort='descending']")).to_contain_text("Project")
    shown = rows(page, "data-rule")
    assert len(shown) == 10
    projects = [Rule.objects.get(name=name).project.name for name in shown]
    assert projects == sorted(projects, reverse=True)
    snap(page, "rules", "sorted_page_size", width)


def test_rules_search_keeps_the_sort(portal: Portal, admin: User, site: dict[str, Endpoint], width: int):
    page = portal.page
    portal.log_in(admin.username)
    page.goto(RULES_URL + "?sort=-name")
    page.get_by_label("Filter rules").fill("rule-0")
    expect(page).to_have_url(re.compile(r"q=rule-0"))
    expect(page.locator('tr[data-rule="busy"]')).to_have_count(0)
    assert rows(page, "data-rule")[0] == "rule-09"
    page.reload()
    assert rows(page, "data-rule")[:2] == ["rule-09", "rule-08"]
    snap(page, "rules", "search_sorted", width)


def test_endpoints_delete_two_with_a_refusal_and_sort_by_url(
    portal: Portal, admin: User, site: dict[str, Endpoint], width: int
):
    page = portal.page
    portal.log_in(admin.username)
    page.goto(ENDPOINTS_URL)
    expect_enabled(page, [], ["Edit", "Delete"])

    page.get_by_label("Select dr-east").check()
    page.get_by_label("Select spare-00").check()
    expect_enabled(page, ["Delete"], ["Edit"])
    expect(page.locator("[data-selection-count='endpoint-form']")).to_have_text("2 selected")
    snap(page, "endpoints", "two_selected", width)

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text("Delete these 2 replication endpoints")
    expect(dialog.locator("li")).to_contain_text(["dr-east", "spare-00"])
    dialog.get_by_role("button", name="Delete").click()
    portal.expect_message("Deleted endpoint spare-00.")
    portal.expect_message("Not deleted: dr-east: endpoint 'dr-east' is used by rules")
    expect(page.locator('tr[data-endpoint="spare-00"]')).to_have_count(0)
    expect(page.locator('tr[data-endpoint="dr-east"]')).to_have_count(1)
    assert Endpoint.objects.filter(name="dr-east").exists() and not Endpoint.objects.filter(name="spare-00").exists()
    snap(page, "endpoints", "deleted_with_a_refusal", width)

    # Sort by URL: spare-11 has the first URL (https://o...), dr-east (https://east...) comes before it.
    page.get_by_role("link", name="Endpoint URL", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=url"))
    page.reload()
    expect(page.locator("th[aria-sort='ascending']")).to_contain_text("Endpoint URL")
    assert rows(page, "data-endpoint")[:3] == ["dr-east", "spare-11", "spare-10"]
    choose_page_size(page, "10")
    page.reload()
    expect(page).to_have_url(re.compile(r"sort=url"))
    assert len(rows(page, "data-endpoint")) == 10
    snap(page, "endpoints", "sorted_page_size", width)

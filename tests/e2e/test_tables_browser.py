"""Datagrid tables in a real browser, at 1440 and 800 px: members, users, tags and containers take several rows
at once, the toolbar buttons follow the selection (Edit needs one, Delete/Remove one or more), a bulk action on
two rows does both, and the sort and page size are kept in the URL across a reload.

On main these tables had radio buttons (members), always-enabled buttons, no sortable headers and no page size.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from hosts import services as host_services
from hosts.models import Container, ContainerState
from portal.core.audit import Actor
from portal.core.models import User
from projects.models import Membership, Project, Role
from registries.client import RegistryClient
from registries.models import Repository, Tag
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.e2e.test_registry_browser import pushed
from tests.integration.dockerd import Dockerd, start_dockerd
from tests.integration.registry import Registry

pytestmark = [pytest.mark.e2e]
TRAPPING_LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def snap(page: Page, table: str, step: str, width: int) -> None:
    """Save a screenshot of a step (test-output/screenshots)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"tables_{table}_{step}_{width}px.png"), full_page=True)


def accept_confirm(page: Page) -> None:
    """Say OK to the next confirm() (hx-confirm) the page asks."""
    page.once("dialog", lambda dialog: dialog.accept())


def rows(page: Page, attribute: str) -> list[str]:
    """The table's rows in the order shown, by their data attribute."""
    return page.locator(f"tr[{attribute}]").evaluate_all(f"rows => rows.map(row => row.dataset.{attribute[5:]})")


def choose_page_size(page: Page, size: str) -> None:
    """Choose the rows per page; htmx reloads the table and puts the choice in the URL."""
    page.get_by_label("Rows per page").select_option(size)
    expect(page).to_have_url(re.compile(f"page_size={size}"))


def expect_enabled(page: Page, enabled: list[str], disabled: list[str]) -> None:
    """The toolbar's buttons with these names are enabled, and those disabled."""
    for name in enabled:
        expect(page.get_by_role("button", name=name, exact=True)).to_be_enabled()
    for name in disabled:
        expect(page.get_by_role("button", name=name, exact=True)).to_be_disabled()


# Members.


@pytest.fixture
def crew(admin: User) -> Project:
    """Project crew with 14 viewers m00 ... m13."""
    project = Project.objects.create(name="crew")
    for n in range(14):
        user = User.objects.create_user(f"m{n:02}", password="Wharf-test-Passw0rd")
        Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    return project


def test_members_select_several_remove_two_sort_and_page_size(portal: Portal, admin: User, crew: Project, width: int):
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/projects/crew/members/")
    expect_enabled(page, [], ["Edit", "Remove"])

    page.get_by_label("Select m00").check()
    expect_enabled(page, ["Edit", "Remove"], [])
    page.get_by_label("Select m01").check()
    expect(page.get_by_label("Select m00")).to_be_checked()
    expect_enabled(page, ["Remove"], ["Edit"])
    expect(page.locator("[data-selection-count='member-form']")).to_have_text("2 selected")
    snap(page, "members", "two_selected", width)

    accept_confirm(page)
    page.get_by_role("button", name="Remove", exact=True).click()
    portal.expect_message("Removed m00, m01 from project 'crew'.")
    expect(page.locator('tr[data-member="m00"]')).to_have_count(0)
    assert not Membership.objects.filter(project=crew, user__username__in=["m00", "m01"]).exists()

    page.get_by_role("link", name="User/Group").click()
    expect(page).to_have_url(re.compile(r"sort=name"))
    page.get_by_role("link", name="User/Group").click()
    expect(page).to_have_url(re.compile(r"sort=-name"))
    assert rows(page, "data-member")[:2] == ["m13", "m12"]

    choose_page_size(page, "10")
    page.reload()
    expect(page).to_have_url(re.compile(r"sort=-name"))
    expect(page.get_by_label("Rows per page")).to_have_value("10")
    assert rows(page, "data-member") == [f"m{n:02}" for n in range(13, 3, -1)]
    snap(page, "members", "sorted_page_size", width)

    # A bulk action returns to the table as it was sorted and paged.
    page.get_by_label("Select m13").check()
    accept_confirm(page)
    page.get_by_role("button", name="Remove", exact=True).click()
    portal.expect_message("Removed m13 from project 'crew'.")
    expect(page).to_have_url(re.compile(r"sort=-name&page_size=10"))
    assert rows(page, "data-member")[:2] == ["m12", "m11"]


# Users & Groups.


def test_users_select_several_delete_two_page_size_and_sort(portal: Portal, admin: User, width: int):
    User.objects.bulk_create([User(username=f"u{n:02}") for n in range(30)])
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/identities/")
    everything = ["Assign Admin Role", "Unassign Admin Role", "Disable", "Enable", "Delete"]
    expect_enabled(page, [], [*everything, "Edit", "Assign Project Roles"])

    page.get_by_label("Select user u00").check()
    expect_enabled(page, [*everything, "Edit", "Assign Project Roles"], [])
    page.get_by_label("Select user u01").check()
    expect_enabled(page, everything, ["Edit", "Assign Project Roles"])
    snap(page, "users", "two_selected", width)

    accept_confirm(page)
    page.get_by_role("button", name="Delete", exact=True).click()
    portal.expect_message("Deleted u00, u01.")
    assert not User.objects.filter(username__in=["u00", "u01"]).exists()

    choose_page_size(page, "50")
    page.reload()
    expect(page.get_by_label("Rows per page")).to_have_value("50")
    expect(page.locator('tr[data-identity="user:u29"]')).to_be_visible()
    snap(page, "users", "page_size", width)

    page.get_by_role("link", name="Name", exact=True).click()
    page.get_by_role("link", name="Name", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=-name"))
    page.reload()
    expect(page.get_by_label("Rows per page")).to_have_value("50")
    assert rows(page, "data-identity")[:2] == ["user:u29", "user:u28"]
    snap(page, "users", "sorted", width)


# Tags (a real registry: deleting a tag deletes its manifest there).


@pytest.fixture
def fleet(admin: User) -> Project:
    """Project fleet for the pushes."""
    return Project.objects.create(name="fleet")


@pytest.mark.integration
def test_tags_select_several_delete_two_sort_and_page_size(
    portal: Portal,
    admin: User,
    fleet: Project,
    wired: Registry,
    width: int,
):
    names = [f"t{n:02}" for n in range(13)]
    pushed(wired, "fleet/app", names)
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/projects/fleet/repositories/app/")
    expect_enabled(page, [], ["Delete tag", "Scan"])

    page.get_by_label("Select t00").check()
    page.get_by_label("Select t01").check()
    expect_enabled(page, ["Delete tag", "Scan"], [])
    snap(page, "tags", "two_selected", width)

    page.get_by_role("button", name="Delete tag").click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text("Delete these 2 tags of fleet/app?")
    dialog.get_by_role("button", name="Delete").click()
    portal.expect_message("Deleted tags fleet/app:t00, fleet/app:t01.")
    assert sorted(Tag.objects.filter(repository__name="fleet/app").values_list("name", flat=True)) == names[2:]

    page.get_by_role("link", name="Tag", exact=True).click()
    page.get_by_role("link", name="Tag", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=-name"))
    assert rows(page, "data-tag")[0] == "t12"
    choose_page_size(page, "10")
    page.reload()
    expect(page.get_by_label("Rows per page")).to_have_value("10")
    assert rows(page, "data-tag") == [f"t{n:02}" for n in range(12, 2, -1)]
    snap(page, "tags", "sorted_page_size", width)


@pytest.fixture
def quay(admin: User, width: int) -> Project:
    """A project of its own per width: the module's registry may still report an earlier test's pushes."""
    return Project.objects.create(name=f"quay{width}")


@pytest.mark.integration
def test_repositories_select_several_delete_two_and_sort(
    portal: Portal,
    admin: User,
    quay: Project,
    wired: Registry,
    width: int,
):
    web, api, db = (f"{quay.name}/{name}" for name in ("web", "api", "db"))
    for name in (web, api, db):
        pushed(wired, name, ["1"])
    Repository.objects.filter(name=db).update(pull_count=12)
    page = portal.page
    portal.log_in(admin.username)
    page.goto(f"/projects/{quay.name}/repositories/")
    expect_enabled(page, [], ["Delete"])

    page.get_by_label(f"Select {web}").check()
    page.get_by_label(f"Select {api}").check()
    expect_enabled(page, ["Delete"], [])
    snap(page, "repositories", "two_selected", width)
    page.get_by_role("button", name="Delete").click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text(f"Delete 2 repositories of project {quay.name}")
    dialog.get_by_role("button", name="Delete").click()
    portal.expect_message(f"Deleted {api}, {web}.")
    assert list(Repository.objects.filter(project=quay).values_list("name", flat=True)) == [db]
    assert RegistryClient().head_manifest(web, "1") is None

    pushed(wired, web, ["2"])
    page.get_by_role("link", name="Pulls", exact=True).click()
    page.get_by_role("link", name="Pulls", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=-pulls"))
    expect(page.locator("tr[data-repository]")).to_have_count(2)
    assert rows(page, "data-repository") == [db, web]
    page.reload()
    assert rows(page, "data-repository") == [db, web]
    snap(page, "repositories", "sorted", width)


# Containers (a real dockerd: Stop stops them there).


@pytest.fixture(scope="module")
def daemon() -> Iterator[Dockerd]:
    """A plain-HTTP dockerd on 127.0.0.1 with a busybox image."""
    started = start_dockerd(tcp=True, image="busybox:tables")
    yield started
    started.stop()


@pytest.fixture
def dock(admin: User, daemon: Dockerd, settings: Any) -> Iterator[Project]:
    """Project dock with the daemon as its host and 12 running containers c00 ... c11 found on it."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    for n in range(12):
        # A shell that ends on SIGTERM: `sleep` as PID 1 would ignore it, so every Stop would wait 10 s for the kill.
        daemon.ok("run", "-d", "--name", f"c{n:02}", "busybox:tables", "sh", "-c", TRAPPING_LOOP)
    project = Project.objects.create(name="dock")
    host_services.add_host(Actor(admin), project, name="docker-1", kind="docker", url=daemon.url)
    deadline = time.monotonic() + 60
    while Container.objects.filter(host__project=project).count() < 12:
        assert time.monotonic() < deadline, "the host's containers were not collected"
        time.sleep(0.5)
    yield project
    daemon.run("rm", "--force", *daemon.ok("ps", "--all", "--quiet").split())


@pytest.mark.integration
def test_containers_select_several_stop_two_sort_and_page_size(
    portal: Portal, admin: User, dock: Project, daemon: Dockerd, width: int
):
    page = portal.page
    portal.log_in(admin.username)
    page.goto("/containers/?project=dock")
    expect_enabled(page, [], ["Start", "Stop", "Restart", "Remove"])

    page.get_by_label("Select c00").check()
    page.get_by_label("Select c01").check()
    expect_enabled(page, ["Start", "Stop", "Restart", "Remove"], [])
    snap(page, "containers", "two_selected", width)

    page.get_by_role("button", name="Stop", exact=True).click()
    portal.expect_message("Stop started for c00, c01.")
    states = dict(Container.objects.filter(host__project=dock).values_list("name", "state"))
    assert states["c00"] == states["c01"] == ContainerState.EXITED and states["c02"] == ContainerState.RUNNING
    assert daemon.ok("inspect", "-f", "{{.State.Running}}", "c00").strip() == "false"

    page.get_by_role("link", name="Name", exact=True).click()
    page.get_by_role("link", name="Name", exact=True).click()
    expect(page).to_have_url(re.compile(r"sort=-name"))
    assert rows(page, "data-container")[0] == "c11"
    choose_page_size(page, "10")
    page.reload()
    expect(page.get_by_label("Rows per page")).to_have_value("10")
    assert rows(page, "data-container") == [f"c{n:02}" for n in range(11, 1, -1)]
    snap(page, "containers", "sorted_page_size", width)

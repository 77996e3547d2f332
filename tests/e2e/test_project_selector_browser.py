"""The header's project selector in a real browser on a site with more projects than it offers at once: type part
of a name, see the matching projects, pick one (with the mouse or the keyboard) and land on it."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from portal.core.models import User
from projects.models import Project
from projects.selection import SELECTOR_SIZE
from tests.e2e.conftest import Portal

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(admin: User) -> None:
    """40 projects, of which the two mirrors sort after the selector's first page."""
    Project.objects.bulk_create([Project(name=f"proj-{i:03d}") for i in range(40)])
    Project.objects.bulk_create([Project(name="zz-mirror-eu"), Project(name="zz-mirror-us")])


def selector(page: Page):
    """The header's drop-down of projects."""
    return page.get_by_label("Project", exact=True)


def offered(page: Page) -> list[str]:
    """The names of the projects the drop-down offers (not its hint lines)."""
    return selector(page).locator("option:not([disabled])").all_inner_texts()


def test_type_to_find_a_project_beyond_the_first_page_and_pick_it(
    page: Page, portal: Portal, admin: User, site
) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Container Hosts")
    expect(page.get_by_role("heading", name="Container Hosts")).to_contain_text("proj-000")
    expect(selector(page).locator("option:not([disabled])")).to_have_count(SELECTOR_SIZE)
    expect(selector(page).locator("option[disabled]")).to_have_text("More projects: type to search")
    assert "zz-mirror-us" not in offered(page)

    page.get_by_label("Search projects").fill("mirror")
    expect(selector(page).locator("option:not([disabled])")).to_have_count(2)
    assert offered(page) == ["zz-mirror-eu", "zz-mirror-us"]
    expect(selector(page).locator("option:checked")).to_have_text("Projects matching “mirror”")

    with page.expect_navigation():
        selector(page).select_option("zz-mirror-us")
    expect(page).to_have_url(f"{page.url.split('/hosts/')[0]}/hosts/")
    expect(page.get_by_role("heading", name="Container Hosts")).to_contain_text("zz-mirror-us")
    expect(selector(page)).to_have_value("zz-mirror-us")
    assert offered(page)[:2] == ["zz-mirror-us", "proj-000"]  # the selected project first, then the first page


def test_a_keyboard_user_searches_and_picks_without_the_mouse(page: Page, portal: Portal, admin: User, site) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Containers")
    search = page.get_by_label("Search projects")
    search.focus()
    page.keyboard.type("mirror-e")
    page.keyboard.press("Enter")  # searches in place rather than leaving the page
    expect(selector(page).locator("option:not([disabled])")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/containers/$"))
    page.keyboard.press("Shift+Tab")
    expect(selector(page)).to_be_focused()
    with page.expect_navigation():
        page.keyboard.press("ArrowDown")
    expect(selector(page)).to_have_value("zz-mirror-eu")
    expect(page.get_by_role("heading", name="Containers")).to_contain_text("zz-mirror-eu")

    # Clearing the search brings back the first page, the selected project first.
    page.get_by_label("Search projects").fill("x")
    expect(selector(page).locator("option:not([disabled])")).to_have_count(0)
    page.get_by_label("Search projects").fill("")
    expect(selector(page)).to_have_value("zz-mirror-eu")
    expect(selector(page).locator("option:not([disabled])")).to_have_count(SELECTOR_SIZE)

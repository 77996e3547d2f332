"""The registry pages in a real browser against a real registry whose notifications reach the live server."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page, expect

from portal.core.models import User
from projects.models import Membership, Project, Role
from registries.client import RegistryClient
from registries.models import Tag
from tests.e2e.conftest import Portal
from tests.integration.images import Image, pull_manifest, push_image
from tests.integration.registry import Registry
from tests.integration.registry_fixtures import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def shipyard(transactional_db: None) -> Project:
    """A private project for the pushes."""
    return Project.objects.create(name="shipyard")


@pytest.fixture
def project_admin(shipyard: Project, admin: User) -> User:
    """A DevOps administrator of the project (not a portal admin)."""
    user = User.objects.create_user("e2e-devops", password="Wharf-test-Passw0rd")
    Membership.objects.create(project=shipyard, user=user, role=Role.ADMIN)
    return user


def delete_selected(portal: Portal, checkbox: str, button: str, warning: str) -> None:
    """Tick the row's checkbox, press the delete button, read the warning in the dialog and confirm it."""
    portal.page.get_by_label(checkbox).check()
    portal.page.get_by_role("button", name=button).click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text(warning)
    dialog.get_by_role("button", name="Delete").click()


def pushed(registry: Registry, repository: str, tags: list[str]) -> Image:
    """Push a tiny image with these tags and wait until the portal has recorded every one."""
    image = push_image(registry.url, repository, tags)
    recorded = Tag.objects.filter(repository__name=repository)
    wait_for(lambda: recorded.count() == len(tags), f"not all of the tags {tags}", registry)
    return image


def repository_row(page: Page, name: str):
    """The row of a repository in the Internal Repositories or library table."""
    return page.locator(f'tr[data-repository="{name}"]')


def test_push_appears_in_internal_repositories_and_pulls_are_counted(
    portal: Portal, wired: Registry, shipyard: Project, project_admin: User, live_server: Any
) -> None:
    portal.log_in(project_admin.username)
    portal.page.goto("/projects/shipyard/")
    # The project's tab (the Summary's repository card links there too).
    portal.page.locator(".wharf-tabs").get_by_role("link", name="Internal Repositories").click()
    expect(portal.page.get_by_text("No repositories yet")).to_be_visible()

    push_image(wired.url, "shipyard/app", ["1.0"])

    # No reload: the tab polls every few seconds, so the push shows up on its own.
    row = repository_row(portal.page, "shipyard/app")
    expect(row).to_be_visible(timeout=15_000)
    expect(row.locator('[data-column="tags"]')).to_have_text("1")
    expect(row.locator('[data-column="pulls"]')).to_have_text("0")

    # Through the portal, as clients pull: the registry's event counts only for a pull the portal served.
    pull_manifest(live_server.url, "shipyard/app", "1.0")
    expect(row.locator('[data-column="pulls"]')).to_have_text("1", timeout=15_000)

    row.get_by_role("link", name="shipyard/app").click()
    host = portal.page.url.split("/")[2]
    expect(portal.page.locator('tr[data-tag="1.0"]')).to_contain_text(f"docker pull {host}/shipyard/app:1.0")


def test_deleting_one_of_two_tags_on_a_digest_keeps_the_other(
    portal: Portal, wired: Registry, shipyard: Project, project_admin: User
) -> None:
    image = pushed(wired, "shipyard/siblings", ["1.0", "latest"])
    portal.log_in(project_admin.username)
    portal.page.goto("/projects/shipyard/repositories/")
    repository_row(portal.page, "shipyard/siblings").get_by_role("link").click()

    delete_selected(portal, "Select 1.0", "Delete tag", "Other tags on the same digest are kept: latest.")

    portal.expect_message("Deleted tag shipyard/siblings:1.0.")
    expect(portal.page.locator('tr[data-tag="latest"]')).to_be_visible()
    expect(portal.page.locator('tr[data-tag="1.0"]')).to_have_count(0)
    assert RegistryClient().head_manifest("shipyard/siblings", "latest")[0] == image.digest
    assert RegistryClient().head_manifest("shipyard/siblings", "1.0") is None


def test_deleting_a_repository_from_the_tab(
    portal: Portal, wired: Registry, shipyard: Project, project_admin: User
) -> None:
    pushed(wired, "shipyard/old", ["1"])
    portal.log_in(project_admin.username)
    portal.page.goto("/projects/shipyard/repositories/")

    delete_selected(portal, "Select shipyard/old", "Delete", "shipyard/old")

    portal.expect_message("Deleted shipyard/old.")
    expect(repository_row(portal.page, "shipyard/old")).to_have_count(0)
    assert RegistryClient().head_manifest("shipyard/old", "1") is None


def test_library_lists_built_in_repositories(portal: Portal, wired: Registry, shipyard: Project, admin: User) -> None:
    pushed(wired, "shipyard/web", ["2.1"])
    portal.log_in(admin.username)
    portal.open_nav("Built-In Repositories")
    expect(portal.page.get_by_role("heading", name="Built-In Repositories")).to_be_visible()
    row = repository_row(portal.page, "shipyard/web")
    expect(row).to_contain_text("shipyard")
    row.get_by_role("link", name="shipyard/web").click()
    expect(portal.page.locator('tr[data-tag="2.1"]')).to_be_visible()


def test_admin_runs_garbage_collection_from_configuration(
    portal: Portal, wired: Registry, admin: User, settings: Any
) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Configuration")
    section = portal.page.get_by_role("region", name="Garbage Collection")
    section.get_by_label("Schedule").select_option(label="Daily")
    section.get_by_label("Daily at").fill("02:30")
    section.get_by_role("button", name="Save schedule").click()
    portal.expect_message("Garbage collection schedule saved: daily at 02:30.")

    section.get_by_role("button", name="Run now").click()
    portal.expect_message("Garbage collection started")
    runs = portal.page.get_by_role("table", name="Garbage collection runs")
    expect(runs.locator("tbody tr").first).to_contain_text("Succeeded", timeout=30_000)
    runs.get_by_role("link", name="View log").first.click()
    expect(portal.dialog()).to_contain_text("blobs deleted")

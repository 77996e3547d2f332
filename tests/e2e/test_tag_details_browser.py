"""Tag details in a real browser: the tag name in the tags table opens a page that reads the image from a real
registry (an OCI index of two platforms), and a registry that is down is said on the page, at 1440 and 800 px."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from playwright.sync_api import expect

from portal.core.models import User
from projects.models import Membership, Project, Role
from registries.client import OCI_INDEX, RegistryClient
from registries.models import Repository, Tag
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.integration.images import push_described_index
from tests.integration.registry import Registry, point_portal_at
from tests.integration.registry_fixtures import quiet_registry  # noqa: F401 (the `registry` fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
WIDTHS = [1440, 800]


@pytest.fixture
def developer(transactional_db: None) -> User:
    """A developer of project shipyard, which holds the pushed image."""
    project = Project.objects.create(name="shipyard")
    user = User.objects.create_user("e2e-dev", password="Wharf-test-Passw0rd")
    Membership.objects.create(project=project, user=user, role=Role.DEVELOPER)
    cache.clear()
    return user


@pytest.mark.parametrize("width", WIDTHS)
def test_tag_name_opens_details_read_from_the_registry(
    portal: Portal, settings: Any, registry: Registry, developer: User, width: int
) -> None:
    point_portal_at(settings, registry)
    image = push_described_index(RegistryClient(), "shipyard/multi", "1.0")
    repository = Repository.objects.create(project=Project.objects.get(name="shipyard"), name="shipyard/multi")
    Tag.objects.create(repository=repository, name="1.0", digest=image.digest, media_type=OCI_INDEX)
    portal.page.set_viewport_size({"width": width, "height": 900})
    portal.log_in(developer.username, "Wharf-test-Passw0rd")
    portal.page.goto("/projects/shipyard/repositories/shipyard/multi/")

    portal.page.locator('tr[data-tag="1.0"]').get_by_role("link", name="1.0", exact=True).click()

    page = portal.page
    expect(page.get_by_role("heading", name="shipyard/multi:1.0")).to_be_visible()
    expect(page.locator('[data-field="media-type"]')).to_have_text(OCI_INDEX)
    platforms = page.get_by_role("table", name="Platforms")
    expect(platforms.locator("tr[data-platform]")).to_have_count(2)
    expect(platforms).to_contain_text("linux/arm64/v8")
    arm = page.locator('section[data-image="linux/arm64/v8"]')
    expect(arm.locator('[data-field="author"]')).to_have_text("Wharf Builders <build@wharf.example>")
    expect(arm.locator('[data-field="created"]')).to_contain_text("2026-11-30 08:15:42")
    expect(arm.locator('[data-field="labels"]')).to_contain_text("tier=web")
    expect(arm.get_by_role("table", name="Layers of linux/arm64/v8").locator("tr[data-layer]")).to_have_count(2)
    expect(arm.get_by_role("table", name="Build history of linux/arm64/v8")).to_contain_text("make install")
    host = page.url.split("/")[2]
    expect(page.locator('[data-field="pull-command"]')).to_have_text(f"docker pull {host}/shipyard/multi:1.0")
    expect(page.locator('[data-field="provision-command"]')).to_contain_text("/api/v1/projects/shipyard/containers")
    # Nothing runs past the right edge at either width.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(SCREENSHOTS / f"tag_details_{width}.png"), full_page=True)


@pytest.mark.parametrize("width", WIDTHS)
def test_registry_down_is_said_on_the_tag_page(portal: Portal, settings: Any, developer: User, width: int) -> None:
    settings.REGISTRY_URL = "http://127.0.0.1:1"
    repository = Repository.objects.create(project=Project.objects.get(name="shipyard"), name="shipyard/down")
    Tag.objects.create(repository=repository, name="3", digest="sha256:" + "56" * 32)
    portal.page.set_viewport_size({"width": width, "height": 900})
    portal.log_in(developer.username, "Wharf-test-Passw0rd")
    portal.page.goto("/projects/shipyard/repositories/shipyard/down/")

    portal.page.get_by_role("link", name="3", exact=True).click()

    expect(portal.page.locator("[data-problem]")).to_contain_text("did not answer")
    expect(portal.page.locator('[data-field="pull-command"]')).to_contain_text("shipyard/down:3")
    portal.page.screenshot(path=str(SCREENSHOTS / f"tag_details_registry_down_{width}.png"), full_page=True)

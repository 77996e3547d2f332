"""Content trust and VCH whitelists in a real browser: a DevOps administrator enables content trust on a project
with two VCHs, sees on the Configuration tab the whitelist change one needs and the other's refusal, and opens
the VCH whose change is needed to read the vic-machine command.

The VCHs are rows as a collection leaves them (their whitelists learned from /info); the collection of a real
engine's whitelist is in tests/integration/test_vch_whitelists.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from hosts.models import ContainerHost, HostKind
from portal.core.models import User
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import Portal

pytestmark = [pytest.mark.e2e]
PORTAL = "127.0.0.1:8282"


@pytest.fixture
def devops(transactional_db: None, settings: Any) -> User:
    """A DevOps administrator of project `dock`, which holds a VCH without whitelist and one that excludes the
    portal's registry."""
    settings.REGISTRY_TOKEN_REALM = f"https://{PORTAL}/service/token"
    user = User.objects.create_user("e2e-devops", password=PASSWORD)
    project = Project.objects.create(name="dock")
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    for number, (name, whitelist) in enumerate([("vch-open", []), ("vch-closed", ["harbor.corp.example:443"])]):
        ContainerHost.objects.create(
            project=project,
            name=name,
            kind=HostKind.VCH,
            url=f"http://127.0.0.1:{number + 1}",
            whitelist_mode="enabled" if whitelist else "disabled",
            whitelisted_registries=whitelist,
        )
    return user


def test_enabling_content_trust_shows_each_vchs_whitelist_change(portal: Portal, devops: User) -> None:
    page = portal.page
    portal.log_in(devops.username)
    page.goto("/projects/dock/configuration/")

    page.get_by_label("Enable content trust").check()
    page.get_by_role("button", name="Save").click()

    portal.expect_message("Configuration of project 'dock' saved.")
    table = page.get_by_role("table", name="VCH registry whitelists")
    expect(table.locator("tr[data-host='vch-open']")).to_contain_text("Change needed")
    expect(table.locator("tr[data-host='vch-open']")).to_contain_text(f"--whitelist-registry {PORTAL}")
    expect(table.locator("tr[data-host='vch-closed']")).to_contain_text("Refused: would be more permissive")

    table.get_by_role("link", name="vch-open").click()

    notice = page.locator(".wharf-whitelist")
    expect(notice).to_contain_text("Change needed")
    expect(page.locator("[data-field='whitelist-command']")).to_have_text(
        f"vic-machine-linux create <the VCH's deployment options> --whitelist-registry {PORTAL}"
    )
    expect(page.locator("[data-field='whitelist']")).to_have_text("whitelist mode off: every registry allowed")

"""Issue 17, item 5, in a real browser at 1440 and 800 px: Reset Password of another user, Edit of an external
registry (through the trust dialog), Synchronize now without a directory, and empty states with a next step."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from portal.core.models import Credential, User
from registries.models import ExternalRegistry
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.integration.registry import Registry, start_standalone_registry
from tests.integration.tls_pki import self_signed_certificate

pytestmark = pytest.mark.e2e
WIDTHS = [1440, 800]


def at_width(portal: Portal, width: int) -> None:
    portal.page.set_viewport_size({"width": width, "height": 900})


def shot(portal: Portal, name: str, width: int) -> None:
    """A screenshot of what the test checked, named for the width."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    portal.page.screenshot(path=str(SCREENSHOTS / f"{name}_{width}.png"), full_page=True)


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A V2 registry over HTTPS with a self-signed certificate the portal does not trust yet."""
    workdir = tmp_path_factory.mktemp("tls-edit")
    registry = start_standalone_registry(workdir, tls=self_signed_certificate(workdir / "tls"))
    yield registry
    registry.stop()


@pytest.mark.parametrize("width", WIDTHS)
def test_admin_resets_another_users_password(portal: Portal, admin: User, width: int) -> None:
    carol = User.objects.create_user("carol", password=PASSWORD)
    User.objects.create_user("dan", source="ldap")
    at_width(portal, width)
    portal.log_in(admin.username)
    portal.page.goto("/identities/?q=carol")
    portal.page.locator('tr[data-identity="user:carol"]').get_by_role("checkbox").check()
    portal.page.get_by_role("button", name="Reset Password").click()
    dialog = portal.dialog()
    dialog.get_by_label("New password", exact=True).fill("short")
    dialog.get_by_label("Confirm new password").fill("short")
    dialog.get_by_role("button", name="Reset password").click()
    expect(portal.dialog()).to_contain_text("too short")
    shot(portal, "reset_password_error", width)
    portal.dialog().get_by_label("New password", exact=True).fill("Brand-new-Passw0rd!")
    portal.dialog().get_by_label("Confirm new password").fill("Brand-new-Passw0rd!")
    portal.dialog().get_by_role("button", name="Reset password").click()
    portal.expect_message("Password of 'carol' reset.")
    carol.refresh_from_db()
    assert carol.check_password("Brand-new-Passw0rd!")

    portal.page.goto("/identities/?q=dan")
    portal.page.locator('tr[data-identity="user:dan"]').get_by_role("checkbox").check()
    portal.page.get_by_role("button", name="Reset Password").click()
    dialog = portal.dialog()
    expect(dialog.locator("[data-why-not]")).to_contain_text("comes from the LDAP directory")
    expect(dialog.get_by_label("New password", exact=True)).to_have_count(0)
    shot(portal, "reset_password_directory_user", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_admin_edits_a_registry_through_the_trust_dialog(
    portal: Portal, admin: User, tls_registry: Registry, width: int
) -> None:
    credential = Credential.objects.create(name="robot", username="robot")
    ExternalRegistry.objects.create(name="mirror", address=tls_registry.url, credential=credential)
    at_width(portal, width)
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")
    portal.page.locator('tr[data-registry="mirror"]').get_by_role("link", name="Edit registry mirror").click()
    dialog = portal.dialog()
    expect(dialog.get_by_label("Address")).to_have_value(tls_registry.url)
    expect(dialog.get_by_label("Credential")).to_have_value("robot")
    dialog.get_by_label("Name").fill("mirror-eu")
    dialog.get_by_label("Credential").select_option(label="None")
    dialog.get_by_role("button", name="Verify").click()
    trust = portal.dialog()
    expect(trust).to_contain_text("Trust this certificate?")
    trust.get_by_role("button", name="Trust").click()
    expect(portal.dialog()).to_contain_text("Verified: a V2 registry with no authentication.")
    expect(portal.dialog().get_by_label("Name")).to_have_value("mirror-eu")
    shot(portal, "registry_edit_verified", width)
    portal.dialog().get_by_role("button", name="Save").click()
    portal.expect_message("Registry 'mirror-eu' saved.")
    expect(portal.page.locator('tr[data-registry="mirror-eu"]')).to_contain_text("None")
    registry = ExternalRegistry.objects.get(name="mirror-eu")
    assert registry.credential is None and registry.last_verified is not None


@pytest.mark.parametrize("width", WIDTHS)
def test_synchronize_now_is_disabled_without_a_directory(portal: Portal, admin: User, settings, width: int) -> None:
    settings.LDAP_URL = ""
    at_width(portal, width)
    portal.log_in(admin.username)
    portal.open_nav("Configuration")
    button = portal.page.get_by_role("button", name="Synchronize now")
    expect(button).to_be_disabled()
    expect(portal.page.locator("#sync-reason")).to_contain_text("set WHARF_LDAP_URL")
    expect(button).to_have_accessible_description(re.compile("Nothing to synchronize until a directory"))
    shot(portal, "synchronize_now_disabled", width)


@pytest.mark.parametrize("width", WIDTHS)
def test_empty_list_offers_the_next_step(portal: Portal, admin: User, width: int) -> None:
    at_width(portal, width)
    portal.log_in(admin.username)
    portal.page.goto("/identities/credentials/")
    empty = portal.page.locator("[data-empty-state]")
    expect(empty).to_contain_text("No credentials yet")
    shot(portal, "empty_state_credentials", width)
    empty.get_by_role("link", name="Add a credential").click()
    expect(portal.dialog()).to_contain_text("Name")

"""External registries in a real browser: add a self-signed HTTPS registry through the trust dialog and a plain
HTTP one, then search images across both from Library > Repositories and open a repository's tags."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from portal.core.models import User
from projects.models import Project
from registries.external import DOCKER_HUB
from registries.models import ExternalRegistry
from tests.e2e.conftest import Portal
from tests.integration.registry import Registry, push_tiny_image, start_standalone_registry
from tests.integration.tls_pki import self_signed_certificate

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture(scope="module")
def secure_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """V2 over HTTPS with a self-signed certificate, holding secure/app:v1."""
    workdir = tmp_path_factory.mktemp("secure")
    tls = self_signed_certificate(workdir / "tls")
    registry = start_standalone_registry(workdir, tls=tls)
    push_tiny_image(registry.url, "secure/app", ["v1"], verify=str(tls.cert))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def plain_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """V2 over plain HTTP, holding team/app:1.0 and team/app:1.1."""
    registry = start_standalone_registry(tmp_path_factory.mktemp("plain"))
    push_tiny_image(registry.url, "team/app", ["1.0", "1.1"])
    yield registry
    registry.stop()


@pytest.fixture
def harbor(transactional_db: None) -> Project:
    """A project to search for; Docker Hub is disabled so the browser test never reaches the internet."""
    ExternalRegistry.objects.filter(address=DOCKER_HUB).update(enabled=False)
    return Project.objects.create(name="harbor")


def add_registry(portal: Portal, address: str, name: str, insecure: bool = False) -> None:
    """Open +Registry and fill the dialog."""
    portal.page.get_by_role("link", name="+ Registry").click()
    dialog = portal.dialog()
    dialog.get_by_label("Address").fill(address)
    dialog.get_by_label("Name").fill(name)
    if insecure:
        dialog.get_by_label("Insecure (HTTP)").check()


def verify_through_the_trust_dialog(portal: Portal, subject: str) -> None:
    """Verify, check the certificate's subject in the trust dialog, Trust, and see the registry verified."""
    portal.dialog().get_by_role("button", name="Verify").click()
    trust = portal.dialog()
    expect(trust).to_contain_text("Trust this certificate?")
    expect(trust).to_contain_text(subject)
    trust.get_by_role("button", name="Trust").click()
    dialog = portal.dialog()
    expect(dialog).to_contain_text("Verified: a V2 registry with no authentication.")
    expect(dialog).not_to_contain_text("Trust this certificate?")


def test_add_registries_through_the_trust_dialog_and_search_both(
    page: Page, portal: Portal, admin: User, harbor: Project, secure_registry: Registry, plain_registry: Registry
) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")
    expect(page.get_by_role("heading", name="Global Registries")).to_be_visible()

    add_registry(portal, secure_registry.url, "secure")
    verify_through_the_trust_dialog(portal, "CN=wharf-test-registry")
    portal.dialog().get_by_role("button", name="Save").click()
    portal.expect_message("Registry 'secure' added.")
    expect(page.locator('tr[data-registry="secure"]')).to_contain_text("Enabled")

    add_registry(portal, plain_registry.url, "plain", insecure=True)
    portal.dialog().get_by_role("button", name="Save").click()
    portal.expect_message("Registry 'plain' added.")

    portal.open_nav("Repositories")
    page.get_by_label("Search images").fill("app")
    page.get_by_role("button", name="Search").click()
    results = page.get_by_role("table", name="Search results")
    expect(results.locator('tr[data-registry="secure"][data-repository="secure/app"]')).to_be_visible()
    expect(results.locator('tr[data-registry="plain"][data-repository="team/app"]')).to_be_visible()

    results.get_by_role("link", name="team/app").click()
    tags = portal.dialog()
    expect(tags.locator('tr[data-tag="1.0"]')).to_be_visible()
    expect(tags.locator('tr[data-tag="1.1"]')).to_contain_text("team/app:1.1")

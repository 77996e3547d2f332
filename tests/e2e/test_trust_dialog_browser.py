"""The trust dialog in a real browser, for what a walkthrough found broken: an unreachable address, an https://
address at a plain HTTP port, and a self-signed certificate whose names do not include the address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from portal.core.models import User
from tests.e2e.conftest import Portal
from tests.e2e.test_external_registries_browser import add_registry, verify_through_the_trust_dialog
from tests.integration.registry import Registry, start_standalone_registry
from tests.integration.slapd import free_port
from tests.integration.tls_pki import self_signed_certificate
from tests.loopback import PlainHttpPort

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


@pytest.fixture
def plain_port() -> Iterator[PlainHttpPort]:
    """A port answering in plain HTTP, as a registry without TLS does."""
    server = PlainHttpPort()
    yield server
    server.close()


@pytest.fixture(scope="module")
def misnamed_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """V2 over HTTPS on 127.0.0.1 with a self-signed certificate naming only registry.example."""
    workdir = tmp_path_factory.mktemp("misnamed")
    tls = self_signed_certificate(workdir / "tls", "registry.example", ("registry.example",))
    registry = start_standalone_registry(workdir, tls=tls, names_match=False)
    yield registry
    registry.stop()


def test_verify_of_an_unreachable_registry_says_why_in_the_dialog(portal: Portal, admin: User) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")
    closed = free_port()
    add_registry(portal, f"https://127.0.0.1:{closed}", "gone")
    portal.dialog().get_by_role("button", name="Verify").click()

    dialog = portal.dialog()
    expect(dialog).to_contain_text(f"127.0.0.1:{closed} refused the connection")
    expect(dialog.get_by_label("Address")).to_have_value(f"https://127.0.0.1:{closed}")
    portal.page.screenshot(path="test-output/screenshots/trust-unreachable-registry.png")


def test_certificate_of_an_unreachable_address_says_why_in_the_dialog(portal: Portal, admin: User) -> None:
    portal.log_in(admin.username)
    portal.page.goto("/identities/certificates/")
    portal.page.get_by_role("link", name="+ Certificate").click()
    closed = free_port()
    dialog = portal.dialog()
    dialog.get_by_label("URL").fill(f"https://127.0.0.1:{closed}")
    dialog.get_by_role("button", name="Show certificate").click()

    expect(portal.dialog()).to_contain_text(f"127.0.0.1:{closed}: connection refused")


def test_verify_of_https_at_a_plain_http_port_says_so(portal: Portal, admin: User, plain_port: PlainHttpPort) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")
    address = f"https://127.0.0.1:{plain_port.port}"
    add_registry(portal, address, "plain")
    portal.dialog().get_by_role("button", name="Verify").click()

    expect(portal.dialog()).to_contain_text("speaks plain HTTP, not TLS")


def test_a_pinned_certificate_for_another_name_is_trusted_for_its_address(
    portal: Portal, admin: User, misnamed_registry: Registry
) -> None:
    portal.log_in(admin.username)
    portal.open_nav("Global Registries")
    add_registry(portal, misnamed_registry.url, "misnamed")
    verify_through_the_trust_dialog(portal, "CN=registry.example")
    portal.dialog().get_by_role("button", name="Save").click()
    portal.expect_message("Registry 'misnamed' added.")

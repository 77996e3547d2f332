"""Content trust in a real browser: a portal admin turns it on in a project's Configuration and reads, in the
repository's tags table, which tags are signed and why the others are refused. The signature is real: made with
the notary CLI against Debian's notary-server and notary-signer as the launcher starts them, through the portal's
token service, for the manifest bytes the registry serves."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
from django.urls import reverse
from playwright.sync_api import expect

from portal.core.certificates import pki_paths
from portal.core.models import User
from projects.models import Project
from registries.client import DOCKER_MANIFEST
from registries.content_trust import NO_TRUST_DATA, NOT_SIGNED
from registries.models import TrustCollection
from tests.conftest import PASSWORD
from tests.e2e.conftest import SCREENSHOTS, Portal
from tests.e2e.test_registry_browser import pushed, repository_row
from tests.integration.images import user_headers
from tests.integration.notary import Notary, notary_ok, running_notary
from tests.integration.registry import Registry
from tests.loopback import HttpsServer

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


class TokenRelay:
    """HTTPS in front of the live server's token service, with the portal's certificate.

    The launcher gives notary an https:// token realm (the portal always serves HTTPS); the live server of these
    tests speaks plain HTTP, so the notary CLI is sent here and each token request is passed on unchanged.
    """

    def __init__(self, live_url: str) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = requests.get(
                    live_url + self.path,
                    headers={k: v for k, v in self.headers.items() if k.lower() == "authorization"},
                    timeout=30,
                )
                self.send_response(answer.status_code)
                for header in ("Content-Type", "WWW-Authenticate"):
                    if header in answer.headers:
                        self.send_header(header, answer.headers[header])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: object) -> None:
                pass

        self.https = HttpsServer(Handler, pki_paths().server_cert, pki_paths().server_key)
        self.host = self.https.host

    def close(self) -> None:
        self.https.close()


@pytest.fixture
def notary(live_server: Any, transactional_db: None, tmp_path: Path) -> Iterator[Notary]:
    """notary-server and notary-signer as the launcher starts them, taking tokens from the live server (through
    the HTTPS relay); the settings (and so the live server, a thread of this process) read trust data from it."""
    relay = TokenRelay(live_server.url)
    try:
        with running_notary(relay.host, tmp_path / "notary") as server:
            yield server
    finally:
        relay.close()


def sign(notary: Notary, user: str, gun: str, tag: str, manifest: bytes, workdir: Path) -> None:
    """Sign the tag with the notary CLI as the user (init, add the manifest's bytes as the target, publish)."""
    target = workdir / f"{tag}.manifest.json"
    target.write_bytes(manifest)
    for command in (("init", gun), ("add", gun, tag, str(target)), ("publish", gun)):
        notary_ok(notary.url, pki_paths().ca_cert, workdir / "trust", (user, PASSWORD), *command)


def screenshots(portal: Portal, name: str) -> None:
    """The page at a desktop width (1440 px) and a narrow one (800 px), in test-output/screenshots."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1440, 800):
        portal.page.set_viewport_size({"width": width, "height": 900})
        portal.page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
    portal.page.set_viewport_size({"width": 1280, "height": 800})


def test_admin_enables_content_trust_and_sees_signed_and_refused_tags(
    portal: Portal, wired: Registry, notary: Notary, admin: User, live_server: Any, tmp_path: Path
) -> None:
    Project.objects.create(name="shipyard")
    signed = pushed(wired, "shipyard/app", ["1.0"])
    unsigned = pushed(wired, "shipyard/app", ["2.0"])
    pushed(wired, "shipyard/plain", ["1.0"])
    # docker names trust data after the registry host it pushes to: the portal's own address.
    gun = f"{live_server.url.split('//', 1)[1]}/shipyard/app"
    sign(notary, admin.username, gun, "1.0", signed.manifest, tmp_path)
    assert TrustCollection.objects.filter(gun=gun, repository="shipyard/app").exists()

    portal.log_in(admin.username)
    portal.page.goto("/projects/shipyard/")
    portal.page.locator(".wharf-tabs").get_by_role("link", name="Configuration").click()
    portal.page.get_by_label("Enable content trust").check()
    portal.page.get_by_role("button", name="Save", exact=True).click()
    portal.expect_message("Configuration of project 'shipyard' saved.")
    expect(portal.page.get_by_label("Enable content trust")).to_be_checked()

    portal.page.get_by_role("link", name="Internal Repositories").click()
    repository_row(portal.page, "shipyard/app").get_by_role("link", name="shipyard/app").click()
    table = portal.page.get_by_role("table", name="Tags")
    expect(table.locator("thead th", has_text="Signed")).to_be_visible()
    signed_cell = table.locator('tr[data-tag="1.0"] [data-column="signed"]')
    expect(signed_cell.get_by_role("img", name="Signed")).to_be_visible()
    expect(signed_cell.locator("[title]")).to_have_attribute("title", f"Signed by the targets role for {signed.digest}")
    unsigned_cell = table.locator('tr[data-tag="2.0"] [data-column="signed"]')
    expect(unsigned_cell).to_contain_text("unsigned")
    expect(unsigned_cell).to_contain_text(NOT_SIGNED)
    refusal = f"image not signed: {NOT_SIGNED}"
    expect(unsigned_cell.locator(".wharf-signature-reason")).to_have_attribute("title", f"Pulls are refused: {refusal}")
    screenshots(portal, "content-trust-tags")

    # What the column says is what a pull gets: the unsigned tag is refused with that reason, the signed one served.
    # As docker asks: a bearer token of the user, the manifest types it accepts (and no keep-alive, which would
    # hold a live server thread and its database session past the test).
    headers = {**user_headers("shipyard/app"), "Accept": DOCKER_MANIFEST, "Connection": "close"}
    refused = requests.get(f"{live_server.url}/v2/shipyard/app/manifests/2.0", headers=headers, timeout=30)
    assert refused.status_code == 412 and refusal in refused.text, (refused.status_code, refused.text)
    assert unsigned.manifest not in refused.content
    served = requests.get(f"{live_server.url}/v2/shipyard/app/manifests/1.0", headers=headers, timeout=30)
    assert served.status_code == 200 and served.content == signed.manifest, served.status_code

    # A repository nobody signed says so on every tag.
    portal.page.goto(reverse("repository-detail", args=["shipyard", "plain"]))
    plain = portal.page.get_by_role("table", name="Tags").locator('tr[data-tag="1.0"] [data-column="signed"]')
    expect(plain).to_contain_text("unsigned")
    expect(plain).to_contain_text(NO_TRUST_DATA)

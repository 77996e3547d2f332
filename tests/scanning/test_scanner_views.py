"""The Scanners section of Administration > Configuration and a project's scanner on its Configuration tab: the
table with the default marked, + New Scanner and Edit (secrets never rendered back), Test Connection (Clair's index
state; an adapter's metadata, behind the trust dialog when its HTTPS certificate is unknown), Make default, Delete;
and the project's pick, which only its administrators may change.
"""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from portal.core.models import TrustedCertificate, User
from projects.models import Membership, Project, Role
from scanning.harbor_adapter import METADATA_V11, VULNERABILITY_REPORT
from scanning.models import ProjectScanner, ScannerRegistration
from tests.conftest import logged_in
from tests.portal.test_trust import make_certificate
from tests.scanning.clair_server import ClairServer
from tests.scanning.test_harbor_adapter_client import StandIn, as_json, metadata

PSK = base64.b64encode(b"never shown again").decode()


@pytest.fixture
def admin_client(client: Client, portal_admin: User) -> Client:
    return logged_in(client, portal_admin)


@pytest.fixture
def tls_adapter(tmp_path: Path) -> Iterator[tuple[StandIn, str]]:
    """A stand-in adapter over HTTPS with a certificate nobody trusts yet; its PEM."""
    keys = make_certificate("adapter.example", ["127.0.0.1"])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*keys.write(tmp_path, "adapter"))
    adapter = StandIn()
    adapter.routes[("GET", "/api/v1/metadata")] = as_json(200, metadata(VULNERABILITY_REPORT), METADATA_V11)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            adapter.answer(self)

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    adapter.url = f"https://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield adapter, keys.cert_pem
    server.shutdown()
    server.server_close()


def section(client: Client) -> str:
    response = client.get(reverse("configuration"))
    assert response.status_code == 200
    return response.content.decode()


def test_the_scanners_table_marks_the_built_in_default_and_offers_no_delete_for_it(admin_client: Client) -> None:
    page = section(admin_client)
    assert 'id="scanners-heading"' in page and 'data-scanner="wharf"' in page
    assert 'data-field="default">Default' in page
    assert reverse("scanner-delete", args=["wharf"]) not in page
    assert "spinner" in page and reverse("scanner-test", args=["wharf"]) in page


def test_new_and_edit_keep_secrets_write_only(admin_client: Client) -> None:
    assert admin_client.get(reverse("scanner-add"), HTTP_HX_REQUEST="true").status_code == 200
    created = admin_client.post(
        reverse("scanner-add"),
        {"name": "clair", "kind": "clair", "indexer_url": "http://127.0.0.1:6060", "psk": PSK, "enabled": "on"},
        HTTP_HX_REQUEST="true",
    )
    assert created.status_code == 204, created.content.decode()
    registration = ScannerRegistration.objects.get(name="clair")
    assert registration.psk and registration.psk != PSK
    edit = admin_client.get(reverse("scanner-edit", args=["clair"]), HTTP_HX_REQUEST="true").content.decode()
    assert PSK not in edit and "Set. Leave empty to keep it." in edit
    saved = admin_client.post(
        reverse("scanner-edit", args=["clair"]),
        {"indexer_url": "http://127.0.0.1:6061", "psk": "", "enabled": "on"},
        HTTP_HX_REQUEST="true",
    )
    assert saved.status_code == 204
    registration.refresh_from_db()
    assert registration.indexer_url == "http://127.0.0.1:6061" and registration.psk
    bad = admin_client.post(reverse("scanner-add"), {"name": "x", "kind": "clair"}, HTTP_HX_REQUEST="true")
    assert (
        bad.status_code == 400
        and '<span class="clr-subtext wharf-field-error">Required.</span>' in bad.content.decode()
    )
    assert PSK not in section(admin_client)


def test_make_default_and_delete(admin_client: Client) -> None:
    ScannerRegistration.objects.create(name="trivy", kind="harbor_adapter", adapter_url="http://127.0.0.1:1")
    admin_client.post(reverse("scanner-default", args=["trivy"]))
    assert ScannerRegistration.objects.get(is_default=True).name == "trivy"
    refused = admin_client.post(reverse("scanner-delete", args=["trivy"]), follow=True)
    assert "make another scanner the default first" in refused.content.decode()
    admin_client.post(reverse("scanner-default", args=["wharf"]))
    admin_client.post(reverse("scanner-delete", args=["trivy"]))
    assert not ScannerRegistration.objects.filter(name="trivy").exists()


def test_test_connection_shows_clairs_index_state(admin_client: Client) -> None:
    clair = ClairServer()
    try:
        ScannerRegistration.objects.create(name="clair", kind="clair", indexer_url=clair.url)
        shown = admin_client.post(reverse("scanner-test", args=["clair"]), HTTP_HX_REQUEST="true").content.decode()
    finally:
        clair.close()
    assert f"index state {clair.state}; the matcher is ready" in shown


def test_test_connection_over_unknown_https_asks_for_trust_then_shows_the_metadata(
    admin_client: Client, tls_adapter: tuple[StandIn, str]
) -> None:
    adapter, pem = tls_adapter
    ScannerRegistration.objects.create(name="trivy", kind="harbor_adapter", adapter_url=adapter.url)
    url = reverse("scanner-test", args=["trivy"])

    asked = admin_client.post(url, HTTP_HX_REQUEST="true")

    assert asked.status_code == 409 and "is not trusted" in asked.content.decode()
    address = adapter.url.removeprefix("https://")
    trusted = admin_client.post(url, {"trust_address": address, "trust_pem": pem}, HTTP_HX_REQUEST="true")
    shown = trusted.content.decode()
    assert trusted.status_code == 200 and TrustedCertificate.objects.filter(address=address).exists()
    assert "Trivy 0.50.1 by Aqua Security" in shown and 'data-field="metadata"' in shown
    assert VULNERABILITY_REPORT in shown


def test_only_portal_admins_reach_the_scanner_pages(client: Client, make_user: Any) -> None:
    logged_in(client, make_user("someone"))
    assert client.get(reverse("scanner-add")).status_code == 403
    assert client.post(reverse("scanner-test", args=["wharf"])).status_code == 403


def test_a_projects_admins_pick_its_scanner_on_its_configuration_tab(client: Client, make_user: Any) -> None:
    web = Project.objects.create(name="web")
    clair = ScannerRegistration.objects.create(name="clair", kind="clair", indexer_url="http://127.0.0.1:6060")
    viewer, admin = make_user("viewer"), make_user("owner")
    Membership.objects.create(project=web, user=viewer, role=Role.VIEWER)
    Membership.objects.create(project=web, user=admin, role=Role.ADMIN)
    logged_in(client, viewer)
    page = client.get(reverse("project-configuration", args=["web"])).content.decode()
    assert 'data-field="effective-scanner">wharf' in page and 'name="scanner"' not in page
    assert client.post(reverse("project-scanner-pick", args=["web"]), {"scanner": "clair"}).status_code == 403

    logged_in(client, admin)
    client.post(reverse("project-scanner-pick", args=["web"]), {"scanner": "clair"})

    assert ProjectScanner.objects.get(project=web).registration == clair
    page = client.get(reverse("project-configuration", args=["web"])).content.decode()
    assert 'data-field="effective-scanner">clair' in page and 'value="clair" selected' in page
    client.post(reverse("project-scanner-pick", args=["web"]), {"scanner": ""})
    assert not ProjectScanner.objects.filter(project=web).exists()

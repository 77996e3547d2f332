"""Identity Management > Credentials and Certificates pages, and the trust dialog."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.core import credentials
from portal.core.audit import Actor
from portal.core.models import Credential, TrustedCertificate
from tests.conftest import logged_in, page_text
from tests.portal.test_trust import make_certificate

pytestmark = pytest.mark.django_db

PASSWORD = "s3cr3t-Registry-Passw0rd"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def admin_client(client, portal_admin):
    return logged_in(client, portal_admin)


def test_portal_admin_sees_credentials_and_certificates_tabs(admin_client) -> None:
    text = page_text(admin_client.get(reverse("identities")))
    assert "Users &amp; Groups" in text
    assert reverse("credentials") in text and reverse("certificates") in text


def test_project_admin_sees_users_and_groups_only(client, role_users) -> None:
    client = logged_in(client, role_users["project_admin"])
    assert reverse("credentials") not in page_text(client.get(reverse("identities")))
    assert client.get(reverse("credentials")).status_code == 403
    assert client.get(reverse("certificates")).status_code == 403
    assert client.get(reverse("credential-create")).status_code == 403


def test_create_password_credential_through_dialog(admin_client) -> None:
    body = {"kind": "password", "name": "ci", "username": "robot", "password": PASSWORD}
    response = admin_client.post(reverse("credential-create"), body, **HTMX)
    assert response.status_code == 204
    assert response["HX-Redirect"] == reverse("credentials")
    assert Credential.objects.get(name="ci").password() == PASSWORD
    text = page_text(admin_client.get(reverse("credentials")))
    assert "ci" in text and "robot" in text and PASSWORD not in text


def test_type_switch_shows_certificate_fields(admin_client) -> None:
    text = page_text(admin_client.get(reverse("credential-create"), {"kind": "certificate", "name": "vch"}, **HTMX))
    assert 'name="certificate"' in text and 'name="private_key"' in text
    assert 'name="password"' not in text
    assert 'value="vch"' in text


def test_create_certificate_credential_and_mismatch_message(admin_client, keys) -> None:
    other = make_certificate("someone-else", [])
    body = {"kind": "certificate", "name": "vch", "certificate": keys.cert_pem, "private_key": other.key_pem}
    response = admin_client.post(reverse("credential-create"), body, **HTMX)
    assert response.status_code == 400
    assert "The private key does not match the certificate&#x27;s public key." in page_text(response)
    assert other.key_pem.splitlines()[1] not in page_text(response)
    body["private_key"] = keys.key_pem
    assert admin_client.post(reverse("credential-create"), body, **HTMX).status_code == 204
    assert Credential.objects.get(name="vch").kind == "certificate"


def test_edit_keeps_the_secret_when_left_empty_and_never_shows_it(admin_client, portal_admin) -> None:
    credentials.create_credential(Actor(portal_admin), "ci", "password", username="robot", password=PASSWORD)
    url = reverse("credential-edit", args=["ci"])
    dialog = page_text(admin_client.get(url, **HTMX))
    assert "robot" in dialog and PASSWORD not in dialog
    response = admin_client.post(url, {"name": "ci", "username": "robot2", "password": ""}, **HTMX)
    assert response.status_code == 204
    credential = Credential.objects.get(name="ci")
    assert credential.username == "robot2"
    assert credential.password() == PASSWORD


def test_delete_in_use_credential_shows_what_uses_it(admin_client, portal_admin, monkeypatch) -> None:
    credentials.create_credential(Actor(portal_admin), "ci", "password", username="robot", password=PASSWORD)
    monkeypatch.setattr(credentials, "CREDENTIAL_USERS", [lambda cs: {c.pk: "registry 'hub-mirror'" for c in cs}])
    response = admin_client.post(reverse("credential-delete", args=["ci"]), follow=True)
    assert "credential &#x27;ci&#x27; is used by registry &#x27;hub-mirror&#x27;" in page_text(response)
    assert Credential.objects.filter(name="ci").exists()
    assert "registry &#x27;hub-mirror&#x27;" in page_text(admin_client.get(reverse("credentials")))
    monkeypatch.setattr(credentials, "CREDENTIAL_USERS", [])
    admin_client.post(reverse("credential-delete", args=["ci"]))
    assert not Credential.objects.exists()


def test_add_certificate_by_url_shows_details_then_trusts(admin_client, https_server) -> None:
    response = admin_client.post(reverse("certificate-add"), {"url": https_server.url}, **HTMX)
    text = page_text(response)
    assert response.status_code == 200
    assert "Trust this certificate?" in text
    assert https_server.keys.sha256 in text
    assert 'name="trust_pem"' in text
    trusted = admin_client.post(
        reverse("certificate-trust"),
        {
            "trust_address": https_server.address,
            "trust_pem": https_server.keys.cert_pem,
            "next": "https://evil.example/",
        },
        **HTMX,
    )
    assert trusted.status_code == 204
    assert trusted["HX-Redirect"] == reverse("certificates")
    pinned = TrustedCertificate.objects.get(address=https_server.address)
    listing = page_text(admin_client.get(reverse("certificates")))
    assert "CN=test-server" in listing and pinned.sha1 in listing and pinned.sha256 in listing
    admin_client.post(reverse("certificate-delete", args=[pinned.pk]), **HTMX)
    assert not TrustedCertificate.objects.exists()


def test_add_certificate_from_closed_port_says_why(admin_client) -> None:
    response = admin_client.post(reverse("certificate-add"), {"url": "https://127.0.0.1:1"}, **HTMX)
    assert response.status_code == 502
    assert "connection refused" in page_text(response)

"""System settings, the CA download, session expiry after the token expiration, login and logout."""

from __future__ import annotations

import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.test import Client

from portal.core.certificates import fingerprint, pki_paths
from portal.core.middleware import LAST_SEEN_KEY, SESSION_TOUCH_SECONDS
from portal.core.models import AuditEvent, SystemSettings
from tests.conftest import PASSWORD


def test_settings_defaults(api) -> None:
    body = api.get("/api/v1/settings").json()
    assert body["token_expiration_minutes"] == 30
    assert body["scan_schedule"] == "daily" and body["scan_time"] == "03:00:00"
    assert body["audit_retention_days"] == 180


def test_settings_change_and_validation(api) -> None:
    response = api.patch("/api/v1/settings", {"token_expiration_minutes": 0}, format="json")
    assert response.status_code == 400
    assert "token_expiration_minutes" in response.json()["errors"]
    response = api.patch("/api/v1/settings", {"scan_schedule": "hourly"}, format="json")
    assert response.status_code == 400
    response = api.patch("/api/v1/settings", {"token_expiration_minutes": 90, "scan_schedule": "off"}, format="json")
    assert response.status_code == 200
    stored = SystemSettings.load()
    assert (stored.token_expiration_minutes, stored.scan_schedule) == (90, "off")
    event = AuditEvent.objects.get(resource_type="settings")
    assert event.detail == {"token_expiration_minutes": "90", "scan_schedule": "off"}


def test_systeminfo_is_public_and_ca_download_matches_thumbprints(db) -> None:
    client = Client()
    info = client.get("/api/v1/systeminfo").json()
    assert info["auth_mode"] == "db_auth"
    download = client.get("/api/v1/systeminfo/ca")
    assert download["Content-Disposition"] == 'attachment; filename="ca.crt"'
    cert = x509.load_pem_x509_certificate(download.content)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert info["ca_sha256"] == fingerprint(cert, hashes.SHA256())
    assert info["ca_sha1"] == fingerprint(cert, hashes.SHA1())
    assert download.content == pki_paths().ca_cert.read_bytes()


def test_login_page_shows_ca_thumbprints(db) -> None:
    page = Client().get("/login/").content.decode()
    sha1 = Client().get("/api/v1/systeminfo").json()["ca_sha1"]
    assert sha1 in page
    assert "/api/v1/systeminfo/ca" in page


def _logged_in(username: str) -> Client:
    client = Client()
    response = client.post("/login/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302, response.content
    return client


def test_session_expires_after_token_expiration(make_user) -> None:
    make_user("sam")
    client = _logged_in("sam")
    assert client.get("/").status_code == 200
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - 29 * 60
    session.save()
    assert client.get("/").status_code == 200, "29 idle minutes are within the default 30"
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - 31 * 60
    session.save()
    response = client.get("/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert client.get("/api/v1/projects").status_code == 401  # the session is gone


def test_shorter_token_expiration_applies_to_open_sessions(make_user) -> None:
    make_user("tia")
    client = _logged_in("tia")
    settings_row = SystemSettings.load()
    settings_row.token_expiration_minutes = 1
    settings_row.save()
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - 90
    session.save()
    assert client.get("/").status_code == 302


def test_session_cookie_lifetime_follows_setting(make_user) -> None:
    make_user("uma")
    client = _logged_in("uma")
    client.get("/")
    assert client.session.get_expiry_age() == 30 * 60


def test_pages_do_not_write_the_session_every_time(make_user) -> None:
    make_user("vic")
    client = _logged_in("vic")
    session = client.session
    seen = session[LAST_SEEN_KEY] = int(time.time()) - 10
    session.save()
    for _ in range(3):
        assert client.get("/").status_code == 200
    assert client.session[LAST_SEEN_KEY] == seen, "a fresh 'last seen' is left as it is"
    session = client.session
    session[LAST_SEEN_KEY] = int(time.time()) - SESSION_TOUCH_SECONDS - 1
    session.save()
    client.get("/")
    assert client.session[LAST_SEEN_KEY] >= int(time.time()) - 2, "a stale one is written again"


def test_login_and_logout_are_audited(make_user) -> None:
    make_user("vic")
    client = _logged_in("vic")
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302
    actions = list(AuditEvent.objects.filter(username="vic").values_list("action", "outcome"))
    assert ("login", "success") in actions and ("logout", "success") in actions
    Client().post("/login/", {"username": "vic", "password": "bad"})
    assert AuditEvent.objects.filter(username="vic", action="login", outcome="failure").exists()


def test_openapi_schema_builds_without_warnings(tmp_path) -> None:
    from django.core.management import call_command

    out = tmp_path / "schema.yml"
    call_command("spectacular", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    for path in ("/api/v1/projects/{name}/", "/api/v1/users/{username}/admin", "/api/v1/settings"):
        assert path.rstrip("/") in text, path

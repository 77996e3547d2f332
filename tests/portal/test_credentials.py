"""Credentials: both kinds, key/certificate validation, secrets never shown, logged or audited, in-use refusal."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography.fernet import Fernet

from portal.core import credentials, trust
from portal.core.audit import Actor
from portal.core.errors import Conflict, Forbidden, Invalid
from portal.core.models import AuditEvent, Credential
from portal.core.secrets import SecretUnreadable, decrypt
from tests.conftest import client_for
from tests.portal.test_trust import make_certificate

PASSWORD = "s3cr3t-Registry-Passw0rd"
NEW_PASSWORD = "an0ther-S3cret-Passw0rd"


@pytest.fixture
def other_keys():
    return make_certificate("someone-else", [])


@pytest.fixture
def admin_actor(portal_admin) -> Actor:
    return Actor(portal_admin, "127.0.0.1")


def key_body(keys) -> str:
    """The base64 body of a private key PEM (what must never leak, whatever the framing)."""
    return "".join(line for line in keys.key_pem.splitlines() if "-----" not in line)


def secret_fragments(keys) -> list[str]:
    body = key_body(keys)
    return [PASSWORD, NEW_PASSWORD, body[:40], body[-40:]]


def assert_no_secret(text: str, keys) -> None:
    for fragment in secret_fragments(keys):
        assert fragment not in text, f"secret fragment {fragment[:8]}... leaked"


def test_password_credential_api_never_returns_the_password(api, keys) -> None:
    bodies = []
    created = api.post(
        "/api/v1/credentials",
        {"name": "ci", "kind": "password", "username": "robot", "password": PASSWORD},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["username"] == "robot"
    assert "password" not in created.json()
    bodies.append(created.content.decode())
    bodies.append(api.get("/api/v1/credentials").content.decode())
    bodies.append(api.get("/api/v1/credentials/ci").content.decode())
    updated = api.patch("/api/v1/credentials/ci", {"password": NEW_PASSWORD}, format="json")
    assert updated.status_code == 200
    bodies.append(updated.content.decode())
    bodies.append(api.get("/api/v1/audit-logs").content.decode())
    for body in bodies:
        assert_no_secret(body, keys)
    assert Credential.objects.get(name="ci").password() == NEW_PASSWORD


def test_certificate_credential_returns_certificate_but_not_key(api, keys) -> None:
    created = api.post(
        "/api/v1/credentials",
        {"name": "vch", "kind": "certificate", "certificate": keys.cert_pem, "private_key": keys.key_pem},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["certificate"].strip() == keys.cert_pem.strip()
    assert body["certificate_subject"] == "CN=wharf-client"
    assert body["certificate_not_after"]
    assert "private_key" not in body
    for response in (created, api.get("/api/v1/credentials"), api.get("/api/v1/credentials/vch")):
        assert_no_secret(response.content.decode(), keys)
    assert Credential.objects.get(name="vch").private_key_pem().strip() == keys.key_pem.strip()


def test_mismatched_key_and_certificate_are_refused(api, keys, other_keys) -> None:
    response = api.post(
        "/api/v1/credentials",
        {"name": "vch", "kind": "certificate", "certificate": keys.cert_pem, "private_key": other_keys.key_pem},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The private key does not match the certificate's public key."
    assert response.json()["errors"] == {
        "private_key": ["The private key does not match the certificate's public key."]
    }
    assert_no_secret(response.content.decode(), other_keys)
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    ("field", "message"),
    [("certificate", "not a PEM certificate"), ("private_key", "not an unencrypted PEM private key")],
)
def test_unparsable_pem_is_refused_naming_the_field(api, keys, field, message) -> None:
    body = {"name": "vch", "kind": "certificate", "certificate": keys.cert_pem, "private_key": keys.key_pem}
    body[field] = "-----BEGIN GARBAGE-----\nnot really\n-----END GARBAGE-----\n"
    response = api.post("/api/v1/credentials", body, format="json")
    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert field in response.json()["errors"]


def test_password_credential_needs_username_and_password(api) -> None:
    response = api.post("/api/v1/credentials", {"name": "ci", "kind": "password", "username": "u"}, format="json")
    assert response.status_code == 400
    assert "password" in response.json()["errors"]


def test_duplicate_name_conflicts(api, admin_actor) -> None:
    credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    response = api.post(
        "/api/v1/credentials", {"name": "CI", "kind": "password", "username": "u", "password": "x"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["detail"] == "credential 'CI' already exists"


def test_stored_secret_is_ciphertext_that_decrypts(admin_actor, keys) -> None:
    credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    credentials.create_credential(
        admin_actor, "vch", "certificate", certificate=keys.cert_pem, private_key=keys.key_pem
    )
    stored = dict(Credential.objects.values_list("name", "encrypted_secret"))
    assert PASSWORD not in stored["ci"]
    assert_no_secret(stored["vch"], keys)
    assert decrypt(stored["ci"]) == PASSWORD
    assert decrypt(stored["vch"]).strip() == keys.key_pem.strip()


def test_wrong_key_gives_a_clear_error(admin_actor, settings) -> None:
    credential = credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    settings.CREDENTIALS_KEY = Fernet.generate_key().decode()
    with pytest.raises(SecretUnreadable, match="WHARF_CREDENTIALS_KEY"):
        credential.password()


def test_configured_key_is_used(admin_actor, settings) -> None:
    key = Fernet.generate_key()
    settings.CREDENTIALS_KEY = key.decode()
    credential = credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    assert Fernet(key).decrypt(credential.encrypted_secret.encode()).decode() == PASSWORD


def test_secrets_never_in_audit_details(admin_actor, keys) -> None:
    credential = credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    credentials.update_credential(admin_actor, credential, password=NEW_PASSWORD)
    certificate = credentials.create_credential(
        admin_actor, "vch", "certificate", certificate=keys.cert_pem, private_key=keys.key_pem
    )
    credentials.update_credential(admin_actor, certificate, private_key=keys.key_pem)
    events = list(AuditEvent.objects.filter(resource_type="credential").values("action", "detail"))
    assert [e["action"] for e in events].count("update") == 2
    assert_no_secret(json.dumps(events), keys)
    assert {"fields": ["password"]} in [e["detail"] for e in events]


def test_secrets_never_in_log_output(api, admin_actor, keys, caplog, https_server) -> None:
    caplog.set_level(logging.DEBUG)
    api.post(
        "/api/v1/credentials",
        {"name": "ci", "kind": "password", "username": "u", "password": PASSWORD},
        format="json",
    )
    api.patch("/api/v1/credentials/ci", {"password": NEW_PASSWORD}, format="json")
    api.post(
        "/api/v1/credentials",
        {"name": "vch", "kind": "certificate", "certificate": keys.cert_pem, "private_key": keys.key_pem},
        format="json",
    )
    # A refused request is logged by Django: it must not carry the secret either.
    api.post(
        "/api/v1/credentials",
        {"name": "ci", "kind": "password", "username": "u", "password": PASSWORD},
        format="json",
    )
    # Use them: a password session and a client-certificate context against a real server.
    trust.trust(admin_actor, https_server.address, https_server.keys.cert_pem)
    session = trust.session(https_server.address, Credential.objects.get(name="ci"))
    assert session.get(https_server.url, timeout=5).status_code == 200
    trust.check_tls(https_server.url, Credential.objects.get(name="vch"))
    assert caplog.records, "DEBUG logging captured nothing: the test would prove nothing"
    assert_no_secret(caplog.text, keys)


def test_delete_refused_while_in_use(api, admin_actor, monkeypatch) -> None:
    credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    monkeypatch.setattr(
        credentials,
        "CREDENTIAL_USERS",
        [lambda cs: {c.pk: "registry 'hub-mirror'" for c in cs if c.name == "ci"}, lambda cs: {}],
    )
    response = api.delete("/api/v1/credentials/ci")
    assert response.status_code == 409
    assert response.json()["detail"] == "credential 'ci' is used by registry 'hub-mirror'"
    assert api.get("/api/v1/credentials/ci").json()["used_by"] == ["registry 'hub-mirror'"]
    monkeypatch.setattr(credentials, "CREDENTIAL_USERS", [])
    assert api.delete("/api/v1/credentials/ci").status_code == 204
    assert not Credential.objects.exists()


def test_project_admin_sees_only_their_projects_own_credentials(role_users, admin_actor, alpha, beta) -> None:
    credentials.create_credential(admin_actor, "hub-cred", "password", username="hubuser", password=PASSWORD)
    credentials.create_credential(admin_actor, "beta-cred", "password", username="b", password=PASSWORD, project=beta)
    actor = Actor(role_users["project_admin"])
    credentials.create_credential(actor, "alpha-cred", "password", username="a", password=PASSWORD, project=alpha)
    response = client_for(role_users["project_admin"]).get("/api/v1/credentials")
    assert response.status_code == 200
    assert [(c["name"], c["project"], c["username"]) for c in response.json()["results"]] == [
        ("alpha-cred", "alpha", "a")
    ]
    assert "password" not in response.json()["results"][0]
    assert client_for(role_users["project_admin"]).get("/api/v1/credentials/hub-cred").status_code == 404
    listed = client_for(role_users["portal_admin"]).get("/api/v1/credentials").json()["results"]
    assert sorted(c["name"] for c in listed) == ["alpha-cred", "beta-cred", "hub-cred"]


def test_project_admins_manage_their_projects_credentials_through_the_api(role_users, alpha, beta) -> None:
    client = client_for(role_users["project_admin"])
    body = {"name": "mine", "kind": "password", "username": "u", "password": PASSWORD, "project": "alpha"}
    created = client.post("/api/v1/credentials", body, format="json")
    assert created.status_code == 201, created.json()
    assert Credential.objects.get(name="mine").project == alpha
    assert client.patch("/api/v1/credentials/mine", {"username": "u2"}, format="json").status_code == 200
    assert Credential.objects.get(name="mine").username == "u2"
    moved = client.patch("/api/v1/credentials/mine", {"project": None}, format="json")
    assert moved.status_code == 400 and Credential.objects.get(name="mine").project == alpha
    global_body = {key: value for key, value in body.items() if key != "project"}
    assert client.post("/api/v1/credentials", {**global_body, "name": "global"}, format="json").status_code == 403
    assert (
        client.post("/api/v1/credentials", {**body, "name": "b", "project": "beta"}, format="json").status_code == 404
    )
    assert client.delete("/api/v1/credentials/mine").status_code == 204


def test_only_portal_admins_change_global_credentials(role_users, admin_actor) -> None:
    credential = credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    actor = Actor(role_users["project_admin"])
    with pytest.raises(Forbidden):
        credentials.create_credential(actor, "mine", "password", username="u", password=PASSWORD)
    with pytest.raises(Forbidden):
        credentials.update_credential(actor, credential, password=NEW_PASSWORD)
    with pytest.raises(Forbidden):
        credentials.delete_credential(actor, credential)
    client = client_for(role_users["project_admin"])
    # A global credential is not even listed to a project admin: changing it is a 404, as for any hidden row.
    assert client.patch("/api/v1/credentials/ci", {"password": "x"}, format="json").status_code == 404
    assert client.delete("/api/v1/credentials/ci").status_code == 404
    assert client_for(role_users["developer"]).get("/api/v1/credentials").status_code == 403


def test_updating_certificate_checks_it_against_the_stored_key(admin_actor, keys, other_keys) -> None:
    credential = credentials.create_credential(
        admin_actor, "vch", "certificate", certificate=keys.cert_pem, private_key=keys.key_pem
    )
    with pytest.raises(Invalid, match="does not match"):
        credentials.update_credential(admin_actor, credential, certificate=other_keys.cert_pem)
    credentials.update_credential(
        admin_actor, credential, certificate=other_keys.cert_pem, private_key=other_keys.key_pem
    )
    credential.refresh_from_db()
    assert credential.private_key_pem().strip() == other_keys.key_pem.strip()


def test_rename_to_an_existing_name_conflicts(admin_actor) -> None:
    credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    other = credentials.create_credential(admin_actor, "cd", "password", username="u", password=PASSWORD)
    with pytest.raises(Conflict):
        credentials.update_credential(admin_actor, other, name="ci")


def test_repr_and_str_do_not_show_secrets(admin_actor) -> None:
    credential = credentials.create_credential(admin_actor, "ci", "password", username="u", password=PASSWORD)
    assert PASSWORD not in repr(credential) + str(credential)
    assert credential.encrypted_secret not in repr(credential) + str(credential)


@pytest.mark.parametrize("resource", ["credentials", "certificates"])
def test_list_query_count_does_not_grow_with_page_size(api, admin_actor, resource) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from portal.core.trust import trust

    pem = make_certificate("pinned", ["127.0.0.1"]).cert_pem
    for index in range(12):
        credentials.create_credential(admin_actor, f"c-{index:02d}", "password", username="u", password=PASSWORD)
        trust(admin_actor, f"127.0.0.1:{1000 + index}", pem)

    def count(page_size: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert api.get(f"/api/v1/{resource}?page_size={page_size}").status_code == 200
        return len(queries)

    assert count(3) == count(12), f"the {resource} list issues queries per row"

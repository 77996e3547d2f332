"""`manage.py notary config`: notary's tables in PostgreSQL and configs that wire it to the portal's PKI and tokens."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from django.core.management import call_command
from django.db import connection

from portal.core.certificates import ensure_pki
from registries import notary
from tests.integration.worker import database_url


@pytest.fixture
def notary_db() -> Iterator[str]:
    """The URL of a database for notary beside the test database; notary config creates it, the fixture drops it."""
    server = database_url(connection.settings_dict).rsplit("/", 1)[0]
    name = f"{connection.settings_dict['NAME']}_notary_{uuid.uuid4().hex[:8]}"
    yield f"{server}/{name}"
    admin = psycopg2.connect(f"{server}/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


def test_config_creates_the_schema_and_wires_tls_signer_and_tokens(settings, tmp_path: Path, notary_db: str) -> None:
    settings.NOTARY_DATABASE_URL = notary_db
    settings.NOTARY_DIR = tmp_path
    pki = ensure_pki()
    for _ in range(2):  # init runs it at every `docker compose up`
        call_command("notary", "config", stdout=io.StringIO())
    server = json.loads((tmp_path / "server.json").read_text())
    signer = json.loads((tmp_path / "signer.json").read_text())
    assert server["server"] == {
        "http_addr": settings.NOTARY_LISTEN,
        "tls_cert_file": str(pki.notary_cert),
        "tls_key_file": str(pki.notary_key),
    }
    assert server["auth"]["options"] == {
        "realm": settings.REGISTRY_TOKEN_REALM,
        "service": "wharf-notary",
        "issuer": settings.TOKEN_ISSUER,
        "rootcertbundle": str(pki.token_cert),
    }
    # The server shows the signer its notary certificate; the signer takes only clients the portal CA issued.
    assert server["trust_service"]["tls_client_cert"] == str(pki.notary_cert)
    assert signer["server"]["client_ca_file"] == str(pki.ca_cert)
    assert f"{server['trust_service']['hostname']}:{server['trust_service']['port']}" == settings.NOTARY_SIGNER_ADDRESS
    for config in (server, signer):
        assert config["storage"]["backend"] == "postgres"
        assert config["storage"]["db_url"] == f"{notary_db}?sslmode=disable"
    with psycopg2.connect(notary_db) as db, db.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        assert {row[0] for row in cursor} == {"tuf_files", "changefeed", "change_category", "private_keys"}
    db.close()


def test_without_postgres_config_writes_nothing_and_says_why(settings, tmp_path: Path) -> None:
    settings.NOTARY_DATABASE_URL = ""
    settings.NOTARY_DIR = tmp_path
    ensure_pki()
    err = io.StringIO()
    call_command("notary", "config", stdout=io.StringIO(), stderr=err)
    assert "no sqlite3 driver" in err.getvalue()
    assert not list(tmp_path.iterdir())
    with pytest.raises(notary.NotaryUnavailable, match="WHARF_NOTARY_DATABASE_URL"):
        notary.database_url()


def test_an_unreachable_database_stops_notary_with_the_reason(settings, tmp_path: Path) -> None:
    settings.NOTARY_DATABASE_URL = "postgres://nobody@127.0.0.1:1/notary"
    settings.NOTARY_DIR = tmp_path
    with pytest.raises(notary.NotaryUnavailable, match="notary's database 'notary'"):
        notary.write_configs(ensure_pki(), realm="https://127.0.0.1:8282/service/token")

"""Notary (content trust): the configs of notary-server and notary-signer, their PostgreSQL schema, their commands.

The one code path for every way notary runs: the launcher's children (`make run`) and compose's notary-server and
notary-signer services (`manage.py notary server|signer`, configs written by `manage.py notary_config` in init).
The server answers docker clients over TLS with the portal CA's notary certificate and token auth against the
portal's token service (audience NOTARY_SERVICE); it signs timestamps through the signer over mutual TLS.

Storage is PostgreSQL: the Debian build of notary 0.7 has no sqlite3 driver and its memory store forgets the trust
data on a restart. A portal on SQLite (`make run`'s default) uses the machine's own PostgreSQL (see settings'
`_notary_database_default`); connecting to it at start is the probe that decides whether notary runs. Notary
creates no tables itself (upstream runs the `migrate` tool in its images), so `ensure_schema` creates the tables
its gorm models use, idempotently, before either process starts.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from django.conf import settings

from portal.core.certificates import PkiPaths
from registries.notary_health import SignerClient

SERVER_BINARY = "notary-server"
SIGNER_BINARY = "notary-signer"
# The signer encrypts private keys with the passphrase of this alias, which it reads from NOTARY_SIGNER_<ALIAS>.
SIGNER_KEY_ALIAS = "wharf"

# The tables of notary 0.7's gorm models (server: TUF files and the changefeed; signer: encrypted private keys).
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS tuf_files (
        id serial PRIMARY KEY, created_at timestamp NULL, updated_at timestamp NULL, deleted_at timestamp NULL,
        gun varchar(255) NOT NULL, role varchar(255) NOT NULL, version integer NOT NULL, data bytea NOT NULL,
        sha256 char(64) NULL, UNIQUE (gun, role, version))""",
    "CREATE INDEX IF NOT EXISTS tuf_files_sha256_idx ON tuf_files (sha256)",
    "CREATE TABLE IF NOT EXISTS change_category (category varchar(20) PRIMARY KEY)",
    "INSERT INTO change_category VALUES ('update'), ('deletion') ON CONFLICT DO NOTHING",
    """CREATE TABLE IF NOT EXISTS changefeed (
        id serial PRIMARY KEY, created_at timestamp DEFAULT CURRENT_TIMESTAMP, gun varchar(255) NOT NULL,
        version integer NOT NULL, sha256 char(64) NULL,
        category varchar(20) NOT NULL DEFAULT 'update' REFERENCES change_category)""",
    "CREATE INDEX IF NOT EXISTS idx_changefeed_gun ON changefeed (gun)",
    """CREATE TABLE IF NOT EXISTS private_keys (
        id serial PRIMARY KEY, created_at timestamp NULL, updated_at timestamp NULL, deleted_at timestamp NULL,
        key_id varchar(255) NOT NULL UNIQUE, encryption_alg varchar(255) NOT NULL,
        keywrap_alg varchar(255) NOT NULL, algorithm varchar(50) NOT NULL, passphrase_alias varchar(50) NOT NULL,
        public bytea NOT NULL, private bytea NOT NULL, gun varchar(255) NOT NULL, role varchar(255) NOT NULL,
        last_used timestamp NULL, UNIQUE (key_id, algorithm))""",
)


# How long the launcher waits for notary's PostgreSQL at start before it leaves notary off.
CONNECT_TIMEOUT_SECONDS = 5


class NotaryUnavailable(Exception):
    """Notary cannot run here; the message says why and what to do."""


def database_url() -> str:
    """NOTARY_DATABASE_URL as notary's lib/pq driver takes it: sslmode=disable unless set (lib/pq requires TLS)."""
    if not settings.NOTARY_ENABLED:
        raise NotaryUnavailable("turned off (WHARF_NOTARY_ENABLED=false)")
    url = settings.NOTARY_DATABASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise NotaryUnavailable(
            "notary needs PostgreSQL (WHARF_NOTARY_DATABASE_URL=postgres://...): the Debian build of notary 0.7 "
            "has no sqlite3 driver, and its memory store would lose the trust data on a restart"
        )
    query = dict(parse_qsl(parts.query))
    query.setdefault("sslmode", "disable")
    return urlunsplit(parts._replace(query=urlencode(query)))


def ensure_schema(url: str) -> None:
    """Create notary's database (when the login may) and its tables; safe to repeat at every start."""
    import psycopg2
    from psycopg2 import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    try:
        try:
            connection = psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        except psycopg2.OperationalError as exc:
            if f'"{name}" does not exist' not in str(exc):
                raise
            server = psycopg2.connect(
                urlunsplit(parts._replace(path="/postgres")), connect_timeout=CONNECT_TIMEOUT_SECONDS
            )
            # CREATE DATABASE cannot run in a transaction (which `with connection` would open).
            server.autocommit = True
            try:
                with server.cursor() as cursor:
                    cursor.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            finally:
                server.close()
            connection = psycopg2.connect(url, connect_timeout=CONNECT_TIMEOUT_SECONDS)
        with connection, connection.cursor() as cursor:
            for statement in SCHEMA:
                cursor.execute(statement)
        connection.close()
    except psycopg2.Error as exc:
        # Unreachable, refused, or no right to create the database: notary stays off, the portal runs on.
        user = parts.username or ""
        where = f"{user}@{parts.hostname or dict(parse_qsl(parts.query)).get('host', '')}"
        raise NotaryUnavailable(
            f"notary's database {name!r} ({where}): {' '.join(str(exc).split())} - notary keeps its trust data in "
            f"PostgreSQL (Debian's build has no sqlite3 driver): run PostgreSQL there with a role {user!r} that may "
            f"create databases (sudo -u postgres createuser --createdb {user}), or set "
            "WHARF_NOTARY_DATABASE_URL=postgres://user:password@host:5432/database"
        ) from exc


def _port(address: str) -> str:
    return address.rsplit(":", 1)[1]


def render_server(pki: PkiPaths, db_url: str, realm: str) -> dict[str, Any]:
    """notary-server's config: TLS on NOTARY_LISTEN, the remote signer over mutual TLS, token auth, PostgreSQL."""
    signer_host = settings.NOTARY_SIGNER_ADDRESS.rsplit(":", 1)[0]
    return {
        "server": {
            "http_addr": settings.NOTARY_LISTEN,
            "tls_cert_file": str(pki.notary_cert),
            "tls_key_file": str(pki.notary_key),
        },
        "trust_service": {
            "type": "remote",
            "hostname": signer_host,
            "port": _port(settings.NOTARY_SIGNER_ADDRESS),
            "key_algorithm": "ecdsa",
            "tls_ca_file": str(pki.ca_cert),
            "tls_client_cert": str(pki.notary_cert),
            "tls_client_key": str(pki.notary_key),
        },
        "logging": {"level": "info"},
        "storage": {"backend": "postgres", "db_url": db_url},
        "auth": {
            "type": "token",
            "options": {
                "realm": realm,
                "service": settings.NOTARY_SERVICE,
                "issuer": settings.TOKEN_ISSUER,
                "rootcertbundle": str(pki.token_cert),
            },
        },
    }


def render_signer(pki: PkiPaths, db_url: str) -> dict[str, Any]:
    """notary-signer's config: gRPC over TLS that only clients with a portal-CA certificate reach, PostgreSQL."""
    return {
        "server": {
            "grpc_addr": settings.NOTARY_SIGNER_ADDRESS,
            "tls_cert_file": str(pki.notary_cert),
            "tls_key_file": str(pki.notary_key),
            "client_ca_file": str(pki.ca_cert),
        },
        "logging": {"level": "info"},
        "storage": {"backend": "postgres", "db_url": db_url, "default_alias": SIGNER_KEY_ALIAS},
    }


def _write(path: Path, config: dict[str, Any]) -> Path:
    """Write a config as JSON, owner-only (it holds the database URL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class NotaryConfigs:
    """Where the two configs were written."""

    server: Path
    signer: Path


def write_configs(pki: PkiPaths, realm: str) -> NotaryConfigs:
    """Create notary's schema and write both configs under NOTARY_DIR; raises NotaryUnavailable without PostgreSQL."""
    url = database_url()
    ensure_schema(url)
    folder = Path(settings.NOTARY_DIR)
    return NotaryConfigs(
        server=_write(folder / "server.json", render_server(pki, url, realm)),
        signer=_write(folder / "signer.json", render_signer(pki, url)),
    )


def signer_client(pki: PkiPaths) -> SignerClient:
    """How notary-server (and a health check) reaches the signer: its address and the notary certificate."""
    return SignerClient(settings.NOTARY_SIGNER_ADDRESS, str(pki.ca_cert), str(pki.notary_cert), str(pki.notary_key))


def command(role: str) -> tuple[list[str], dict[str, str]]:
    """(argv, extra environment) of notary's `server` or `signer` on the written config; NotaryUnavailable when
    the binary is not installed (apt-get install notary)."""
    binary_name = {"server": SERVER_BINARY, "signer": SIGNER_BINARY}[role]
    binary = shutil.which(binary_name)
    if binary is None:
        raise NotaryUnavailable(f"{binary_name} is not installed (apt-get install notary)")
    config = Path(settings.NOTARY_DIR) / f"{role}.json"
    env = {f"NOTARY_SIGNER_{SIGNER_KEY_ALIAS.upper()}": settings.NOTARY_SIGNER_PASSPHRASE} if role == "signer" else {}
    return [binary, "-config", str(config)], env

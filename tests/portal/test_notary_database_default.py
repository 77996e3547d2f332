"""Where notary keeps its trust data when WHARF_NOTARY_DATABASE_URL is not set (portal/settings.py)."""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from pathlib import Path

import pytest

import portal.settings as wharf_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The settings module's view of a SQLite portal's data directory (a fresh one of the test's own)."""
    monkeypatch.setattr(wharf_settings, "DATA_DIR", tmp_path)
    return tmp_path


def test_sqlite_portal_uses_the_local_socket_as_the_user_running_it(embedded: Path, monkeypatch, tmp_path) -> None:
    socket_dir = tmp_path / "run"
    socket_dir.mkdir()
    (socket_dir / ".s.PGSQL.5432").touch()
    monkeypatch.setattr(wharf_settings, "LOCAL_POSTGRES_SOCKET_DIR", socket_dir)
    url = wharf_settings._local_notary_database()
    name = (embedded / "notary_database").read_text()
    assert url == f"postgres://{getpass.getuser()}@/{name}?host={str(socket_dir).replace('/', '%2F')}"


def test_sqlite_portal_without_the_socket_uses_local_tcp(embedded: Path, monkeypatch, tmp_path) -> None:
    monkeypatch.setattr(wharf_settings, "LOCAL_POSTGRES_SOCKET_DIR", tmp_path / "no-postgres-here")
    url = wharf_settings._local_notary_database()
    name = (embedded / "notary_database").read_text()
    assert url == f"postgres://{getpass.getuser()}@127.0.0.1:5432/{name}"


def test_the_database_name_is_made_once_per_data_directory(embedded: Path, monkeypatch, tmp_path) -> None:
    first = wharf_settings._local_notary_database()
    assert wharf_settings._local_notary_database() == first, "a restart must find the same database"
    assert oct((embedded / "notary_database").stat().st_mode & 0o777) == oct(0o600)
    # Another data directory (a fresh install) gets a database of its own: the keys an old one left in PostgreSQL
    # are encrypted with the old data directory's passphrase.
    monkeypatch.setattr(wharf_settings, "DATA_DIR", tmp_path / "other")
    (tmp_path / "other").mkdir()
    assert wharf_settings._local_notary_database() != first


def settings_in_a_fresh_interpreter(tmp_path: Path, **env: str) -> dict[str, str]:
    """NOTARY_ENABLED, NOTARY_DATABASE_URL and NOTARY_INTERNAL_URL as the portal computes them from this environment."""
    probe = (
        "from django.conf import settings as s; print(s.NOTARY_ENABLED); print(s.NOTARY_DATABASE_URL);"
        " print(s.NOTARY_INTERNAL_URL)"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "portal.settings", "WHARF_DATA_DIR": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    enabled, url, internal = result.stdout.splitlines()
    return {"enabled": enabled, "url": url, "internal": internal}


def test_postgres_portal_puts_notary_beside_its_own_database(tmp_path: Path) -> None:
    found = settings_in_a_fresh_interpreter(
        tmp_path, WHARF_DATABASE_URL="postgres://wharf:s%40cret@db.example:5433/wharf"
    )
    assert (found["enabled"], found["url"]) == ("True", "postgres://wharf:s%40cret@db.example:5433/wharf_notary")
    assert found["internal"] == "https://127.0.0.1:4443"
    assert not (tmp_path / "notary_database").exists()


def test_notary_turned_off_names_no_database_and_no_notary_to_read_trust_data_from(tmp_path: Path) -> None:
    found = settings_in_a_fresh_interpreter(tmp_path, WHARF_NOTARY_ENABLED="false")
    assert found == {"enabled": "False", "url": "", "internal": ""}
    assert not (tmp_path / "notary_database").exists()


def test_an_explicit_database_wins(tmp_path: Path) -> None:
    url = "postgres://notary@pg.example:5432/trust"
    assert settings_in_a_fresh_interpreter(tmp_path, WHARF_NOTARY_DATABASE_URL=url)["url"] == url
    assert not (tmp_path / "notary_database").exists()

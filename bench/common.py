"""What the benchmarks share."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import requests


@contextlib.contextmanager
def migrated_portal(prefix: str, settings: dict[str, str] | None = None) -> Iterator[Path]:
    """Django set up in this process on a fresh SQLite portal, migrated, in a temporary data directory.

    `settings` are more WHARF_* variables to run with (a WHARF_DATABASE_URL among them replaces the SQLite file).
    """
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.environ.pop("WHARF_DATABASE_URL", None)
        os.environ.update(WHARF_DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="portal.settings", **(settings or {}))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        yield Path(tmp)


def _on_server(url: str, statement: str, *params: str) -> object:
    """Run one statement on the PostgreSQL server of `url` (its `postgres` database); the first column it returns."""
    import psycopg2

    server = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    server.autocommit = True
    try:
        with server.cursor() as cursor:
            cursor.execute(statement, params or None)
            row = cursor.fetchone() if cursor.description else None
    finally:
        server.close()
    return row[0] if row else None


def prepare_postgres(url: str, fresh: bool) -> None:
    """Make sure the PostgreSQL database of `url` exists; `fresh` drops it first, so a run starts from nothing."""
    name = urlsplit(url).path.lstrip("/")
    if fresh:
        _on_server(url, f'DROP DATABASE IF EXISTS "{name}"')
    if _on_server(url, "SELECT 1 FROM pg_database WHERE datname = %s", name) is None:
        _on_server(url, f'CREATE DATABASE "{name}"')


@contextlib.contextmanager
def scratch_postgres(url: str) -> Iterator[str]:
    """A PostgreSQL database made empty for the run at `url` (its server's), dropped after; yields the URL."""
    prepare_postgres(url, fresh=True)
    try:
        yield url
    finally:
        from django.db import connections

        connections.close_all()
        _on_server(url, f'DROP DATABASE IF EXISTS "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile of the values (fraction 0.5 for the median, 0.95 for p95)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def free_port() -> int:
    """A TCP port nobody listens on at the moment, on the loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serving_portal(
    data_dir: Path, settings: dict[str, str], log: Path, workers: int = 2, threads: int = 4
) -> Iterator[str]:
    """gunicorn over HTTPS (as `make run` serves it) on an already migrated portal; yields its URL.

    `settings` are the WHARF_* variables it runs with (the database among them) on top of the embedded
    defaults; the caller's own WHARF_* variables are left out, so a run measures what it names.
    """
    from portal.core.certificates import PkiPaths
    from portal.launcher import web_command

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update(WHARF_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings", WHARF_LOG_LEVEL="WARNING")
    env.update(settings)
    pki = PkiPaths(data_dir / "pki")
    command = web_command(f"127.0.0.1:{port}", pki.server_cert, pki.server_key, workers, threads, "--timeout", "300")
    root = Path(__file__).resolve().parent.parent
    web = subprocess.Popen(command, cwd=root, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if web.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"gunicorn did not start:\n{log.read_text()[-3000:]}")
            try:
                requests.get(f"{url}/login/", timeout=5, verify=str(pki.ca_cert))
                break
            except requests.RequestException:
                time.sleep(0.2)
        yield url
    finally:
        web.terminate()
        web.wait(timeout=20)

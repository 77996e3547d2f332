"""Fixtures of the integration tests: real services (slapd, a Celery worker on Redis) started per session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from portal.ldap_settings import ldap_settings_from_env
from tests.integration.slapd import DirectoryEditor, Slapd, free_port, start_slapd
from tests.integration.worker import Worker, running_worker, sending_to


@pytest.fixture(scope="session")
def slapd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Slapd]:
    """A private OpenLDAP server on the loopback address, loaded with the test people and groups."""
    server = start_slapd(tmp_path_factory.mktemp("slapd"))
    yield server
    server.stop()


def _apply_ldap_env(settings: Any, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Configure the directory exactly as production does: WHARF_LDAP_* variables through ldap_settings."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name, value in ldap_settings_from_env().items():
        setattr(settings, name, value)


@pytest.fixture
def ldap_directory(settings: Any, monkeypatch: pytest.MonkeyPatch, slapd: Slapd) -> Slapd:
    """Wharf's settings pointing at the test directory (login backend first, search and sync)."""
    _apply_ldap_env(settings, monkeypatch, slapd.env())
    return slapd


@pytest.fixture
def directory_down(settings: Any, monkeypatch: pytest.MonkeyPatch, slapd: Slapd) -> str:
    """Wharf's settings pointing at a directory that does not answer (a closed port); returns its URL."""
    url = f"ldap://127.0.0.1:{free_port()}/"
    _apply_ldap_env(settings, monkeypatch, {**slapd.env(), "WHARF_LDAP_URL": url, "WHARF_LDAP_TIMEOUT": "2"})
    return url


@pytest.fixture
def directory_editor(slapd: Slapd) -> Iterator[DirectoryEditor]:
    """Change directory entries in a test; every touched entry is put back afterwards."""
    editor = DirectoryEditor(slapd)
    yield editor
    editor.restore()


@pytest.fixture(scope="session")
def celery_worker(
    django_db_setup: None, slapd: Slapd, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Worker, str]]:
    """A real Celery worker on Redis using the test database and the test directory; yields (worker, broker)."""
    with running_worker(tmp_path_factory.mktemp("worker"), slapd.env()) as started:
        yield started


@pytest.fixture
def worker_queue(celery_worker: tuple[Worker, str], settings: Any) -> Iterator[Worker]:
    """Tasks this test enqueues go to the session's worker through Redis."""
    from portal.celery import app

    worker, broker = celery_worker
    settings.CELERY_BROKER_URL = broker
    settings.CELERY_TASK_ALWAYS_EAGER = False
    with sending_to(app, broker, worker.queue):
        yield worker

"""The gunicorn ssl_context hook: one TLS context for all connections, rebuilt when a certificate file changes."""

from __future__ import annotations

import os
import ssl
from pathlib import Path
from types import SimpleNamespace

import pytest

from portal import gunicorn_hooks


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    monkeypatch.setattr(gunicorn_hooks, "_context", None)
    (tmp_path / "server.crt").write_text("certificate")
    (tmp_path / "server.key").write_text("key")
    return SimpleNamespace(certfile=str(tmp_path / "server.crt"), keyfile=str(tmp_path / "server.key"), ca_certs=None)


def counting_factory() -> tuple[list[ssl.SSLContext], object]:
    built: list[ssl.SSLContext] = []

    def factory() -> ssl.SSLContext:
        built.append(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
        return built[-1]

    return built, factory


def test_every_connection_gets_the_same_context(files: SimpleNamespace) -> None:
    built, factory = counting_factory()
    contexts = {id(gunicorn_hooks.ssl_context(files, factory)) for _ in range(50)}
    assert len(built) == 1
    assert contexts == {id(built[0])}


@pytest.mark.parametrize("changed", ["certfile", "keyfile"])
def test_a_renewed_certificate_or_key_is_picked_up(files: SimpleNamespace, changed: str) -> None:
    built, factory = counting_factory()
    first = gunicorn_hooks.ssl_context(files, factory)
    path = getattr(files, changed)
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    second = gunicorn_hooks.ssl_context(files, factory)
    assert second is not first
    assert len(built) == 2
    assert gunicorn_hooks.ssl_context(files, factory) is second

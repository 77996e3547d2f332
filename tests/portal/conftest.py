"""Fixtures the core's credential tests share: a client key pair, and an HTTPS server to trust or not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.portal.test_trust import KeyPair, TlsServer, make_certificate, serve_tls


@pytest.fixture
def keys() -> KeyPair:
    """A client certificate and its key, as a certificate credential holds them."""
    return make_certificate("wharf-client", [])


@pytest.fixture
def https_server(tmp_path: Path) -> Iterator[TlsServer]:
    """An HTTPS server on 127.0.0.1 with a self-signed certificate."""
    yield from serve_tls(tmp_path, make_certificate("test-server", ["127.0.0.1"]))

"""What the tests against a real docker-registry share: a registry of their own, standalone registries asking
for credentials (HTTP Basic, bearer tokens), and waiting for what a registry sends.

A test module imports the fixtures it uses; each module gets registries of its own (module scope).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator

import bcrypt
import pytest

from tests.integration.registry import Registry, TokenAuth, start_registry, start_standalone_registry
from tests.integration.tls_pki import self_signed_certificate
from tests.integration.token_issuer import TokenIssuer

# The account the standalone registries (and their token service) accept.
USERNAME = "robot"
PASSWORD = "Registry-S3cret-" + secrets.token_hex(4)


@pytest.fixture(scope="module", name="registry")
def quiet_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of the test module whose notifications go nowhere: the tests drive the services, not the receiver."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture(scope="module", name="plain_registry")
def plain_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A standalone registry over plain HTTP asking for no login (a destination anyone may write to)."""
    registry = start_standalone_registry(tmp_path_factory.mktemp("plain"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module", name="tls_registry")
def tls_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A standalone registry over HTTPS with a fresh self-signed certificate the portal does not trust."""
    workdir = tmp_path_factory.mktemp("tls")
    registry = start_standalone_registry(workdir, tls=self_signed_certificate(workdir / "tls"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module", name="basic_registry")
def basic_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A standalone registry asking for HTTP Basic (htpasswd) credentials: USERNAME and PASSWORD."""
    workdir = tmp_path_factory.mktemp("basic")
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{USERNAME}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()}\n")
    registry = start_standalone_registry(workdir, htpasswd=htpasswd)
    yield registry
    registry.stop()


@pytest.fixture(scope="module", name="token_registry")
def token_registry_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Registry, TokenIssuer]]:
    """A standalone registry in token mode, and the token service it sends clients to (which counts their requests)."""
    workdir = tmp_path_factory.mktemp("tokens")
    issuer = TokenIssuer(workdir, USERNAME, PASSWORD)
    registry = start_standalone_registry(
        workdir, token=TokenAuth(issuer.realm, issuer.service, issuer.issuer, issuer.cert_path)
    )
    yield registry, issuer
    registry.stop()
    issuer.stop()


def wait_for(condition: Callable[[], bool], what: str, registry: Registry, seconds: float = 15) -> None:
    """Wait until the condition holds (what the registry sends arrives on its own time); fail with the
    registry's log otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds} s; registry log:\n{registry.log()}")

"""What the tests against a real docker-registry share: a registry of their own, and waiting for what it sends."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from tests.integration.registry import Registry, start_registry


@pytest.fixture(scope="module", name="registry")
def quiet_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry of the test module whose notifications go nowhere: the tests drive the services, not the receiver."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


def wait_for(condition: Callable[[], bool], what: str, registry: Registry, seconds: float = 15) -> None:
    """Wait until the condition holds (what the registry sends arrives on its own time); fail with the
    registry's log otherwise."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds} s; registry log:\n{registry.log()}")

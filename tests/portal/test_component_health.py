"""What the web process shows of the parts' health the launcher reports: systeminfo, the banner, /v2/'s 503."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from django.test import Client

from portal.core import components
from portal.core.components import ComponentStatus

DOWN = ComponentStatus("restarting", "2026-01-01T00:00:00+00:00", 2, "killed by SIGKILL; restart 3 in 4 s")
UP = ComponentStatus("running", "2026-01-01T00:00:00+00:00", 0, "pid 42")


@pytest.fixture
def data_dir(monkeypatch, tmp_path: Path) -> Path:
    """A status file of the test's own, not the one a launcher on the shared data directory may keep."""
    monkeypatch.setattr(components, "status_path", lambda: tmp_path / "components.json")
    return tmp_path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_systeminfo_reports_each_part_as_the_launcher_sees_it(db, data_dir: Path) -> None:
    components.write({"web": UP, "registry": DOWN})
    info = Client().get("/api/v1/systeminfo").json()
    assert info["components"] == {
        "web": {"state": "running", "since": UP.since, "restarts": 0, "detail": "pid 42"},
        "registry": {"state": "restarting", "since": DOWN.since, "restarts": 2, "detail": DOWN.detail},
    }
    assert info["ca_sha1"], "the existing fields stay"


def test_systeminfo_without_a_launcher_reports_no_components(db, data_dir: Path) -> None:
    assert Client().get("/api/v1/systeminfo").json()["components"] == {}


def test_banner_names_the_part_that_is_down_on_every_page(db, data_dir: Path) -> None:
    components.write({"web": UP, "registry": DOWN})
    page = Client().get("/login/").content.decode()
    assert "The registry is restarting: killed by SIGKILL; restart 3 in 4 s." in page
    assert "Pushes and pulls fail until it is back." in page
    components.write({"web": UP, "registry": UP})
    assert "wharf-health-banner" not in Client().get("/login/").content.decode()


def test_v2_while_the_registry_restarts_is_a_503_with_the_reason(db, data_dir: Path, settings) -> None:
    settings.REGISTRY_URL = f"http://127.0.0.1:{closed_port()}"
    components.write({"registry": DOWN})
    response = Client().get("/v2/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["errors"] == [
        {
            "code": "UNAVAILABLE",
            "message": "the registry is restarting (killed by SIGKILL; restart 3 in 4 s); try again in a few seconds",
            "detail": None,
        }
    ]


def test_v2_with_an_unreachable_registry_nobody_supervises_says_it_does_not_answer(
    db, data_dir: Path, settings
) -> None:
    settings.REGISTRY_URL = f"http://127.0.0.1:{closed_port()}"
    response = Client().get("/v2/")
    assert response.status_code == 503
    message = response.json()["errors"][0]["message"]
    assert message == (
        "the registry does not answer: Failed to establish a new connection: [Errno 111] Connection refused"
    )

"""Where notary is and whether it runs, as Administration > Configuration and /api/v1/systeminfo show it."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from portal.core import components
from portal.core.components import ComponentStatus
from tests.conftest import logged_in, page_text

SINCE = "2026-01-01T00:00:00+00:00"
NOTARY_URL = "https://wharf.example:4443"
OFF_REASON = (
    "notary's database 'wharf_notary_1a2b3c4d' (alice@/var/run/postgresql): connection refused - notary keeps its "
    "trust data in PostgreSQL (Debian's build has no sqlite3 driver): start PostgreSQL there or set "
    "WHARF_NOTARY_DATABASE_URL=postgres://user:password@host:5432/database"
)


def running(pid: int) -> ComponentStatus:
    return ComponentStatus("running", SINCE, 0, f"pid {pid}")


RUNNING_PARTS = {"web": running(1), "notary-signer": running(2), "notary-server": running(3)}
LEFT_OFF = {"web": running(1), **{name: ComponentStatus("off", SINCE, 0, OFF_REASON) for name in components.NOTARY}}


@pytest.fixture(autouse=True)
def status_file(monkeypatch, tmp_path: Path, settings) -> Path:
    """A status file of the test's own (not the shared data directory's), and notary's public address."""
    settings.NOTARY_URL = NOTARY_URL
    path = tmp_path / "components.json"
    monkeypatch.setattr(components, "status_path", lambda: path)
    return path


def notary_section(client: Client) -> str:
    """The Content Trust section of the Configuration page as text, whitespace folded."""
    text = page_text(client.get(reverse("configuration")))
    section = re.search(r'<section[^>]*aria-labelledby="notary-heading">(.*?)</section>', text, re.DOTALL)
    assert section, "Configuration has no Content Trust section"
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", section.group(1))).split())


def test_configuration_shows_where_clients_sign_and_that_notary_runs(client, portal_admin) -> None:
    components.write(RUNNING_PARTS)
    section = notary_section(logged_in(client, portal_admin))
    assert f"Notary server {NOTARY_URL} DOCKER_CONTENT_TRUST_SERVER" in section, section
    assert "State Running notary-signer pid 2, notary-server pid 3" in section, section
    assert f"export DOCKER_CONTENT_TRUST=1 DOCKER_CONTENT_TRUST_SERVER={NOTARY_URL}" in section, section


def test_configuration_says_why_the_launcher_left_notary_off_without_a_banner(client, portal_admin) -> None:
    components.write(LEFT_OFF)
    client = logged_in(client, portal_admin)
    section = notary_section(client)
    assert f"State Not running {OFF_REASON}" in section, section
    # Off on purpose is no outage: the banner above every page stays for parts that should run and do not.
    assert "wharf-health-banner" not in page_text(client.get(reverse("configuration")))


def test_configuration_names_the_notary_process_that_restarts(client, portal_admin) -> None:
    restarting = ComponentStatus("restarting", SINCE, 2, "exited with 1; restart 3 in 4 s")
    components.write({**RUNNING_PARTS, "notary-signer": restarting})
    section = notary_section(logged_in(client, portal_admin))
    assert "State Restarting notary-signer restarting: exited with 1; restart 3 in 4 s" in section, section


def test_configuration_under_compose_says_compose_runs_notary(client, portal_admin) -> None:
    section = notary_section(logged_in(client, portal_admin))
    assert f"Notary server {NOTARY_URL}" in section, section
    assert "State Run by docker compose" in section, section


def test_only_portal_admins_see_the_notary_section(client, role_users) -> None:
    components.write(LEFT_OFF)
    response = logged_in(client, role_users["project_admin"]).get(reverse("configuration"))
    assert response.status_code == 403
    assert OFF_REASON not in page_text(response)


@pytest.mark.parametrize(
    ("parts", "state", "with_notary"),
    [(RUNNING_PARTS, "running", True), (LEFT_OFF, "off", False), ({}, "external", True)],
    ids=["launcher runs notary", "launcher left it off", "docker compose"],
)
def test_systeminfo_gives_notary_url_and_state(db, parts, state: str, with_notary: bool) -> None:
    if parts:
        components.write(parts)
    info = Client().get("/api/v1/systeminfo").json()
    assert (info["notary_url"], info["notary_state"], info["with_notary"]) == (NOTARY_URL, state, with_notary)


def test_systeminfo_keeps_the_reason_notary_is_off_from_anonymous_callers(db) -> None:
    components.write(LEFT_OFF)
    info = Client().get("/api/v1/systeminfo").json()
    # The reason names database logins and paths: Configuration shows it to portal admins only.
    assert set(info["components"]) == {"web"}, info["components"]
    assert "wharf_notary_1a2b3c4d" not in str(info)


def test_a_notary_process_the_launcher_does_not_report_counts_as_off() -> None:
    state, detail = components.summary(components.NOTARY, {"web": running(1), "notary-signer": running(2)})
    assert (state, detail) == ("off", "the launcher did not start notary-server")

"""Content trust and VCH whitelists through the services, pages and API: what is recorded, audited and shown.

The VCHs here are rows whose whitelist a collection would have stored; nothing answers at their URLs. The
collection of a real VCH's whitelist is in tests/integration/test_vch_whitelists.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from hosts import services
from hosts.models import ContainerHost, HostKind, WhitelistChange, WhitelistState
from portal.core.audit import Actor
from portal.core.models import AuditEvent, User
from projects.models import Project
from projects.services import update_project
from tests.conftest import client_for, logged_in, page_text

PORTAL = "127.0.0.1:8282"
HOSTS = "/api/v1/projects/alpha/hosts"
COMMAND = f"vic-machine-linux create <the VCH's deployment options> --whitelist-registry {PORTAL}"


@pytest.fixture(autouse=True)
def _portal_address(settings: Any) -> None:
    """The portal's registry is 127.0.0.1:8282, whatever names this machine has."""
    settings.REGISTRY_TOKEN_REALM = f"https://{PORTAL}/service/token"


def make_vch(project: Project, name: str, whitelist: list[str] | None, port: int) -> ContainerHost:
    """A VCH row as collection leaves it: whitelist mode on with `whitelist`, or off for None."""
    mode = "enabled" if whitelist else "disabled"
    return ContainerHost.objects.create(
        project=project,
        name=name,
        kind=HostKind.VCH,
        url=f"http://127.0.0.1:{port}",
        whitelist_mode=mode,
        whitelisted_registries=whitelist or [],
    )


@pytest.fixture
def vchs(alpha: Project) -> dict[str, ContainerHost]:
    """Project alpha's VCHs: whitelist off, only the portal, the portal among others, and one without it."""
    return {
        "open": make_vch(alpha, "vch-open", None, 1),
        "portal": make_vch(alpha, "vch-portal", [PORTAL], 2),
        "wide": make_vch(alpha, "vch-wide", ["127.0.0.0/8", "docker.io"], 3),
        "closed": make_vch(alpha, "vch-closed", ["harbor.corp.example:443"], 4),
    }


@pytest.fixture
def project_admin(role_users: dict[str, User | None]) -> User:
    return role_users["project_admin"]


def states() -> dict[str, str]:
    """host name -> recorded whitelist state."""
    return dict(WhitelistChange.objects.values_list("host__name", "state"))


def whitelist_events() -> list[AuditEvent]:
    """The audit entries of whitelist verdicts, oldest first."""
    return list(AuditEvent.objects.filter(action="update", detail__has_key="whitelist").order_by("pk"))


def test_enabling_content_trust_records_each_vchs_change(alpha, vchs, project_admin) -> None:
    docker = ContainerHost.objects.create(project=alpha, name="docker-1", url="http://127.0.0.1:5")

    update_project(Actor(project_admin), alpha, content_trust=True)

    assert states() == {
        "vch-open": WhitelistState.CHANGE_NEEDED,
        "vch-portal": WhitelistState.COMPLIANT,
        "vch-wide": WhitelistState.CHANGE_NEEDED,
        "vch-closed": WhitelistState.REFUSED,
    }
    assert not WhitelistChange.objects.filter(host=docker).exists()
    change = WhitelistChange.objects.get(host=vchs["wide"])
    assert change.current == ["127.0.0.0/8", "docker.io"]
    assert change.required == [PORTAL]
    assert change.command == COMMAND
    refused = WhitelistChange.objects.get(host=vchs["closed"])
    assert refused.command == ""
    assert "more permissive" in refused.reason


def test_each_verdict_is_audited_with_the_command(alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)

    events = {event.resource_name: event for event in whitelist_events()}
    assert set(events) == {"vch-open", "vch-portal", "vch-wide", "vch-closed"}
    opened = events["vch-open"]
    assert opened.username == project_admin.username
    assert opened.project_name == "alpha"
    assert opened.resource_type == "host"
    assert opened.detail["whitelist"] == "change_needed"
    assert opened.detail["command"] == COMMAND
    assert "command" not in events["vch-closed"].detail


def test_judging_again_without_news_writes_no_audit(alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)
    before = len(whitelist_events())

    for host in ContainerHost.objects.filter(project=alpha):
        services.judge_whitelist(Actor.system("collector"), host)

    assert len(whitelist_events()) == before


def test_vch_redeployed_with_the_portal_registry_turns_compliant(alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)
    host = vchs["open"]
    host.whitelist_mode, host.whitelisted_registries = "enabled", [PORTAL]
    host.save()

    services.judge_whitelist(Actor.system("collector"), host)

    assert WhitelistChange.objects.get(host=host).state == WhitelistState.COMPLIANT
    assert whitelist_events()[-1].detail["whitelist"] == "compliant"
    assert whitelist_events()[-1].username == "collector"


def test_disabling_content_trust_says_the_restriction_can_be_lifted(alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)

    update_project(Actor(project_admin), alpha, content_trust=False)

    assert set(states().values()) == {WhitelistState.LIFTED}
    change = WhitelistChange.objects.get(host=vchs["wide"])
    assert change.required == []
    assert change.command == ""
    assert "whitelist it was deployed with" in change.reason


def test_disabling_content_trust_that_never_asked_anything_records_nothing(alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)
    update_project(Actor(project_admin), alpha, content_trust=False)
    WhitelistChange.objects.all().delete()

    update_project(Actor(project_admin), alpha, public=True)

    assert states() == {}


def test_other_settings_leave_whitelists_alone(alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, public=True, auto_scan=True)

    assert states() == {}


def test_vch_not_yet_collected_is_recorded_as_unknown(alpha, project_admin) -> None:
    host = ContainerHost.objects.create(project=alpha, name="vch-new", kind=HostKind.VCH, url="http://127.0.0.1:6")

    update_project(Actor(project_admin), alpha, content_trust=True)

    assert WhitelistChange.objects.get(host=host).state == WhitelistState.UNKNOWN


def test_a_viewer_cannot_switch_content_trust_so_nothing_is_recorded(alpha, vchs, role_users) -> None:
    viewer = client_for(role_users["viewer"])

    response = viewer.patch("/api/v1/projects/alpha", {"content_trust": True}, format="json")

    assert response.status_code == 403
    assert states() == {}


# Pages and API.


def test_configuration_tab_lists_the_changes_after_enabling(client: Client, alpha, vchs, project_admin) -> None:
    logged_in(client, project_admin)

    response = client.post("/projects/alpha/configuration/", {"content_trust": "on", "severity": "low"}, follow=True)

    text = page_text(response)
    assert response.status_code == 200
    assert "VCH registry whitelists" in text
    assert f"--whitelist-registry {PORTAL}" in text
    assert 'data-host="vch-closed" data-whitelist-state="refused"' in text
    assert "Refused: would be more permissive" in text
    assert states()["vch-open"] == WhitelistState.CHANGE_NEEDED


def test_infrastructure_tab_shows_the_changes_to_a_viewer(client: Client, alpha, vchs, project_admin, role_users):
    update_project(Actor(project_admin), alpha, content_trust=True)
    logged_in(client, role_users["viewer"])

    text = page_text(client.get("/projects/alpha/infrastructure/"))

    assert 'data-host="vch-wide" data-whitelist-state="change_needed"' in text


def test_host_page_shows_the_command_or_the_refusal(client: Client, alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)
    logged_in(client, project_admin)

    needed = page_text(client.get(f"/hosts/{vchs['wide'].pk}/"))
    refused = page_text(client.get(f"/hosts/{vchs['closed'].pk}/"))

    assert 'data-whitelist-state="change_needed"' in needed
    assert "--whitelist-registry 127.0.0.1:8282</pre>" in needed
    assert "<code>127.0.0.0/8</code>, <code>docker.io</code>" in needed
    assert 'data-whitelist-state="refused"' in refused
    assert "does not permit 127.0.0.1:8282" in refused
    assert "--whitelist-registry" not in refused


def test_host_api_reports_the_whitelist_and_what_content_trust_asks(api, alpha, vchs, project_admin) -> None:
    update_project(Actor(project_admin), alpha, content_trust=True)

    body = api.get(f"{HOSTS}/{vchs['wide'].pk}").json()

    assert body["registry_whitelist"] == {
        "mode": "enabled",
        "remote": False,
        "registries": ["127.0.0.0/8", "docker.io"],
        "insecure": [],
    }
    change = body["content_trust_whitelist"]
    assert change["state"] == "change_needed"
    assert change["current"] == ["127.0.0.0/8", "docker.io"]
    assert change["required"] == [PORTAL]
    assert change["command"] == COMMAND


def test_host_api_of_a_docker_host_has_no_whitelist(api, alpha) -> None:
    docker = ContainerHost.objects.create(project=alpha, name="docker-1", url="http://127.0.0.1:5")

    body = api.get(f"{HOSTS}/{docker.pk}").json()

    assert body["registry_whitelist"] is None
    assert body["content_trust_whitelist"] is None


def test_host_list_query_count_does_not_grow_with_whitelist_changes(api, alpha, project_admin) -> None:
    def count(hosts: int) -> int:
        ContainerHost.objects.all().delete()
        for number in range(hosts):
            make_vch(alpha, f"vch-{number}", None, 1000 + number)
        alpha.content_trust = False
        update_project(Actor(project_admin), alpha, content_trust=True)
        with CaptureQueriesContext(connection) as queries:
            response = api.get(HOSTS, {"page_size": 100})
        assert response.json()["results"][0]["content_trust_whitelist"]["state"] == "change_needed"
        return len(queries)

    assert count(3) == count(30), "the host list issues queries per row"

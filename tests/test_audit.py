"""Every state change writes an audit event with user, action, resource, project, outcome and client address."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from portal.core.audit import Actor
from portal.core.models import AuditEvent, Group, User
from portal.core.services import purge_audit_events
from projects.models import Membership, Project, Role
from tests.conftest import basic, client_for

ADDRESS = "127.0.0.42"

# (method, path, body, expected (action, resource_type, resource_name, project_name))
CHANGES: list[tuple[str, str, Any, tuple[str, str, str, str]]] = [
    ("post", "/api/v1/projects", {"name": "gamma"}, ("create", "project", "gamma", "gamma")),
    ("patch", "/api/v1/projects/alpha", {"public": True}, ("update", "project", "alpha", "alpha")),
    ("delete", "/api/v1/projects/beta", None, ("delete", "project", "beta", "beta")),
    (
        "post",
        "/api/v1/projects/alpha/members",
        {"user": "wes", "role": "viewer"},
        ("add_member", "user", "wes", "alpha"),
    ),
    ("patch", "/api/v1/projects/alpha/members/{member}", {"role": "admin"}, ("change_role", "user", "xena", "alpha")),
    ("delete", "/api/v1/projects/alpha/members/{member}", None, ("remove_member", "user", "xena", "alpha")),
    ("post", "/api/v1/users", {"username": "yuri", "password": "Long-enough-42"}, ("create", "user", "yuri", "")),
    ("patch", "/api/v1/users/wes", {"is_active": False}, ("disable", "user", "wes", "")),
    ("delete", "/api/v1/users/wes", None, ("delete", "user", "wes", "")),
    ("put", "/api/v1/users/wes/admin", None, ("assign_admin", "user", "wes", "")),
    ("put", "/api/v1/users/wes/password", {"new_password": "Long-enough-42"}, ("change_password", "user", "wes", "")),
    ("put", "/api/v1/groups/crew/admin", None, ("assign_admin", "group", "crew", "")),
    ("post", "/api/v1/groups", {"name": "deck"}, ("create", "group", "deck", "")),
    (
        "put",
        "/api/v1/users/wes/projects",
        [{"project": "beta", "role": "developer"}],
        ("add_member", "user", "wes", "beta"),
    ),
    ("patch", "/api/v1/settings", {"token_expiration_minutes": 10}, ("update", "settings", "system", "")),
    ("post", "/api/v1/tokens", {"name": "ci"}, ("create", "api_token", "ci", "")),
]


@pytest.mark.parametrize(("method", "path", "body", "expected"), CHANGES, ids=[f"{c[0]} {c[1]}" for c in CHANGES])
def test_change_is_audited(alpha, beta, portal_admin, method: str, path: str, body: Any, expected: tuple) -> None:
    User.objects.create_user("wes")
    xena = User.objects.create_user("xena")
    Group.objects.create(name="crew")
    member = Membership.objects.create(project=alpha, user=xena, role=Role.VIEWER)
    AuditEvent.objects.all().delete()
    api = client_for(None)
    api.credentials(HTTP_AUTHORIZATION=basic(portal_admin.username), REMOTE_ADDR=ADDRESS)
    response = getattr(api, method)(path.format(member=member.pk), body, format="json")
    assert response.status_code < 300, response.content
    events = list(AuditEvent.objects.values_list("action", "resource_type", "resource_name", "project_name"))
    assert expected in events
    event = AuditEvent.objects.get(action=expected[0], resource_name=expected[2])
    assert (event.username, event.client_address, event.outcome) == (portal_admin.username, ADDRESS, "success")


def test_refused_change_writes_nothing(make_user, alpha) -> None:
    viewer = make_user("zed")
    Membership.objects.create(project=alpha, user=viewer, role=Role.VIEWER)
    before = AuditEvent.objects.count()
    assert client_for(viewer).patch("/api/v1/projects/alpha", {"public": True}, format="json").status_code == 403
    assert AuditEvent.objects.count() == before
    assert not Project.objects.get(name="alpha").public


def test_logs_filter_and_project_scope(api, alpha, beta, make_user) -> None:
    api.patch("/api/v1/projects/alpha", {"public": True}, format="json")
    api.patch("/api/v1/projects/beta", {"auto_scan": True}, format="json")
    filtered = api.get("/api/v1/audit-logs?q=beta").json()["results"]
    assert filtered and all("beta" in (e["resource_name"] + e["project_name"]) for e in filtered)
    viewer = make_user("watcher")
    Membership.objects.create(project=alpha, user=viewer, role=Role.VIEWER)
    own = client_for(viewer).get("/api/v1/audit-logs?project=alpha").json()["results"]
    assert own and {e["project_name"] for e in own} == {"alpha"}
    other = client_for(viewer).get("/api/v1/audit-logs?project=beta").json()["results"]
    assert other == []


def test_purge_drops_events_past_retention(db) -> None:
    old = AuditEvent.objects.create(action="x", resource_type="y", time=timezone.now() - timedelta(days=181))
    recent = AuditEvent.objects.create(action="x", resource_type="y", time=timezone.now() - timedelta(days=179))
    assert purge_audit_events(Actor.system()) == 1
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.filter(pk=recent.pk).exists()
    assert AuditEvent.objects.filter(action="purge", username="system").exists()

"""Directory users and groups against a real slapd: login, mirrored nested groups, search, roles."""

from __future__ import annotations

import pytest
from django.test import Client
from rest_framework.test import APIClient

from portal.core.models import AuditEvent, Group, Outcome, Source, User
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD, basic
from tests.integration.slapd import PASSWORDS, group_dn, user_dn

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def directory_client(uid: str, password: str | None = None) -> APIClient:
    """An API client sending a directory user's name and password with HTTP Basic."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic(uid, password if password is not None else PASSWORDS[uid]))
    return client


def group_names(username: str) -> set[str]:
    return set(User.objects.get(username=username).wharf_groups.values_list("name", flat=True))


def identities(api: APIClient, query: str) -> dict:
    response = api.get("/api/v1/identities", {"q": query})
    assert response.status_code == 200, response.content
    return response.json()


# Logging in


def test_directory_user_logs_in_with_http_basic(ldap_directory):
    response = directory_client("alice").get("/api/v1/projects")

    assert response.status_code == 200, response.content
    alice = User.objects.get(username="alice")
    assert (alice.source, alice.dn) == (Source.LDAP, user_dn("alice"))
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Liddell", "alice@wharf.test")
    assert not alice.has_usable_password()


def test_login_mirrors_nested_groups(ldap_directory):
    directory_client("alice").get("/api/v1/projects")

    # alice is only in developers; platform holds developers and admins-nested holds platform.
    assert group_names("alice") == {"developers", "platform", "admins-nested"}
    mirrored = Group.objects.get(name="admins-nested")
    assert (mirrored.source, mirrored.dn) == (Source.LDAP, group_dn("admins-nested"))


def test_directory_user_logs_in_with_the_login_form(ldap_directory):
    client = Client()

    response = client.post("/login/", {"username": "carol", "password": PASSWORDS["carol"]})

    assert response.status_code == 302, response.content
    assert client.get("/api/v1/projects").status_code == 200
    assert AuditEvent.objects.filter(username="carol", action="login", outcome=Outcome.SUCCESS).exists()
    assert group_names("carol") == {"Release-Managers"}


def test_wrong_directory_password_is_401_and_audited(ldap_directory):
    response = directory_client("alice", "not-the-password").get("/api/v1/projects")

    assert response.status_code == 401
    assert AuditEvent.objects.filter(username="alice", action="login", outcome=Outcome.FAILURE).exists()
    assert not User.objects.filter(username="alice").exists()


def test_login_form_rejects_wrong_directory_password(ldap_directory):
    client = Client()

    response = client.post("/login/", {"username": "bob", "password": "wrong"})

    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(username="bob", outcome=Outcome.FAILURE).exists()


def test_locked_out_directory_login_is_refused_before_the_directory_is_asked(ldap_directory, settings, monkeypatch):
    from portal.core.directory import DirectoryBackend

    settings.AXES_FAILURE_LIMIT = 3
    statuses = [directory_client("alice", "not-the-password").get("/api/v1/projects").status_code for _ in range(3)]
    asked = []
    monkeypatch.setattr(DirectoryBackend, "authenticate", lambda *args, **kwargs: asked.append(args))

    response = directory_client("alice").get("/api/v1/projects")

    assert statuses == [401, 401, 429]
    assert response.status_code == 429
    assert asked == []


def test_directory_namesake_cannot_take_over_a_local_account(ldap_directory, make_user):
    make_user("bob", is_portal_admin=True)

    assert directory_client("bob").get("/api/v1/projects").status_code == 401
    assert directory_client("bob", PASSWORD).get("/api/v1/projects").status_code == 200
    bob = User.objects.get(username="bob")
    assert bob.source == Source.LOCAL
    assert bob.check_password(PASSWORD)
    assert not bob.wharf_groups.exists()


# Searching users and groups


@pytest.mark.parametrize(
    ("query", "kind", "name"),
    [
        ("alice", "user", "alice"),  # uid
        ("Bob the", "user", "bob"),  # displayName
        ("Dave Bowman", "user", "dave"),  # cn
        ("discovery.test", "user", "dave"),  # mail
        ("admins-nes", "group", "admins-nested"),
        ("release", "group", "Release-Managers"),
    ],
)
def test_identity_search_finds_directory_entries_that_never_logged_in(ldap_directory, api, query, kind, name):
    found = identities(api, query)

    assert found["warning"] == ""
    entry = next(e for e in found["results"] if (e["kind"], e["name"]) == (kind, name))
    assert (entry["known"], entry["source"]) == (False, "ldap")
    assert not User.objects.filter(username=name).exists()


def test_identity_search_gives_directory_users_full_name_and_email(ldap_directory, api):
    (entry,) = [e for e in identities(api, "bob")["results"] if e["name"] == "bob"]

    assert (entry["full_name"], entry["email"]) == ("Bob the Builder", "bob@wharf.test")


def test_identity_search_lists_a_known_directory_user_once(ldap_directory, api):
    directory_client("alice").get("/api/v1/projects")

    entries = [e for e in identities(api, "alice")["results"] if e["name"] == "alice"]

    assert len(entries) == 1
    assert (entries[0]["known"], entries[0]["source"]) == (True, "ldap")


# Roles through directory groups


def test_admin_role_of_a_nested_group_reaches_transitive_members(ldap_directory, api):
    assert api.put("/api/v1/groups/admins-nested/admin").status_code == 204

    assert directory_client("alice").post("/api/v1/projects", {"name": "alice-made"}, format="json").status_code == 201
    assert directory_client("bob").post("/api/v1/projects", {"name": "bob-made"}, format="json").status_code == 201
    assert directory_client("dave").post("/api/v1/projects", {"name": "dave-made"}, format="json").status_code == 403

    assert api.delete("/api/v1/groups/admins-nested/admin").status_code == 204

    assert directory_client("alice").post("/api/v1/projects", {"name": "again"}, format="json").status_code == 403
    assert not Project.objects.filter(name__in=["dave-made", "again"]).exists()


def test_directory_group_keeps_its_spelling(ldap_directory, api):
    assert api.put("/api/v1/groups/Release-Managers/admin").status_code == 204

    response = directory_client("carol").post("/api/v1/projects", {"name": "release"}, format="json")

    assert response.status_code == 201, response.content
    assert list(Group.objects.filter(name__iexact="release-managers").values_list("name", flat=True)) == [
        "Release-Managers"
    ]


def test_assigning_projects_creates_a_directory_user_that_never_logged_in(ldap_directory, api, alpha, beta):
    body = [{"project": "alpha", "role": "developer"}, {"project": "beta", "role": "viewer"}]

    response = api.put("/api/v1/users/dave/projects", body, format="json")

    assert response.status_code == 200, response.content
    dave = User.objects.get(username="dave")
    assert (dave.source, dave.email, dave.get_full_name()) == (Source.LDAP, "dbowman@discovery.test", "Dave Bowman")
    assert group_names("dave") == {"auditors"}
    roles = dict(Membership.objects.filter(user=dave).values_list("project__name", "role"))
    assert roles == {"alpha": Role.DEVELOPER, "beta": Role.VIEWER}
    listed = directory_client("dave").get("/api/v1/projects").json()["results"]
    assert {p["name"] for p in listed} == {"alpha", "beta"}


def test_project_role_of_a_directory_group_reaches_its_nested_members(ldap_directory, api, alpha):
    response = api.put("/api/v1/groups/platform/projects", [{"project": "alpha", "role": "viewer"}], format="json")

    assert response.status_code == 200, response.content
    listed = directory_client("alice").get("/api/v1/projects").json()["results"]
    assert [p["name"] for p in listed] == ["alpha"]
    assert listed[0]["current_user_role"] == "viewer"


def test_assigning_projects_to_an_unknown_name_is_404(ldap_directory, api, alpha):
    response = api.put("/api/v1/users/nobody/projects", [{"project": "alpha", "role": "viewer"}], format="json")

    assert response.status_code == 404
    assert not User.objects.filter(username="nobody").exists()


# The directory being down


def test_identity_search_warns_when_the_directory_is_down(directory_down, api):
    found = identities(api, "alice")

    assert "unreachable" in found["warning"]
    assert directory_down in found["warning"]
    assert found["results"] == []


def test_login_is_401_when_the_directory_is_down(directory_down, api):
    assert directory_client("alice").get("/api/v1/projects").status_code == 401
    assert Client().post("/login/", {"username": "alice", "password": PASSWORDS["alice"]}).status_code == 200
    # Local accounts still log in.
    assert api.get("/api/v1/projects").status_code == 200


def test_assigning_projects_says_the_directory_is_down(directory_down, api, alpha):
    response = api.put("/api/v1/users/dave/projects", [{"project": "alpha", "role": "viewer"}], format="json")

    assert response.status_code == 502
    assert "unreachable" in response.json()["detail"]

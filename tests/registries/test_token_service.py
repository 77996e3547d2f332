"""The Docker token service grants exactly what the role matrix allows, to users, API tokens and anonymous callers."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from portal.core.audit import Actor
from portal.core.models import ApiToken, AuditEvent, Group, Outcome, SystemSettings, User
from portal.core.services import create_token, update_settings
from projects.models import Membership, Project, Role
from registries.token import verify
from tests.conftest import ROLES, basic

ALL = ["delete", "pull", "push"]
# What each role may do on the repositories of private project alpha.
PRIVATE_GRANTS = {
    "anonymous": [],
    "viewer": ["pull"],
    "developer": ["pull", "push"],
    "project_admin": ALL,
    "other_project_admin": [],
    "portal_admin": ALL,
}


def ask(user: User | None, scope: str | list[str], password: str | None = None, **params: str) -> Any:
    """GET /service/token as the user (None: anonymous) with the scope(s); returns the response."""
    headers = {}
    if user is not None:
        headers["HTTP_AUTHORIZATION"] = basic(user.username, password) if password else basic(user.username)
    query = {"service": "wharf-registry", "scope": scope, **params}
    return Client().get("/service/token", query, **headers)


def granted(response: Any) -> dict[tuple[str, str], list[str]]:
    """The access of the token in a token service response, checked to verify with the portal's key."""
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token"] == body["access_token"]
    claims = verify(body["token"])
    assert claims is not None, "the token does not verify with the portal's key"
    return {(a["type"], a["name"]): a["actions"] for a in claims["access"]}


@pytest.mark.parametrize("role", ROLES)
def test_private_project_grants_follow_the_role_matrix(role: str, role_users: dict[str, User | None]) -> None:
    response = ask(role_users[role], "repository:alpha/app:pull,push,delete")
    expected = PRIVATE_GRANTS[role]
    assert granted(response) == ({("repository", "alpha/app"): expected} if expected else {})


@pytest.mark.parametrize("role", ROLES)
def test_everyone_pulls_from_a_public_project(role: str, role_users: dict[str, User | None], alpha: Project) -> None:
    alpha.public = True
    alpha.save()
    response = ask(role_users[role], "repository:alpha/team/app:pull,push")
    expected = sorted({"pull"} | set(PRIVATE_GRANTS[role]) - {"delete"})
    assert granted(response) == {("repository", "alpha/team/app"): expected}


@pytest.mark.parametrize("role", ROLES)
def test_star_asks_for_everything_the_role_allows(role: str, role_users: dict[str, User | None]) -> None:
    expected = PRIVATE_GRANTS[role]
    assert granted(ask(role_users[role], "repository:alpha/app:*")) == (
        {("repository", "alpha/app"): expected} if expected else {}
    )


@pytest.mark.parametrize("role", ROLES)
def test_catalog_is_granted_to_portal_admins_only(role: str, role_users: dict[str, User | None]) -> None:
    access = granted(ask(role_users[role], "registry:catalog:*"))
    assert access == ({("registry", "catalog"): ["*"]} if role == "portal_admin" else {})


def test_unknown_project_gives_a_token_without_access(role_users: dict[str, User | None]) -> None:
    response = ask(role_users["portal_admin"], "repository:nope/app:pull,push")
    assert granted(response) == {}


def test_several_scopes_are_answered_together(role_users: dict[str, User | None], beta: Project) -> None:
    response = ask(role_users["developer"], ["repository:alpha/app:push,pull", "repository:beta/base:pull"])
    assert granted(response) == {("repository", "alpha/app"): ["pull", "push"]}


def test_api_token_works_as_the_basic_password(role_users: dict[str, User | None]) -> None:
    developer = role_users["developer"]
    _, key = create_token(Actor(developer), "ci")
    response = ask(developer, "repository:alpha/app:pull,push", password=key)
    assert granted(response) == {("repository", "alpha/app"): ["pull", "push"]}
    assert verify(response.json()["token"])["sub"] == developer.username


def test_revoked_api_token_is_refused(role_users: dict[str, User | None]) -> None:
    developer = role_users["developer"]
    token, key = create_token(Actor(developer), "ci")
    token.delete()
    assert ask(developer, "repository:alpha/app:pull", password=key).status_code == 401


def test_wrong_password_is_401_and_audited(role_users: dict[str, User | None]) -> None:
    response = ask(role_users["viewer"], "repository:alpha/app:pull", password="wrong")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    failed = AuditEvent.objects.filter(username="alpha-viewer", outcome=Outcome.FAILURE)
    assert failed.exists(), "a failed token login is not in the audit log"


def test_malformed_basic_header_is_401(db) -> None:
    response = Client().get("/service/token", {"scope": "x"}, HTTP_AUTHORIZATION="Basic !!!")
    assert response.status_code == 401


def test_login_without_scope_gets_an_empty_token(role_users: dict[str, User | None]) -> None:
    # `docker login` asks for a token with no scope to check the credentials.
    response = ask(role_users["viewer"], [], account="alpha-viewer")
    assert granted(response) == {}


def test_lifetime_follows_the_token_expiration_setting(role_users: dict[str, User | None]) -> None:
    settings = SystemSettings.load()
    settings.token_expiration_minutes = 7
    settings.save()
    before = int(time.time())
    body = ask(role_users["viewer"], "repository:alpha/app:pull").json()
    claims = verify(body["token"])
    assert body["expires_in"] == 7 * 60
    assert claims["exp"] - claims["iat"] == 7 * 60
    assert claims["iat"] >= before
    assert body["issued_at"].endswith("Z")


def test_inactive_user_is_refused(role_users: dict[str, User | None]) -> None:
    viewer = role_users["viewer"]
    viewer.is_active = False
    viewer.save()
    assert ask(viewer, "repository:alpha/app:pull").status_code == 401


def test_a_changed_lifetime_applies_to_the_next_token(role_users: dict[str, User | None]) -> None:
    assert ask(role_users["viewer"], "repository:alpha/app:pull").json()["expires_in"] == 30 * 60
    update_settings(Actor(role_users["portal_admin"]), token_expiration_minutes=7)
    assert ask(role_users["viewer"], "repository:alpha/app:pull").json()["expires_in"] == 7 * 60


def test_group_roles_count_with_the_users_own(make_user, alpha: Project, beta: Project, group: Group) -> None:
    user = make_user("grouped")
    group.members.add(user)
    Membership.objects.create(project=alpha, group=group, role=Role.DEVELOPER)
    Membership.objects.create(project=beta, group=group, role=Role.VIEWER)
    Membership.objects.create(project=beta, user=user, role=Role.ADMIN)
    response = ask(user, ["repository:alpha/app:*", "repository:beta/app:*"])
    assert granted(response) == {("repository", "alpha/app"): ["pull", "push"], ("repository", "beta/app"): ALL}


def test_a_group_role_does_not_reach_non_members(make_user, alpha: Project, group: Group) -> None:
    group.members.add(make_user("member"))
    Membership.objects.create(project=alpha, group=group, role=Role.ADMIN)
    assert granted(ask(make_user("outsider"), "repository:alpha/app:*")) == {}


def test_a_portal_admin_group_grants_everything(make_user, alpha: Project, group: Group) -> None:
    user = make_user("by-group")
    group.members.add(user)
    group.is_portal_admin = True
    group.save()
    response = ask(user, ["repository:alpha/app:*", "registry:catalog:*"])
    assert granted(response) == {("repository", "alpha/app"): ALL, ("registry", "catalog"): ["*"]}


def test_expired_api_token_is_refused(role_users: dict[str, User | None]) -> None:
    developer = role_users["developer"]
    token, key = create_token(Actor(developer), "ci")
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() - timedelta(seconds=1))
    assert ask(developer, "repository:alpha/app:pull", password=key).status_code == 401


def test_api_token_that_expires_later_works(role_users: dict[str, User | None]) -> None:
    developer = role_users["developer"]
    token, key = create_token(Actor(developer), "ci")
    ApiToken.objects.filter(pk=token.pk).update(expires=timezone.now() + timedelta(minutes=5))
    assert granted(ask(developer, "repository:alpha/app:pull", password=key)) == {("repository", "alpha/app"): ["pull"]}


def test_api_token_of_an_inactive_user_is_refused(role_users: dict[str, User | None]) -> None:
    developer = role_users["developer"]
    _, key = create_token(Actor(developer), "ci")
    developer.is_active = False
    developer.save()
    assert ask(developer, "repository:alpha/app:pull", password=key).status_code == 401


def test_api_token_use_is_recorded_at_most_once_a_minute(role_users: dict[str, User | None]) -> None:
    developer = role_users["developer"]
    token, key = create_token(Actor(developer), "ci")
    ask(developer, "repository:alpha/app:pull", password=key)
    first = ApiToken.objects.get(pk=token.pk).last_used
    assert first is not None
    ask(developer, "repository:alpha/app:pull", password=key)
    assert ApiToken.objects.get(pk=token.pk).last_used == first
    ApiToken.objects.filter(pk=token.pk).update(last_used=first - timedelta(minutes=2))
    ask(developer, "repository:alpha/app:pull", password=key)
    assert ApiToken.objects.get(pk=token.pk).last_used > first

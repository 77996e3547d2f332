"""The token service answers notary (service=wharf-notary) on GUNs with the role matrix of their image repository."""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from portal.core.models import User
from projects.models import Project
from registries.token import verify
from tests.conftest import ROLES, basic

# Notary's GUN names the registry host docker pushed to; the portal's names (localhost, 127.0.0.1) qualify.
GUN = "127.0.0.1:8282/alpha/app"
# Notary grants: pull to readers, push to developers and above; deleting trust data ("*") to nobody.
PRIVATE_GRANTS = {
    "anonymous": [],
    "viewer": ["pull"],
    "developer": ["pull", "push"],
    "project_admin": ["pull", "push"],
    "other_project_admin": [],
    "portal_admin": ["pull", "push"],
}


def ask_notary(user: User | None, scope: str, service: str = settings.NOTARY_SERVICE) -> Any:
    """GET /service/token as notary's client does, as the user (None: anonymous)."""
    headers = {"HTTP_AUTHORIZATION": basic(user.username)} if user is not None else {}
    return Client().get("/service/token", {"service": service, "scope": scope}, **headers)


def notary_access(response: Any) -> dict[tuple[str, str], list[str]]:
    """The access of a notary token, checked to verify for notary's audience (and not the registry's)."""
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    claims = verify(token, settings.NOTARY_SERVICE)
    assert claims is not None, "the token does not verify for notary's audience"
    assert verify(token) is None, "a notary token must not be accepted by the registry"
    return {(a["type"], a["name"]): a["actions"] for a in claims["access"]}


@pytest.mark.parametrize("role", ROLES)
def test_notary_grants_follow_the_role_matrix(role: str, role_users: dict[str, User | None]) -> None:
    access = notary_access(ask_notary(role_users[role], f"repository:{GUN}:pull,push"))
    expected = PRIVATE_GRANTS[role]
    assert access == ({("repository", GUN): expected} if expected else {})


@pytest.mark.parametrize("role", ROLES)
def test_notary_star_never_grants_deletion(role: str, role_users: dict[str, User | None]) -> None:
    access = notary_access(ask_notary(role_users[role], f"repository:{GUN}:*"))
    expected = PRIVATE_GRANTS[role]
    assert access == ({("repository", GUN): expected} if expected else {})


@pytest.mark.parametrize("role", ROLES)
def test_public_project_trust_data_is_readable_by_all(
    role: str, role_users: dict[str, User | None], alpha: Project
) -> None:
    alpha.public = True
    alpha.save()
    gun = "localhost/alpha/team/app"
    access = notary_access(ask_notary(role_users[role], f"repository:{gun}:pull,push"))
    assert access == {("repository", gun): sorted({"pull"} | set(PRIVATE_GRANTS[role]))}


@pytest.mark.parametrize(
    "gun",
    [
        "alpha/app",  # no registry host: not a GUN docker makes for this portal
        "evil.example.com/alpha/app",  # another registry's trust data is not this notary's business
        "127.0.0.1:8282/app",  # a host and a bare name: no project
    ],
)
def test_guns_not_naming_this_portal_are_refused(gun: str, role_users: dict[str, User | None]) -> None:
    assert notary_access(ask_notary(role_users["portal_admin"], f"repository:{gun}:pull,push")) == {}


def test_registry_tokens_stay_registry_tokens(role_users: dict[str, User | None]) -> None:
    response = ask_notary(role_users["developer"], "repository:alpha/app:pull,push", service=settings.REGISTRY_SERVICE)
    claims = verify(response.json()["token"])
    assert claims is not None and claims["aud"] == settings.REGISTRY_SERVICE
    assert claims["access"] == [{"type": "repository", "name": "alpha/app", "actions": ["pull", "push"]}]

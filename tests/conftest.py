"""Fixtures shared by every test: the PKI, fast password hashing, users in every role, API clients."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.http import HttpResponse
from django.test import Client
from rest_framework.test import APIClient

from portal.core.certificates import ensure_pki
from portal.core.models import Group, SystemSettings, User
from projects.models import Membership, Project, Role

PASSWORD = "Wharf-test-Passw0rd"


class CountingHasher(MD5PasswordHasher):
    """The fast test hasher, counting how often a password is hashed (a check hashes it once).

    A test selects it with `settings.PASSWORD_HASHERS = ["tests.conftest.CountingHasher"]`.
    """

    calls = 0

    def encode(self, password: str, salt: str) -> str:
        CountingHasher.calls += 1
        return super().encode(password, salt)


# Every test here drives real services (registry, dockerd, slapd, Celery, Chromium), marked or not.
SERVICE_DIRECTORIES = (Path(__file__).parent / "integration", Path(__file__).parent / "e2e")


def uses_services(item: pytest.Item) -> bool:
    """Whether the test starts or drives real services: marked integration or e2e, or in their directories."""
    in_directory = any(item.path.is_relative_to(directory) for directory in SERVICE_DIRECTORIES)
    return in_directory or any(item.get_closest_marker(name) for name in ("integration", "e2e"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under `pytest -n N --dist loadgroup` (`make test`), the tests that drive real services run one after another
    in one worker, as they do without xdist: they share session services (slapd, a Celery worker, Chromium), time
    real processes and pick free ports, while the other workers take the tests that need none.

    (First, so that xdist reads the group when it runs its own hook.)
    """
    for item in items:
        if uses_services(item):
            item.add_marker(pytest.mark.xdist_group("services"))


@pytest.fixture(scope="session", autouse=True)
def _pki() -> None:
    """The portal CA and keys exist before any test looks at them."""
    from django.conf import settings

    # pytest-xdist workers start together: one creates the PKI in a fresh data directory while the others wait,
    # or a server certificate could be signed by a CA key another worker then overwrites.
    with (settings.DATA_DIR / ".pki.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ensure_pki()


@pytest.fixture(autouse=True)
def _fresh_token_lifetime() -> None:
    """Each test reads the token lifetime from its own database, not one a previous test left in memory."""
    SystemSettings.forget_token_lifetime()


@pytest.fixture(autouse=True)
def _no_remembered_logins(settings) -> None:
    """Each test remembers Basic-auth logins in a cache of its own (by default they are files in the data directory,
    which test processes running side by side would share)."""
    import uuid

    logins = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"logins-{uuid.uuid4()}"}
    settings.CACHES = {**settings.CACHES, "logins": logins}


@pytest.fixture(autouse=True)
def _fast_hashing(settings) -> None:
    """Password hashing built for speed: tests log in many times."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def make_user(db) -> Callable[..., User]:
    """Create a local user with the test password."""

    def make(username: str, **fields: object) -> User:
        return User.objects.create_user(username, password=PASSWORD, **fields)

    return make


@pytest.fixture
def alpha(db) -> Project:
    """A private project."""
    return Project.objects.create(name="alpha")


@pytest.fixture
def beta(db) -> Project:
    """Another private project."""
    return Project.objects.create(name="beta")


@pytest.fixture
def portal_admin(make_user) -> User:
    return make_user("root-admin", is_portal_admin=True)


@pytest.fixture
def role_users(make_user, alpha, beta, portal_admin) -> dict[str, User | None]:
    """One user per role, relative to project alpha."""
    users: dict[str, User | None] = {"anonymous": None, "portal_admin": portal_admin}
    for role in (Role.VIEWER, Role.DEVELOPER, Role.ADMIN):
        user = make_user(f"alpha-{role.value}")
        Membership.objects.create(project=alpha, user=user, role=role)
        users[f"project_{role.value}" if role == Role.ADMIN else role.value] = user
    other = make_user("beta-admin")
    Membership.objects.create(project=beta, user=other, role=Role.ADMIN)
    users["other_project_admin"] = other
    return users


ROLES = ["anonymous", "viewer", "developer", "project_admin", "other_project_admin", "portal_admin"]


def client_for(user: User | None) -> APIClient:
    """An API client that authenticates with HTTP Basic, as a script would."""
    client = APIClient()
    if user is not None:
        client.credentials(HTTP_AUTHORIZATION=basic(user.username))
    return client


def basic(username: str, password: str = PASSWORD) -> str:
    """An HTTP Basic Authorization header value."""
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture
def api(portal_admin) -> APIClient:
    """An API client logged in as a portal admin."""
    return client_for(portal_admin)


@pytest.fixture
def group(db) -> Group:
    """A local group."""
    return Group.objects.create(name="devs")


def logged_in(client: Client, user: User) -> Client:
    """The Django test client with the user's browser session."""
    client.force_login(user)
    return client


def page_text(response: HttpResponse) -> str:
    """The response body as text."""
    return response.content.decode()


@pytest.fixture
def world(role_users, group) -> dict[str, User | None]:
    """The role users, plus an outsider and a member to edit or remove."""
    outsider = User.objects.create_user("outsider", password="x", first_name="Out", last_name="Sider")
    target = User.objects.create_user("target")
    Membership.objects.create(project=Project.objects.get(name="alpha"), user=target, role=Role.VIEWER)
    return role_users | {"outsider": outsider}

"""Brute force against the live portal (gunicorn over HTTPS, the real registry, a Celery worker): after the limit the
UI login, API Basic auth and the token service (and so `docker login`) answer 429 with Retry-After, until the
cool-off passes or a portal admin unlocks.

The portal runs with a limit of 5 and a 3-second cool-off, so the cool-off is seen to end within the test.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from portal.core.audit import Actor
from portal.core.models import AuditEvent, User
from portal.core.services import create_token
from tests.conftest import PASSWORD
from tests.integration.dockerd import Dockerd
from tests.integration.test_registry_push_pull import (
    Portal,
    dockerd,  # noqa: F401  (the session's private dockerd)
    live_portal,
)

pytestmark = pytest.mark.integration
LIMIT = 5
COOL_OFF = 3


@pytest.fixture(scope="module")
def portal(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    """The live portal (gunicorn, a real registry and worker) with a low login limit and a short cool-off."""
    knobs = {
        "WHARF_LOGIN_FAILURE_LIMIT": str(LIMIT),
        "WHARF_LOGIN_COOLOFF_SECONDS": str(COOL_OFF),
        "WHARF_LOGIN_LOCKOUT_BY": "user,address",
    }
    with live_portal(tmp_path_factory.mktemp("throttled-portal"), threads=4, **knobs) as server:
        yield server


@pytest.fixture
def users(transactional_db: None) -> dict[str, str]:
    """alice (a local user with the test password) and an admin; the admin's API token."""
    # Hashed as the portal process hashes (the tests' fast hasher is not among its hashers).
    hasher = PBKDF2PasswordHasher()
    User.objects.create(username="alice", password=hasher.encode(PASSWORD, hasher.salt()))
    admin = User.objects.create_user("boss", is_portal_admin=True)
    return {"admin_token": create_token(Actor(admin), "unlock")[1]}


def _ui(portal: Portal, username: str, password: str) -> requests.Response:
    session = requests.Session()
    session.get(f"{portal.url}/login/", verify=portal.ca, timeout=10)
    return session.post(
        f"{portal.url}/login/",
        {"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
        headers={"Referer": f"{portal.url}/login/"},
        allow_redirects=False,
        verify=portal.ca,
        timeout=30,
    )


def _api(portal: Portal, username: str, password: str) -> requests.Response:
    return requests.get(f"{portal.url}/api/v1/tokens", auth=(username, password), verify=portal.ca, timeout=30)


def _token(portal: Portal, username: str, password: str) -> requests.Response:
    return requests.get(
        f"{portal.url}/service/token",
        params={"service": "wharf-registry", "scope": "repository:alpha/app:pull"},
        auth=(username, password),
        verify=portal.ca,
        timeout=30,
    )


PATHS: dict[str, tuple[Callable[[Portal, str, str], requests.Response], int, int]] = {
    # path: (send, status of a wrong password, status of the right one)
    "ui": (_ui, 200, 302),
    "api": (_api, 401, 200),
    "token": (_token, 401, 200),
}


def _assert_throttled(response: requests.Response) -> None:
    assert response.status_code == 429, response.text[:300]
    assert 0 < int(response.headers["Retry-After"]) <= COOL_OFF
    assert "Too many failed logins" in response.text


@pytest.mark.parametrize("name", PATHS)
def test_brute_force_is_refused_with_429_until_the_cool_off_ends(portal: Portal, users, name: str) -> None:
    send, wrong, right = PATHS[name]
    statuses = [send(portal, "alice", f"guess-{attempt}").status_code for attempt in range(LIMIT - 1)]
    assert statuses == [wrong] * (LIMIT - 1), portal.log()
    _assert_throttled(send(portal, "alice", "guess-last"))
    _assert_throttled(send(portal, "alice", PASSWORD))
    # Every path shares one counter per user and address: the others refuse too.
    for other, (other_send, _, _) in PATHS.items():
        if other != name:
            _assert_throttled(other_send(portal, "alice", PASSWORD))
    lockout = AuditEvent.objects.get(action="lockout")
    assert (lockout.username, lockout.client_address, lockout.outcome) == ("alice", "127.0.0.1", "failure")
    time.sleep(COOL_OFF + 0.5)
    assert send(portal, "alice", PASSWORD).status_code == right


def test_portal_admin_unlocks_with_an_api_token(portal: Portal, users) -> None:
    for attempt in range(LIMIT):
        _api(portal, "alice", f"guess-{attempt}")
    _assert_throttled(_api(portal, "alice", PASSWORD))
    # Bearer API tokens cannot be guessed and are not throttled: the admin unlocks from the locked address.
    response = requests.post(
        f"{portal.url}/api/v1/login-lockouts/unlock",
        json={"username": "alice", "address": "127.0.0.1"},
        headers={"Authorization": f"Bearer {users['admin_token']}"},
        verify=portal.ca,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert _api(portal, "alice", PASSWORD).status_code == 200
    assert AuditEvent.objects.filter(action="unlock", username="boss").count() == 1


def test_docker_login_shows_the_throttle_message(portal: Portal, users, dockerd: Dockerd) -> None:  # noqa: F811
    for attempt in range(LIMIT):
        _token(portal, "alice", f"guess-{attempt}")
    result = dockerd.run("login", portal.host, "--username", "alice", "--password-stdin", input=PASSWORD)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Too many failed logins" in output, output
    time.sleep(COOL_OFF + 0.5)
    dockerd.ok("login", portal.host, "--username", "alice", "--password-stdin", input=PASSWORD)
    dockerd.run("logout", portal.host)

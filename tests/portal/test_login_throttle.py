"""The login throttle on its three paths (UI login, API Basic auth, the token service), through Django's client."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.http import HttpResponse
from django.test import Client
from django.utils import timezone

from portal.core.models import AuditEvent, User
from tests.conftest import PASSWORD, CountingHasher, basic, client_for

LIMIT = 3
COOL_OFF = 600
ADDRESS = "192.0.2.10"


@dataclass(frozen=True)
class LoginPath:
    """One way to log in with a password, and the statuses it answers."""

    name: str
    send: Callable[[Client, str, str, str], HttpResponse]
    accepted: int
    rejected: int

    def __str__(self) -> str:
        return self.name


def _ui(client: Client, username: str, password: str, address: str) -> HttpResponse:
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def _api(client: Client, username: str, password: str, address: str) -> HttpResponse:
    return client.get("/api/v1/tokens", HTTP_AUTHORIZATION=basic(username, password), REMOTE_ADDR=address)


def _token(client: Client, username: str, password: str, address: str) -> HttpResponse:
    return client.get(
        "/service/token?service=wharf-registry&scope=repository:alpha/app:pull",
        HTTP_AUTHORIZATION=basic(username, password),
        REMOTE_ADDR=address,
    )


PATHS = [
    LoginPath("ui", _ui, accepted=302, rejected=200),
    LoginPath("api", _api, accepted=200, rejected=401),
    LoginPath("token", _token, accepted=200, rejected=401),
]


@pytest.fixture(autouse=True)
def throttle(settings) -> None:
    """A low limit, by user and by address each on its own, as the defaults count."""
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.LOGIN_COOLOFF_SECONDS = COOL_OFF
    settings.AXES_COOLOFF_TIME = timedelta(seconds=COOL_OFF)
    settings.LOGIN_LOCKOUT_BY = ["user", "address"]
    settings.AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
    settings.PASSWORD_HASHERS = ["tests.conftest.CountingHasher"]


@pytest.fixture
def alice(make_user) -> User:
    return make_user("alice")


def _fail(path: LoginPath, times: int, username: str = "alice", address: str = ADDRESS) -> list[HttpResponse]:
    return [path.send(Client(), username, "wrong-password", address) for _ in range(times)]


def _assert_throttled(path: LoginPath, response: HttpResponse) -> None:
    assert response.status_code == 429, response.content[:300]
    assert 0 < int(response["Retry-After"]) <= COOL_OFF
    text = response.content.decode()
    assert "Too many failed logins" in text
    if path.name == "token":
        assert response.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    if path.name == "api":
        assert set(response.json()) == {"detail", "errors"}


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_without_the_throttle_forty_wrong_passwords_do_not_stop_the_right_one(settings, alice, path) -> None:
    # The attack as it was found: the limit off (0) is the portal before the throttle.
    settings.AXES_ENABLED = False
    assert {response.status_code for response in _fail(path, 40)} == {path.rejected}
    assert path.send(Client(), "alice", PASSWORD, ADDRESS).status_code == path.accepted


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_limit_of_wrong_passwords_locks_out_with_429_and_retry_after(alice, path) -> None:
    responses = _fail(path, LIMIT + 2)
    assert [r.status_code for r in responses[: LIMIT - 1]] == [path.rejected] * (LIMIT - 1)
    for response in responses[LIMIT - 1 :]:
        _assert_throttled(path, response)
    _assert_throttled(path, path.send(Client(), "alice", PASSWORD, ADDRESS))


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_lockout_is_audited_once_and_refused_attempts_are_not_logged_one_by_one(alice, path) -> None:
    _fail(path, LIMIT + 5)
    lockouts = AuditEvent.objects.filter(action="lockout")
    assert [(e.username, e.resource_type, e.outcome, e.client_address) for e in lockouts] == [
        ("alice", "login", "failure", ADDRESS)
    ]
    assert lockouts[0].detail["failures"] == LIMIT
    # Every failure up to the limit was checked and audited; the refused ones after it were not.
    assert AuditEvent.objects.filter(action="login", outcome="failure").count() == LIMIT


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_locked_out_login_is_refused_before_any_password_is_hashed(alice, path) -> None:
    _fail(path, LIMIT)
    CountingHasher.calls = 0
    _assert_throttled(path, path.send(Client(), "alice", PASSWORD, ADDRESS))
    _assert_throttled(path, path.send(Client(), "nobody", "guess", ADDRESS))
    assert CountingHasher.calls == 0


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_right_password_is_accepted_once_the_cool_off_has_passed(alice, path) -> None:
    _fail(path, LIMIT)
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(seconds=COOL_OFF + 1))
    assert path.send(Client(), "alice", PASSWORD, ADDRESS).status_code == path.accepted


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_portal_admin_unlock_lets_the_user_in_again(alice, portal_admin, path) -> None:
    _fail(path, LIMIT)
    admin = client_for(portal_admin)
    listed = admin.get("/api/v1/login-lockouts").json()
    assert {(row["kind"], row["value"], row["failures"]) for row in listed} == {
        ("user", "alice", LIMIT),
        ("address", ADDRESS, LIMIT),
    }
    response = admin.post("/api/v1/login-lockouts/unlock", {"username": "Alice", "address": ADDRESS}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["cleared"] >= 1
    assert admin.get("/api/v1/login-lockouts").json() == []
    assert path.send(Client(), "alice", PASSWORD, ADDRESS).status_code == path.accepted
    unlock = AuditEvent.objects.get(action="unlock")
    assert (unlock.username, unlock.resource_name, unlock.detail["address"]) == ("root-admin", "Alice", ADDRESS)


def test_unlock_refuses_what_is_not_an_address(portal_admin) -> None:
    response = client_for(portal_admin).post("/api/v1/login-lockouts/unlock", {"address": "x"}, format="json")
    assert response.status_code == 400
    assert "address" in response.json()["errors"]


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_user_lock_follows_the_user_to_every_address_and_any_spelling(alice, make_user, path) -> None:
    for number, name in enumerate(["alice", "ALICE", " Alice"]):
        _fail(path, 1, username=name, address=f"192.0.2.{20 + number}")
    _assert_throttled(path, path.send(Client(), "alice", PASSWORD, "192.0.2.99"))
    make_user("bob")
    assert path.send(Client(), "bob", PASSWORD, "192.0.2.99").status_code == path.accepted


@pytest.mark.parametrize("path", PATHS, ids=str)
def test_address_lock_covers_every_user_name_from_that_address(alice, path) -> None:
    for name in ("carol", "dave", "erin"):
        _fail(path, 1, username=name)
    _assert_throttled(path, path.send(Client(), "alice", PASSWORD, ADDRESS))
    assert path.send(Client(), "alice", PASSWORD, "192.0.2.11").status_code == path.accepted


def test_locking_by_address_only_lets_the_user_in_from_elsewhere(settings, alice) -> None:
    settings.AXES_LOCKOUT_PARAMETERS = ["ip_address"]
    path = PATHS[1]
    _fail(path, LIMIT)
    _assert_throttled(path, path.send(Client(), "alice", PASSWORD, ADDRESS))
    assert path.send(Client(), "alice", PASSWORD, "192.0.2.11").status_code == path.accepted


def test_locking_by_user_only_refuses_the_user_from_a_fresh_address(settings, alice, make_user) -> None:
    settings.AXES_LOCKOUT_PARAMETERS = ["username"]
    path = PATHS[1]
    _fail(path, LIMIT)
    _assert_throttled(path, path.send(Client(), "alice", PASSWORD, "192.0.2.11"))
    make_user("bob")
    assert path.send(Client(), "bob", PASSWORD, ADDRESS).status_code == path.accepted


def test_api_token_logs_in_to_the_token_service_while_the_user_name_is_locked(alice) -> None:
    from portal.core.audit import Actor
    from portal.core.services import create_token

    _, key = create_token(Actor(alice), "ci")
    for number in range(LIMIT):
        _fail(PATHS[2], 1, address=f"192.0.2.{30 + number}")
    _assert_throttled(PATHS[2], _token(Client(), "alice", PASSWORD, "192.0.2.99"))
    # A random API token cannot be guessed: it keeps working, so a lockout cannot stop CI pipelines.
    assert _token(Client(), "alice", key, "192.0.2.99").status_code == 200


def test_behind_a_proxy_the_address_counted_is_the_one_the_proxy_saw(settings, alice) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    for number in range(LIMIT):
        # The client makes up the first hops; the proxy (10.0.0.5) appends the address it saw.
        Client().get(
            "/api/v1/tokens",
            HTTP_AUTHORIZATION=basic(f"user{number}", "wrong"),
            HTTP_X_FORWARDED_FOR=f"203.0.113.{number}, {ADDRESS}",
            REMOTE_ADDR="10.0.0.5",
        )
    response = Client().get(
        "/api/v1/tokens",
        HTTP_AUTHORIZATION=basic("alice"),
        HTTP_X_FORWARDED_FOR=f"203.0.113.77, {ADDRESS}",
        REMOTE_ADDR="10.0.0.5",
    )
    _assert_throttled(PATHS[1], response)
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ADDRESS}


def test_login_page_tells_the_person_when_to_come_back(alice) -> None:
    response = _fail(PATHS[0], LIMIT)[-1]
    text = response.content.decode()
    assert "Too many failed logins: try again in 10 minutes" in text
    assert "Invalid user name or password" not in text

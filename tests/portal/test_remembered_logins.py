"""Basic-auth logins are remembered for a short time: the API and the token service hash a password once, and forget
it on password change, disable, deletion and logout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext

from portal.core.models import User
from projects.models import Membership, Project, Role
from tests.conftest import PASSWORD, CountingHasher, basic, client_for

NEW_PASSWORD = "Sea-breeze-99"


def _api(username: str, password: str = PASSWORD, address: str = "192.0.2.1") -> HttpResponse:
    return Client().get("/api/v1/projects", HTTP_AUTHORIZATION=basic(username, password), REMOTE_ADDR=address)


def _token(username: str, password: str = PASSWORD, address: str = "192.0.2.1") -> HttpResponse:
    return Client().get(
        "/service/token?service=wharf-registry&scope=repository:alpha/app:pull,push",
        HTTP_AUTHORIZATION=basic(username, password),
        REMOTE_ADDR=address,
    )


PATHS = {"api": (_api, 401), "token": (_token, 401)}


@pytest.fixture(params=sorted(PATHS))
def login(request: pytest.FixtureRequest) -> tuple[Callable[..., HttpResponse], int]:
    """Each Basic-auth path (the API, the docker token service) and the status it refuses with."""
    return PATHS[request.param]


@pytest.fixture(autouse=True)
def counting(settings) -> None:
    """Count hashing; remember logins for the default time."""
    settings.PASSWORD_HASHERS = ["tests.conftest.CountingHasher"]
    settings.BASIC_AUTH_CACHE_SECONDS = 300


@pytest.fixture
def erin(make_user) -> User:
    """A developer of project alpha."""
    user = make_user("erin")
    Membership.objects.create(project=Project.objects.create(name="alpha"), user=user, role=Role.DEVELOPER)
    CountingHasher.calls = 0
    return user


def _hashed(send: Callable[..., HttpResponse], *args: str) -> tuple[int, int]:
    """(status, how many times a password was hashed) of one request."""
    before = CountingHasher.calls
    response = send(*args)
    return response.status_code, CountingHasher.calls - before


def test_second_request_does_not_hash_the_password_again(erin, login) -> None:
    send, _ = login
    assert _hashed(send, "erin") == (200, 1)
    assert _hashed(send, "erin") == (200, 0)
    assert _hashed(send, "erin") == (200, 0)


def test_the_api_and_the_token_service_share_what_they_remember(erin) -> None:
    assert _hashed(_api, "erin") == (200, 1)
    assert _hashed(_token, "erin") == (200, 0)


def test_token_from_a_remembered_login_grants_what_the_role_allows(erin) -> None:
    from registries.token import verify

    _token("erin")
    claims = verify(_token("erin").json()["token"])
    assert claims["sub"] == "erin"
    assert claims["access"] == [{"type": "repository", "name": "alpha/app", "actions": ["pull", "push"]}]


def test_wrong_password_after_a_right_one_is_refused(erin, login) -> None:
    send, refused = login
    assert _hashed(send, "erin")[0] == 200
    assert _hashed(send, "erin", "wrong-password") == (refused, 1)
    assert _hashed(send, "erin", PASSWORD + "x") == (refused, 1)


def test_failed_attempts_are_not_remembered(erin, login) -> None:
    send, refused = login
    assert _hashed(send, "erin", "wrong-password") == (refused, 1)
    assert _hashed(send, "erin", "wrong-password") == (refused, 1)
    assert _hashed(send, "nobody", "wrong-password")[0] == refused
    assert _hashed(send, "nobody", "wrong-password")[1] == 1


def test_password_change_refuses_the_old_password_at_once(erin, login) -> None:
    send, refused = login
    assert send("erin").status_code == 200
    body = {"old_password": PASSWORD, "new_password": NEW_PASSWORD}
    changed = client_for(erin).put("/api/v1/users/erin/password", body)
    assert changed.status_code == 204
    assert _hashed(send, "erin") == (refused, 1)
    assert _hashed(send, "erin", NEW_PASSWORD) == (200, 1)
    assert _hashed(send, "erin", NEW_PASSWORD) == (200, 0)


def test_password_set_outside_the_portal_refuses_the_old_one(erin, login) -> None:
    send, refused = login
    assert send("erin").status_code == 200
    erin.set_password(NEW_PASSWORD)  # as `manage.py changepassword` does
    erin.save()
    assert send("erin").status_code == refused


def test_disabled_user_is_refused_though_remembered(erin, portal_admin, login) -> None:
    send, refused = login
    assert send("erin").status_code == 200
    assert client_for(portal_admin).patch("/api/v1/users/erin", {"is_active": False}, format="json").status_code == 200
    assert send("erin").status_code == refused


def test_deleted_user_is_refused_and_a_namesake_is_checked_afresh(erin, portal_admin, login, make_user) -> None:
    send, refused = login
    assert send("erin").status_code == 200
    assert client_for(portal_admin).delete("/api/v1/users/erin").status_code == 204
    assert send("erin").status_code == refused
    make_user("erin")
    assert _hashed(send, "erin") == (200, 1)


def test_logout_makes_the_next_request_check_the_password_again(erin, login) -> None:
    send, _ = login
    assert _hashed(send, "erin") == (200, 1)
    browser = Client()
    assert browser.post("/login/", {"username": "erin", "password": PASSWORD}).status_code == 302
    assert browser.post("/logout/").status_code == 302
    assert _hashed(send, "erin") == (200, 1)
    assert _hashed(send, "erin") == (200, 0)


def test_locked_out_user_is_refused_though_remembered(erin, settings, login) -> None:
    send, _ = login
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=600)
    settings.AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
    assert send("erin").status_code == 200
    for _ in range(3):
        send("erin", "wrong-password", "198.51.100.7")
    response = send("erin")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def test_zero_seconds_turns_remembering_off(erin, settings, login) -> None:
    send, _ = login
    settings.BASIC_AUTH_CACHE_SECONDS = 0
    assert _hashed(send, "erin") == (200, 1)
    assert _hashed(send, "erin") == (200, 1)


def test_an_unreachable_cache_costs_a_password_check_not_a_refusal(erin, settings, login) -> None:
    send, _ = login
    settings.CACHES = {
        **settings.CACHES,
        "logins": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        },
    }
    assert _hashed(send, "erin") == (200, 1)
    assert _hashed(send, "erin") == (200, 1)


def test_remembered_login_costs_no_more_queries_than_a_checked_one(erin) -> None:
    """List endpoints pin their query counts with Basic-auth clients: the first and later requests must agree."""

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert _api("erin").status_code == 200
        return len(captured)

    assert queries() == queries()


def test_the_cache_never_holds_the_password(erin, settings, tmp_path) -> None:
    settings.CACHES = {
        **settings.CACHES,
        "logins": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)},
    }
    assert _api("erin").status_code == 200
    assert _hashed(_api, "erin") == (200, 0)
    stored = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    assert PASSWORD.encode() not in stored
    assert erin.password.encode() not in stored
    assert b"erin" not in stored


def test_directory_users_are_remembered_for_a_minute_at_most(make_user, monkeypatch) -> None:
    import time

    from portal.core.models import Source
    from portal.core.remembered_logins import DIRECTORY_SECONDS, remember, remembered

    local, directory = make_user("lou"), make_user("dora", source=Source.LDAP)
    remember(local, "lou", PASSWORD)
    remember(directory, "dora", PASSWORD)
    later = time.time() + DIRECTORY_SECONDS + 1
    monkeypatch.setattr(time, "time", lambda: later)
    assert remembered("lou", PASSWORD) == local
    assert remembered("dora", PASSWORD) is None

"""How the registry client authenticates: a header for the scopes of a call, and the answer to a 401 challenge.

`SystemTokenAuth` serves the integrated registry: a system token signed by the portal for exactly
the scopes asked. `ChallengeAuth` serves registries outside Wharf: anonymous until challenged,
then HTTP Basic with the login, or a bearer token from the challenge's realm for the scopes asked
(https://distribution.github.io/distribution/spec/auth/token/), cached per scope until it expires.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode

import requests

from portal.core.errors import RemoteUnreachable
from registries.token import parse_scope, system_token

# A cached bearer token is used until this many seconds before it expires.
TOKEN_MARGIN = 10
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')


class AuthenticationFailed(RemoteUnreachable):
    """The registry or its token service refused the credentials, or asks for some and none were given."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class AuthenticationUnsupported(RemoteUnreachable):
    """The registry's challenge cannot be answered: an unknown scheme, no realm, a token service without a token."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=False)


class Transport(Protocol):
    """What an Auth needs of the client: the registry's URL, and requests sent as they are (to a token realm)."""

    base_url: str

    def send(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """One request without authentication."""


@dataclass(frozen=True)
class Login:
    """A username and password to present to a registry (never printed)."""

    username: str
    password: str = field(repr=False)

    def basic(self) -> str:
        """The HTTP Basic Authorization header value."""
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


@dataclass(frozen=True)
class Challenge:
    """A parsed WWW-Authenticate header: its scheme (basic, bearer) and parameters."""

    scheme: str
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="...",service="...",scope="..."` or `Basic realm="..."` as a Challenge; None if empty."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {key.lower(): quoted if quoted else bare for key, quoted, bare in _CHALLENGE_PARAM.findall(rest)}
    return Challenge(scheme.lower(), params)


class Auth(Protocol):
    """How a client authenticates: a header sent up front for the scopes, and the answer to a 401."""

    kind: str

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header to send with a call needing the scopes, if one is known already."""

    def answer(self, client: Transport, response: requests.Response, scopes: tuple[str, ...]) -> str | None:
        """The Authorization header answering the 401 response; None when there is nothing better to send."""


class _TokenCache:
    """Bearer tokens by the scopes they were asked for, until shortly before they expire (thread-safe)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, scopes: tuple[str, ...]) -> str | None:
        with self._lock:
            token, expires = self._tokens.get(scopes, ("", 0.0))
        return token if token and time.monotonic() < expires - TOKEN_MARGIN else None

    def put(self, scopes: tuple[str, ...], token: str, lifetime: float) -> None:
        with self._lock:
            self._tokens[scopes] = (token, time.monotonic() + lifetime)


class SystemTokenAuth:
    """The integrated registry: a system token signed by the portal for exactly the scopes of each call."""

    kind = "bearer"
    lifetime = 300

    def __init__(self) -> None:
        self._tokens = _TokenCache()

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """A cached or freshly signed system token granting the scopes."""
        token = self._tokens.get(scopes)
        if token is None:
            token = system_token([access for scope in scopes for access in parse_scope(scope)], self.lifetime)
            self._tokens.put(scopes, token, self.lifetime)
        return f"Bearer {token}"

    def answer(self, client: Transport, response: requests.Response, scopes: tuple[str, ...]) -> str | None:
        """A refused system token will be refused again: the 401 stands."""
        return None


class ChallengeAuth:
    """Registries outside Wharf: anonymous until challenged, then Basic with the login or a bearer token."""

    def __init__(self, login: Login | None = None, kind: str = "none") -> None:
        self.login = login
        # What the registry asked for so far: "none", "basic" or "bearer" (Basic is then sent up front).
        self.kind = kind
        self._tokens = _TokenCache()

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """A cached bearer token for the scopes, or Basic once the registry is known to ask for it."""
        token = self._tokens.get(scopes)
        if token:
            return f"Bearer {token}"
        if self.kind == "basic" and self.login:
            return self.login.basic()
        return None

    def answer(self, client: Transport, response: requests.Response, scopes: tuple[str, ...]) -> str | None:
        """Answer the challenge of a 401: Basic with the login, or a bearer token from the realm."""
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            if self.login is None:
                raise AuthenticationFailed(f"{client.base_url} asks for credentials: select a credential.")
            raise AuthenticationFailed(f"{client.base_url} refused the credentials (401).")
        if challenge.scheme == "basic":
            self.kind = "basic"
            if self.login is None:
                raise AuthenticationFailed(f"{client.base_url} asks for a username and password: select a credential.")
            return self.login.basic()
        if challenge.scheme == "bearer":
            self.kind = "bearer"
            token, lifetime = self._fetch_token(client, challenge, scopes)
            self._tokens.put(scopes, token, lifetime)
            return f"Bearer {token}"
        raise AuthenticationUnsupported(
            f"{client.base_url} asks for an unknown authentication scheme '{challenge.scheme}'."
        )

    def _fetch_token(self, client: Transport, challenge: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        """A token for the scopes (and the challenge's) from the realm, with the login's Basic auth; its lifetime."""
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise AuthenticationUnsupported(f"{client.base_url} sent a bearer challenge without a usable realm.")
        asked = list(dict.fromkeys([*scopes, *challenge.params.get("scope", "").split()]))
        params: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            params.append(("service", challenge.params["service"]))
        params.extend(("scope", scope) for scope in asked)
        if self.login:
            params.append(("account", self.login.username))
        headers = {"Authorization": self.login.basic()} if self.login else {}
        response = client.send("GET", f"{realm}{'&' if '?' in realm else '?'}{urlencode(params)}", headers)
        if response.status_code in (401, 403):
            what = "refused the credentials" if self.login else "wants credentials: select a credential"
            raise AuthenticationFailed(f"The token service of {client.base_url} {what} ({response.status_code}).")
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not token:
            raise AuthenticationUnsupported(
                f"The token service at {realm} answered {response.status_code} without a token."
            )
        # The spec's default lifetime is 60 seconds.
        try:
            lifetime = float(body.get("expires_in") or 60)
        except (TypeError, ValueError):
            lifetime = 60.0
        return token, lifetime

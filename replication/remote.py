"""Talking to an endpoint: its registry through the one V2 client, and, for a Wharf, its REST API.

`probe()` is Test Connection: it proves the V2 API and the login, and on a Wharf reads who the login is there
and whether it may create projects. `ensure_project()` creates the destination project on a Wharf when it is
missing (a plain V2 registry has no projects: the name is only the repositories' first path part).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from portal.core import trust
from portal.core.addresses import parse_url
from portal.core.errors import DomainError, Invalid, RemoteUnreachable
from portal.core.models import Credential, CredentialKind
from registries.client import RegistryClient
from registries.client_auth import AuthenticationFailed, ChallengeAuth, Login

# Seconds to connect, then to wait for each read, for API calls (copies use the registry client's own).
API_TIMEOUT = (5, 30)


def login_for(credential: Credential | None) -> Login | None:
    """The username and password a password credential presents."""
    if credential is None or credential.kind != CredentialKind.PASSWORD:
        return None
    return Login(credential.username, credential.password())


def registry_client(url: str, login: Login | None) -> RegistryClient:
    """The V2 client of an endpoint's registry: anonymous until challenged, then the login (Basic or bearer)."""
    return RegistryClient(url, ChallengeAuth(login))


@dataclass(frozen=True)
class Probe:
    """What Test Connection found at an endpoint."""

    api: str
    auth: str
    user: str
    is_admin: bool | None
    can_create_projects: bool | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the API and the page."""
        return {
            "api": self.api,
            "auth": self.auth,
            "user": self.user,
            "is_admin": self.is_admin,
            "can_create_projects": self.can_create_projects,
            "message": self.message,
        }


def probe(kind: str, url: str, login: Login | None) -> Probe:
    """Test Connection: the V2 API answers and takes the login; on a Wharf, who the login is and what it may do."""
    client = registry_client(url, login)
    response = client.request("GET", "/v2/", ())
    if response.status_code != 200 or "Docker-Distribution-API-Version" not in response.headers:
        raise Invalid(
            f"{url} answered GET /v2/ with {response.status_code}: it is not a Docker registry (V2)",
            {"url": ["No Docker registry API (V2) answers at this address."]},
        )
    auth = client.auth.kind if isinstance(client.auth, ChallengeAuth) else "none"
    described = f"V2 registry API, {_AUTH_WORDS.get(auth, auth)}"
    if kind != "wharf":
        user = login.username if login else ""
        return Probe("v2", auth, user, None, None, f"{described}; repositories are created on push")
    if login is None:
        raise Invalid("A Wharf endpoint needs a user name and password.", {"username": ["Required for Wharf."]})
    me = RemoteWharf(url, login).whoami()
    admin = bool(me.get("is_portal_admin"))
    if admin:
        may = "is a Management Portal administrator there: missing projects are created"
    else:
        may = "is not an administrator there: destination projects must exist and give it a developer role"
    return Probe("wharf", auth, login.username, admin, admin, f"Wharf, {described}; '{login.username}' {may}")


_AUTH_WORDS = {"none": "no login asked", "basic": "HTTP Basic login accepted", "bearer": "token login accepted"}


class RemoteWharf:
    """The REST API of another Wharf, with the endpoint's login (HTTP Basic, as scripts use it)."""

    def __init__(self, url: str, login: Login) -> None:
        self.url = url.rstrip("/")
        self.login = login
        address = parse_url(self.url, schemes=None).address
        self.http = trust.session(address) if self.url.startswith("https://") else requests.Session()
        self.http.auth = (login.username, login.password)

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = f"{self.url}/api/v1/{path}"
        try:
            response = self.http.request(method, url, timeout=API_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise trust.translate_request_error(exc, url) from exc
        if response.status_code == 401:
            raise AuthenticationFailed(f"{self.url} refused the login of '{self.login.username}' (401).")
        if response.status_code >= 500:
            raise RemoteUnreachable(f"{self.url} answered {method} /api/v1/{path} with {response.status_code}")
        return response

    def whoami(self) -> dict[str, Any]:
        """The login's own user record on the remote Wharf."""
        response = self._call("GET", f"users/{self.login.username}")
        body = _json(response)
        if response.status_code != 200 or "username" not in body:
            raise Invalid(
                f"{self.url} has no Wharf API (GET /api/v1/users/… answered {response.status_code}): "
                "choose the kind 'Docker registry (V2)'",
                {"kind": ["No Wharf API answers at this address."]},
            )
        return body

    def ensure_project(self, name: str) -> bool:
        """Create the project when the remote has none of that name; True when it was created."""
        response = self._call("GET", f"projects/{name}")
        if response.status_code == 200:
            return False
        if response.status_code not in (403, 404):
            raise _unexpected(self.url, "GET", f"projects/{name}", response)
        created = self._call("POST", "projects", json={"name": name, "public": False})
        if created.status_code in (200, 201):
            return True
        if created.status_code == 409:
            return False  # created meanwhile, by another task of the same run
        detail = _json(created).get("detail") or created.text[:200]
        raise DomainError(f"project '{name}' could not be created on {self.url}: {detail}")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _unexpected(url: str, method: str, path: str, response: requests.Response) -> DomainError:
    return DomainError(f"{url} answered {method} /api/v1/{path} with {response.status_code}: {response.text[:200]}")

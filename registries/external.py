"""Registries outside Wharf on the one RegistryClient: API detection, namespaces, catalogs, V1 and Docker Hub search.

Every failure is classified so an administrator knows what to fix: the name does not resolve, the
port refuses, the server is too slow, its certificate is not trusted (the trust flow's
UntrustedCertificate), the credentials are wrong, or the server is not a registry at all.
"""

from __future__ import annotations

import contextlib
import errno
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.conf import settings
from django.core.cache import cache

from portal.core.addresses import AddressError, parse_url
from portal.core.errors import DomainError, Invalid, RemoteUnreachable
from registries.client import RegistryClient, Unavailable, UnexpectedStatus, root_cause
from registries.client_auth import AuthenticationFailed, AuthenticationUnsupported, ChallengeAuth, Login

DOCKER_HUB = "https://registry.hub.docker.com"
# Docker Hub's registry has no catalog; its index answers searches (what `docker search` asks).
DOCKER_HUB_SEARCH = "https://index.docker.io/v1/search"
# Pages of a catalog or tag list read at most (100,000 entries): a runaway registry cannot fill the memory.
MAX_PAGES = 100
# Repositories one registry contributes to a search at most.
SEARCH_LIMIT = 100
_NAMESPACE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


class RegistryFailure(DomainError):
    """Base of the classified failures: `reason` is one of dns, refused, timeout, tls, auth, not_registry."""

    reason = "unknown"


class Unreachable(RegistryFailure, RemoteUnreachable):
    """The registry could not be reached: DNS, refused connection, timeout or a TLS failure."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message, {"address": [message]})


class WrongCredentials(RegistryFailure, Invalid):
    """The registry refused the credentials (or asks for some and none were given)."""

    reason = "auth"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"credential": [message]})


class NotARegistry(RegistryFailure, Invalid):
    """Something answers at the address, but not a Docker registry API."""

    reason = "not_registry"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"address": [message]})


class PlainHttpAddress(RegistryFailure, Invalid):
    """An https:// address whose port speaks plain HTTP."""

    reason = "tls"

    def __init__(self, message: str) -> None:
        super().__init__(message, {"address": [message]})


@dataclass(frozen=True)
class Found:
    """What Verify found: the API version and the authentication the registry asks for."""

    api_version: str
    auth_type: str


@dataclass(frozen=True)
class Address:
    """A registry address split into its base URL and namespace."""

    base_url: str
    namespace: str

    @property
    def normalized(self) -> str:
        """base_url[/namespace]."""
        return f"{self.base_url}/{self.namespace}" if self.namespace else self.base_url


def parse_address(address: str, insecure: bool = False) -> Address:
    """Normalize `[scheme://]host[:port][/namespace]`; plain HTTP only when `insecure`. Invalid otherwise."""
    text = address.strip()
    if not text:
        raise Invalid("An address is required.", {"address": ["This field is required."]})
    try:
        url = parse_url(text, field="address")
    except AddressError as exc:
        if exc.problem == "port":
            raise Invalid("The port is not a number.", {"address": ["The port is not a number."]}) from exc
        message = "The address must look like https://registry.example:443/namespace."
        raise Invalid(message, {"address": [message]}) from exc
    if url.scheme == "http" and not insecure:
        message = "This address is plain HTTP: tick insecure (HTTP) to allow it."
        raise Invalid(message, {"insecure": [message]})
    namespace = url.path.strip("/").lower()
    if namespace and not _NAMESPACE.match(namespace):
        message = f"'{namespace}' is not a valid namespace (lowercase letters, digits, . _ - and /)."
        raise Invalid(message, {"address": [message]})
    return Address(url.base_url, namespace)


def in_namespace(repository: str, namespace: str) -> bool:
    """Whether the repository lies under the namespace (everything does when there is none)."""
    return not namespace or repository.startswith(f"{namespace}/")


def relevance(repository: str, query: str) -> tuple[int, str]:
    """Sort key: exact match (full name, then last part) first, then prefix, then substring, then name."""
    name, query = repository.lower(), query.lower().strip()
    leaf = name.rsplit("/", 1)[-1]
    if not query:
        rank = 4
    elif query == name:
        rank = 0
    elif query == leaf:
        rank = 1
    elif name.startswith(query) or leaf.startswith(query):
        rank = 2
    elif query in name:
        rank = 3
    else:
        rank = 4
    return rank, name


def _unreachable(fault: Unavailable) -> DomainError:
    """A network fault of the client as the failure an administrator can act on."""
    if fault.tls is not None:
        from portal.core import trust

        if isinstance(fault.tls, trust.PlainHttp):
            return PlainHttpAddress(f"{fault.tls.message} (an http:// address also needs Insecure (HTTP) ticked)")
        return Unreachable("tls", f"TLS failed with {urlsplit(fault.url).netloc}: {fault.tls.message}")
    return _classify(fault.cause, fault.url)


def _classify(exc: requests.RequestException, url: str) -> RegistryFailure:
    """A network exception (other than TLS) as the failure an administrator can act on."""
    host = urlsplit(url).netloc
    text = str(exc)
    if isinstance(exc, requests.exceptions.Timeout):
        return Unreachable("timeout", f"{host} did not answer in time (timeout).")
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause = root_cause(exc)
        if isinstance(cause, socket.gaierror) or "Name or service not known" in text or "getaddrinfo" in text:
            return Unreachable("dns", f"The host name of {host} does not resolve (DNS).")
        if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
            return Unreachable("refused", f"{host} refused the connection: nothing listens on that port.")
        if "Connection refused" in text:
            return Unreachable("refused", f"{host} refused the connection: nothing listens on that port.")
        if "timed out" in text:
            return Unreachable("timeout", f"{host} did not answer in time (timeout).")
        return Unreachable("refused", f"Could not connect to {host}: {type(cause).__name__}.")
    return Unreachable("refused", f"Could not talk to {host}: {type(exc).__name__}.")


class ExternalRegistryClient:
    """One external registry through a RegistryClient: detects its API, keeps to its namespace, lists and searches.

    The client's faults come out classified (Unreachable, WrongCredentials, NotARegistry,
    PlainHttpAddress, or the trust flow's UntrustedCertificate).
    """

    def __init__(
        self,
        address: str,
        login: Login | None = None,
        insecure: bool = False,
        api_version: str | None = None,
        timeout: float | None = None,
        session: requests.Session | None = None,
        client_certificate: Any = None,
    ) -> None:
        parsed = parse_address(address, insecure)
        self.base_url = parsed.base_url
        self.namespace = parsed.namespace
        self.login = login
        self.api_version = api_version
        self.auth = ChallengeAuth(login)
        # A certificate credential is presented in the TLS handshake; a password one is answered to challenges.
        self.client = RegistryClient(
            self.base_url,
            self.auth,
            session=session,
            timeout=timeout or settings.EXTERNAL_REGISTRY_TIMEOUT_SECONDS,
            client_certificate=client_certificate,
            max_pages=MAX_PAGES,
        )

    @property
    def auth_type(self) -> str:
        """What the registry asks for: "none", "basic" or "bearer" (a saved registry's is known up front)."""
        return self.auth.kind

    @auth_type.setter
    def auth_type(self, kind: str) -> None:
        self.auth.kind = kind

    def use_session(self, address: str, session: requests.Session) -> None:
        """Use this verifying session for the "host:port" address (instead of building one on first use)."""
        self.client.use_session(address, session)

    # Requests, their faults classified.

    @contextlib.contextmanager
    def _classified(self) -> Iterator[None]:
        """Turn the client's faults into the failures an administrator can act on."""
        try:
            yield
        except Unavailable as fault:
            raise _unreachable(fault) from None
        except AuthenticationFailed as fault:
            raise WrongCredentials(fault.message) from None
        except AuthenticationUnsupported as fault:
            raise NotARegistry(fault.message) from None
        except UnexpectedStatus as fault:
            raise NotARegistry(f"{self.base_url} answered {fault.status_code} listing {fault.path}.") from None

    def _send(self, url: str, **kwargs: Any) -> requests.Response:
        """One GET as it is, without answering challenges."""
        with self._classified():
            return self.client.send("GET", url, **kwargs)

    def get(self, path: str, scope: str = "") -> requests.Response:
        """GET a path of the registry, answering a Basic or Bearer challenge once."""
        with self._classified():
            return self.client.request("GET", path, (scope,) if scope else ())

    # What kind of registry this is.

    def detect(self) -> Found:
        """Find the API (V2 /v2/, V2 catalog for Artifactory-style servers, V1 /v1/_ping) and prove the auth."""
        for probe in (self._probe_v2, self._probe_catalog, self._probe_v1):
            found = probe()
            if found:
                self.api_version = found.api_version
                return found
        raise NotARegistry(f"{self.base_url} answers, but not as a Docker registry (no /v2/ or /v1/_ping).")

    def _probe_v2(self) -> Found | None:
        response = self._send(f"{self.base_url}/v2/")
        is_v2 = "Docker-Distribution-API-Version" in response.headers
        if response.status_code == 401 and (is_v2 or "WWW-Authenticate" in response.headers):
            # Answering the challenge proves the credentials; a server behind a generic auth proxy
            # (a V1 registry, say) only shows what it is once the challenge is answered.
            answered = self.get("/v2/")
            if is_v2 or answered.status_code == 200 or "Docker-Distribution-API-Version" in answered.headers:
                return Found("v2", self.auth_type)
            return None
        if response.status_code == 200 and (is_v2 or response.text.strip() in ("{}", "")):
            return Found("v2", "none")
        return None

    def _probe_catalog(self) -> Found | None:
        response = self._send(f"{self.base_url}/v2/_catalog?n=1")
        if response.status_code == 401 and "WWW-Authenticate" in response.headers:
            response = self.get("/v2/_catalog?n=1")
        if response.status_code == 200 and isinstance(_json(response), dict) and "repositories" in _json(response):
            return Found("v2", self.auth_type)
        return None

    def _probe_v1(self) -> Found | None:
        response = self._send(f"{self.base_url}/v1/_ping")
        if response.status_code == 401:
            response = self.get("/v1/_ping")
        if response.status_code == 200:
            return Found("v1", self.auth_type)
        return None

    # Browsing.

    def check_namespace(self, repository: str) -> None:
        """Refuse a repository outside the registry's namespace, with a message saying so."""
        if not in_namespace(repository, self.namespace):
            message = f"'{repository}' is outside the namespace '{self.namespace}' this registry exposes."
            raise Invalid(message, {"repository": [message]})

    def catalog(self) -> list[str]:
        """Every repository of a V2 registry under the namespace (following Link pages), cached briefly."""
        key = f"wharf:catalog:{self.base_url}:{self.login.username if self.login else ''}"
        names = cache.get(key)
        if names is None:
            with self._classified():
                names = list(self.client.catalog())
            cache.set(key, names, settings.EXTERNAL_CATALOG_CACHE_SECONDS)
        return [name for name in names if in_namespace(name, self.namespace)]

    def search(self, query: str) -> list[dict[str, Any]]:
        """Repositories matching the query: the V2 catalog filtered, V1 /v1/search, or Docker Hub's search."""
        if self.base_url == DOCKER_HUB:
            found = self._search_docker_hub(query)
        elif self.api_version == "v1":
            found = self._search_v1(query)
        else:
            needle = query.lower().strip()
            found = [{"repository": name} for name in self.catalog() if needle in name.lower()]
        found = [item for item in found if in_namespace(_full_name(item["repository"], self.base_url), self.namespace)]
        found.sort(key=lambda item: relevance(item["repository"], query))
        return found[:SEARCH_LIMIT]

    def _search_v1(self, query: str) -> list[dict[str, Any]]:
        response = self.get(f"/v1/search?q={quote(query)}")
        if response.status_code != 200:
            raise NotARegistry(f"{self.base_url} answered {response.status_code} to /v1/search.")
        return [_result(item) for item in (_json(response) or {}).get("results") or []]

    def _search_docker_hub(self, query: str) -> list[dict[str, Any]]:
        response = self._send(DOCKER_HUB_SEARCH, params={"q": query, "n": SEARCH_LIMIT})
        if response.status_code != 200:
            raise Unreachable("refused", f"Docker Hub's search answered {response.status_code}.")
        return [_result(item) for item in (_json(response) or {}).get("results") or []]

    def tags(self, repository: str) -> list[str]:
        """The tags of one repository under the namespace (V2 tags/list or V1 repositories/<name>/tags)."""
        repository = _full_name(repository, self.base_url)
        self.check_namespace(repository)
        if self.api_version == "v1":
            response = self.get(f"/v1/repositories/{repository}/tags")
            if response.status_code == 404:
                return []
            body = _json(response)
            names = list(body) if isinstance(body, dict) else [item.get("name", "") for item in body or []]
            return sorted(name for name in names if name)
        with self._classified():
            return sorted(self.client.tags(repository))


def _full_name(repository: str, base_url: str) -> str:
    """Docker Hub's official images ("nginx") live under "library/"."""
    if base_url == DOCKER_HUB and "/" not in repository:
        return f"library/{repository}"
    return repository


def _result(item: dict[str, Any]) -> dict[str, Any]:
    """A V1 / Docker Hub search result as ours."""
    return {
        "repository": item.get("name") or item.get("repo_name") or "",
        "description": item.get("description") or "",
        "stars": item.get("star_count"),
        "official": bool(item.get("is_official")),
    }


def _json(response: requests.Response) -> Any:
    """The response body as JSON, or None when it is not."""
    try:
        return response.json()
    except ValueError:
        return None

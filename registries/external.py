"""The client of registries outside Wharf: API detection, basic and bearer-token auth, catalogs, V1 search, tags.

Every failure is classified so an administrator knows what to fix: the name does not resolve, the
port refuses, the server is too slow, its certificate is not trusted (the trust flow's
UntrustedCertificate), the credentials are wrong, or the server is not a registry at all.
"""

from __future__ import annotations

import base64
import errno
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import requests
from django.conf import settings
from django.core.cache import cache

from portal.core.errors import DomainError, Invalid, RemoteUnreachable

DOCKER_HUB = "https://registry.hub.docker.com"
# Docker Hub's registry has no catalog; its index answers searches (what `docker search` asks).
DOCKER_HUB_SEARCH = "https://index.docker.io/v1/search"
PAGE = 1000
# Pages of a catalog or tag list read at most (100,000 entries): a runaway registry cannot fill the memory.
MAX_PAGES = 100
# Repositories one registry contributes to a search at most.
SEARCH_LIMIT = 100
_CHALLENGE_PARAM = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))')
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
    if "://" not in text:
        text = f"https://{text}"
    message = "The address must look like https://registry.example:443/namespace."
    try:
        parts = urlsplit(text)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise Invalid(message, {"address": [message]}) from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(message, {"address": [message]})
    if parts.scheme == "http" and not insecure:
        message = "This address is plain HTTP: tick insecure (HTTP) to allow it."
        raise Invalid(message, {"insecure": [message]})
    try:
        port = parts.port
    except ValueError as exc:
        raise Invalid("The port is not a number.", {"address": ["The port is not a number."]}) from exc
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    default = 443 if parts.scheme == "https" else 80
    netloc = host if port in (None, default) else f"{host}:{port}"
    namespace = parts.path.strip("/").lower()
    if namespace and not _NAMESPACE.match(namespace):
        message = f"'{namespace}' is not a valid namespace (lowercase letters, digits, . _ - and /)."
        raise Invalid(message, {"address": [message]})
    return Address(f"{parts.scheme}://{netloc}", namespace)


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="...",service="...",scope="..."` or `Basic realm="..."` as a Challenge; None if empty."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {key.lower(): quoted if quoted else bare for key, quoted, bare in _CHALLENGE_PARAM.findall(rest)}
    return Challenge(scheme.lower(), params)


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


def _classify(exc: requests.RequestException, url: str) -> RegistryFailure | DomainError:
    """A network exception as the failure an administrator can act on."""
    host = urlsplit(url).netloc
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return Unreachable("tls", f"TLS handshake with {host} failed: {_tls_detail(text)}")
    if isinstance(exc, requests.exceptions.Timeout):
        return Unreachable("timeout", f"{host} did not answer in time (timeout).")
    if isinstance(exc, requests.exceptions.ConnectionError):
        cause = _root_cause(exc)
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


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost cause or context of a chained exception."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__ or (exc.args[0] if exc.args else None)
        if isinstance(inner, BaseException):
            exc = inner
            continue
        reason = getattr(exc, "reason", None)
        if isinstance(reason, BaseException):
            exc = reason
            continue
        break
    return exc


def _tls_detail(text: str) -> str:
    """The useful end of an SSL error message."""
    match = re.search(r"\[SSL[^\]]*\][^'\")]*", text)
    return match.group(0).strip() if match else "the server's TLS does not work with this client."


class ExternalRegistryClient:
    """Talks to one external registry: detects its API, follows auth challenges, lists and searches."""

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
        self.timeout = timeout or settings.EXTERNAL_REGISTRY_TIMEOUT_SECONDS
        # A certificate credential is presented in the TLS handshake; a password one is answered to challenges.
        self.client_certificate = client_certificate
        # A given session serves every address (tests hand in a fake transport); else one per address.
        self._fixed_session = session
        self._sessions: dict[str, requests.Session] = {}
        self._authorization: dict[str, str] = {}
        self.auth_type = "none"

    # Requests and auth challenges.

    def _send(self, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """One GET; network faults become classified failures, and an untrusted certificate the trust answer."""
        try:
            return self.session_for(url).get(url, headers=headers or {}, timeout=self.timeout, **kwargs)
        except requests.exceptions.SSLError as exc:
            raise _tls_failure(exc, url, self.timeout) from None
        except requests.RequestException as exc:
            raise _classify(exc, url) from None

    def use_session(self, address: str, session: requests.Session) -> None:
        """Use this verifying session for the "host:port" address (instead of building one on first use)."""
        self._sessions[address] = session

    def session_for(self, url: str) -> requests.Session:
        """The verifying session for the URL's address (the registry's, or its token realm's)."""
        if self._fixed_session is not None:
            return self._fixed_session
        key = _address_key(url)
        if key not in self._sessions:
            from portal.core import trust

            self._sessions[key] = trust.session(key, self.client_certificate)
        return self._sessions[key]

    def get(self, path: str, scope_hint: str = "") -> requests.Response:
        """GET a path of the registry, answering a Basic or Bearer challenge once."""
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        key = scope_hint or path
        headers = {"Authorization": self._authorization[key]} if key in self._authorization else {}
        if not headers and self.auth_type == "basic" and self.login:
            headers = {"Authorization": self.login.basic()}
        response = self._send(url, headers)
        if response.status_code != 401:
            return response
        challenge = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if challenge is None:
            if self.login is None:
                raise WrongCredentials(f"{self.base_url} asks for credentials: select a credential.")
            raise WrongCredentials(f"{self.base_url} refused the credentials (401).")
        authorization = self._answer(challenge)
        response = self._send(url, {"Authorization": authorization})
        if response.status_code == 401:
            raise WrongCredentials(f"{self.base_url} refused the credentials (401).")
        self._authorization[key] = authorization
        return response

    def _answer(self, challenge: Challenge) -> str:
        """The Authorization header answering a challenge."""
        if challenge.scheme == "basic":
            self.auth_type = "basic"
            if self.login is None:
                raise WrongCredentials(f"{self.base_url} asks for a username and password: select a credential.")
            return self.login.basic()
        if challenge.scheme == "bearer":
            self.auth_type = "bearer"
            return f"Bearer {self._token(challenge)}"
        raise NotARegistry(f"{self.base_url} asks for an unknown authentication scheme '{challenge.scheme}'.")

    def _token(self, challenge: Challenge) -> str:
        """A bearer token from the challenge's realm (with the credential's Basic auth when there is one)."""
        realm = challenge.params.get("realm", "")
        if not realm.startswith(("http://", "https://")):
            raise NotARegistry(f"{self.base_url} sent a bearer challenge without a usable realm.")
        params = {key: challenge.params[key] for key in ("service", "scope") if challenge.params.get(key)}
        if self.login:
            params["account"] = self.login.username
        headers = {"Authorization": self.login.basic()} if self.login else {}
        response = self._send(realm, headers, params=params)
        if response.status_code in (401, 403):
            what = "refused the credentials" if self.login else "wants credentials: select a credential"
            raise WrongCredentials(f"The token service of {self.base_url} {what} ({response.status_code}).")
        try:
            body = response.json()
        except ValueError:
            body = {}
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not token:
            raise NotARegistry(f"The token service at {realm} answered {response.status_code} without a token.")
        return token

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
            names = list(self._pages("/v2/_catalog", "repositories", "registry:catalog:*"))
            cache.set(key, names, settings.EXTERNAL_CATALOG_CACHE_SECONDS)
        return [name for name in names if in_namespace(name, self.namespace)]

    def _pages(self, path: str, key: str, scope: str) -> Iterator[str]:
        """Follow the Link header of a paginated V2 list, yielding the entries under `key`."""
        next_path: str | None = f"{path}?n={PAGE}"
        for _ in range(MAX_PAGES):
            if not next_path:
                return
            response = self.get(next_path, scope_hint=scope)
            if response.status_code == 404:
                return
            if response.status_code != 200:
                raise NotARegistry(f"{self.base_url} answered {response.status_code} listing {path}.")
            yield from (_json(response) or {}).get(key) or []
            link = response.links.get("next", {}).get("url")
            next_path = urljoin(f"{self.base_url}{path}", link) if link else None

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
        return sorted(self._pages(f"/v2/{repository}/tags/list", "tags", f"repository:{repository}:pull"))


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


def _address_key(url: str) -> str:
    """The "host:port" under which the trust flow pins certificates."""
    from portal.core import trust

    return trust.address_of(*trust.split_url(url))


def _tls_failure(exc: requests.exceptions.SSLError, url: str, timeout: float) -> DomainError:
    """An unknown certificate as the trust flow's "trust this certificate?" answer; other TLS faults as tls."""
    from portal.core import trust

    translated = trust.translate_request_error(exc, url, timeout)
    if isinstance(translated, trust.UntrustedCertificate):
        return translated
    if isinstance(translated, trust.PlainHttp):
        return PlainHttpAddress(f"{translated.message} (an http:// address also needs Insecure (HTTP) ticked)")
    return Unreachable("tls", f"TLS failed with {urlsplit(url).netloc}: {translated.message}")

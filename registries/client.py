"""The one client of the Docker registry HTTP API v2: the integrated registry and registries outside Wharf.

`RegistryClient(base_url, auth=..., session=...)` speaks the API: catalog and tag lists paged with
Link headers; manifests (HEAD, GET, PUT, DELETE; Docker v2, OCI, and their indexes); blobs (HEAD,
streamed GET with Range, cross-repository mount, monolithic or chunked upload from a stream).
A blob never sits in memory whole: downloads are iterated, uploads read from a stream, at most
one chunk at a time.

How it authenticates is a small strategy. `SystemTokenAuth` (the default for the integrated
registry) signs a system token for the scopes a call needs. `ChallengeAuth` follows the
registry's 401 challenges: anonymous, HTTP Basic with a login, or a bearer token fetched from the
challenge's realm for the scopes asked and cached per scope until it expires (registries/client_auth.py).

Faults are domain errors: the network (`Unavailable`) and unexpected answers (`UnexpectedStatus`)
are RemoteUnreachable, transient unless another attempt cannot help; an unknown server
certificate is the trust flow's UntrustedCertificate; refused or missing credentials are
`AuthenticationFailed`, a challenge the client cannot answer `AuthenticationUnsupported`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from django.conf import settings

from portal.core.errors import RemoteUnreachable

if TYPE_CHECKING:
    from portal.core.trust import Sessions
from registries.client_auth import Auth, AuthenticationFailed, ChallengeAuth, SystemTokenAuth

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST_V1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST_V1)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
ACCEPT = ", ".join(MANIFEST_TYPES)
# Seconds to connect, then to wait for each read.
TIMEOUT = (5, 60)
PAGE = 1000
# An index refers to a handful of platform manifests; more than this is not an image we size.
MAX_INDEX_ENTRIES = 64
# Bytes read from the network, or sent in one PATCH of a chunked upload.
CHUNK = 1024 * 1024
UPLOAD_CHUNK = 16 * 1024 * 1024


# Faults.


class Unavailable(RemoteUnreachable):
    """The registry (or its token service) could not be reached; `cause` is the network exception."""

    def __init__(self, base_url: str, url: str, cause: requests.RequestException, tls: Any = None) -> None:
        self.url = url
        self.cause = cause
        # For a TLS failure other than an unknown certificate: the trust flow's reading of it.
        self.tls = tls
        reason = tls.message if tls is not None and getattr(tls, "message", "") else network_reason(cause)
        super().__init__(f"the registry at {base_url} did not answer: {reason}")


def root_cause(exc: BaseException) -> BaseException:
    """The innermost cause or context of a chained exception (requests wraps urllib3 wraps the socket's)."""
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


def network_reason(exc: BaseException) -> str:
    """A short reason for a failed call (requests' or urllib3's) that a log line can carry ("connection refused"),
    not urllib3's repr."""
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    cause = root_cause(exc)
    if isinstance(cause, socket.gaierror):
        return "the host name does not resolve"
    if isinstance(cause, ConnectionRefusedError) or getattr(cause, "errno", None) == errno.ECONNREFUSED:
        return "connection refused"
    if isinstance(cause, ConnectionResetError):
        return "connection reset"
    if isinstance(cause, TimeoutError):
        return "timed out"
    text = str(cause) or type(cause).__name__
    return text if len(text) <= 200 else text[:200] + "…"


class UnexpectedStatus(RemoteUnreachable):
    """The registry answered a call with a status it does not answer a working client with."""

    def __init__(self, base_url: str, response: requests.Response, method: str, path: str) -> None:
        self.status_code = response.status_code
        self.method = method
        self.path = path
        status = response.status_code
        body = "" if method == "HEAD" else response.text[:200]
        super().__init__(
            f"the registry at {base_url} answered {method} {path} with {status}: {body}",
            # A 5xx or a 429 may pass; a refused token or a bad request will be refused again.
            transient=status >= 500 or status == 429,
        )


# What the registry holds.


@dataclass(frozen=True)
class Manifest:
    """A manifest exactly as the registry stores it: its bytes, media type and digest."""

    content: bytes
    media_type: str
    digest: str

    def document(self) -> dict:
        """The manifest parsed as JSON."""
        return json.loads(self.content)

    @property
    def is_index(self) -> bool:
        """Whether this is a list of platform manifests (Docker manifest list or OCI index)."""
        return self.media_type in INDEX_TYPES or "manifests" in self.document()


class ManifestHead(NamedTuple):
    """What a HEAD of a manifest tells: its digest and media type."""

    digest: str
    media_type: str


def manifest_digest(content: bytes) -> str:
    """The content digest of manifest bytes (what the registry stores them under)."""
    return "sha256:" + hashlib.sha256(content).hexdigest()


class Blob(contextlib.AbstractContextManager):
    """A blob being downloaded: its size, the range answered, and its bytes as an iterator. Close it when done."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self.size = int(response.headers.get("Content-Length", 0))
        # "bytes 100-199/1000" when part of the blob was asked for and answered.
        self.content_range = response.headers.get("Content-Range", "")

    def chunks(self, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """The bytes as they arrive, never more than one chunk held."""
        yield from self._response.iter_content(chunk_size)

    def close(self) -> None:
        """Release the connection."""
        self._response.close()

    def __exit__(self, *exc: object) -> None:
        self.close()


# Scopes (https://distribution.github.io/distribution/spec/auth/scope/).

CATALOG_SCOPE = "registry:catalog:*"


def pull_scope(repository: str) -> str:
    """The scope to read a repository."""
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    """The scope to write to a repository."""
    return f"repository:{repository}:pull,push"


def delete_scope(repository: str) -> str:
    """The scope to delete from a repository."""
    return f"repository:{repository}:delete,pull,push"


# The client.


class RegistryClient:
    """Calls one registry's API v2. Without arguments: the integrated registry at settings.REGISTRY_URL.

    `session` serves every URL (tests hand in a fake transport); without one, https:// URLs get a
    verifying session of the trust flow per "host:port" (the registry's, its token realm's), with
    the client certificate when one is given.
    """

    def __init__(
        self,
        base_url: str | None = None,
        auth: Auth | None = None,
        *,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] | None = None,
        client_certificate: Any = None,
        page_size: int = PAGE,
        max_pages: int | None = None,
    ) -> None:
        self.base_url = (base_url or settings.REGISTRY_URL).rstrip("/")
        self.auth: Auth = auth or (SystemTokenAuth() if base_url is None else ChallengeAuth())
        self.timeout = timeout or TIMEOUT
        self.client_certificate = client_certificate
        self.page_size = page_size
        # At most this many pages of one list are read: a runaway registry cannot fill the memory.
        self.max_pages = max_pages
        self._sessions: Sessions | None = None
        self._fixed_session = session

    # Transport.

    @property
    def sessions(self) -> Sessions:
        """The client's sessions per address (built on first use, on the trust flow)."""
        if self._sessions is None:
            from portal.core.trust import Sessions

            self._sessions = Sessions(self._fixed_session, self.client_certificate)
        return self._sessions

    def use_session(self, address: str, session: requests.Session) -> None:
        """Use this verifying session for the "host:port" address (instead of building one on first use)."""
        self.sessions.use(address, session)

    def session_for(self, url: str) -> requests.Session:
        """The session for the URL's address: the one given, a plain one for http://, else a verifying one."""
        return self.sessions.for_url(url)

    def url(self, path: str) -> str:
        """The absolute URL of a path of the registry (a Location or Link may already be absolute)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}" if path.startswith("/") else urljoin(f"{self.base_url}/", path)

    def send(self, method: str, url: str, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """One request as it is, without authentication; network faults become Unavailable (or the trust answer)."""
        try:
            return self.session_for(url).request(method, url, headers=headers or {}, timeout=self.timeout, **kwargs)
        except requests.exceptions.SSLError as exc:
            from portal.core import trust

            translated = trust.translate_request_error(exc, url, self._connect_timeout())
            if isinstance(translated, trust.UntrustedCertificate):
                raise translated from None
            raise Unavailable(self.base_url, url, exc, translated) from None
        except requests.RequestException as exc:
            raise Unavailable(self.base_url, url, exc) from None

    def _connect_timeout(self) -> float:
        return self.timeout[0] if isinstance(self.timeout, tuple) else self.timeout

    def request(
        self, method: str, path: str, scopes: Iterable[str] = (), headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """One authenticated request for the scopes, answering a 401 challenge once.

        A body that is not bytes (a stream) cannot be sent twice, so a 401 to it stands: uploads
        open their session first, which leaves the token for their scopes cached.
        """
        scopes = tuple(scopes)
        url = self.url(path)
        headers = dict(headers or {})
        authorization = self.auth.header(scopes)
        if authorization:
            headers["Authorization"] = authorization
        response = self.send(method, url, headers, **kwargs)
        replayable = isinstance(kwargs.get("data"), bytes | type(None))
        if response.status_code != 401 or not replayable:
            return response
        answer = self.auth.answer(self, response, scopes)
        if answer is None:
            return response
        response.close()
        response = self.send(method, url, {**headers, "Authorization": answer}, **kwargs)
        if response.status_code == 401:
            # The challenge was answered and the answer refused: the credentials are wrong.
            raise AuthenticationFailed(f"{self.base_url} refused the credentials (401).")
        return response

    def _expect(self, response: requests.Response, statuses: tuple[int, ...], method: str, path: str) -> None:
        """Raise UnexpectedStatus naming the call when the registry answered otherwise."""
        if response.status_code not in statuses:
            response.close()
            raise UnexpectedStatus(self.base_url, response, method, path)

    def _found(
        self, method: str, path: str, repository: str, headers: dict[str, str] | None = None
    ) -> requests.Response | None:
        """The 200 answer to reading a manifest or blob of the repository, or None when the registry has none (404)."""
        response = self.request(method, path, (pull_scope(repository),), headers)
        if response.status_code == 404:
            return None
        self._expect(response, (200,), method, path)
        return response

    # Lists.

    def pages(self, path: str, key: str, scopes: Iterable[str] = ()) -> Iterator[str]:
        """Follow the Link header of a paginated list, yielding the entries under `key` (none on a 404)."""
        scopes = tuple(scopes)
        next_url: str | None = f"{path}?n={self.page_size}"
        read = 0
        while next_url and (self.max_pages is None or read < self.max_pages):
            response = self.request("GET", next_url, scopes)
            if response.status_code == 404:
                return
            self._expect(response, (200,), "GET", path)
            try:
                body = response.json()
            except ValueError:
                body = None
            yield from (body.get(key) or []) if isinstance(body, dict) else []
            read += 1
            link = response.links.get("next", {}).get("url")
            next_url = urljoin(self.url(path), link) if link else None

    def catalog(self) -> Iterator[str]:
        """Every repository name the registry holds."""
        return self.pages("/v2/_catalog", "repositories", (CATALOG_SCOPE,))

    def tags(self, repository: str) -> list[str]:
        """The repository's tags (empty when the registry does not know the repository)."""
        return list(self.pages(f"/v2/{repository}/tags/list", "tags", (pull_scope(repository),)))

    # Manifests.

    def head_manifest(self, repository: str, reference: str) -> ManifestHead | None:
        """(digest, media type) of a tag or digest, or None when there is none."""
        response = self._found("HEAD", f"/v2/{repository}/manifests/{reference}", repository, {"Accept": ACCEPT})
        if response is None:
            return None
        return ManifestHead(response.headers.get("Docker-Content-Digest", ""), response.headers.get("Content-Type", ""))

    def get_manifest(self, repository: str, reference: str) -> Manifest | None:
        """The manifest of a tag or digest, byte for byte, or None when there is none."""
        response = self._found("GET", f"/v2/{repository}/manifests/{reference}", repository, {"Accept": ACCEPT})
        if response is None:
            return None
        digest = response.headers.get("Docker-Content-Digest") or manifest_digest(response.content)
        return Manifest(response.content, response.headers.get("Content-Type", ""), digest)

    def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str:
        """Store the manifest's exact bytes under a tag or its digest; returns the digest the registry computed."""
        path = f"/v2/{repository}/manifests/{reference}"
        response = self.request(
            "PUT", path, (push_scope(repository),), {"Content-Type": manifest.media_type}, data=manifest.content
        )
        self._expect(response, (201,), "PUT", path)
        return response.headers.get("Docker-Content-Digest") or manifest_digest(manifest.content)

    def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete a manifest by digest (which untags every tag on it); False when it was already gone."""
        path = f"/v2/{repository}/manifests/{digest}"
        response = self.request("DELETE", path, (delete_scope(repository),))
        if response.status_code == 404:
            return False
        self._expect(response, (202,), "DELETE", path)
        return True

    def remove_tag(self, repository: str, tag: str) -> bool:
        """Delete one tag and keep the other tags on its manifest; False when the tag was not there.

        The registry deletes only by digest, which untags every tag on it, so the siblings are put
        back with the manifest's exact bytes: the digest is the hash of these bytes, so each sibling
        ends up on the very same manifest.
        """
        current = self.head_manifest(repository, tag)
        if current is None:
            return False
        siblings = [
            name
            for name in self.tags(repository)
            if name != tag and (head := self.head_manifest(repository, name)) and head.digest == current.digest
        ]
        manifest = self.get_manifest(repository, current.digest) if siblings else None
        self.delete_manifest(repository, current.digest)
        for name in siblings:
            if manifest is not None:
                self.put_manifest(repository, name, manifest)
        return True

    def image_size(self, repository: str, manifest: Manifest) -> int:
        """Bytes of the image: config plus layers, summed over the platform manifests of an index."""
        document = manifest.document()
        if manifest.is_index:
            total = 0
            for entry in document.get("manifests", [])[:MAX_INDEX_ENTRIES]:
                child = self.get_manifest(repository, entry["digest"])
                total += self.image_size(repository, child) if child else int(entry.get("size", 0))
            return total
        parts = [document.get("config") or {}, *document.get("layers", [])]
        return sum(int(part.get("size", 0)) for part in parts)

    # Blobs.

    def head_blob(self, repository: str, digest: str) -> int | None:
        """The size of the blob when the repository holds it, else None."""
        response = self._found("HEAD", f"/v2/{repository}/blobs/{digest}", repository)
        if response is None:
            return None
        return int(response.headers.get("Content-Length", 0))

    def blob_exists(self, repository: str, digest: str) -> bool:
        """Whether the repository holds the blob."""
        return self.head_blob(repository, digest) is not None

    def get_blob(self, repository: str, digest: str, start: int = 0, end: int | None = None) -> Blob:
        """The blob, or its bytes start..end (inclusive), as a stream; UnexpectedStatus (404) when it is missing."""
        path = f"/v2/{repository}/blobs/{digest}"
        headers = {}
        if start or end is not None:
            headers["Range"] = f"bytes={start}-{'' if end is None else end}"
        response = self.request("GET", path, (pull_scope(repository),), headers, stream=True)
        self._expect(response, (206,) if headers else (200,), "GET", path)
        return Blob(response)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Mount a blob of another repository of the same registry; False when the registry would not."""
        path = f"/v2/{repository}/blobs/uploads/?{urlencode({'mount': digest, 'from': from_repository})}"
        scopes = (push_scope(repository), pull_scope(from_repository))
        response = self.request("POST", path, scopes)
        if response.status_code == 201:
            return True
        # 202: the registry opened an upload instead (it may not see the source); nobody will use it.
        self._expect(response, (202,), "POST", f"/v2/{repository}/blobs/uploads/")
        self._cancel_upload(repository, response.headers.get("Location", ""))
        return False

    def upload_blob(
        self,
        repository: str,
        digest: str,
        stream: IO[bytes] | Iterable[bytes],
        chunk_size: int | None = None,
    ) -> str:
        """Upload a blob from a file or an iterable of bytes; returns its digest as the registry stored it.

        Monolithic (one streamed PUT) without `chunk_size`; with it, PATCHes of `chunk_size` bytes
        with their Content-Range, then a PUT with the digest. The registry checks the digest.
        """
        scopes = (push_scope(repository),)
        uploads = f"/v2/{repository}/blobs/uploads/"
        opened = self.request("POST", uploads, scopes)
        self._expect(opened, (202,), "POST", uploads)
        location = opened.headers.get("Location", "")
        try:
            if chunk_size:
                location = self._send_chunks(repository, location, stream, chunk_size)
                body: Any = b""
            else:
                body = _iterate(stream)
            done = self.request(
                "PUT",
                _with_query(location, digest=digest),
                scopes,
                {"Content-Type": "application/octet-stream"},
                data=body,
            )
            self._expect(done, (201,), "PUT", uploads)
        except BaseException:
            self._cancel_upload(repository, location)
            raise
        return done.headers.get("Docker-Content-Digest", digest)

    def _send_chunks(self, repository: str, location: str, stream: IO[bytes] | Iterable[bytes], size: int) -> str:
        """PATCH the stream in chunks of `size` bytes; returns the upload's location after the last."""
        scopes = (push_scope(repository),)
        offset = 0
        for chunk in _rechunk(_iterate(stream), size):
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
            }
            response = self.request("PATCH", location, scopes, headers, data=chunk)
            self._expect(response, (202,), "PATCH", f"/v2/{repository}/blobs/uploads/")
            location = response.headers.get("Location", location)
            offset += len(chunk)
        return location

    def _cancel_upload(self, repository: str, location: str) -> None:
        """Best effort: drop an upload session nobody will finish (the registry also expires them)."""
        if not location:
            return
        with contextlib.suppress(RemoteUnreachable):
            self.request("DELETE", location, (push_scope(repository),)).close()


def _iterate(stream: IO[bytes] | Iterable[bytes]) -> Iterator[bytes]:
    """A file's or an iterable's bytes, a piece at a time."""
    read = getattr(stream, "read", None)
    if read is None:
        yield from stream  # type: ignore[misc]
        return
    while piece := read(CHUNK):
        yield piece


def _rechunk(pieces: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Pieces of any size regrouped into chunks of exactly `size` bytes (the last may be shorter)."""
    buffer = bytearray()
    for piece in pieces:
        buffer += piece
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def _with_query(location: str, **params: str) -> str:
    """The location with more query parameters (an upload's Location carries its own state)."""
    return f"{location}{'&' if urlsplit(location).query else '?'}{urlencode(params)}"

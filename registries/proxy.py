"""The /v2/ proxy: streams Docker registry API calls between clients and the internal registry.

Nothing here buffers a blob: request bodies are read from the WSGI input in chunks and sent on as
they arrive, response bodies are streamed back the same way. The registry does the token checks;
the proxy adds what only the portal knows (projects, their policies, maintenance, the catalog
a caller may see) and rewrites the URLs the registry hands out so clients come back to the portal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse

from portal.core import components
from registries.bodies import BodyError, SocketBody, gunicorn_socket_body

CHUNK_SIZE = 256 * 1024
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
# Headers that describe one connection, not the message: never forwarded in either direction.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_REALM = re.compile(r'realm="[^"]*"')

_pool = urllib3.PoolManager(
    num_pools=4,
    maxsize=64,
    block=False,
    retries=False,
    timeout=urllib3.Timeout(connect=5.0, read=600.0),
)


def registry_error(status: int, code: str, message: str, detail: Any = None) -> JsonResponse:
    """An error in the registry's own format, which docker clients print as `<code>: <message>`."""
    error = {"code": code, "message": message, "detail": detail}
    response = JsonResponse({"errors": [error]}, status=status)
    response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    return response


def registry_unavailable(exc: Exception) -> JsonResponse:
    """The 503 for a registry that does not answer, with the launcher's reason when it knows the registry is down.

    Docker clients print the message after the code (`unavailable: the registry is restarting ...`).
    """
    # urllib3 begins its messages with the repr of its connection object, which tells a client nothing.
    fault = str(exc).split(">: ", 1)[-1]
    reason = components.unavailable_reason("registry") or f"the registry does not answer: {fault}"
    response = registry_error(503, "UNAVAILABLE", reason)
    response["Retry-After"] = "5"
    return response


def portal_root(request: HttpRequest) -> str:
    """The scheme, host and port the client used to reach the portal."""
    return f"{request.scheme}://{request.get_host()}"


def _client_headers(request: HttpRequest) -> dict[str, str]:
    """The client's end-to-end headers, as the registry should see them."""
    headers = {}
    for key, value in request.META.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key == "CONTENT_TYPE" and value:
            name = "Content-Type"
        else:
            continue
        if name.lower() not in HOP_BY_HOP and not name.lower().startswith("x-forwarded-"):
            headers[name] = value
    # The registry logs and reports (in its notifications) the client's address from these.
    address = request.META.get("REMOTE_ADDR", "")
    if address:
        headers["X-Forwarded-For"] = address
        headers["X-Real-Ip"] = address
    headers["X-Forwarded-Proto"] = request.scheme
    return headers


def _read(stream: Any, remaining: int | None) -> Iterator[bytes]:
    """Chunks of a request body: `remaining` bytes, or until the end of the stream when None."""
    while remaining is None or remaining > 0:
        chunk = stream.read(CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining))
        if not chunk:
            return
        if remaining is not None:
            remaining -= len(chunk)
        yield chunk


def _request_body(request: HttpRequest, headers: dict[str, str]) -> Iterable[bytes] | None:
    """The request body as a stream of chunks (never request.body); sets Content-Length when it is known.

    Under gunicorn the body is read straight off the client's socket (registries/bodies.py); urllib3 sends it on,
    re-chunked when the client chunked it.
    """
    length = request.META.get("CONTENT_LENGTH")
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if length:
        headers["Content-Length"] = str(int(length))
    elif not chunked:
        return None
    stream = request.META["wsgi.input"]
    direct = gunicorn_socket_body(stream, int(length) if length else None, CHUNK_SIZE)
    if direct is not None:
        return direct
    # Another server: Django's request limits reading to Content-Length; a chunked body is read until its end.
    return _read(request, int(length)) if length else _read(stream, None)


def send(
    request: HttpRequest, method: str | None = None, path: str | None = None, headers: dict[str, str] | None = None
) -> urllib3.BaseHTTPResponse:
    """Send the client's request (or the given method/path with no body) to the registry, unread."""
    headers = headers if headers is not None else _client_headers(request)
    method = method or request.method
    body = _request_body(request, headers) if method == request.method and path is None else None
    try:
        return _pool.urlopen(
            method,
            settings.REGISTRY_URL + (path or request.get_full_path()),
            body=body,
            headers=headers,
            redirect=False,
            preload_content=False,
            decode_content=False,
        )
    finally:
        if isinstance(body, SocketBody):
            # The registry may answer before reading the whole body: the rest must not pass for a request.
            body.close()


def _rewrite_location(value: str, request: HttpRequest) -> str:
    """Point the registry's absolute URLs (upload sessions, redirects) at the portal."""
    location = urlsplit(value)
    if location.netloc and location.netloc == urlsplit(settings.REGISTRY_URL).netloc:
        rest = location.path + (f"?{location.query}" if location.query else "")
        return portal_root(request) + rest
    return value


def _rewrite_challenge(value: str, request: HttpRequest) -> str:
    """Send clients for tokens to this portal's token service, whatever realm the registry was configured with."""
    return _REALM.sub(f'realm="{portal_root(request)}/service/token"', value)


def _stream(upstream: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The registry's response body in chunks; the connection goes back to the pool only when fully read."""
    complete = False
    try:
        yield from upstream.stream(CHUNK_SIZE, decode_content=False)
        complete = True
    finally:
        if complete:
            upstream.release_conn()
        else:
            # The client went away mid-body: the connection holds unread data, so drop it.
            upstream.close()


def respond(request: HttpRequest, upstream: urllib3.BaseHTTPResponse) -> HttpResponse:
    """The registry's response for the client: same status, headers (URLs rewritten) and streamed body."""
    length = upstream.headers.get("Content-Length")
    no_body = request.method == "HEAD" or upstream.status in (204, 304) or length == "0"
    if no_body:
        upstream.drain_conn()
        upstream.release_conn()
        response: HttpResponse = HttpResponse(status=upstream.status)
    else:
        response = StreamingHttpResponse(_stream(upstream), status=upstream.status)
    del response["Content-Type"]
    for name, value in upstream.headers.items():
        lowered = name.lower()
        if lowered in HOP_BY_HOP:
            continue
        if lowered == "location":
            value = _rewrite_location(value, request)
        elif lowered == "www-authenticate":
            value = _rewrite_challenge(value, request)
        response[name] = value
    if length is not None:
        # HEAD answers carry the size of what a GET would return (blob sizes), so keep it as is.
        response["Content-Length"] = length
    return response


def forward(request: HttpRequest, withhold_body: bool = False, credentials: bool = True) -> HttpResponse:
    """Proxy the client's request to the registry and stream the answer back.

    With `withhold_body`, for a request the registry will refuse, it goes on without its body, which is never read
    (gunicorn skips it or closes the connection); without `credentials`, also without its Authorization header.
    """
    try:
        if withhold_body:
            headers = _client_headers(request)
            if not credentials:
                headers = {name: value for name, value in headers.items() if name.lower() != "authorization"}
            upstream = send(request, path=request.get_full_path(), headers=headers)
        else:
            upstream = send(request)
    except urllib3.exceptions.HTTPError as exc:
        return registry_unavailable(exc)
    except BodyError as exc:
        return registry_error(400, "BLOB_UPLOAD_INVALID", f"the request body was not received: {exc}")
    return respond(request, upstream)


def registry_json(path: str, token: str) -> tuple[dict[str, Any], str]:
    """GET a JSON document from the registry with a system token; returns it and the Link header."""
    response = _pool.request(
        "GET", settings.REGISTRY_URL + path, headers={"Authorization": f"Bearer {token}"}, retries=False
    )
    if response.status != 200:
        raise urllib3.exceptions.HTTPError(f"registry answered {response.status} for {path}")
    return response.json(), response.headers.get("Link", "")


def catalog_names(token: str) -> list[str]:
    """Every repository name in the registry, following its pagination."""
    names: list[str] = []
    path: str | None = "/v2/_catalog?n=1000"
    while path:
        document, link = registry_json(path, token)
        names.extend(document.get("repositories") or [])
        match = re.match(r"<([^>]+)>", link)
        path = match[1] if match else None
        if path and path.startswith("http"):
            split = urlsplit(path)
            path = split.path + (f"?{split.query}" if split.query else "")
    return names

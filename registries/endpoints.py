"""The registry's front door on the portal: the Docker token service, the /v2/ proxy and the registry's
event notifications."""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

import urllib3
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from portal.core import throttle
from portal.core.audit import client_address
from portal.core.models import SystemSettings, User
from portal.core.permissions import is_portal_admin
from portal.core.remembered_logins import authenticate_basic
from portal.core.services import TOKEN_PREFIX, user_for_token
from projects import policy
from projects.models import Project
from projects.roles import registry_actions
from registries import content_trust, events, proxy
from registries.maintenance import read_only_reason
from registries.models import ObservedManifest
from registries.token import (
    Access,
    grant,
    grant_notary,
    issue,
    notary_repository,
    parse_scope,
    system_token,
    verify,
)

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# One segment of a canonical /v2/ path: repository name components, tags, digests ("sha256:..."), upload
# ids and the API's own words (_catalog, blobs, uploads). Nothing in the API needs more.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*\Z")
_MANIFEST = re.compile(r"^(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
# The registry API's requests that carry a body: blob upload chunks and manifests.
_UPLOAD = re.compile(r"^(?P<name>.+)/(?:blobs/uploads/.*|manifests/[^/]+)$")


class BadCredentials(Exception):
    """The client sent credentials that identify nobody."""


def _basic_credentials(request: HttpRequest) -> tuple[str, str] | None:
    """(username, password) of an HTTP Basic header, None when there is none."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, separator, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise BadCredentials from exc
    if not separator:
        raise BadCredentials
    return username, password


def _token_user(request: HttpRequest) -> User | None:
    """Who asks for a token: a user by password (local or directory), by API token, or None (anonymous)."""
    credentials = _basic_credentials(request)
    if credentials is None:
        return None
    username, password = credentials
    # Docker sends an API token as the password of `docker login`; the username is then informational.
    user = user_for_token(password) if password.startswith(TOKEN_PREFIX) else None
    if user is None:
        # A password verified moments ago is not hashed again; a failed login is audited through Django's
        # user_login_failed signal.
        user = authenticate_basic(request, username, password)
    if user is None or not user.is_active:
        raise BadCredentials
    return user


@require_GET
def token(request: HttpRequest) -> HttpResponse:
    """Docker token service: a signed token granting what the role matrix allows of the requested scopes."""
    try:
        user = _token_user(request)
    except BadCredentials:
        if (refused := throttle.refusal(request)) is not None:
            # docker login prints this message; the registry error code is distribution's own for 429.
            response = JsonResponse({"errors": [{"code": "TOOMANYREQUESTS", "message": refused.message}]}, status=429)
            response["Retry-After"] = str(refused.retry_after)
            return response
        response = JsonResponse({"errors": [{"code": "UNAUTHORIZED", "message": "invalid username or password"}]})
        response.status_code = 401
        response["WWW-Authenticate"] = 'Basic realm="wharf"'
        return response
    requested = parse_scope(" ".join(request.GET.getlist("scope")))
    lifetime = SystemSettings.token_lifetime_seconds()
    # Notary asks for its own audience, on GUNs; anything else (docker names wharf-registry) is the registry's.
    if request.GET.get("service") == settings.NOTARY_SERVICE:
        audience, access = settings.NOTARY_SERVICE, grant_notary(user, requested)
        for granted in access:
            if "push" in granted.actions and (repository := notary_repository(granted.name)):
                # Where this signer publishes is where the portal reads the repository's signatures back.
                content_trust.record_collection(granted.name, repository)
    else:
        audience, access = settings.REGISTRY_SERVICE, grant(user, requested)
    signed, issued_at = issue(user.username if user else "", access, lifetime, audience)
    return JsonResponse(
        {
            "token": signed,
            "access_token": signed,
            "expires_in": lifetime,
            "issued_at": datetime.fromtimestamp(issued_at, UTC).isoformat().replace("+00:00", "Z"),
        }
    )


def _bearer_claims(request: HttpRequest) -> dict | None:
    """The claims of the caller's registry token when it is one this portal signed and still valid."""
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return verify(value.strip())


def _granted(claims: dict, type_: str, name: str, action: str) -> bool:
    """Whether the token's access list holds the action on the resource."""
    return any(
        entry.get("type") == type_ and entry.get("name") == name and action in (entry.get("actions") or [])
        for entry in claims.get("access") or []
    )


@csrf_exempt
def registry_v2(request: HttpRequest, path: str) -> HttpResponse:
    """Everything under /v2/: portal rules first (canonical path, maintenance, projects, policy, catalog), then the
    registry."""
    if (fault := non_canonical(request, path)) is not None:
        return proxy.registry_error(400, "NAME_INVALID", f"the path is not canonical: {fault}")
    if request.method in WRITE_METHODS and (reason := read_only_reason()):
        return proxy.registry_error(405, "DENIED", reason)
    if path.rstrip("/") == "_catalog":
        return _catalog(request)
    project_name = path.split("/", 1)[0]
    if project_name and "/" in path:
        project = Project.objects.filter(name=project_name).first()
        if project is None:
            if _may_see_every_project(request):
                status = 404 if request.method == "HEAD" else 403
                return proxy.registry_error(status, "DENIED", f"project '{project_name}' does not exist")
            # Anyone else gets the registry's answer for a repository their token grants nothing on: the same as
            # for a private project they may not see, so a missing project cannot be told from a private one.
        else:
            # Refused by the policy, or in a content-trust project served only when signed.
            answered = _policy_refusal(request, project, path) or _signed_pull(request, project, path)
            if answered is not None:
                return _observed(request, path, answered)
    return _observed(request, path, _forward(request, path))


# What the proxy notes of a manifest request the registry served (method -> (status, event action)).
_OBSERVED = {"PUT": (201, "push"), "GET": (200, "pull"), "DELETE": (202, "delete")}


def _observed(request: HttpRequest, path: str, response: HttpResponse) -> HttpResponse:
    """Note who pushed, pulled or deleted a manifest and from where, for the registry's event to be matched with."""
    expected = _OBSERVED.get(request.method or "")
    match = _MANIFEST.match(path)
    reference = match["reference"] if match is not None else ""
    digest = response.get("Docker-Content-Digest") or (reference if reference.startswith("sha256:") else "")
    if expected is None or match is None or response.status_code != expected[0] or not digest:
        return response
    claims = _bearer_claims(request) or {}
    ObservedManifest.objects.create(
        action=expected[1],
        repository=match["name"],
        digest=digest[:150],
        username=str(claims.get("sub") or "")[:150],
        address=client_address(request),
    )
    return response


def _may_see_every_project(request: HttpRequest) -> bool:
    """Whether the caller's registry token is a portal admin's, who may be told that a project does not exist."""
    claims = _bearer_claims(request)
    subject = claims.get("sub") if claims is not None else None
    if not subject:
        return False
    return is_portal_admin(User.objects.filter(username=subject, is_active=True).first())


def _forward(request: HttpRequest, path: str) -> HttpResponse:
    """Pass the request on; a body the caller's token may not push is never read.

    The registry would refuse such a body anyway, and a client sending it slowly (anyone, without logging in) would
    hold a web thread while it did. The registry sees the request without its body and answers with its challenge
    (no token, or one this portal cannot verify: sent on without credentials, so that an empty body can never be
    accepted) or its refusal (a valid token without push: the same token).
    """
    length = request.META.get("CONTENT_LENGTH") or "0"
    chunked = "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower()
    if length == "0" and not chunked:
        return proxy.forward(request)
    match = _UPLOAD.match(path)
    claims = _bearer_claims(request)
    if match is not None and claims is not None and _granted(claims, "repository", match["name"], "push"):
        return proxy.forward(request)
    return proxy.forward(request, withhold_body=True, credentials=claims is not None)


def non_canonical(request: HttpRequest, path: str) -> str | None:
    """What makes the /v2/ path other than the one the registry will serve, or None for a canonical path.

    The portal judges a path by its first segment (the project) and its manifest reference; the
    registry cleans `.` and `..` segments and decodes escapes before it routes. So a path is refused
    unless it is exactly what the registry will serve: no percent escapes on the wire, no empty, `.`
    or `..` segment, and every segment made of the characters the API uses.
    """
    raw = request.META.get("RAW_URI") or request.META.get("REQUEST_URI") or ""
    if "%" in urlsplit(raw).path:
        return "percent-escapes are not used in registry paths"
    if not path:
        return None  # /v2/ itself
    segments = path.split("/")
    if len(segments) > 1 and segments[-1] == "":
        segments.pop()  # one closing slash, as in /v2/ and /v2/<name>/blobs/uploads/
    for segment in segments:
        if segment in ("", ".", ".."):
            return f"'{segment or '//'}' segments are not served as written"
        if not _SEGMENT.match(segment):
            return f"'{segment}' is not a repository name, tag, digest or upload"
    return None


def _pullable_manifest(request: HttpRequest, path: str) -> re.Match | None:
    """The manifest GET or HEAD the caller's token may pull, whose answer the run policy decides."""
    match = _MANIFEST.match(path)
    if request.method not in ("GET", "HEAD") or match is None:
        return None
    claims = _bearer_claims(request)
    if claims is None or not _granted(claims, "repository", match["name"], "pull"):
        # Not (yet) authorized: the registry answers with its challenge; the verdict is for those who may pull.
        return None
    return match


def _refusal(project: Project, reason: str) -> HttpResponse:
    return proxy.registry_error(412, "PROJECT_POLICY_VIOLATION", reason, {"project": project.name})


def _policy_refusal(request: HttpRequest, project: Project, path: str) -> HttpResponse | None:
    """A 412 for a manifest pull the project's policy refuses, decided before the registry is asked."""
    match = _pullable_manifest(request, path) if not project.content_trust else None
    if match is None:
        return None
    verdict = policy.check(project, match["name"], match["reference"])
    return None if verdict.allowed else _refusal(project, verdict.reason)


def _signed_pull(request: HttpRequest, project: Project, path: str) -> HttpResponse | None:
    """In a content-trust project, the registry's answer to a manifest pull when the manifest it serves is signed.

    The signature must name the digest the registry answers with, not the one the portal last recorded: a tag
    pushed again without signing is refused at once. So the registry is asked first, and its answer withheld (the
    stream closed unread) when the policy refuses it.
    """
    match = _pullable_manifest(request, path) if project.content_trust else None
    if match is None:
        return None
    try:
        upstream = proxy.send(request, path=request.get_full_path())
    except urllib3.exceptions.HTTPError as exc:
        return proxy.registry_unavailable(exc)
    digest = upstream.headers.get("Docker-Content-Digest") or ""
    if upstream.status == 200 and digest:
        verdict = policy.check(project, match["name"], match["reference"], digest=digest)
        if not verdict.allowed:
            upstream.close()  # unread: the connection is dropped rather than reused
            return _refusal(project, verdict.reason)
    return proxy.respond(request, upstream)


def _catalog(request: HttpRequest) -> HttpResponse:
    """The catalog: the registry's own for portal admins, otherwise only the repositories the caller may pull."""
    claims = _bearer_claims(request)
    if claims is None or _granted(claims, "registry", "catalog", "*"):
        return proxy.forward(request)
    subject = claims.get("sub") or ""
    user = User.objects.filter(username=subject, is_active=True).first() if subject else None
    try:
        names = proxy.catalog_names(system_token([Access("registry", "catalog", ("*",))]))
    except urllib3.exceptions.HTTPError as exc:
        return proxy.registry_unavailable(exc)
    projects = {p.name: p for p in Project.objects.filter(name__in={n.split("/", 1)[0] for n in names})}
    pullable = {name for name, project in projects.items() if "pull" in registry_actions(user, project)}
    visible = sorted(n for n in names if n.split("/", 1)[0] in pullable)
    return _catalog_page(request, visible)


def _catalog_page(request: HttpRequest, names: list[str]) -> JsonResponse:
    """One page of a catalog per the registry API's `n` and `last` parameters."""
    last = request.GET.get("last")
    if last:
        names = [n for n in names if n > last]
    try:
        size = int(request.GET.get("n", "0"))
    except ValueError:
        return proxy.registry_error(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested")
    page = names[:size] if size > 0 else names
    response = JsonResponse({"repositories": page})
    if size > 0 and len(names) > size:
        response["Link"] = f'</v2/_catalog?last={page[-1]}&n={size}>; rel="next"'
    response[proxy.API_VERSION_HEADER[0]] = proxy.API_VERSION_HEADER[1]
    return response


def _authorized(request: HttpRequest) -> bool:
    """True when the request carries the registry's shared secret (compared in constant time)."""
    expected = f"Bearer {settings.REGISTRY_NOTIFY_SECRET}".encode()
    return hmac.compare_digest(request.headers.get("Authorization", "").encode(), expected)


@csrf_exempt
@require_POST
def notifications(request: HttpRequest) -> JsonResponse:
    """Record an envelope of registry events for the worker; 401 without the secret, 400 when not an envelope."""
    if not _authorized(request):
        return JsonResponse({"detail": "Notifications need the registry's shared secret."}, status=401)
    try:
        envelope = json.loads(request.body)
    except (ValueError, RecursionError):
        return JsonResponse({"detail": "The body is not JSON."}, status=400)
    if not isinstance(envelope, dict):
        return JsonResponse({"detail": 'Expected an envelope: {"events": [...]}.'}, status=400)
    return JsonResponse({"received": events.receive(envelope)})


# Routes of the front door, at the root of the site (see portal/urls.py).
urlpatterns = [
    path("service/token", token, name="registry-token"),
    path("service/notifications", notifications, name="registry-notifications"),
    re_path(r"^v2/(?P<path>.*)\Z", registry_v2, name="registry-v2"),
]

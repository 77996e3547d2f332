"""Which registry an image reference comes from, and whether a project may run it.

A container host pulls only images the project may use: repositories of the integrated registry the
user may pull (then the project's run policy decides), or repositories of the external registries
available to the project (enabled global ones and the project's own), within their namespaces.
Anything else is refused here, before the host is ever asked to pull.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from portal.core.audit import Actor
from portal.core.certificates import server_names
from portal.core.errors import Forbidden, Invalid
from portal.core.models import CredentialKind
from projects import policy
from projects.models import Project
from projects.roles import can
from registries.external import in_namespace
from registries.models import ExternalRegistry

INTEGRATED = "integrated"
EXTERNAL = "external"
DOCKER_HUB = "docker.io"
# Every name Docker Hub goes by; a reference without a registry host means Docker Hub.
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
# The pull token's lifetime: long enough for a slow pull of a large image, short enough to be worthless later.
PULL_TOKEN_SECONDS = 1800
# Docker's reference grammar (distribution/reference): path components, tags and digests.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]+)?$")


@dataclass(frozen=True)
class ImageReference:
    """A parsed image reference: registry host (as written, or docker.io), repository, tag and digest."""

    host: str
    repository: str
    tag: str = ""
    digest: str = ""

    @property
    def version(self) -> str:
        """The digest when there is one, else the tag: what the host is asked to pull."""
        return self.digest or self.tag

    @property
    def name(self) -> str:
        """host/repository, the image name to pull."""
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        """The full reference: host/repository[:tag][@digest]."""
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


@dataclass(frozen=True)
class ImageSource:
    """Where an allowed image comes from and how the host authenticates its pull."""

    kind: str  # INTEGRATED or EXTERNAL
    reference: ImageReference
    registry: ExternalRegistry | None = None
    project: Project | None = None
    # The X-Registry-Auth document for the host's pull; never logged or stored.
    auth: dict[str, str] | None = field(default=None, repr=False)

    @property
    def repository(self) -> str:
        """The repository path inside the registry."""
        return self.reference.repository

    @property
    def tag(self) -> str:
        """The tag (latest when neither a tag nor a digest was given)."""
        return self.reference.tag

    @property
    def digest(self) -> str:
        """The digest, when the reference pins one."""
        return self.reference.digest

    @property
    def full_reference(self) -> str:
        """The reference the host pulls and runs."""
        return str(self.reference)

    @property
    def registry_name(self) -> str:
        """The registry's name as the portal shows it."""
        return self.registry.name if self.registry is not None else INTEGRATED


def _bad(reference: str, why: str) -> Invalid:
    """The error for a reference docker itself would not accept."""
    message = f"'{reference}' is not a valid image reference: {why}"
    return Invalid(message, {"image": [message]})


def parse_reference(reference: str) -> ImageReference:
    """Parse an image reference as docker does; Invalid when docker would refuse it."""
    text = (reference or "").strip()
    if not text:
        raise Invalid("An image is required.", {"image": ["This field is required."]})
    if len(text) > 400:
        raise _bad(text[:40] + "...", "it is longer than 400 characters")
    remainder, _, digest = text.partition("@")
    if digest and not _DIGEST.match(digest):
        raise _bad(text, f"'{digest}' is not a digest")
    host = DOCKER_HUB
    first, slash, rest = remainder.partition("/")
    # A first component with '.' or ':' (or localhost) names a registry host, as docker decides.
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.match(first):
            raise _bad(text, f"'{first}' is not a registry host")
        host, remainder = first.lower(), rest
    repository, tag = remainder, ""
    if ":" in remainder.rsplit("/", 1)[-1]:
        repository, tag = remainder.rsplit(":", 1)
        if not _TAG.match(tag):
            raise _bad(text, f"'{tag}' is not a tag")
    components = repository.split("/")
    if not all(_COMPONENT.match(part) for part in components):
        raise _bad(text, "repository names are lowercase letters, digits and separators (. _ -)")
    if host in DOCKER_HUB_HOSTS and len(components) == 1:
        repository = f"library/{repository}"
    if not tag and not digest:
        tag = "latest"
    return ImageReference(host, repository, tag, digest)


def _split_host(host: str) -> tuple[str, int | None]:
    """(host name, port or None) of a registry host as written in a reference."""
    parts = urlsplit(f"//{host}")
    return (parts.hostname or "").lower(), parts.port


def integrated_hosts() -> set[str]:
    """The host[:port] names under which clients reach the portal's own registry."""
    names = set(server_names())
    realm = urlsplit(settings.REGISTRY_TOKEN_REALM)
    if realm.hostname:
        names.add(realm.hostname)
    hosts = set()
    for name in names:
        name = name.lower()
        bracketed = f"[{name}]" if ":" in name else name
        hosts.add(f"{bracketed}:{settings.PORT}")
        if settings.PORT == 443:
            hosts.add(bracketed)
    if realm.hostname and realm.port:
        hosts.add(realm.netloc.lower())
    return hosts


def _matches(registry: ExternalRegistry, host: str) -> bool:
    """Whether a registry's address is the host of a reference (ports compared with the scheme's default)."""
    wanted_name, wanted_port = _split_host(host)
    address = urlsplit(registry.base_url)
    name = (address.hostname or "").lower()
    default = 443 if address.scheme == "https" else 80
    port = address.port or default
    if wanted_name in DOCKER_HUB_HOSTS and name in DOCKER_HUB_HOSTS:
        return True
    return wanted_name == name and (wanted_port or default) == port


def _external(project: Project, reference: ImageReference) -> ExternalRegistry:
    """The available registry serving the reference; Invalid when none is listed or none covers the namespace."""
    candidates = [
        registry
        for registry in ExternalRegistry.objects.available_to(project).select_related("credential")
        if _matches(registry, reference.host)
    ]
    shown = DOCKER_HUB if reference.host in DOCKER_HUB_HOSTS else reference.host
    if not candidates:
        message = f"registry '{shown}' is not in this project's registry list"
        raise Invalid(message, {"image": [message]})
    # The project's own entries first, then the narrowest namespace: the most specific credential wins.
    candidates.sort(key=lambda registry: (registry.project_id is None, -len(registry.namespace)))
    for registry in candidates:
        if in_namespace(reference.repository, registry.namespace):
            return registry
    namespaces = ", ".join(sorted({f"'{r.namespace}'" for r in candidates}))
    message = f"repository '{reference.repository}' is outside the namespaces of registry '{shown}' ({namespaces})"
    raise Invalid(message, {"image": [message]})


def _external_auth(registry: ExternalRegistry, reference: ImageReference) -> dict[str, str] | None:
    """The registry's username and password for the host's pull, when it has a password credential."""
    credential = registry.credential
    if credential is None or credential.kind != CredentialKind.PASSWORD:
        return None
    return {"username": credential.username, "password": credential.password(), "serveraddress": reference.host}


def _integrated(actor: Actor, project: Project, reference: ImageReference) -> Project:
    """The integrated registry's project of the reference, if the role matrix and the run policy allow it."""

    project_name = reference.repository.split("/", 1)[0]
    source = Project.objects.filter(name=project_name).first()
    if source is None or "/" not in reference.repository:
        message = f"project '{project_name}' does not exist in the integrated registry"
        raise Invalid(message, {"image": [message]})
    if not can(actor.user, "pull", source):
        message = f"you may not pull images of project '{project_name}'"
        raise Forbidden(message, {"image": [message]})
    # The image's own project sets its rules, and the project it runs in may add its own (content trust).
    for rules in dict.fromkeys([source, project]):
        verdict = policy.check(rules, reference.repository, reference.version)
        if not verdict.allowed:
            message = f"{reference} may not run: {verdict.reason}"
            raise Forbidden(message, {"image": [message]})
    return source


def _pull_token(actor: Actor, reference: ImageReference) -> dict[str, str]:
    """A pull-only registry token for exactly the image's repository, as the host's X-Registry-Auth."""
    from registries.token import Access, grant, issue

    access = grant(actor.user, [Access("repository", reference.repository, ("pull",))])
    token, _ = issue(actor.name or "wharf-system", access, PULL_TOKEN_SECONDS)
    # dockerd sends a registrytoken as-is ("Authorization: Bearer ...") instead of asking a token service.
    return {"registrytoken": token}


def resolve_image(actor: Actor, project: Project, reference: str, *, with_auth: bool = False) -> ImageSource:
    """Where the image comes from, if the project may run it (Invalid or Forbidden saying why not).

    `with_auth` adds what the host pulls with (a pull token, or the registry's stored credential):
    only the provisioning job asks for it, right before the pull, so no secret is made earlier.
    """
    parsed = parse_reference(reference)
    if parsed.host in integrated_hosts():
        source = _integrated(actor, project, parsed)
        return ImageSource(INTEGRATED, parsed, project=source, auth=_pull_token(actor, parsed) if with_auth else None)
    registry = _external(project, parsed)
    verdict = policy.check(project, parsed.repository, parsed.version, integrated=False)
    if not verdict.allowed:
        message = f"{parsed} may not run: {verdict.reason}"
        raise Forbidden(message, {"image": [message]})
    auth = _external_auth(registry, parsed) if with_auth else None
    return ImageSource(EXTERNAL, parsed, registry=registry, auth=auth)

"""Every change of the external registries (global and per project), and Verify, with audit entries.

A registry is saved only after Verify found a registry at its address that accepts its credential.
Portal admins manage global registries; a project's DevOps administrators manage the project's
own and see the global ones without being able to change them.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from collections.abc import Sequence

import requests
from django.db import transaction
from django.utils import timezone

from portal.core import credentials, trust
from portal.core.addresses import parse_url
from portal.core.audit import Actor, record
from portal.core.credentials import CREDENTIAL_USERS
from portal.core.errors import Conflict, Forbidden, Invalid
from portal.core.models import Credential, CredentialKind, TrustedCertificate
from portal.core.services import require
from portal.core.trust import CERTIFICATE_USERS
from projects.models import Project
from projects.services import register_project_content
from registries.client_auth import Login
from registries.external import ExternalRegistryClient, Found, parse_address
from registries.models import ExternalRegistry

# The integrated registry's name in search results and image URLs.
INTEGRATED = "integrated"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def login_for(credential: Credential | None) -> Login | None:
    """The username and password a password credential presents (None for none or a certificate)."""
    if credential is None or credential.kind != CredentialKind.PASSWORD:
        return None
    return Login(credential.username, credential.password())


def client_for(registry: ExternalRegistry, timeout: float | None = None) -> ExternalRegistryClient:
    """A client of the saved registry with its credential (built where the database may be read)."""
    credential = registry.credential
    client_certificate = credential if credential and credential.kind == CredentialKind.CERTIFICATE else None
    client = ExternalRegistryClient(
        registry.address,
        login_for(credential),
        insecure=registry.insecure,
        api_version=registry.api_version,
        timeout=timeout,
        client_certificate=client_certificate,
    )
    client.auth_type = registry.auth_type
    address = parse_url(client.base_url).address
    client.use_session(address, _shared_session(address, client_certificate))
    return client


# Verifying sessions by (address, client certificate, pinned certificates): building one loads the system
# CA store (tens of milliseconds), far more than a search with cached catalogs takes otherwise.
_SESSIONS: dict[tuple[object, ...], requests.Session] = {}
_SESSIONS_LOCK = threading.Lock()
_MAX_SESSIONS = 256


def _shared_session(address: str, client_certificate: Credential | None) -> requests.Session:
    """The session for the address, reused while its pins and client certificate stay the same."""
    pins = tuple(sorted(TrustedCertificate.objects.filter(address=address).values_list("sha256", flat=True)))
    certificate = (client_certificate.pk, client_certificate.updated) if client_certificate else None
    key = (address, certificate, pins)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
    if session is None:
        session = trust.session(address, client_certificate)
        with _SESSIONS_LOCK:
            if len(_SESSIONS) >= _MAX_SESSIONS:
                _SESSIONS.clear()
            _SESSIONS[key] = session
    return session


def verify(address: str, credential: Credential | None = None, insecure: bool = False) -> Found:
    """Find the registry API and auth at the address; raise the classified failure (or UntrustedCertificate)."""
    parse_address(address, insecure)
    client_certificate = credential if credential and credential.kind == CredentialKind.CERTIFICATE else None
    client = ExternalRegistryClient(
        address, login_for(credential), insecure=insecure, client_certificate=client_certificate
    )
    return client.detect()


def _require_manage(actor: Actor, project: Project | None) -> None:
    """Portal admins manage global registries; a project's admins manage the project's registries."""
    if project is None:
        if not actor.user or not _is_admin(actor):
            raise Forbidden("Global registries are managed by Management Portal administrators.")
        return
    require(actor, "manage_registries", project)


def _is_admin(actor: Actor) -> bool:
    from projects.roles import is_portal_admin

    return is_portal_admin(actor.user)


def _check_name(name: str, project: Project | None, registry: ExternalRegistry | None = None) -> str:
    """The name, unique among global registries and the project's own; Invalid or Conflict otherwise."""
    name = (name or "").strip()
    if not _NAME.match(name):
        message = "A registry name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."
        raise Invalid(message, {"name": [message]})
    if name.lower() == INTEGRATED:
        raise Conflict(f"'{INTEGRATED}' is the name of Wharf's own registry", {"name": ["This name is reserved."]})
    clashes = ExternalRegistry.objects.filter(name__iexact=name)
    if project is not None:
        clashes = clashes.filter(project__isnull=True) | clashes.filter(project=project)
    if registry is not None:
        clashes = clashes.exclude(pk=registry.pk)
    clash = clashes.select_related("project").first()
    if clash is not None:
        where = "a global registry" if clash.is_global else f"a registry of project '{clash.project.name}'"
        raise Conflict(f"registry '{name}' already exists ({where})", {"name": ["This name is taken."]})
    return name


def _check_credential(actor: Actor, credential: Credential | None, project: Project | None) -> None:
    """Only a saved credential the actor may use for the project (or globally) is sent anywhere."""
    if credential is not None and credential.pk is None:
        raise Invalid("Pick a saved credential.", {"credential": ["No such credential."]})
    credentials.require_use(actor, credential, project)


def verify_address(
    actor: Actor,
    address: str,
    credential: Credential | None = None,
    insecure: bool = False,
    project: Project | None = None,
) -> Found:
    """Verify, for someone about to add a registry to the project (None: globally), with what they may send."""
    _require_manage(actor, project)
    _check_credential(actor, credential, project)
    return verify(address, credential, insecure)


@transaction.atomic
def create_registry(
    actor: Actor,
    name: str,
    address: str,
    *,
    credential: Credential | None = None,
    insecure: bool = False,
    project: Project | None = None,
    enabled: bool = True,
) -> ExternalRegistry:
    """Add a global (no project) or project registry after a successful Verify."""
    _require_manage(actor, project)
    name = _check_name(name, project)
    parsed = parse_address(address, insecure)
    _check_credential(actor, credential, project)
    found = verify(parsed.normalized, credential, insecure)
    registry = ExternalRegistry.objects.create(
        name=name,
        address=parsed.normalized,
        namespace=parsed.namespace,
        insecure=insecure,
        enabled=enabled,
        credential=credential,
        project=project,
        api_version=found.api_version,
        auth_type=found.auth_type,
        last_verified=timezone.now(),
        created_by=actor.name,
    )
    record(actor, "create", "registry", name, project, address=registry.address, insecure=insecure)
    return registry


_UNSET = object()


@transaction.atomic
def update_registry(
    actor: Actor,
    registry: ExternalRegistry,
    *,
    enabled: bool | None = None,
    credential: Credential | None | object = _UNSET,
    name: str | None = None,
    address: str | None = None,
    insecure: bool | None = None,
) -> ExternalRegistry:
    """Enable or disable a registry, rename it, or change its address, insecure tick or credential (a changed
    address, tick or credential is verified again before saving)."""
    _require_manage(actor, registry.project)
    changed: list[str] = []
    if name is not None and name.strip() != registry.name:
        registry.name = _check_name(name, registry.project, registry)
        changed.append("name")
    reach = _changed_reach(registry, address, insecure, credential)
    if reach:
        new_insecure = registry.insecure if insecure is None else insecure
        parsed = parse_address(registry.address if address is None else address, new_insecure)
        new_credential = registry.credential if credential is _UNSET else credential
        _check_credential(actor, new_credential, registry.project)  # type: ignore[arg-type]
        found = verify(parsed.normalized, new_credential, new_insecure)  # type: ignore[arg-type]
        registry.address, registry.namespace, registry.insecure = parsed.normalized, parsed.namespace, new_insecure
        registry.credential = new_credential  # type: ignore[assignment]
        registry.api_version, registry.auth_type = found.api_version, found.auth_type
        registry.last_verified = timezone.now()
        changed += reach
    if enabled is not None and enabled != registry.enabled:
        registry.enabled = enabled
        changed.append("enabled")
    if changed:
        registry.save()
        detail = {"fields": changed, "enabled": registry.enabled, "address": registry.address}
        record(actor, "update", "registry", registry.name, registry.project, **detail)
    return registry


def _changed_reach(
    registry: ExternalRegistry, address: str | None, insecure: bool | None, credential: Credential | None | object
) -> list[str]:
    """Which of address, insecure and credential the update changes (each means verifying again)."""
    changed = []
    if (
        address is not None
        and parse_address(address, registry.insecure if insecure is None else insecure).normalized != registry.address
    ):
        changed.append("address")
    if insecure is not None and insecure != registry.insecure:
        changed.append("insecure")
    if credential is not _UNSET and credential != registry.credential:
        changed.append("credential")
    return changed


@transaction.atomic
def delete_registry(actor: Actor, registry: ExternalRegistry) -> None:
    """Remove a registry: global ones by portal admins only, a project's by its admins."""
    _require_manage(actor, registry.project)
    name, project = registry.name, registry.project
    registry.delete()
    record(actor, "delete", "registry", name, project)


def credential_users(credentials: Sequence[Credential]) -> dict[int, str]:
    """{credential pk: "registry 'hub-mirror'" (and up to 5 in all)} for the credentials registries use."""
    names: dict[int, list[str]] = defaultdict(list)
    rows = ExternalRegistry.objects.filter(credential__in=[c.pk for c in credentials])
    for credential_id, name in rows.values_list("credential_id", "name"):
        names[credential_id].append(name)
    return {pk: ", ".join(f"registry '{name}'" for name in found[:5]) for pk, found in names.items()}


def certificate_users(certificates: Sequence[TrustedCertificate]) -> dict[int, str]:
    """{certificate pk: "registry 'mirror'"} for the pinned certificates whose address a registry connects to."""
    at: dict[str, list[str]] = defaultdict(list)
    https = ExternalRegistry.objects.filter(address__startswith="https://")
    # base_url reads the namespace too: deferring it cost one query per registry.
    for registry in https.only("name", "address", "namespace"):
        at[parse_url(registry.base_url).address].append(f"registry '{registry.name}'")
    return {c.pk: ", ".join(at[c.address]) for c in certificates if at.get(c.address)}


register_project_content(ExternalRegistry, "registry", "registries")
CREDENTIAL_USERS.append(credential_users)
CERTIFICATE_USERS.append(certificate_users)

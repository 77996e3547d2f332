"""Scanner registrations (Configuration > Vulnerability Scanning > Scanners) and the scanner each project uses:
every change with its audit event. Portal administrators manage registrations; a project's administrators pick
its scanner among the enabled ones.

The built-in scanner is always registered (a data migration creates it, `builtin_scanner` again should it be
missing) and is the default until another registration is made default; it cannot be deleted. The secrets (Clair's
PSK, an adapter's Authorization) are encrypted at rest and never answered back: an empty value on update keeps
the stored one, `clear_psk`/`clear_authorization` remove it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.core.addresses import AddressError, parse_url
from portal.core.audit import Actor, record
from portal.core.errors import Conflict, DomainError, Forbidden, Invalid
from portal.core.models import Outcome
from portal.core.permissions import is_portal_admin
from portal.core.secrets import encrypt
from portal.core.trust import UntrustedCertificate
from projects.models import Project
from projects.roles import can
from scanning.clair import decode_psk
from scanning.models import (
    BUILTIN_SCANNER,
    ProjectScanner,
    ScannerKind,
    ScannerRegistration,
)

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NAME_HELP = "Use lowercase letters, digits, '.', '_' and '-' (at most 64), starting with a letter or digit."
URL_FIELDS = {ScannerKind.CLAIR: ("indexer_url", "matcher_url"), ScannerKind.HARBOR_ADAPTER: ("adapter_url",)}
EDITABLE = ("description", "indexer_url", "matcher_url", "adapter_url", "psk_issuer", "enabled")


def require_admin(actor: Actor) -> None:
    """Scanner registrations are the portal administrators'."""
    if not is_portal_admin(actor.user):
        raise Forbidden("Scanners are managed by Management Portal administrators.")


# --- reading ---------------------------------------------------------------------------------------------


def builtin_scanner() -> ScannerRegistration:
    """The built-in scanner's registration (created again, as the default if there is none, should it be gone)."""
    found = ScannerRegistration.objects.filter(kind=ScannerKind.BUILTIN).first()
    if found is not None:
        return found
    with transaction.atomic():
        no_default = not ScannerRegistration.objects.select_for_update().filter(is_default=True).exists()
        try:
            with transaction.atomic():
                return ScannerRegistration.objects.create(
                    name=BUILTIN_SCANNER, kind=ScannerKind.BUILTIN, is_default=no_default
                )
        except IntegrityError:
            return ScannerRegistration.objects.get(kind=ScannerKind.BUILTIN)


def default_scanner() -> ScannerRegistration:
    """The registration that scans the images of projects that picked none."""
    found = ScannerRegistration.objects.filter(is_default=True).first()
    return found or builtin_scanner()


def scanner_for_project(project: Project | None) -> ScannerRegistration:
    """The project's own pick when it is enabled, else the default."""
    if project is not None:
        choice = ProjectScanner.objects.select_related("registration").filter(project=project).first()
        if choice is not None and choice.registration.enabled:
            return choice.registration
    return default_scanner()


def scanner_for_repository(repository: str) -> ScannerRegistration:
    """The scanner of the project a repository ("project/name") belongs to."""
    return scanner_for_project(Project.objects.filter(name=repository.split("/", 1)[0]).first())


def project_choice(project: Project) -> ScannerRegistration | None:
    """The scanner the project picked (None: it uses the default)."""
    choice = ProjectScanner.objects.select_related("registration").filter(project=project).first()
    return choice.registration if choice else None


# --- changes ---------------------------------------------------------------------------------------------


def _url(value: Any, field: str, *, required: bool) -> str:
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        if required:
            raise Invalid(f"Give the {field.replace('_', ' ')}.", {field: ["Required."]})
        return ""
    try:
        parse_url(
            text, default_scheme=None, schemes=("http", "https"), example="https://scanner.example:8443", field=field
        )
    except AddressError as exc:
        raise Invalid(exc.message, {field: [exc.message]}) from None
    if len(text) > 1000:
        raise Invalid("The URL is too long.", {field: ["At most 1000 characters."]})
    return text.rstrip("/")


def _check(registration: ScannerRegistration) -> None:
    """The fields the registration's kind needs, valid."""
    kind = registration.kind
    registration.indexer_url = _url(registration.indexer_url, "indexer_url", required=kind == ScannerKind.CLAIR)
    registration.matcher_url = _url(registration.matcher_url, "matcher_url", required=False)
    registration.adapter_url = _url(
        registration.adapter_url, "adapter_url", required=kind == ScannerKind.HARBOR_ADAPTER
    )
    # What the kind does not use is not kept (a Clair's PSK must not linger on an adapter).
    if kind != ScannerKind.CLAIR:
        registration.indexer_url = registration.matcher_url = registration.psk = registration.psk_issuer = ""
    if kind != ScannerKind.HARBOR_ADAPTER:
        registration.adapter_url = registration.authorization = ""
    registration.description = (registration.description or "").strip()[:255]
    registration.psk_issuer = (registration.psk_issuer or "").strip()[:100]


def _secrets(registration: ScannerRegistration, data: dict[str, Any]) -> None:
    """Encrypt the secrets given; an empty one keeps what is stored, clear_* removes it."""
    psk = (data.get("psk") or "").strip()
    if psk:
        try:
            decode_psk(psk)
        except Invalid as exc:
            raise Invalid(exc.message, {"psk": [exc.message]}) from None
        registration.psk = encrypt(psk)
    elif data.get("clear_psk"):
        registration.psk = ""
    authorization = (data.get("authorization") or "").strip()
    if authorization:
        if "\n" in authorization or "\r" in authorization:
            message = "An Authorization header value is one line."
            raise Invalid(message, {"authorization": [message]})
        registration.authorization = encrypt(authorization)
    elif data.get("clear_authorization"):
        registration.authorization = ""


def _save(registration: ScannerRegistration, fields: list[str] | None = None) -> None:
    try:
        with transaction.atomic():
            registration.save(update_fields=fields)
    except IntegrityError as exc:
        message = f"A scanner named '{registration.name}' already exists."
        raise Conflict(message, {"name": [message]}) from exc


def create_scanner(actor: Actor, data: dict[str, Any]) -> ScannerRegistration:
    """Register a Clair v4 deployment or a Harbor scanner adapter (the built-in one is registered already)."""
    require_admin(actor)
    name = (data.get("name") or "").strip()
    if not NAME.match(name):
        raise Invalid(NAME_HELP, {"name": [NAME_HELP]})
    kind = data.get("kind")
    if kind not in (ScannerKind.CLAIR, ScannerKind.HARBOR_ADAPTER):
        message = "Choose Clair v4 (clair) or a Harbor scanner adapter (harbor_adapter)."
        raise Invalid(message, {"kind": [message]})
    registration = ScannerRegistration(name=name, kind=kind)
    for field in EDITABLE:
        if field in data:
            setattr(registration, field, data[field])
    _check(registration)
    _secrets(registration, data)
    if data.get("is_default") and not registration.enabled:
        message = "A disabled scanner cannot be the default."
        raise Invalid(message, {"enabled": [message]})
    _save(registration)
    record(actor, "create", "scanner", name, kind=kind, url=registration.endpoint)
    if data.get("is_default"):
        make_default(actor, registration)
    return registration


def update_scanner(actor: Actor, registration: ScannerRegistration, data: dict[str, Any]) -> ScannerRegistration:
    """Change a registration's addresses, secrets, description or whether it is enabled (not its name or kind).
    The default cannot be disabled: make another one the default first."""
    require_admin(actor)
    # Whether it is the default is read again: make_default may have changed it since this row was read.
    registration.is_default = ScannerRegistration.objects.filter(pk=registration.pk, is_default=True).exists()
    if registration.builtin and any(field in data for field in EDITABLE if field not in ("description", "enabled")):
        message = "The built-in scanner has no address or secrets to change."
        raise Invalid(message, {"kind": [message]})
    for field in EDITABLE:
        if field in data:
            setattr(registration, field, data[field])
    if not registration.enabled and registration.is_default:
        message = "The default scanner cannot be disabled: make another scanner the default first."
        raise Invalid(message, {"enabled": [message]})
    if not registration.builtin:
        _check(registration)
        _secrets(registration, data)
    registration.updated = timezone.now()
    # Never is_default: make_default alone moves it.
    _save(registration, [*EDITABLE, "psk", "authorization", "updated"])
    changed = sorted(field for field in (*EDITABLE, "psk", "authorization") if data.get(field) not in (None, ""))
    record(actor, "update", "scanner", registration.name, fields=changed)
    return registration


def delete_scanner(actor: Actor, registration: ScannerRegistration) -> None:
    """Remove a registration; projects that used it go back to the default. Not the built-in one, nor the default."""
    require_admin(actor)
    registration.refresh_from_db()
    if registration.builtin:
        raise Conflict("The built-in scanner cannot be deleted.")
    if registration.is_default:
        raise Conflict(f"'{registration.name}' is the default scanner: make another scanner the default first.")
    name, projects = registration.name, list(registration.projects.values_list("project__name", flat=True))
    registration.delete()
    record(actor, "delete", "scanner", name, projects=projects)


def make_default(actor: Actor, registration: ScannerRegistration) -> ScannerRegistration:
    """Make the registration the one scanner projects use unless they picked another."""
    require_admin(actor)
    if not registration.enabled:
        message = f"'{registration.name}' is disabled: enable it before making it the default."
        raise Invalid(message, {"enabled": [message]})
    with transaction.atomic():
        ScannerRegistration.objects.select_for_update().filter(is_default=True).exclude(pk=registration.pk).update(
            is_default=False
        )
        ScannerRegistration.objects.filter(pk=registration.pk).update(is_default=True, updated=timezone.now())
    registration.refresh_from_db()
    record(actor, "update", "scanner", registration.name, default=True)
    return registration


@dataclass(frozen=True)
class TestResult:
    """What Test Connection found: whether the scanner answered as it should, in words, and an adapter's metadata."""

    ok: bool
    message: str
    metadata: dict[str, Any] | None = None


def test_scanner(actor: Actor, registration: ScannerRegistration) -> TestResult:
    """Test Connection: the adapter's metadata, Clair's index state (and whether its matcher is ready), the
    built-in database's size. The result is kept on the registration. An unknown HTTPS certificate is raised
    (UntrustedCertificate) for the trust dialog."""
    require_admin(actor)
    from scanning import remote
    from scanning.models import Vulnerability

    metadata = None
    try:
        if registration.kind == ScannerKind.CLAIR:
            message = remote.clair_client(registration).check()
        elif registration.kind == ScannerKind.HARBOR_ADAPTER:
            described = remote.adapter_client(registration).metadata()
            metadata = described.as_dict()
            scanner = described.scanner
            message = f"{scanner.name} {scanner.version} by {scanner.vendor or 'an unnamed vendor'}".strip()
        else:
            message = f"the vulnerability database holds {Vulnerability.objects.count()} advisories"
        ok = True
    except UntrustedCertificate:
        raise
    except DomainError as exc:
        ok, message = False, exc.message
    ScannerRegistration.objects.filter(pk=registration.pk).update(
        last_tested=timezone.now(), last_test_ok=ok, last_test_result=message[:2000]
    )
    registration.refresh_from_db()
    record(
        actor,
        "test",
        "scanner",
        registration.name,
        outcome=Outcome.SUCCESS if ok else Outcome.FAILURE,
        result=message[:500],
    )
    return TestResult(ok, message, metadata)


def set_project_scanner(actor: Actor, project: Project, registration: ScannerRegistration | None) -> None:
    """A project's scanner (None: the default's). Its administrators pick among the enabled registrations."""
    if not can(actor.user, "manage_settings", project):
        raise Forbidden(f"Only administrators of project '{project.name}' may choose its scanner.")
    if registration is not None and not registration.enabled:
        message = f"The scanner '{registration.name}' is disabled."
        raise Invalid(message, {"scanner": [message]})
    if registration is None:
        ProjectScanner.objects.filter(project=project).delete()
    else:
        ProjectScanner.objects.update_or_create(project=project, defaults={"registration": registration})
    record(actor, "update", "project", project.name, project, scanner=registration.name if registration else None)

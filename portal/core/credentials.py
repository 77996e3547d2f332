"""Credentials: named passwords and client certificates for connecting out, and every change of them.

Secrets (passwords, private keys) are encrypted at rest, never returned, logged or audited. A
credential that something uses cannot be deleted: the apps that use credentials register a function
in CREDENTIAL_USERS that names, for each of a list of credentials, its users ("registry 'hub-mirror'").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from django.db import transaction
from django.db.models import QuerySet

from portal.core.audit import Actor, record
from portal.core.certificates import fingerprint
from portal.core.errors import Conflict, Forbidden, Invalid
from portal.core.models import Credential, CredentialKind, User
from portal.core.permissions import can, is_portal_admin, visible_projects
from portal.core.secrets import encrypt
from portal.core.services import require
from portal.core.usages import usages_by_pk

# Things that use credentials: each app registers a function that, given credentials, returns
# {credential pk: e.g. "registry 'hub-mirror'"}, leaving out those it does not use. It takes a list
# so that a page of credentials costs one query per app, not one per credential.
CREDENTIAL_USERS: list[Callable[[Sequence[Credential]], dict[int, str]]] = []


# Who may use a credential: portal admins any; a project's administrators only their project's own
# credentials, for that project's registries and hosts. The project action that makes one of them:
PROJECT_ACTION = "manage_registries"


def visible_credentials(user: User | None) -> QuerySet[Credential]:
    """The credentials whose names the user may see: all for portal admins, else their projects' own."""
    if is_portal_admin(user):
        return Credential.objects.all()
    return Credential.objects.filter(project__in=visible_projects(user, PROJECT_ACTION))


def usable_credentials(user: User | None, project: Any = None) -> QuerySet[Credential]:
    """The credentials the user may pick for something of `project` (None: something global)."""
    if is_portal_admin(user):
        return Credential.objects.all()
    if project is None or not can(user, PROJECT_ACTION, project):
        return Credential.objects.none()
    return Credential.objects.filter(project=project)


def require_use(actor: Actor, credential: Credential | None, project: Any = None) -> None:
    """Forbidden unless the actor may send this credential for something of `project` (None: global).

    A credential is only ever sent to an address chosen by whoever may use it: a project admin
    cannot point a global credential, or another project's, at an address of their choosing.
    """
    if credential is None or is_portal_admin(actor.user):
        return
    if project is not None and credential.project_id == project.pk and can(actor.user, PROJECT_ACTION, project):
        return
    where = f"project '{project.name}'" if project is not None else "the whole portal"
    message = (
        f"credential '{credential.name}' may not be used for {where}: a project's administrators use only "
        "their project's own credentials; global ones are for Management Portal administrators"
    )
    raise Forbidden(message, {"credential": ["Pick one of this project's credentials."]})


def _require_owner(actor: Actor, project: Any) -> None:
    """Managing a global credential takes a portal admin; a project's own, that project's admins."""
    if project is None:
        require(actor, "manage_credentials")
    else:
        require(actor, PROJECT_ACTION, project)


@dataclass(frozen=True)
class CertificateInfo:
    """The public facts of a certificate, for lists and the trust dialog."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    sha1: str
    sha256: str


def certificate_info(pem: str) -> CertificateInfo:
    """Subject, issuer, validity and thumbprints of a PEM certificate; Invalid when it does not parse."""
    cert = load_certificate(pem)
    return CertificateInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha1=fingerprint(cert, hashes.SHA1()),
        sha256=fingerprint(cert, hashes.SHA256()),
    )


def load_certificate(pem: str, field: str = "certificate") -> x509.Certificate:
    """The first certificate of a PEM text; Invalid naming the field when there is none."""
    try:
        return x509.load_pem_x509_certificate(pem.strip().encode())
    except ValueError as exc:
        message = "The certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----)."
        raise Invalid(message, {field: [message]}) from exc


def _check_key_pair(certificate_pem: str, private_key_pem: str) -> None:
    """Refuse a certificate and private key that do not parse or do not belong together."""
    cert = load_certificate(certificate_pem)
    try:
        key = serialization.load_pem_private_key(private_key_pem.strip().encode(), password=None)
    except (ValueError, TypeError):
        # The exception text may quote key material, so it is not chained.
        message = "The private key is not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)."
        raise Invalid(message, {"private_key": [message]}) from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
        message = "The private key does not match the certificate's public key."
        raise Invalid(message, {"private_key": [message]})


def _check_name(name: str, credential: Credential | None = None) -> str:
    name = name.strip()
    if not name:
        raise Invalid("A credential name is required.", {"name": ["This field is required."]})
    others = Credential.objects.filter(name__iexact=name)
    if credential is not None:
        others = others.exclude(pk=credential.pk)
    if others.exists():
        raise Conflict(f"credential '{name}' already exists")
    return name


def _required(value: str | None, field: str, label: str) -> str:
    if not value or not value.strip():
        raise Invalid(f"{label} is required.", {field: ["This field is required."]})
    return value


@transaction.atomic
def create_credential(
    actor: Actor,
    name: str,
    kind: str,
    *,
    username: str = "",
    password: str = "",
    certificate: str = "",
    private_key: str = "",
    project: Any = None,
) -> Credential:
    """Create a username/password or certificate credential: global (portal admins) or a project's own."""
    _require_owner(actor, project)
    name = _check_name(name)
    credential = Credential(name=name, kind=kind, project=project, created_by=actor.name)
    if kind == CredentialKind.PASSWORD:
        credential.username = _required(username, "username", "A username").strip()
        credential.encrypted_secret = encrypt(_required(password, "password", "A password"))
    elif kind == CredentialKind.CERTIFICATE:
        _required(certificate, "certificate", "A public certificate")
        _required(private_key, "private_key", "A private key")
        _check_key_pair(certificate, private_key)
        credential.certificate_pem = certificate.strip() + "\n"
        credential.encrypted_secret = encrypt(private_key.strip() + "\n")
    else:
        message = f"kind must be one of {', '.join(CredentialKind.values)}"
        raise Invalid(message, {"kind": [message]})
    credential.save()
    record(actor, "create", "credential", name, project=project, kind=kind)
    return credential


@transaction.atomic
def update_credential(
    actor: Actor,
    credential: Credential,
    *,
    name: str | None = None,
    username: str | None = None,
    password: str | None = None,
    certificate: str | None = None,
    private_key: str | None = None,
) -> Credential:
    """Change a credential (its owners); a secret left out (None or "") stays as it is."""
    _require_owner(actor, credential.project)
    changed: list[str] = []
    if name is not None and name.strip() != credential.name:
        credential.name = _check_name(name, credential)
        changed.append("name")
    if credential.kind == CredentialKind.PASSWORD:
        if username is not None and username.strip() != credential.username:
            credential.username = _required(username, "username", "A username").strip()
            changed.append("username")
        if password:
            credential.encrypted_secret = encrypt(password)
            changed.append("password")
    elif certificate or private_key:
        new_certificate = certificate.strip() + "\n" if certificate else credential.certificate_pem
        new_key = private_key.strip() + "\n" if private_key else credential.private_key_pem()
        _check_key_pair(new_certificate, new_key)
        if new_certificate != credential.certificate_pem:
            credential.certificate_pem = new_certificate
            changed.append("certificate")
        if private_key:
            credential.encrypted_secret = encrypt(new_key)
            changed.append("private_key")
    if changed:
        credential.save()
        # Only the names of the changed fields: never a secret's value.
        record(actor, "update", "credential", credential.name, fields=changed)
    return credential


def credentials_usages(credentials: Sequence[Credential]) -> dict[int, list[str]]:
    """What uses each credential, by pk, as phrases like "registry 'hub-mirror'" (one query per app)."""
    return usages_by_pk(credentials, CREDENTIAL_USERS)


def credential_usages(credential: Credential) -> list[str]:
    """What uses the credential, as phrases like "registry 'hub-mirror'"."""
    return credentials_usages([credential])[credential.pk]


@transaction.atomic
def delete_credential(actor: Actor, credential: Credential) -> None:
    """Delete a credential nothing uses (its owners)."""
    _require_owner(actor, credential.project)
    usages = credential_usages(credential)
    if usages:
        raise Conflict(f"credential '{credential.name}' is used by {', '.join(usages)}")
    name = credential.name
    credential.delete()
    record(actor, "delete", "credential", name)

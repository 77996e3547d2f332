"""Registry bearer tokens per the Docker token spec: scopes in, signed JWTs out (ES256, libtrust key ID)."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from django.conf import settings

from portal.core.certificates import pki_paths

if TYPE_CHECKING:
    from portal.core.models import User

# type:name:actions, where the name may itself hold ':' only for a port-qualified registry
# (which a repository scope never does) - so split on the first and last colon.
_SCOPE = re.compile(r"^(?P<type>[a-z0-9]+)(?:\([a-z0-9]+\))?:(?P<name>.+):(?P<actions>[a-z*,]*)$")


@dataclass(frozen=True)
class Access:
    """One resource a token grants, with the actions allowed on it."""

    type: str
    name: str
    actions: tuple[str, ...] = field(default=())

    def claim(self) -> dict[str, object]:
        """The access entry of the JWT."""
        return {"type": self.type, "name": self.name, "actions": list(self.actions)}


def parse_scope(scope: str) -> list[Access]:
    """`repository:proj/app:pull,push` (several separated by spaces) as Access requests; bad ones dropped."""
    requested = []
    for item in scope.split():
        match = _SCOPE.match(item)
        if match:
            actions = tuple(sorted({a for a in match["actions"].split(",") if a}))
            requested.append(Access(match["type"], match["name"], actions))
    return requested


def libtrust_key_id(public_key: PublicKeyTypes) -> str:
    """The key ID distribution expects in the JWT header: libtrust's fingerprint of the public key."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


@functools.cache
def _signing_key() -> tuple[object, str]:
    """The token-signing private key and its key ID (read once per process)."""
    key = serialization.load_pem_private_key(pki_paths().token_key.read_bytes(), None)
    return key, libtrust_key_id(key.public_key())


def issue(subject: str, access: list[Access], lifetime_seconds: int) -> tuple[str, int]:
    """A signed token for the subject granting exactly `access`; returns (token, issued-at)."""
    key, kid = _signing_key()
    now = int(time.time())
    claims = {
        "iss": settings.TOKEN_ISSUER,
        "sub": subject,
        "aud": settings.REGISTRY_SERVICE,
        "exp": now + lifetime_seconds,
        "nbf": now - 5,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "access": [a.claim() for a in access],
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid}), now


def system_token(access: list[Access], lifetime_seconds: int = 300) -> str:
    """A token the portal itself uses to talk to the registry (events repair, deletion, GC)."""
    return issue("wharf-system", access, lifetime_seconds)[0]


def grant(user: User | None, requested: list[Access]) -> list[Access]:
    """What of the requested access the role matrix allows the user (None: anonymous); denied entries are left out."""
    from projects.roles import is_portal_admin, registry_actions_by_name

    by_project: dict[str, set[str] | None] = {}
    granted = []
    for request in requested:
        if request.type == "registry" and request.name == "catalog":
            if "*" in request.actions and is_portal_admin(user):
                granted.append(Access("registry", "catalog", ("*",)))
            continue
        if request.type != "repository" or "/" not in request.name:
            continue
        project_name = request.name.split("/", 1)[0]
        if project_name not in by_project:
            by_project[project_name] = registry_actions_by_name(user, project_name)
        allowed = by_project[project_name] or set()
        actions = allowed if "*" in request.actions else allowed & set(request.actions)
        if actions:
            granted.append(Access("repository", request.name, tuple(sorted(actions))))
    return granted


@functools.cache
def _verifying_key() -> object:
    """The public half of the token-signing key."""
    return _signing_key()[0].public_key()


def verify(token: str) -> dict[str, Any] | None:
    """The claims of a registry token this portal signed and that is still valid; None otherwise."""
    try:
        return jwt.decode(
            token,
            _verifying_key(),
            algorithms=["ES256"],
            audience=settings.REGISTRY_SERVICE,
            issuer=settings.TOKEN_ISSUER,
            leeway=5,
        )
    except jwt.PyJWTError:
        return None

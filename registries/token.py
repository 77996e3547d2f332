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


def issue(subject: str, access: list[Access], lifetime_seconds: int, audience: str | None = None) -> tuple[str, int]:
    """A signed token for the subject granting exactly `access` to the audience (default: the registry);
    returns (token, issued-at)."""
    key, kid = _signing_key()
    now = int(time.time())
    claims = {
        "iss": settings.TOKEN_ISSUER,
        "sub": subject,
        "aud": audience or settings.REGISTRY_SERVICE,
        "exp": now + lifetime_seconds,
        "nbf": now - 5,
        "iat": now,
        "jti": secrets.token_urlsafe(16),
        "access": [a.claim() for a in access],
    }
    return jwt.encode(claims, key, algorithm="ES256", headers={"kid": kid}), now


def system_token(access: list[Access], lifetime_seconds: int = 300, audience: str | None = None) -> str:
    """A token the portal itself uses to talk to the registry (events repair, deletion, GC) or to notary."""
    return issue("wharf-system", access, lifetime_seconds, audience)[0]


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


# What notary checks on a GUN: pull to read trust data, push (with pull) to publish signatures. Deleting
# trust data ("*") is the portal's own business (repository deletion), never granted to a client.
NOTARY_ACTIONS = frozenset({"pull", "push"})


def notary_repository(gun: str) -> str | None:
    """The registry repository a notary GUN names (`<portal host>[:port]/<project>/<repo>`), or None when the
    GUN's host is not one of the portal's names: docker names trust data after the registry host it pushed to."""
    from portal.core.certificates import server_names

    host, separator, repository = gun.partition("/")
    if not separator or "/" not in repository:
        return None
    hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    if hostname.strip("[]") not in server_names():
        return None
    return repository


def grant_notary(user: User | None, requested: list[Access]) -> list[Access]:
    """What of the requested notary access the role matrix allows: a GUN gets the pull and push its image
    repository would, so developers and above sign and whoever may pull the image reads its trust data."""
    granted = []
    for request in requested:
        repository = notary_repository(request.name) if request.type == "repository" else None
        if repository is None:
            continue
        actions = set(request.actions) & NOTARY_ACTIONS if "*" not in request.actions else set(NOTARY_ACTIONS)
        for allowed in grant(user, [Access("repository", repository, tuple(sorted(actions)))]):
            granted.append(Access("repository", request.name, allowed.actions))
    return granted


@functools.cache
def _verifying_key() -> object:
    """The public half of the token-signing key."""
    return _signing_key()[0].public_key()


def verify(token: str, audience: str | None = None) -> dict[str, Any] | None:
    """The claims of a token this portal signed for the audience (default: the registry) that is still valid;
    None otherwise."""
    try:
        return jwt.decode(
            token,
            _verifying_key(),
            algorithms=["ES256"],
            audience=audience or settings.REGISTRY_SERVICE,
            issuer=settings.TOKEN_ISSUER,
            leeway=5,
        )
    except jwt.PyJWTError:
        return None

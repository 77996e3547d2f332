"""Pulling an image for a scan another system asked for (the Harbor adapter API): the registry client for the
registry the caller named, with the Authorization header it gave, that connects only to addresses allowed.

A caller of the adapter API names any URL; without a guard the scanner would fetch from the portal's own network
(its registry, its database's neighbours, a cloud metadata address) on anyone's say. So every connection the
client opens — to the registry, to the token realm its challenge names, to the storage a blob redirects to — is
checked once the socket is connected, against the peer's actual address (no DNS answer changed between a check and
the connect can slip by): public addresses only, plus the networks an administrator lists in
WHARF_SCANNER_ADAPTER_ALLOWED_NETWORKS.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import socket
from typing import Any

import requests
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from portal.core.addresses import AddressError, parse_url
from portal.core.errors import RemoteUnreachable
from registries.client import TIMEOUT, RegistryClient
from registries.client_auth import Auth, ChallengeAuth, Login, Transport
from scanning.harbor_adapter import InvalidField

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressNotAllowed(RemoteUnreachable):
    """The registry (or where it sent the scanner) is on an address the scanner may not connect to."""

    def __init__(self, address: str) -> None:
        super().__init__(
            f"the scanner may not connect to {address}: it is not a public address and not in "
            "WHARF_SCANNER_ADAPTER_ALLOWED_NETWORKS",
            transient=False,
        )


def allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The networks the administrator allows besides public addresses."""
    return [ipaddress.ip_network(network, strict=False) for network in settings.SCANNER_ADAPTER_ALLOWED_NETWORKS]


def address_allowed(address: IpAddress) -> bool:
    """Whether the scanner may connect to the address: a public one, or one in an allowed network."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in network for network in allowed_networks()):
        return True
    return address.is_global and not address.is_multicast


def check_registry_url(url: str) -> str:
    """The registry URL of a scan request, without a trailing slash: http(s), and, when its host is written as an
    address (or is localhost), an allowed one. InvalidField (422) otherwise; names are checked when connecting."""
    try:
        server = parse_url(url, default_scheme=None, field="registry.url")
    except AddressError as exc:
        raise InvalidField(exc.message, {"registry.url": [exc.message]}) from None
    host = "127.0.0.1" if server.host == "localhost" else server.host
    try:
        literal = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        literal = None
    if literal is not None and not address_allowed(literal):
        message = str(AddressNotAllowed(server.host))
        raise InvalidField(message, {"registry.url": [message]})
    return url.strip().rstrip("/")


def _guard(sock: socket.socket) -> None:
    """Close the connected socket and refuse when its peer is not an allowed address."""
    peer = sock.getpeername()[0]
    if not address_allowed(ipaddress.ip_address(peer.split("%")[0])):
        sock.close()
        raise AddressNotAllowed(peer)


class _GuardedHTTPConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _guard(sock)
        return sock


class _GuardedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _guard(sock)
        return sock


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


GUARDED_POOLS = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


def guard_session(session: requests.Session) -> requests.Session:
    """Make every connection the session opens check its peer's address (the TLS settings it has stay)."""
    for adapter in session.adapters.values():
        manager = getattr(adapter, "poolmanager", None)
        if manager is not None:
            manager.pool_classes_by_scheme = GUARDED_POOLS
    return session


class GuardedRegistryClient(RegistryClient):
    """A registry client whose sessions (registry, token realm, redirects) connect only to allowed addresses."""

    def session_for(self, url: str) -> requests.Session:
        session = super().session_for(url)
        if not getattr(session, "_wharf_guarded", False):
            guard_session(session)
            session._wharf_guarded = True  # type: ignore[attr-defined]
        return session


class FixedAuthorization:
    """The caller's own `Bearer` header, sent with every request as the spec says; a 401 to it stands."""

    kind = "bearer"

    def __init__(self, value: str) -> None:
        self._value = value

    def header(self, scopes: tuple[str, ...]) -> str | None:
        """The header as the caller gave it."""
        return self._value

    def answer(self, client: Transport, response: Any, scopes: tuple[str, ...]) -> str | None:
        """Nothing better to send: the registry refused the caller's token."""
        return None


def auth_for(authorization: str) -> Auth:
    """How to authenticate with the caller's header: a Bearer token as it is; Basic credentials (Harbor's robot
    account) sent up front and exchanged for a token when the registry's challenge asks, as the spec describes."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "basic":
        try:
            username, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidField(
                "registry.authorization: the Basic credentials are not base64 of user:password",
                {"registry.authorization": ["Not base64 of user:password."]},
            ) from None
        return ChallengeAuth(Login(username, password), kind="basic")
    if scheme.lower() == "bearer":
        return FixedAuthorization(authorization)
    return ChallengeAuth()


def registry_client(url: str, authorization: str, timeout: float | tuple[float, float] = TIMEOUT) -> RegistryClient:
    """The client that pulls the artifact of a scan request (HTTPS verified through the trust flow)."""
    return GuardedRegistryClient(check_registry_url(url), auth_for(authorization), timeout=timeout)

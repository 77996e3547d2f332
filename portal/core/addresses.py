"""The one parser of network addresses: URLs of registries, hosts and endpoints, and the "host:port" pins use.

A URL is split once, here, into scheme, host, port and path; a missing port becomes the scheme's
default (443/80 for registries and certificates, 2376/2375 for Docker hosts), IPv6 hosts lose
their brackets, and host names are lowercased. A pinned certificate is kept under the
"host:port" address of the server it was presented by (`Url.address`, `address_of`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from portal.core.errors import Invalid

WEB_SCHEMES = ("http", "https")
DEFAULT_PORTS: Mapping[str, int] = {"https": 443, "http": 80}


class AddressError(Invalid):
    """An address that cannot be parsed; `problem` says which part is wrong, for callers with their own wording.

    Problems: "scheme_missing", "malformed", "scheme", "host", "port".
    """

    def __init__(self, problem: str, message: str, errors: dict[str, list[str]]) -> None:
        self.problem = problem
        super().__init__(message, errors)


@dataclass(frozen=True)
class Url:
    """A parsed http(s) URL: host lowercased and without IPv6 brackets, port given or the scheme's default."""

    scheme: str
    host: str
    port: int
    path: str = ""

    @property
    def address(self) -> str:
        """The "host:port" of the server (pinned certificates are kept under it)."""
        return address_of(self.host, self.port)

    @property
    def origin(self) -> str:
        """scheme://host:port, always with the port."""
        return f"{self.scheme}://{self.address}"

    @property
    def base_url(self) -> str:
        """scheme://host[:port], the port left out when it is the web default of the scheme."""
        if DEFAULT_PORTS.get(self.scheme) == self.port:
            return f"{self.scheme}://{bracketed(self.host)}"
        return self.origin


# A DNS name (letters, digits, '-', '_' in labels, dots between), an IPv4 address, or an IPv6 address (bracketed in
# the URL, bare in urlsplit's hostname, with an optional %zone).
_HOST = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?")


def parse_url(
    text: str,
    *,
    default_scheme: str | None = "https",
    schemes: tuple[str, ...] | None = WEB_SCHEMES,
    default_ports: Mapping[str, int] = DEFAULT_PORTS,
    example: str = "https://registry.example:443",
    field: str = "url",
) -> Url:
    """Split `[scheme://]host[:port][/path]`; AddressError (Invalid, on `field`) saying what is wrong.

    `default_scheme=None` requires a scheme; `schemes=None` accepts any scheme (a certificate's
    address only needs host and port, and an unknown scheme gets the https default port).
    """
    text = text.strip()
    hint = {field: [f"Enter a URL such as {example}."]}
    if "://" not in text and default_scheme is None:
        tls, plain = default_ports["https"], default_ports["http"]
        use = f"use https://host:{tls} (TLS) or http://host:{plain} (no TLS)"
        raise AddressError("scheme_missing", f"'{text}' has no scheme: {use}", hint)
    try:
        parts = urlsplit(text if "://" in text else f"{default_scheme}://{text}")
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise AddressError(
            "malformed", f"'{text}' is not a valid URL: {exc}", {field: [f"Not a valid URL: {exc}."]}
        ) from exc
    scheme = parts.scheme.lower()
    if schemes is not None and scheme not in schemes:
        raise AddressError(
            "scheme",
            f"'{scheme}://' is not supported: use https:// (TLS) or http:// (no TLS)",
            {field: ["The scheme must be http or https."]},
        )
    if not parts.hostname:
        raise AddressError("host", f"'{text}' has no host name.", hint)
    if not _HOST.fullmatch(parts.hostname):
        raise AddressError("host", f"'{parts.hostname}' is not a host name or IP address.", hint)
    try:
        port = parts.port or default_ports.get(scheme, default_ports["https"])
    except ValueError as exc:
        raise AddressError("port", f"'{text}' has an invalid port.", {field: [str(exc)]}) from exc
    return Url(scheme, parts.hostname.lower(), port, parts.path)


def bracketed(host: str) -> str:
    """The host as it is written in a URL or address: IPv6 in brackets."""
    return f"[{host}]" if ":" in host else host


def address_of(host: str, port: int) -> str:
    """The "host:port" address of a server, which pinned certificates are kept under (IPv6 hosts in brackets)."""
    return f"{bracketed(host)}:{port}"


def host_of(address: str) -> str:
    """The host of a "host:port" or "[v6]:port" address."""
    return address.rpartition(":")[0].strip("[]") if ":" in address else address


def pin_address(text: str) -> str:
    """The "host:port" a certificate for a URL or a bare host[:port] is pinned under (port 443 unless given)."""
    return parse_url(text, schemes=None).address

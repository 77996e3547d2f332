"""The one trust flow for everything that connects out over TLS (registries now, hosts and endpoints later).

Outbound TLS is always verified, against the system CAs plus the certificates an administrator
pinned for that address. A server whose certificate is neither answers with UntrustedCertificate
(409) carrying the certificate's details, so the UI or API client can show them and, if the user
accepts, pin it with trust() and retry. There is no "skip verify".
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any

import requests
from cryptography.hazmat.primitives import serialization
from django.db import transaction
from requests.adapters import HTTPAdapter
from rest_framework import status

from portal.core.addresses import address_of, host_of, parse_url, pin_address
from portal.core.audit import Actor, record
from portal.core.credentials import certificate_info, load_certificate
from portal.core.errors import DomainError, Invalid, RemoteUnreachable
from portal.core.models import Credential, CredentialKind, TrustedCertificate
from portal.core.services import require
from portal.core.usages import usages_by_pk

# Things that rely on pinned certificates: each app registers a function that, given certificates,
# returns {certificate pk: e.g. "registry 'hub-mirror'"}, leaving out those whose address it does not
# connect to. It takes a list so that a page of certificates costs one query per app, not one per row.
CERTIFICATE_USERS: list[Callable[[Sequence[TrustedCertificate]], dict[int, str]]] = []

DEFAULT_TIMEOUT = 5.0
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH: trusting would not help.
NAME_MISMATCH = frozenset({62, 64})


class PlainHttp(Invalid):
    """An https:// address whose port answers in plain HTTP: no TLS to verify, a wrong scheme or port."""

    def __init__(self, address: str) -> None:
        message = f"{address} speaks plain HTTP, not TLS: use http://{address} or the server's TLS port"
        # The form field is "url" for hosts and certificates, "address" for registries.
        super().__init__(message, {"url": [message], "address": [message]})


class UntrustedCertificate(DomainError):
    """The server presented a certificate neither the system nor the pinned list trusts."""

    status = status.HTTP_409_CONFLICT

    def __init__(self, address: str, pem: str) -> None:
        self.address = address
        self.certificate = certificate_details(address, pem)
        super().__init__(
            f"the certificate of {address} is not trusted",
            {"certificate": ["Verify the thumbprints, then trust the certificate to connect."]},
            extra={"certificate": self.certificate},
        )


def certificate_details(address: str, pem: str) -> dict[str, Any]:
    """What a user needs to decide whether to trust a certificate, as JSON-ready values."""
    facts = asdict(certificate_info(pem))
    dates = {key: facts[key].isoformat() for key in ("not_before", "not_after")}
    return {"address": address, **facts, **dates, "pem": pem}


def fetch_certificate(host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The leaf certificate the server presents, as PEM.

    Verification is off here only to read the certificate so a user can decide on it: the
    connection is closed right after the handshake and no data is ever sent over it.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    address = address_of(host, port)
    with _connect(host, port, timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                der = tls.getpeercert(binary_form=True)
        except (ssl.SSLError, OSError) as exc:
            raise handshake_failure(host, port, exc, timeout) from exc
    if not der:
        raise RemoteUnreachable(f"{address} presented no certificate")
    return ssl.DER_cert_to_PEM_cert(der)


def pinned_pems(address: str) -> list[str]:
    """The PEMs of the certificates pinned for the address."""
    return list(TrustedCertificate.objects.filter(address=address).values_list("pem", flat=True))


def ssl_context(address: str, credential: Credential | None = None) -> ssl.SSLContext:
    """A verifying client context: system CAs, the address's pins, and the credential's client certificate.

    A pinned server certificate whose names do not include the address's host (CN=registry.example
    pinned for 127.0.0.1:5000) is trusted for that address as an exact match, as Admiral does: then
    only the pinned certificates are trusted there, and the host name is not checked. A pinned CA
    certificate is trusted as a CA: what it signs must name the host.
    """
    pems = pinned_pems(address)
    host = host_of(address)
    if any(not is_authority(pem) and not names_cover(pem, host) for pem in pems):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context = ssl.create_default_context()
    # A pinned certificate is a trust anchor on its own, even when it is a leaf signed by a CA the
    # system does not know (Python 3.13 sets this flag by default too).
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if pems:
        context.load_verify_locations(cadata="".join(pems))
    if credential is not None and credential.kind == CredentialKind.CERTIFICATE:
        _load_client_certificate(context, credential)
    return context


def is_authority(pem: str) -> bool:
    """Whether the certificate is a CA's (basic constraints CA:TRUE): pinning it trusts what it signs, by name."""
    from cryptography import x509

    try:
        return load_certificate(pem, "pem").extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except (x509.ExtensionNotFound, ValueError, DomainError):
        return False


def names_cover(pem: str, host: str) -> bool:
    """Whether the certificate's subject alternative names include the host (an IP, a name or a *. wildcard)."""
    from cryptography import x509

    try:
        names = load_certificate(pem, "pem").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError, DomainError):
        return False
    try:
        wanted = ipaddress.ip_address(host)
    except ValueError:
        host = host.lower().rstrip(".")
        for name in names.get_values_for_type(x509.DNSName):
            name = name.lower().rstrip(".")
            if name == host or (name.startswith("*.") and host.partition(".")[2] == name[2:] and "." in name[2:]):
                return True
        return False
    return wanted in names.get_values_for_type(x509.IPAddress)


def _load_client_certificate(context: ssl.SSLContext, credential: Credential) -> None:
    """Present the credential's certificate; ssl reads it from files, which live only for the call."""
    with tempfile.TemporaryDirectory(prefix="wharf-client-") as folder:
        cert_path = os.path.join(folder, "cert.pem")
        key_path = os.path.join(folder, "key.pem")
        with open(os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as key_file:
            key_file.write(credential.private_key_pem())
        with open(cert_path, "w") as cert_file:
            cert_file.write(credential.certificate_pem)
        context.load_cert_chain(cert_path, key_path)


class _ContextAdapter(HTTPAdapter):
    """A requests adapter that verifies with a given SSL context."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def _tls(self, kwargs: dict[str, Any]) -> None:
        kwargs["ssl_context"] = self._context
        if not self._context.check_hostname:
            # An exact pin (ssl_context): urllib3 would otherwise match the host name itself.
            kwargs["assert_hostname"] = False

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        self._tls(kwargs)
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        self._tls(kwargs)
        return super().proxy_manager_for(*args, **kwargs)


def session(address: str, credential: Credential | None = None) -> requests.Session:
    """A requests session whose https:// calls verify with ssl_context(address, credential).

    A password credential is set as HTTP Basic auth; callers that need bearer tokens handle them.
    """
    return configure(requests.Session(), address, credential)


class Sessions:
    """The sessions of a client that talks to several addresses (a registry and its token realm, Clair's indexer and
    matcher): a verifying one per "host:port" on the trust flow, a plain one for http://, or `fixed` for every URL
    (tests hand in a fake transport)."""

    def __init__(self, fixed: requests.Session | None = None, credential: Credential | None = None) -> None:
        self.fixed = fixed
        self.credential = credential
        self._by_address: dict[str, requests.Session] = {}

    def use(self, address: str, http: requests.Session) -> None:
        """Use this session for the "host:port" address (instead of building one on first use)."""
        self._by_address[address] = http

    def for_url(self, url: str) -> requests.Session:
        """The session for the URL's address, built on first use."""
        if self.fixed is not None:
            return self.fixed
        server = parse_url(url)
        key = server.address if server.scheme == "https" else "http"
        if key not in self._by_address:
            https = server.scheme == "https"
            self._by_address[key] = session(key, self.credential) if https else requests.Session()
        return self._by_address[key]


def configure(http: requests.Session, address: str, credential: Credential | None = None) -> requests.Session:
    """Put an existing session (e.g. docker's APIClient, which is one) on the trust flow, as session() does."""
    http.mount("https://", _ContextAdapter(ssl_context(address, credential)))
    if credential is not None and credential.kind == CredentialKind.PASSWORD:
        http.auth = (credential.username, credential.password())
    return http


def _reason(exc: BaseException) -> str:
    """A short human reason of a socket or TLS failure."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return "timed out"
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


@contextlib.contextmanager
def _connect(host: str, port: int, timeout: float) -> Iterator[socket.socket]:
    """A TCP connection, failing with RemoteUnreachable saying what failed (DNS, refused, timeout)."""
    address = address_of(host, port)
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as exc:
        raise RemoteUnreachable(f"cannot resolve host name '{host}': {exc.strerror}") from exc
    except ConnectionRefusedError as exc:
        raise RemoteUnreachable(f"{address}: connection refused") from exc
    except TimeoutError as exc:
        raise RemoteUnreachable(f"{address}: connection timed out after {timeout:g} s") from exc
    except OSError as exc:
        raise RemoteUnreachable(f"{address}: cannot connect: {_reason(exc)}") from exc
    with raw:
        yield raw


def untrusted_or_unreachable(exc: ssl.SSLCertVerificationError, host: str, port: int, timeout: float) -> DomainError:
    """The error for a failed certificate verification: UntrustedCertificate, unless trust would not help."""
    address = address_of(host, port)
    if exc.verify_code in NAME_MISMATCH:
        return RemoteUnreachable(
            f"the certificate of {address} is not valid for the name '{host}' ({exc.verify_message})"
        )
    if exc.verify_message and "expired" in exc.verify_message:
        return RemoteUnreachable(f"the certificate of {address} has expired")
    return UntrustedCertificate(address, fetch_certificate(host, port, timeout))


def check_tls(url: str, credential: Credential | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Connect and complete a verified TLS handshake; raise UntrustedCertificate or RemoteUnreachable."""
    server = parse_url(url, schemes=None)
    host, port, address = server.host, server.port, server.address
    context = ssl_context(address, credential)
    with _connect(host, port, timeout) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=host):
                return
        except ssl.SSLCertVerificationError as exc:
            verification = exc
        except (ssl.SSLError, OSError) as exc:
            raise handshake_failure(host, port, exc, timeout) from exc
    raise untrusted_or_unreachable(verification, host, port, timeout)


def _speaks_plain_http(host: str, port: int, timeout: float) -> bool:
    """Whether the port answers a plain HTTP request in HTTP (so a TLS handshake there cannot work)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw:
            raw.sendall(b"HEAD / HTTP/1.0\r\n\r\n")
            return raw.recv(5) == b"HTTP/"
    except OSError:
        return False


def handshake_failure(host: str, port: int, exc: BaseException, timeout: float = DEFAULT_TIMEOUT) -> DomainError:
    """The error for a TLS handshake that failed without a verdict on the certificate."""
    if _speaks_plain_http(host, port, timeout):
        return PlainHttp(address_of(host, port))
    return RemoteUnreachable(f"TLS handshake failed with {address_of(host, port)}: {_reason(exc)}")


def _verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure somewhere inside a requests/urllib3 exception, if any."""
    seen: set[int] = set()
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        # An ssl.SSLError's reason is a string ("WRONG_VERSION_NUMBER"); urllib3's is the exception.
        linked = (current.__cause__, current.__context__, getattr(current, "reason", None))
        pending.extend(e for e in linked if isinstance(e, BaseException))
        pending.extend(arg for arg in current.args if isinstance(arg, BaseException))
    return None


def translate_request_error(exc: requests.RequestException, url: str, timeout: float = DEFAULT_TIMEOUT) -> DomainError:
    """The domain error for a failed requests call: UntrustedCertificate, or RemoteUnreachable saying what failed."""
    server = parse_url(url, schemes=None)
    host, port, address = server.host, server.port, server.address
    verification = _verification_error(exc)
    if verification is not None:
        return untrusted_or_unreachable(verification, host, port, timeout)
    if isinstance(exc, requests.exceptions.SSLError):
        if _speaks_plain_http(host, port, timeout):
            return PlainHttp(address)
        return RemoteUnreachable(f"TLS handshake failed with {address}")
    if isinstance(exc, requests.exceptions.Timeout):
        return RemoteUnreachable(f"{address}: timed out after {timeout:g} s")
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "NameResolutionError" in text or "getaddrinfo" in text:
            return RemoteUnreachable(f"cannot resolve host name '{host}'")
        if "Connection refused" in text:
            return RemoteUnreachable(f"{address}: connection refused")
        return RemoteUnreachable(f"{address}: cannot connect")
    return RemoteUnreachable(f"{address}: request failed ({type(exc).__name__})")


def certificates_usages(certificates: Sequence[TrustedCertificate]) -> dict[int, list[str]]:
    """What relies on each pinned certificate, by pk, as phrases like "registry 'hub-mirror'"."""
    return usages_by_pk(certificates, CERTIFICATE_USERS)


def certificate_usages(certificate: TrustedCertificate) -> list[str]:
    """What relies on the pinned certificate, as phrases like "registry 'hub-mirror'"."""
    return certificates_usages([certificate])[certificate.pk]


@transaction.atomic
def trust(actor: Actor, address: str, pem: str, project: Any = None) -> TrustedCertificate:
    """Pin a server certificate for an address: portal admins, or a project's admins for its registries."""
    if project is None:
        require(actor, "manage_credentials")
    else:
        require(actor, "manage_registries", project)
    address = pin_address(address)
    cert = load_certificate(pem, "pem")
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    info = certificate_info(pem)
    existing = TrustedCertificate.objects.filter(address=address, sha256=info.sha256).first()
    if existing is not None:
        return existing
    # A pin stores the certificate's facts (CertificateInfo's fields) next to its PEM.
    pinned = TrustedCertificate.objects.create(address=address, pem=pem, created_by=actor.name, **asdict(info))
    record(actor, "trust", "certificate", address, project, sha256=info.sha256, subject=info.subject)
    return pinned


@transaction.atomic
def untrust(actor: Actor, certificate: TrustedCertificate) -> None:
    """Remove a pinned certificate (portal admins only); connections to its address stop trusting it."""
    require(actor, "manage_credentials")
    address, sha256 = certificate.address, certificate.sha256
    certificate.delete()
    record(actor, "untrust", "certificate", address, sha256=sha256)

"""The portal's own PKI: a CA made on first start, the HTTPS server certificate, the token-signing key."""

from __future__ import annotations

import datetime
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings


class _PkiFile:
    """One file of the PKI folder, named once: `PkiPaths.ca_cert` is `root / "ca.crt"`."""

    def __init__(self, filename: str) -> None:
        self.filename = filename

    def __get__(self, paths: PkiPaths, owner: type | None = None) -> Path:
        return paths.root / self.filename


@dataclass(frozen=True)
class PkiPaths:
    """Where the portal keeps its CA, server certificate and token-signing key."""

    root: Path

    ca_cert = _PkiFile("ca.crt")
    ca_key = _PkiFile("ca.key")
    server_cert = _PkiFile("server.crt")
    server_key = _PkiFile("server.key")
    token_cert = _PkiFile("token.crt")
    token_key = _PkiFile("token.key")
    # Notary's server and signer: both serve TLS with it, and the server shows it to the signer (mutual TLS).
    notary_cert = _PkiFile("notary.crt")
    notary_key = _PkiFile("notary.key")


def pki_paths() -> PkiPaths:
    """The PKI folder under the data directory."""
    return PkiPaths(Path(settings.DATA_DIR) / "pki")


def _write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by the owner only."""
    path.write_bytes(data)
    path.chmod(0o600)


def key_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Wharf"), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def certificate_builder(subject: x509.Name, issuer: x509.Name, public_key, days: int) -> x509.CertificateBuilder:
    """A certificate valid from five minutes ago (clocks drift) for `days`, ready for extensions and signing."""
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def server_names() -> list[str]:
    """The names the HTTPS certificate covers: localhost, this host, and WHARF_HOSTNAMES."""
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *settings.EXTRA_HOSTNAMES]
    return list(dict.fromkeys(n for n in names if n))


def alt_names(names: list[str]) -> x509.SubjectAlternativeName:
    """The subject alternative names: IP addresses as such, anything else as a DNS name."""
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def ensure_pki(paths: PkiPaths | None = None) -> PkiPaths:
    """Create whatever of the CA, server certificate and token key does not exist yet."""
    paths = paths or pki_paths()
    paths.root.mkdir(parents=True, exist_ok=True)
    if not paths.ca_cert.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = _name("Wharf Portal CA")
        cert = (
            certificate_builder(name, name, key.public_key(), 3650)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_private(paths.ca_key, key_pem(key))
        paths.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not paths.server_cert.exists():
        _issue_server_certificate(paths)
    if not paths.notary_cert.exists():
        _issue_server_certificate(paths, notary=True)
    if not paths.token_key.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        name = _name("Wharf token signer")
        cert = certificate_builder(name, name, key.public_key(), 3650).sign(key, hashes.SHA256())
        _write_private(paths.token_key, key_pem(key))
        paths.token_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return paths


# The compose services' names, under which notary's server reaches its signer and web reaches the server.
NOTARY_SERVICE_NAMES = ("notary-server", "notary-signer")


def _issue_server_certificate(paths: PkiPaths, notary: bool = False) -> None:
    """Sign the HTTPS server certificate (or notary's, which is also its client certificate) with the portal CA."""
    ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    names = server_names() + list(NOTARY_SERVICE_NAMES) if notary else server_names()
    usages = (
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        if notary
        else [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    cert_path, key_path = (paths.notary_cert, paths.notary_key) if notary else (paths.server_cert, paths.server_key)
    cert = (
        certificate_builder(
            _name(names[0] if names[0] != "localhost" else socket.gethostname()), ca_cert.subject, key.public_key(), 825
        )
        .add_extension(alt_names(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + paths.ca_cert.read_bytes())


def fingerprint(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    """A certificate thumbprint as colon-separated upper-case hex, as browsers show it."""
    return cert.fingerprint(algorithm).hex(":").upper()


@dataclass(frozen=True)
class CaInfo:
    """What users need to verify and trust the portal's CA."""

    pem: str
    subject: str
    not_after: datetime.datetime
    sha1: str
    sha256: str


def ca_info() -> CaInfo:
    """The portal CA's PEM and thumbprints."""
    pem = pki_paths().ca_cert.read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    return CaInfo(
        pem=pem.decode(),
        subject=cert.subject.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
        sha1=fingerprint(cert, hashes.SHA1()),
        sha256=fingerprint(cert, hashes.SHA256()),
    )

"""A throwaway PKI for TLS tests: self-signed server certificates, a CA, the server and client certificates it signs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from portal.core.certificates import alt_names, certificate_builder, key_pem


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as files and as PEM text."""

    cert: Path
    key: Path

    @property
    def cert_pem(self) -> str:
        return self.cert.read_text()

    @property
    def key_pem(self) -> str:
        return self.key.read_text()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(folder: Path, stem: str, certificate: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> KeyPair:
    folder.mkdir(parents=True, exist_ok=True)
    pair = KeyPair(folder / f"{stem}.pem", folder / f"{stem}-key.pem")
    pair.cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(key_pem(key))
    return pair


def self_signed_certificate(
    folder: Path, common_name: str = "wharf-test-registry", names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> KeyPair:
    """Write a fresh self-signed server certificate (server.pem, server-key.pem) valid for the names."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    certificate = (
        certificate_builder(name, name, key.public_key(), days=2)
        .add_extension(alt_names(list(names)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _write(folder, "server", certificate, key)


class CertificateAuthority:
    """A CA that signs server and client certificates, as `docker` TLS setups have (ca.pem, cert.pem, key.pem)."""

    def __init__(self, folder: Path, common_name: str = "wharf-test-ca") -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(common_name)
        self.certificate = (
            certificate_builder(self.name, self.name, self.key.public_key(), days=2)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.pair = _write(folder, "ca", self.certificate, self.key)

    @property
    def pem(self) -> str:
        return self.pair.cert_pem

    def _issue(self, stem: str, common_name: str, usage: x509.ObjectIdentifier, server: bool) -> KeyPair:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            certificate_builder(_name(common_name), self.name, key.public_key(), days=2)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(alt_names(["localhost", "127.0.0.1"]), critical=False)
        return _write(self.folder, stem, builder.sign(self.key, hashes.SHA256()), key)

    def server(self, stem: str = "server") -> KeyPair:
        """A server certificate for 127.0.0.1 and localhost."""
        return self._issue(stem, "127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH, server=True)

    def client(self, stem: str = "client", common_name: str = "wharf-client") -> KeyPair:
        """A client certificate (what `docker --tlsverify` presents as cert.pem/key.pem)."""
        return self._issue(stem, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, server=False)

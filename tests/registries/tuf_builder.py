"""Notary-shaped trust data made in Python, for the tests of `registries.tuf` and `registries.content_trust`.

A `TrustRepo` holds the keys of every role and the targets to sign, and `build()` writes the role files as notary
0.7 does: each `signed` part canonical JSON signed by its role's keys, the snapshot listing the checksums of root,
targets and targets/releases, the timestamp the snapshot's. Every knob a test turns (who signs, expiries, the
delegation's paths, a mutation of a signed part before it is signed) leaves the rest of the chain consistent, so a
test that breaks one link sees verification fail at that link and nowhere else.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from registries import tuf

GUN = "127.0.0.1:8282/alpha/app"
NOW = datetime.now(UTC).replace(microsecond=0)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def go_time(moment: datetime) -> str:
    """A time as Go's RFC 3339 with nanoseconds writes it (notary's `expires`), in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


@dataclass
class Key:
    """A private key and the TUF record of its public half; signs as notary does for its type."""

    private: Any
    record: dict[str, Any]
    method: str

    @property
    def id(self) -> str:
        return tuf.key_id(self.record)

    def sign(self, message: bytes, method: str | None = None) -> dict[str, str]:
        """A signature entry over the message."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            signature = self.private.sign(message)
        elif isinstance(self.private, ec.EllipticCurvePrivateKey):
            # Notary writes the raw r || s, each padded to the curve's size.
            r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
            size = (self.private.curve.key_size + 7) // 8
            signature = r.to_bytes(size, "big") + s.to_bytes(size, "big")
        elif self.method == "rsapss":
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
            signature = self.private.sign(message, pss, hashes.SHA256())
        else:
            signature = self.private.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {"keyid": self.id, "method": method or self.method, "sig": b64(signature)}


def _record(keytype: str, public: bytes) -> dict[str, Any]:
    return {"keytype": keytype, "keyval": {"private": None, "public": b64(public)}}


def _der(private: Any) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def ecdsa_key() -> Key:
    """An `ecdsa` key (P-256, the public key as DER), as notary makes for targets and snapshot."""
    private = ec.generate_private_key(ec.SECP256R1())
    return Key(private, _record("ecdsa", _der(private)), "ecdsa")


def ed25519_key() -> Key:
    """An `ed25519` key (the raw 32-byte public key), as notary-server's local trust service makes."""
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Key(private, _record("ed25519", raw), "eddsa")


def rsa_key(method: str = "rsapss") -> Key:
    """An `rsa` key signing with RSASSA-PSS (notary's way) or PKCS #1 v1.5."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Key(private, _record("rsa", _der(private)), method)


def certificate(
    private: Any, common_name: str, not_before: datetime | None = None, not_after: datetime | None = None
) -> x509.Certificate:
    """A self-signed certificate of the key, as `notary init` makes for a root key."""
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=1))
        .not_valid_after(not_after or NOW + timedelta(days=3650))
        .sign(private, hashes.SHA256())
    )


def x509_key(
    common_name: str = GUN,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    private: Any = None,
) -> Key:
    """An `ecdsa-x509` key: a self-signed certificate (PEM) whose CN is the GUN, as notary's root key."""
    private = private or ec.generate_private_key(ec.SECP256R1())
    pem = certificate(private, common_name, not_before, not_after).public_bytes(serialization.Encoding.PEM)
    keytype = "rsa-x509" if isinstance(private, rsa.RSAPrivateKey) else "ecdsa-x509"
    return Key(private, _record(keytype, pem), "rsapss" if keytype == "rsa-x509" else "ecdsa")


def signed_file(signed: dict[str, Any], signers: list[Key]) -> bytes:
    """A role file: the signed part and a signature of each signer over its canonical JSON."""
    message = tuf.canonical(signed)
    return json.dumps({"signed": signed, "signatures": [key.sign(message) for key in signers]}).encode()


def meta(content: bytes) -> dict[str, Any]:
    """How a parent lists a role file: its length and its checksums."""
    return {
        "hashes": {"sha256": b64(hashlib.sha256(content).digest()), "sha512": b64(hashlib.sha512(content).digest())},
        "length": len(content),
    }


def target(manifest: bytes) -> dict[str, Any]:
    """How a targets file lists a tag: the manifest's length and SHA-256."""
    return {"hashes": {"sha256": b64(hashlib.sha256(manifest).digest())}, "length": len(manifest)}


def digest(manifest: bytes) -> str:
    return f"sha256:{hashlib.sha256(manifest).hexdigest()}"


Mutation = Callable[[str, dict[str, Any]], None]


@dataclass
class TrustRepo:
    """One GUN's keys and targets; `build()` gives its role files, `fetch()` serves them to `tuf.verify`."""

    gun: str = GUN
    root: list[Key] = field(default_factory=lambda: [x509_key()])
    targets_keys: list[Key] = field(default_factory=lambda: [ecdsa_key()])
    snapshot_keys: list[Key] = field(default_factory=lambda: [ed25519_key()])
    timestamp_keys: list[Key] = field(default_factory=lambda: [ed25519_key()])
    # None: the repository has no targets/releases delegation.
    releases_keys: list[Key] | None = None
    releases_paths: list[str] | None = field(default_factory=lambda: [""])
    targets: dict[str, bytes] = field(default_factory=dict)
    releases: dict[str, bytes] = field(default_factory=dict)
    thresholds: dict[str, int] = field(default_factory=dict)
    # Who signs each role file, when not (only) its own keys.
    signers: dict[str, list[Key]] = field(default_factory=dict)
    expires: dict[str, datetime] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # Called with (role, signed part) before the part is signed: the way to write what notary would not.
    mutate: Mutation | None = None

    def _signed(self, role: str, signed: dict[str, Any], keys: list[Key]) -> bytes:
        if self.mutate is not None:
            # A copy: the signed part shares its key records with the Key objects.
            signed = copy.deepcopy(signed)
            self.mutate(role, signed)
        return signed_file(signed, self.signers.get(role, keys))

    def _common(self, kind: str, role: str, default: timedelta) -> dict[str, Any]:
        expires = go_time(self.expires.get(role, NOW + default))
        return {"_type": kind, "expires": expires, "version": self.versions.get(role, 1)}

    def root_file(self) -> bytes:
        """The root: every key of the four roles, each role's key IDs and threshold, signed by the root keys."""
        roles = {
            tuf.ROOT: self.root,
            tuf.TARGETS: self.targets_keys,
            tuf.SNAPSHOT: self.snapshot_keys,
            tuf.TIMESTAMP: self.timestamp_keys,
        }
        signed = {
            **self._common("Root", tuf.ROOT, timedelta(days=3650)),
            "consistent_snapshot": False,
            "keys": {key.id: key.record for keys in roles.values() for key in keys},
            "roles": {
                role: {"keyids": [key.id for key in keys], "threshold": self.thresholds.get(role, 1)}
                for role, keys in roles.items()
            },
        }
        return self._signed(tuf.ROOT, signed, self.root)

    def targets_file(self) -> bytes:
        """The targets file, with the targets/releases delegation when the repository has one."""
        delegations: dict[str, Any] = {"keys": {}, "roles": []}
        if self.releases_keys is not None:
            role: dict[str, Any] = {
                "keyids": [key.id for key in self.releases_keys],
                "name": tuf.RELEASES,
                "threshold": self.thresholds.get(tuf.RELEASES, 1),
            }
            if self.releases_paths is not None:
                role["paths"] = self.releases_paths
            delegations = {"keys": {key.id: key.record for key in self.releases_keys}, "roles": [role]}
        signed = {
            **self._common("Targets", tuf.TARGETS, timedelta(days=1095)),
            "delegations": delegations,
            "targets": {name: target(manifest) for name, manifest in self.targets.items()},
        }
        return self._signed(tuf.TARGETS, signed, self.targets_keys)

    def releases_file(self) -> bytes:
        signed = {
            **self._common("Targets", tuf.RELEASES, timedelta(days=1095)),
            "delegations": {"keys": {}, "roles": []},
            "targets": {name: target(manifest) for name, manifest in self.releases.items()},
        }
        return self._signed(tuf.RELEASES, signed, self.releases_keys or [])

    def build(self, replace: dict[str, bytes] | None = None) -> dict[str, bytes]:
        """Every role file by role; `replace` puts given bytes in place of a role's file before its parents list it."""
        replace = replace or {}
        files = {tuf.ROOT: replace[tuf.ROOT] if tuf.ROOT in replace else self.root_file()}
        files[tuf.TARGETS] = replace[tuf.TARGETS] if tuf.TARGETS in replace else self.targets_file()
        if self.releases_keys is not None:
            files[tuf.RELEASES] = replace[tuf.RELEASES] if tuf.RELEASES in replace else self.releases_file()
        snapshot = {
            **self._common("Snapshot", tuf.SNAPSHOT, timedelta(days=1095)),
            "meta": {role: meta(content) for role, content in files.items()},
        }
        files[tuf.SNAPSHOT] = (
            replace[tuf.SNAPSHOT]
            if tuf.SNAPSHOT in replace
            else self._signed(tuf.SNAPSHOT, snapshot, self.snapshot_keys)
        )
        timestamp = {
            **self._common("Timestamp", tuf.TIMESTAMP, timedelta(days=14)),
            "meta": {tuf.SNAPSHOT: meta(files[tuf.SNAPSHOT])},
        }
        files[tuf.TIMESTAMP] = (
            replace[tuf.TIMESTAMP]
            if tuf.TIMESTAMP in replace
            else self._signed(tuf.TIMESTAMP, timestamp, self.timestamp_keys)
        )
        return files


@dataclass
class Server:
    """Serves role files to `tuf.verify` the way a server under someone else's control might: whatever it holds
    for a role, whichever checksum was asked for. Records what was asked."""

    files: dict[str, bytes]
    asked: list[tuple[str, str | None]] = field(default_factory=list)

    def __call__(self, role: str, checksum: str | None) -> bytes:
        self.asked.append((role, checksum))
        if role not in self.files:
            raise tuf.TrustError(f"no {role} metadata")
        return self.files[role]


def verify(files: dict[str, bytes], gun: str = GUN, **kwargs: Any) -> tuf.Collection:
    """tuf.verify over the files, at NOW unless told."""
    return tuf.verify(gun, Server(files), **{"now": NOW, **kwargs})

"""The Update Framework as notary 0.7 writes it: verify a repository's trust data from the root down to its targets.

Notary keeps, per GUN (`<registry host>/<project>/<repository>`), four signed role files and optional delegations:
root (the keys and thresholds of every role, self-signed), timestamp (the snapshot's checksum, short-lived), snapshot
(the checksums of root, targets and delegations) and targets (tag -> manifest checksum). A tag is signed when a
target of that name passes the whole chain: each file's checksum is the one its parent lists, each is signed by at
least `threshold` of the keys the root (or the delegating targets file) names for its role, and none has expired.
Docker signs into the `targets/releases` delegation when a repository has one, else into `targets`, and reads
`targets/releases` first; so does this module.

Pure functions over bytes: fetching (and caching by checksum) is `registries.content_trust`'s job.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ROOT, TIMESTAMP, SNAPSHOT, TARGETS = "root", "timestamp", "snapshot", "targets"
RELEASES = "targets/releases"
# What a role file may weigh: notary's own limit for metadata it serves is far below this.
MAX_FILE = 10 * 1024 * 1024
# The `_type` notary writes in each role's signed part (a delegation is a targets file).
TYPES = {ROOT: "Root", TIMESTAMP: "Timestamp", SNAPSHOT: "Snapshot", TARGETS: "Targets", RELEASES: "Targets"}
# RFC 3339 as Go writes a time: nanoseconds, and the signer's local offset (notary's expiries are time.Now()-based).
RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.ASCII)

# How many root versions a walk through root rotations reads at most (notary keeps every version).
MAX_ROOT_VERSIONS = 1000

# Fetch one role file: (role, sha256 hex of the expected content or None for the newest) -> the file's bytes. The
# role may also be "<version>.root", one version of the root (notary serves it at /_trust/tuf/<version>.root.json).
Fetch = Callable[[str, str | None], bytes]


class TrustError(Exception):
    """The trust data cannot be believed; `reason` says why in words a user can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Expired(TrustError):
    """A role file of the chain is past its expiry: the signer must re-publish."""


@dataclass(frozen=True)
class SignedTarget:
    """One signed tag: the manifest checksum and length the signer vouched for, and the role that signed it."""

    name: str
    digest: str
    length: int
    role: str


@dataclass(frozen=True)
class RootKeys:
    """The root role's keys and threshold: what a later root must be signed with (pinned on first sight)."""

    keys: dict[str, dict[str, Any]]
    threshold: int

    def as_json(self) -> dict[str, Any]:
        return {"keys": self.keys, "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: Any) -> RootKeys:
        """The pinned keys as stored; TrustError when the stored pin is unreadable (the GUN is then refused)."""
        try:
            return cls(dict(data["keys"]), int(data["threshold"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise TrustError("the root keys pinned for this repository are unreadable") from exc


@dataclass(frozen=True)
class Collection:
    """A GUN's verified trust data: its targets by tag (releases before targets) and when it next needs refreshing."""

    gun: str
    targets: dict[str, SignedTarget]
    expires: datetime
    root: RootKeys
    checksums: dict[str, str] = field(default_factory=dict)
    # The version of each role file verified (root, timestamp, snapshot, targets, targets/releases): a later
    # verification refuses older ones (a rollback to trust data since replaced).
    versions: dict[str, int] = field(default_factory=dict)


def canonical(document: Any) -> bytes:
    """Canonical JSON (sorted keys, no whitespace), the bytes notary signs."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def key_id(key: dict[str, Any]) -> str:
    """A key's ID in TUF: the SHA-256 of its canonical JSON."""
    return sha256(canonical(key))


def _decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, TypeError, ValueError) as exc:
        raise TrustError(f"{what} is not base64") from exc


# Role files come from a server: every value is checked for its type before use, so that what is malformed is a
# TrustError with a reason, never a KeyError or TypeError out of the middle of the verification.
def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TrustError(f"{what} is not a JSON object")
    return value


def _strings(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TrustError(f"{what} is not a list of strings")
    return value


def _count(value: Any, what: str) -> int:
    # JSON numbers a Go int holds; bool is an int to Python, not to Go.
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**63:
        raise TrustError(f"{what} is not a count")
    return value


def _typed(signed: dict[str, Any], role: str) -> dict[str, Any]:
    """The signed part, if it says it is the role's kind of file (a file of one role never passes for another)."""
    if signed.get("_type") != TYPES[role]:
        raise TrustError(f"the {role} metadata is not {TYPES[role]} metadata")
    return signed


def parse(content: bytes, role: str) -> dict[str, Any]:
    """A role file's JSON, checked for the shape every role file has."""
    try:
        document = json.loads(content)
    except (ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser goes is no role file either.
        raise TrustError(f"the {role} metadata is not JSON") from exc
    if (
        not isinstance(document, dict)
        or not isinstance(document.get("signed"), dict)
        or not isinstance(document.get("signatures"), list)
    ):
        raise TrustError(f"the {role} metadata has no signed part or no signatures")
    return document


def _certificate(key: dict[str, Any]) -> x509.Certificate:
    """The certificate of an x509 key record."""
    public = _object(key.get("keyval"), "a key value").get("public")
    try:
        return x509.load_pem_x509_certificate(_decode(public, "a certificate"))
    except ValueError as exc:
        raise TrustError("a certificate cannot be read") from exc


def _public_key(key: Any, now: datetime, check_expiry: bool = True, role: str = ROOT) -> Any:
    """The cryptography public key of a TUF key record (ecdsa, rsa, ed25519, or their x509 forms)."""
    keytype = _object(key, "a key").get("keytype")
    try:
        if keytype in ("ecdsa-x509", "rsa-x509"):
            certificate = _certificate(key)
            if check_expiry and not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
                until = certificate.not_valid_after_utc
                raise Expired(f"a certificate of the {role} keys is valid only until {until:%Y-%m-%d}")
            return certificate.public_key()
        value = _decode(_object(key.get("keyval"), "a key value").get("public"), "a public key")
        if keytype == "ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(value)
        if keytype in ("ecdsa", "rsa"):
            return serialization.load_der_public_key(value)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise TrustError(f"a {keytype} key cannot be read") from exc
    raise TrustError(f"keys of type {keytype!r} are not supported")


def _check_signature(public_key: Any, method: str, signature: bytes, message: bytes) -> None:
    """Raise InvalidSignature unless the signature is the key's over the message by the named method."""
    if isinstance(public_key, ed25519.Ed25519PublicKey) and method == "eddsa":
        public_key.verify(signature, message)
    elif isinstance(public_key, ec.EllipticCurvePublicKey) and method == "ecdsa":
        # Notary writes the raw r || s of a SHA-256 ECDSA signature.
        size = (public_key.curve.key_size + 7) // 8
        if len(signature) != 2 * size:
            raise InvalidSignature
        r, s = int.from_bytes(signature[:size], "big"), int.from_bytes(signature[size:], "big")
        public_key.verify(encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
    elif isinstance(public_key, rsa.RSAPublicKey) and method == "rsapss":
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
        public_key.verify(signature, message, pss, hashes.SHA256())
    elif isinstance(public_key, rsa.RSAPublicKey) and method == "rsapkcs1v15":
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
    else:
        raise InvalidSignature


def verify_signatures(
    document: dict[str, Any],
    role: str,
    keys: dict[str, dict[str, Any]],
    key_ids: list[str],
    threshold: int,
    now: datetime,
) -> dict[str, Any]:
    """The signed part of a role file signed by at least `threshold` distinct keys among `key_ids`."""
    return _verify_signatures(document, role, keys, key_ids, threshold, now, check_expiry=True)


def _verify_signatures(
    document: dict[str, Any],
    role: str,
    keys: dict[str, dict[str, Any]],
    key_ids: list[str],
    threshold: int,
    now: datetime,
    check_expiry: bool,
) -> dict[str, Any]:
    """verify_signatures, optionally believing certificates past their validity (a previous root's)."""
    if not isinstance(threshold, int) or threshold < 1:
        raise TrustError(f"the {role} role has no signing threshold")
    message = canonical(document["signed"])
    valid: set[str] = set()
    for entry in document["signatures"]:
        if not isinstance(entry, dict):
            continue
        signer = entry.get("keyid")
        if not isinstance(signer, str) or signer not in key_ids or signer in valid or signer not in keys:
            continue
        key = keys[signer]
        if key_id(key) != signer:
            raise TrustError(f"a key of the {role} role does not match its ID")
        try:
            signature = _decode(str(entry.get("sig") or ""), "a signature")
            public_key = _public_key(key, now, check_expiry, role)
            _check_signature(public_key, str(entry.get("method")), signature, message)
        except InvalidSignature:
            continue
        valid.add(signer)
    if len(valid) < threshold:
        raise TrustError(f"the {role} metadata is not signed by its keys ({len(valid)} of {threshold} signatures)")
    return document["signed"]


def _expires(signed: dict[str, Any], role: str, now: datetime) -> datetime:
    """When the role file expires; Expired when that has passed."""
    text = signed.get("expires")
    match = RFC3339.fullmatch(text) if isinstance(text, str) else None
    try:
        if match is None:
            raise ValueError(text)
        # Go writes nanoseconds, Python reads microseconds; the offset is the signer's own.
        seconds, fraction, offset = match.groups()
        moment = f"{seconds}.{(fraction or '0')[:6]:0<6}{'+00:00' if offset == 'Z' else offset}"
        expires = datetime.fromisoformat(moment).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise TrustError(f"the {role} metadata has no valid expiry") from exc
    if expires <= now:
        raise Expired(f"the {role} metadata expired on {expires:%Y-%m-%d %H:%M} UTC")
    return expires


def _role_keys(root: dict[str, Any], role: str) -> tuple[list[str], int]:
    entry = _object(root.get("roles"), "the root's roles").get(role)
    if not isinstance(entry, dict):
        raise TrustError(f"the root names no {role} role")
    return _strings(entry.get("keyids"), f"the {role} role's keys"), _count(entry.get("threshold"), "a threshold")


def _listed(meta: Any, role: str, parent: str) -> tuple[str, int]:
    """(sha256 hex, length) that the parent role lists for a role file."""
    entry = _object(meta, f"the {parent} metadata's list").get(role)
    if not isinstance(entry, dict):
        raise TrustError(f"the {parent} metadata does not list {role}")
    checksum = _object(entry.get("hashes"), f"the {role} checksums").get("sha256")
    digest = _decode(checksum if isinstance(checksum, str) else "", f"the {role} checksum").hex()
    if len(digest) != 64:
        raise TrustError(f"the {parent} metadata lists no SHA-256 of {role}")
    return digest, _count(entry.get("length", 0), f"the length of {role}")


def _fetch_listed(fetch: Fetch, meta: dict[str, Any], role: str, parent: str) -> bytes:
    """The role file whose checksum and length the parent lists, checked against both."""
    checksum, length = _listed(meta, role, parent)
    content = fetch(role, checksum)
    if sha256(content) != checksum or (length and len(content) != length):
        raise TrustError(f"the {role} metadata does not match the checksum the {parent} lists")
    return content


def verify_root(content: bytes, gun: str, pinned: RootKeys | None, now: datetime) -> tuple[dict[str, Any], RootKeys]:
    """The root's signed part, signed by its own keys and, once a root was pinned for the GUN, by the pinned keys."""
    document = parse(content, ROOT)
    signed = _typed(document["signed"], ROOT)
    keys = signed.get("keys")
    if not isinstance(keys, dict):
        raise TrustError("the root metadata lists no keys")
    key_ids, threshold = _role_keys(signed, ROOT)
    if not set(key_ids) <= set(keys) or not all(isinstance(keys[kid], dict) for kid in key_ids):
        raise TrustError("the root metadata names root keys it does not list")
    verify_signatures(document, ROOT, keys, key_ids, threshold, now)
    if pinned is not None:
        # A new root counts only when the keys trusted until now signed it too, as many as the pinned root wanted
        # (a root that keeps its keys but lowers its threshold is a rotation as well). As in notary, the pinned
        # certificates vouch for their successor past their expiry: replacing an expired root key is the point.
        _verify_signatures(
            document, "rotated root", pinned.keys, list(pinned.keys), pinned.threshold, now, check_expiry=False
        )
    for kid in key_ids:
        if str(keys[kid].get("keytype")).endswith("-x509"):
            names = _certificate(keys[kid]).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            if not names or names[0].value != gun:
                raise TrustError(f"the root certificate is not for {gun}")
    _expires(signed, ROOT, now)
    return signed, RootKeys({kid: keys[kid] for kid in key_ids}, threshold)


def _root(fetch: Fetch, gun: str, pinned: RootKeys | None, now: datetime) -> tuple[bytes, dict[str, Any], RootKeys]:
    """The newest root (its bytes, signed part and keys), verified under the pin, through intermediate versions when
    the pinned keys did not sign it directly."""
    content = fetch(ROOT, None)
    try:
        return content, *verify_root(content, gun, pinned, now)
    except Expired:
        raise
    except TrustError:
        if pinned is None:
            raise
        # Several rotations since the pin: each root is signed by its predecessor's keys, not by the pinned ones.
        trusted = _through_rotations(fetch, gun, pinned, content, now)
        if trusted is None:
            raise
        return content, *verify_root(content, gun, trusted, now)


def _through_rotations(fetch: Fetch, gun: str, pinned: RootKeys, newest: bytes, now: datetime) -> RootKeys | None:
    """The root keys that the pinned keys lead to through the root versions before the newest, as notary's client
    walks them (updateRootVersions): a version counts when the keys trusted so far signed it. None: no way there."""
    try:
        version = _count(parse(newest, ROOT)["signed"].get("version"), "the root version")
    except TrustError:
        return None
    if not 1 < version <= MAX_ROOT_VERSIONS:
        return None
    trusted = pinned
    for earlier in range(1, version):
        try:
            content = fetch(f"{earlier}.{ROOT}", None)
        except TrustError:
            return None  # Notary down or missing a version: no way through (and no thousand requests to find out).
        try:
            trusted = verify_root(content, gun, trusted, now)[1]
        except TrustError:
            continue  # A version the trusted keys did not sign (one from before the pin) changes nothing.
    return None if trusted == pinned else trusted


def _targets_of(signed: dict[str, Any], role: str, paths: list[str] | None) -> dict[str, SignedTarget]:
    """The targets a verified targets file lists (within the delegation's path prefixes, if any)."""
    found = {}
    for name, entry in _object(signed.get("targets", {}), f"the {role} metadata's targets").items():
        if paths is not None and not any(name.startswith(prefix) for prefix in paths):
            continue
        try:
            digest = _decode(_object(entry, "a target")["hashes"]["sha256"], f"the checksum of {name}")
            length = _count(entry.get("length", 0), f"the length of {name}")
        except (KeyError, TypeError, TrustError):
            continue  # A target without a SHA-256 cannot vouch for a manifest.
        if len(digest) == 32:
            found[name] = SignedTarget(name, f"sha256:{digest.hex()}", length, role)
    return found


def _versioned(signed: dict[str, Any], role: str, seen: dict[str, int], versions: dict[str, int]) -> dict[str, Any]:
    """The signed part, if its version is not older than the one verified before (notary's client refuses a rollback
    the same way); its version is noted in `versions`."""
    version = _count(signed.get("version"), f"the {role} version")
    if version < seen.get(role, 0):
        raise TrustError(
            f"rollback: notary serves {role} version {version}, older than version {seen[role]} verified before"
        )
    versions[role] = version
    return signed


def _releases(
    fetch: Fetch,
    targets: dict[str, Any],
    snapshot_meta: dict[str, Any],
    now: datetime,
    seen: dict[str, int],
    versions: dict[str, int],
) -> tuple[dict[str, SignedTarget], datetime | None]:
    """The targets of the targets/releases delegation, verified with the keys the targets role delegated to."""
    delegations = _object(targets.get("delegations", {}), "the delegations")
    roles = delegations.get("roles", [])
    if not isinstance(roles, list):
        raise TrustError("the delegations are not a list")
    role = next((r for r in roles if isinstance(r, dict) and r.get("name") == RELEASES), None)
    if role is None or RELEASES not in snapshot_meta:
        return {}, None
    keys = _object(delegations.get("keys"), "the delegations' keys")
    key_ids, threshold = (
        _strings(role.get("keyids"), "the delegation's keys"),
        _count(role.get("threshold"), "a threshold"),
    )
    # As in notary, a delegation signs only the targets under its path prefixes ("" is every path); one without
    # paths, as `notary delegation add` writes without --paths or --all-paths, signs nothing.
    paths = _strings(role.get("paths", []), "the delegation's paths")
    document = parse(_fetch_listed(fetch, snapshot_meta, RELEASES, SNAPSHOT), RELEASES)
    signed = _typed(verify_signatures(document, RELEASES, keys, key_ids, threshold, now), RELEASES)
    _versioned(signed, RELEASES, seen, versions)
    expires = _expires(signed, RELEASES, now)
    return _targets_of(signed, RELEASES, None if "" in paths else paths), expires


def verify(
    gun: str,
    fetch: Fetch,
    pinned: RootKeys | None = None,
    now: datetime | None = None,
    seen: dict[str, int] | None = None,
) -> Collection:
    """The GUN's trust data verified from root to targets; TrustError (Expired) says what fails. `seen` holds the
    role versions verified before (Collection.versions): an older one is refused."""
    now = now or datetime.now(UTC)
    seen = seen or {}
    versions: dict[str, int] = {}
    root_content, root, root_keys = _root(fetch, gun, pinned, now)
    _versioned(root, ROOT, seen, versions)
    keys = root["keys"]

    timestamp = _typed(
        verify_signatures(parse(fetch(TIMESTAMP, None), TIMESTAMP), TIMESTAMP, keys, *_role_keys(root, TIMESTAMP), now),
        TIMESTAMP,
    )
    _versioned(timestamp, TIMESTAMP, seen, versions)
    expiries = [_expires(root, ROOT, now), _expires(timestamp, TIMESTAMP, now)]

    snapshot_content = _fetch_listed(fetch, timestamp.get("meta"), SNAPSHOT, TIMESTAMP)
    snapshot = _typed(
        verify_signatures(parse(snapshot_content, SNAPSHOT), SNAPSHOT, keys, *_role_keys(root, SNAPSHOT), now),
        SNAPSHOT,
    )
    _versioned(snapshot, SNAPSHOT, seen, versions)
    expiries.append(_expires(snapshot, SNAPSHOT, now))
    meta = _object(snapshot.get("meta"), "the snapshot metadata's list")
    if ROOT in meta and _listed(meta, ROOT, SNAPSHOT)[0] != sha256(root_content):
        raise TrustError("the snapshot lists another root than the one notary serves")

    targets_content = _fetch_listed(fetch, meta, TARGETS, SNAPSHOT)
    targets = _typed(
        verify_signatures(parse(targets_content, TARGETS), TARGETS, keys, *_role_keys(root, TARGETS), now), TARGETS
    )
    _versioned(targets, TARGETS, seen, versions)
    expiries.append(_expires(targets, TARGETS, now))
    signed = _targets_of(targets, TARGETS, None)
    releases, releases_expiry = _releases(fetch, targets, meta, now, seen, versions)
    if releases_expiry is not None:
        expiries.append(releases_expiry)
    return Collection(
        gun=gun,
        targets={**signed, **releases},
        expires=min(expiries),
        root=root_keys,
        checksums={SNAPSHOT: sha256(snapshot_content), TARGETS: sha256(targets_content)},
        versions=versions,
    )

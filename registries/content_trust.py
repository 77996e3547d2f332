"""Content trust: the signatures notary holds for the integrated registry's images, read, verified and cached.

The portal reads a repository's trust data from notary (as the system, with a short-lived token of notary's
audience), verifies it with `registries.tuf` from root to targets, and answers whether a tag or digest is signed,
and why not. Files are cached by their checksum, and a verified collection by its timestamp's checksum, so a
manifest pull in a content-trust project costs one small request to notary (the timestamp) once the data is known.
Whatever cannot be read or believed counts as not signed, with the reason: content trust fails closed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import urllib3
from django.conf import settings
from django.core.cache import cache

from portal.core.audit import Actor
from portal.core.audit import record as record_event
from portal.core.certificates import pki_paths
from portal.core.errors import RemoteUnreachable
from projects.models import Project
from projects.policy import ALLOWED, Verdict
from registries import tuf
from registries.client import RegistryClient, network_reason
from registries.models import TrustCollection
from registries.token import Access, system_token

logger = logging.getLogger(__name__)

TIMEOUT = (3.05, 10)
# How long a verified collection is kept without a change of its timestamp (its own expiry caps it).
COLLECTION_CACHE_SECONDS = 3600
FILE_CACHE_SECONDS = 24 * 3600

NO_TRUST_DATA = "no trust data: the image was never pushed with DOCKER_CONTENT_TRUST=1"
NOT_SIGNED = "this tag has no signature"
DIGEST_MISMATCH = "signed for another digest: the tag was pushed again without signing"
UNKNOWN_DIGEST = "no signature names this digest"


class TrustUnavailable(tuf.TrustError):
    """Notary could not be asked (down, slow, or answering with an error)."""


class NoTrustData(tuf.TrustError):
    """Notary has no trust data for the GUN."""


@dataclass(frozen=True)
class Signature:
    """Whether one tag or digest is signed; when not, why. `target` is the signature that matched or was found."""

    signed: bool
    reason: str = ""
    target: tuf.SignedTarget | None = None


@dataclass
class Signatures:
    """A repository's verified signatures by tag, and what went wrong where none could be read."""

    targets: dict[str, tuf.SignedTarget] = field(default_factory=dict)
    problem: str = ""

    def of(self, tag: str, digest: str) -> Signature:
        """The signature state of the tag whose manifest has the digest."""
        target = self.targets.get(tag)
        if target is None:
            return Signature(False, self.problem or NOT_SIGNED)
        if digest and target.digest != digest:
            return Signature(False, DIGEST_MISMATCH, target)
        return Signature(True, target=target)

    def of_digest(self, digest: str) -> Signature:
        """Whether any signature names the manifest digest (docker pulls a signed tag by its digest)."""
        for target in self.targets.values():
            if target.digest == digest:
                return Signature(True, target=target)
        return Signature(False, self.problem or UNKNOWN_DIGEST)


def is_configured() -> bool:
    """Whether the portal knows where to read trust data from."""
    return bool(settings.NOTARY_INTERNAL_URL)


def record_collection(gun: str, repository: str) -> None:
    """Remember that a signer was allowed to push trust data to the GUN of the repository (token service)."""
    TrustCollection.objects.get_or_create(gun=gun, defaults={"repository": repository})


def _url(gun: str, path: str) -> str:
    return f"{settings.NOTARY_INTERNAL_URL.rstrip('/')}/v2/{gun}/_trust/tuf/{path}"


@functools.lru_cache(maxsize=4)
def _pool(ca_file: str) -> urllib3.PoolManager:
    """Kept-alive connections to notary, verified with the portal CA (one pool per CA file; tests make several)."""
    return urllib3.PoolManager(
        num_pools=4,
        maxsize=16,
        block=False,
        retries=False,
        cert_reqs="CERT_REQUIRED",
        ca_certs=ca_file,
        timeout=urllib3.Timeout(connect=TIMEOUT[0], read=TIMEOUT[1]),
    )


def _request(method: str, gun: str, path: str, actions: tuple[str, ...]) -> urllib3.BaseHTTPResponse:
    """One request to notary as the system, its body unread; TrustUnavailable on network faults."""
    token = system_token([Access("repository", gun, actions)], audience=settings.NOTARY_SERVICE)
    try:
        return _pool(str(pki_paths().ca_cert)).request(
            method,
            _url(gun, path),
            headers={"Authorization": f"Bearer {token}"},
            preload_content=False,
            redirect=False,
        )
    except urllib3.exceptions.HTTPError as exc:
        raise TrustUnavailable(f"notary unreachable: {network_reason(exc)}") from exc


def _get(gun: str, role: str, checksum: str | None) -> bytes:
    """A role file from notary (by checksum when known), at most tuf.MAX_FILE bytes."""
    response = _request("GET", gun, f"{role}.{checksum}.json" if checksum else f"{role}.json", ("pull",))
    try:
        if response.status == 404 and checksum is None:
            raise NoTrustData(NO_TRUST_DATA)
        if response.status == 404:
            # The file its parent lists by checksum is gone: notary's data is inconsistent, not absent.
            raise tuf.TrustError(f"notary no longer has the {role} metadata its parent lists")
        if response.status != 200:
            raise TrustUnavailable(f"notary answered {response.status} for the {role} metadata")
        content = response.read(tuf.MAX_FILE + 1)
    except urllib3.exceptions.HTTPError as exc:
        raise TrustUnavailable(f"notary unreachable: {network_reason(exc)}") from exc
    finally:
        response.release_conn()
    if len(content) > tuf.MAX_FILE:
        raise tuf.TrustError(f"the {role} metadata is larger than {tuf.MAX_FILE} bytes")
    return content


def _fetcher(gun: str, timestamp: bytes) -> tuf.Fetch:
    """The fetch function of a verification: the timestamp already read, files by checksum from the cache."""

    def fetch(role: str, checksum: str | None) -> bytes:
        if role == tuf.TIMESTAMP:
            return timestamp
        if checksum is None:
            return _get(gun, role, None)
        key = f"trust:file:{checksum}"
        content = cache.get(key)
        if content is None or tuf.sha256(content) != checksum:
            content = _get(gun, role, checksum)
            cache.set(key, content, FILE_CACHE_SECONDS)
        return content

    return fetch


def _collection(record: TrustCollection, now: datetime) -> tuf.Collection:
    """The GUN's verified collection: from the cache while its timestamp is unchanged, else verified afresh."""
    timestamp = _get(record.gun, tuf.TIMESTAMP, None)
    key = f"trust:collection:{hashlib.sha256(record.gun.encode()).hexdigest()}:{tuf.sha256(timestamp)}"
    seen = record.seen_versions if isinstance(record.seen_versions, dict) else {}
    cached = cache.get(key)
    if isinstance(cached, tuf.Collection) and cached.expires > now and _not_older(cached.versions, seen):
        return cached
    pinned = tuf.RootKeys.from_json(record.pinned_root) if record.pinned_root else None
    collection = tuf.verify(record.gun, _fetcher(record.gun, timestamp), pinned, now, seen)
    changes: dict[str, object] = {}
    if record.pinned_root != collection.root.as_json():
        # The first root seen is pinned; a rotation signed by the pinned keys moves the pin on.
        changes["pinned_root"] = collection.root.as_json()
    if seen != collection.versions:
        changes["seen_versions"] = collection.versions
    if changes:
        TrustCollection.objects.filter(pk=record.pk).update(**changes)
    if "pinned_root" in changes:
        _audit_pin(record, collection.root)
    cache.set(key, collection, min(COLLECTION_CACHE_SECONDS, int((collection.expires - now).total_seconds())))
    return collection


def _audit_pin(record: TrustCollection, root: tuf.RootKeys) -> None:
    """Audit the root keys pinned for a GUN: at first sight, and when a rotation signed by the pinned keys moves the
    pin on (from then on only trust data under the new keys counts)."""
    project = Project.objects.filter(name=record.repository.split("/", 1)[0]).first()
    earlier = sorted(record.pinned_root.get("keys", {})) if isinstance(record.pinned_root, dict) else []
    detail: dict[str, object] = {"gun": record.gun, "root_keys": sorted(root.keys), "threshold": root.threshold}
    if earlier:
        detail["rotated_from"] = earlier
    record_event(Actor.system("content trust"), "trust", "repository", record.repository, project, **detail)


def _not_older(versions: dict[str, int], seen: dict[str, int]) -> bool:
    """Whether no role file of a verified collection is older than the version last seen of it."""
    return all(versions.get(role, 0) >= version for role, version in seen.items() if isinstance(version, int))


def signatures(repository: str, now: datetime | None = None) -> Signatures:
    """Every verified signature of the repository's tags, across the GUNs signers pushed to."""
    now = now or datetime.now(UTC)
    if not is_configured():
        return Signatures(problem="content trust is not configured: the portal has no notary")
    records = list(TrustCollection.objects.filter(repository=repository).order_by("created"))
    if not records:
        return Signatures(problem=NO_TRUST_DATA)
    found = Signatures()
    problems = []
    for record in records:
        try:
            collection = _collection(record, now)
        except tuf.TrustError as exc:
            if not isinstance(exc, NoTrustData):
                logger.warning("trust data of %s not believed: %s", record.gun, exc.reason)
            problems.append(exc.reason)
            continue
        for tag, target in collection.targets.items():
            found.targets.setdefault(tag, target)
    if problems and not found.targets:
        # The most telling reason: one that is not merely "no trust data" under one of the names.
        found.problem = next((p for p in problems if p != NO_TRUST_DATA), problems[0])
    return found


def signature(repository: str, reference: str, digest: str = "") -> Signature:
    """Whether the tag (with its current manifest digest) or the digest reference is signed."""
    found = signatures(repository)
    if reference.startswith("sha256:"):
        return found.of_digest(reference)
    return found.of(reference, digest)


def delete_trust_data(repository: str) -> list[str]:
    """Remove the repository's trust data from notary and forget its GUNs; the GUNs notary could not delete."""
    left = []
    if not is_configured():
        TrustCollection.objects.filter(repository=repository).delete()
        return left
    for record in TrustCollection.objects.filter(repository=repository):
        try:
            response = _request("DELETE", record.gun, "", ("*",))
            response.drain_conn()
            response.release_conn()
            if response.status not in (200, 202, 204, 404):
                raise TrustUnavailable(f"notary answered {response.status}")
        except TrustUnavailable as exc:
            logger.warning("trust data of %s not deleted: %s", record.gun, exc.reason)
            left.append(record.gun)
            continue
        record.delete()
    return left


def signature_verdict(project: Project, repository: str, reference: str, digest: str = "") -> Verdict:
    """The run policy's content-trust answer (plugged into projects.policy.check by RegistriesConfig.ready).

    A tag's digest is what the registry serves for it now, asked when the caller did not read it: the portal's own
    records may lag behind a push, and a tag re-pushed unsigned must not ride on the old signature.
    """
    if not digest and not reference.startswith("sha256:"):
        try:
            head = RegistryClient().head_manifest(repository, reference)
        except RemoteUnreachable as exc:
            return Verdict(False, f"image not signed: the registry could not be asked ({exc})")
        if head is None:
            return Verdict(False, f"image not signed: {repository} has no tag {reference}")
        digest = head.digest
    found = signature(repository, reference, digest)
    return ALLOWED if found.signed else Verdict(False, f"image not signed: {found.reason}")

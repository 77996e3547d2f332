"""registries.content_trust against a real notary-server (memory storage, TLS with the portal CA's notary
certificate, as the portal reaches it in production): what it answers about a repository's signatures, what it
asks notary for, what it caches and pins, and how it fails closed."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
import requests
from django.core.cache import cache

from portal.core.certificates import pki_paths
from portal.core.models import AuditEvent
from projects.models import Project
from projects.policy import ALLOWED
from registries import content_trust, tuf
from registries.models import TrustCollection
from tests.integration.slapd import free_port
from tests.loopback import HttpsServer
from tests.registries.memory_notary import MemoryNotary, delegation_key, memory_notary
from tests.registries.tuf_builder import digest

pytestmark = pytest.mark.integration

V1, V2, V3 = (json.dumps({"schemaVersion": 2, "v": n}).encode() for n in (1, 2, 3))
HOST = "127.0.0.1:8282"


class StandIn:
    """An HTTPS server on a free loopback port with the notary certificate: relays every request to `upstream`
    (recording its method and path), or misbehaves when `fault` is set: an HTTP status to answer with, "cut" (the
    body ends before its announced length) or "stall" (the body stops coming)."""

    def __init__(self, upstream: str = "", fault: int | str | None = None) -> None:
        self.upstream, self.fault = upstream, fault
        # Files (by path prefix under _trust/tuf/) answered with 404, as if notary had lost them.
        self.fault_paths: tuple[str, ...] = ()
        # Files (by name under _trust/tuf/) answered with these bytes instead of notary's: trust data replayed.
        self.replay: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.stopping = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def relay(self) -> None:
                stand_in.requests.append((self.command, self.path))
                if stand_in.fault in ("cut", "stall"):
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b'{"signed": {')
                    self.wfile.flush()
                    if stand_in.fault == "stall":
                        stand_in.stopping.wait(30)
                    self.close_connection = True
                    return
                name = self.path.split("/_trust/tuf/", 1)[-1]
                lost = name.startswith(stand_in.fault_paths or ("\0",))
                if name in stand_in.replay:
                    status, body = 200, stand_in.replay[name]
                elif lost:
                    status, body = 404, b'{"errors": [{"code": "METADATA_NOT_FOUND"}]}'
                elif isinstance(stand_in.fault, int):
                    status, body = stand_in.fault, b'{"errors": [{"code": "UNKNOWN"}]}'
                else:
                    answer = requests.request(
                        self.command,
                        stand_in.upstream + self.path,
                        headers={"Authorization": self.headers.get("Authorization", "")},
                        verify=str(pki_paths().ca_cert),
                        timeout=10,
                    )
                    status, body = answer.status_code, answer.content
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_DELETE = relay

            def log_message(self, *args: object) -> None:
                pass

        self.https = HttpsServer(Handler, pki_paths().notary_cert, pki_paths().notary_key)
        self.url = self.https.url

    def paths(self) -> list[str]:
        """The paths asked for since the last call, under the GUNs' /v2/<gun>/_trust/tuf/."""
        asked = [path.split("/_trust/tuf/", 1)[1] for _method, path in self.requests]
        self.requests.clear()
        return asked

    def close(self) -> None:
        self.stopping.set()
        self.https.close()


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryNotary]:
    with memory_notary(tmp_path_factory.mktemp("notary"), pki_paths()) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_cached_trust_data() -> Iterator[None]:
    """Each test reads notary afresh: cached collections of another test's GUNs would hide what is asked."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def relay(notary: MemoryNotary, settings: object) -> Iterator[StandIn]:
    """The portal reading notary through a relay that counts its requests."""
    stand_in = StandIn(notary.url)
    settings.NOTARY_INTERNAL_URL = stand_in.url
    yield stand_in
    stand_in.close()


@pytest.fixture
def direct(notary: MemoryNotary, settings: object) -> MemoryNotary:
    """The portal reading notary itself, over TLS with the portal CA."""
    settings.NOTARY_INTERNAL_URL = notary.url
    return notary


def _sign(notary: MemoryNotary, gun: str, workdir: Path, tags: dict[str, bytes], *options: str) -> None:
    """Sign the tags (manifest bytes by tag) into the GUN with the notary CLI and publish."""
    for tag, manifest in tags.items():
        path = workdir / f"{tag}.json"
        path.write_bytes(manifest)
        notary.cli("add", *options, gun, tag, str(path))
    notary.cli("publish", gun)


@pytest.fixture
def signed(notary: MemoryNotary, tmp_path: Path, request: pytest.FixtureRequest, db: None) -> tuple[str, str]:
    """(repository, GUN) with 1.0 signed for V1 and latest for V2; the GUN recorded as the token service does."""
    repository = f"alpha/{request.node.name[:40].replace('_', '-')}"
    gun = f"{HOST}/{repository}"
    notary.cli("init", gun)
    _sign(notary, gun, tmp_path, {"1.0": V1, "latest": V2})
    content_trust.record_collection(gun, repository)
    return repository, gun


def test_a_repository_nobody_signed_has_no_trust_data(relay: StandIn, db: None) -> None:
    found = content_trust.signatures("alpha/never-signed")
    assert (found.targets, found.problem) == ({}, content_trust.NO_TRUST_DATA)
    answer = content_trust.signature("alpha/never-signed", "1.0", digest(V1))
    assert (answer.signed, answer.reason) == (False, content_trust.NO_TRUST_DATA)
    assert relay.paths() == []  # Nothing recorded for the repository: notary is not asked.


def test_a_recorded_gun_notary_has_nothing_for_is_no_trust_data(relay: StandIn, db: None) -> None:
    # The token service records a GUN when a signer asks to push; the push may never have happened.
    content_trust.record_collection(f"{HOST}/alpha/app", "alpha/app")
    assert content_trust.signatures("alpha/app").problem == content_trust.NO_TRUST_DATA
    assert relay.paths() == ["timestamp.json"]


def test_tags_are_signed_for_their_digests_and_digests_for_themselves(
    direct: MemoryNotary, signed: tuple[str, str]
) -> None:
    repository, _gun = signed
    tag = content_trust.signature(repository, "1.0", digest(V1))
    assert tag.signed and tag.target is not None and tag.target.digest == digest(V1)
    assert tag.target.role == tuf.TARGETS

    moved = content_trust.signature(repository, "1.0", digest(V3))
    assert (moved.signed, moved.reason) == (False, content_trust.DIGEST_MISMATCH)
    assert moved.target is not None and moved.target.digest == digest(V1)

    assert content_trust.signature(repository, digest(V2)).signed
    unknown = content_trust.signature(repository, digest(V3))
    assert (unknown.signed, unknown.reason) == (False, content_trust.UNKNOWN_DIGEST)
    unsigned = content_trust.signature(repository, "2.0", digest(V3))
    assert (unsigned.signed, unsigned.reason) == (False, content_trust.NOT_SIGNED)


def test_the_run_policy_answer_follows_the_signature(direct: MemoryNotary, signed: tuple[str, str]) -> None:
    repository, _gun = signed
    project = Project.objects.create(name="alpha", content_trust=True)
    assert content_trust.signature_verdict(project, repository, "1.0", digest(V1)) == ALLOWED
    refused = content_trust.signature_verdict(project, repository, "1.0", digest(V3))
    assert (refused.allowed, refused.reason) == (False, f"image not signed: {content_trust.DIGEST_MISMATCH}")
    assert content_trust.signature_verdict(project, repository, digest(V2)) == ALLOWED


def test_a_known_collection_costs_one_timestamp_request(relay: StandIn, signed: tuple[str, str]) -> None:
    repository, _gun = signed
    first = content_trust.signatures(repository)
    assert set(first.targets) == {"1.0", "latest"}
    asked = relay.paths()
    assert asked[:2] == ["timestamp.json", "root.json"], asked
    assert sorted(path.split(".")[0] for path in asked[2:]) == ["snapshot", "targets"], asked

    # The module's promise: while the timestamp is the same, the verified collection answers from the cache.
    for _ in range(3):
        assert content_trust.signatures(repository).targets == first.targets
    assert relay.paths() == ["timestamp.json"] * 3


def test_a_new_publish_is_seen_at_once_and_unchanged_files_come_from_the_cache(
    relay: StandIn, notary: MemoryNotary, signed: tuple[str, str], tmp_path: Path
) -> None:
    repository, gun = signed
    content_trust.signatures(repository)
    relay.paths()
    _sign(notary, gun, tmp_path, {"2.0": V3})
    assert content_trust.signature(repository, "2.0", digest(V3)).signed
    asked = relay.paths()
    assert asked[:2] == ["timestamp.json", "root.json"], asked
    assert sorted(path.split(".")[0] for path in asked[2:]) == ["snapshot", "targets"], asked

    # A delegate's publish changes targets/releases, the snapshot and the timestamp, not targets: that file is
    # not asked for again.
    certificate, key = delegation_key(tmp_path)
    notary.cli("delegation", "add", gun, tuf.RELEASES, str(certificate), "--all-paths")
    notary.cli("publish", gun)
    notary.cli("key", "import", str(key), "--role", tuf.RELEASES)
    content_trust.signatures(repository)
    relay.paths()
    _sign(notary, gun, tmp_path, {"1.0": V3}, "--roles", tuf.RELEASES)
    answer = content_trust.signature(repository, "1.0", digest(V3))
    assert answer.signed and answer.target is not None and answer.target.role == tuf.RELEASES
    asked = relay.paths()
    assert asked[:2] == ["timestamp.json", "root.json"], asked
    assert sorted(path.split(".")[0] for path in asked[2:]) == ["snapshot", "targets/releases"], asked


def test_the_root_is_pinned_at_first_sight_and_trust_data_under_other_keys_is_refused(
    relay: StandIn, notary: MemoryNotary, signed: tuple[str, str], tmp_path: Path
) -> None:
    repository, gun = signed
    assert TrustCollection.objects.get(gun=gun).pinned_root is None
    content_trust.signatures(repository)
    pinned = TrustCollection.objects.get(gun=gun).pinned_root
    root = json.loads(notary.role_file(gun, tuf.ROOT))["signed"]
    assert pinned == {"keys": {kid: root["keys"][kid] for kid in root["roles"]["root"]["keyids"]}, "threshold": 1}

    # Someone with access to notary deletes the trust data and starts the GUN again with keys of their own.
    notary.cli("delete", gun, "--remote")
    notary.cli("init", gun, trust_dir=tmp_path / "intruder")
    notary.cli("publish", gun, trust_dir=tmp_path / "intruder")
    new_root = json.loads(notary.role_file(gun, tuf.ROOT))["signed"]["roles"]["root"]["keyids"]
    assert set(new_root).isdisjoint(pinned["keys"])
    found = content_trust.signatures(repository)
    assert found.targets == {} and "rotated root" in found.problem, found.problem
    assert TrustCollection.objects.get(gun=gun).pinned_root == pinned


def test_notary_serving_older_trust_data_again_is_refused_as_a_rollback(
    relay: StandIn, notary: MemoryNotary, signed: tuple[str, str], tmp_path: Path
) -> None:
    repository, gun = signed
    old_timestamp = notary.role_file(gun, tuf.TIMESTAMP)
    assert content_trust.signature(repository, "1.0", digest(V1)).signed
    _sign(notary, gun, tmp_path, {"2.0": V3})
    assert content_trust.signature(repository, "2.0", digest(V3)).signed
    seen = TrustCollection.objects.get(gun=gun).seen_versions
    assert seen[tuf.TIMESTAMP] > json.loads(old_timestamp)["signed"]["version"]

    # A notary (or whoever sits in its place) answers with the earlier timestamp, validly signed and not expired,
    # which hides the signature of 2.0: refused, whether that collection is still cached or read afresh.
    relay.replay = {"timestamp.json": old_timestamp}
    for cleared in (False, True):
        if cleared:
            cache.clear()
        found = content_trust.signatures(repository)
        assert found.targets == {}, cleared
        assert found.problem.startswith("rollback: notary serves timestamp version"), found.problem
    relay.replay = {}
    assert content_trust.signature(repository, "2.0", digest(V3)).signed


def test_without_notary_nothing_is_signed_and_deleting_forgets_the_records(settings: object, db: None) -> None:
    settings.NOTARY_INTERNAL_URL = ""
    content_trust.record_collection(f"{HOST}/alpha/app", "alpha/app")
    assert content_trust.signatures("alpha/app").problem.startswith("content trust is not configured")
    assert content_trust.delete_trust_data("alpha/app") == []
    assert not TrustCollection.objects.exists()


def test_root_rotations_signed_by_the_pinned_keys_move_the_pin(
    relay: StandIn, notary: MemoryNotary, signed: tuple[str, str]
) -> None:
    repository, gun = signed
    assert content_trust.signature(repository, "1.0", digest(V1)).signed
    pinned = TrustCollection.objects.get(gun=gun).pinned_root
    # Two rotations before the portal looks again: notary signs each new root with the keys of the one before, so
    # the newest was never signed by the pinned keys; the portal walks the versions between, as notary's client.
    notary.cli("key", "rotate", gun, "root", stdin="yes\n")
    notary.cli("key", "rotate", gun, "root", stdin="yes\n")
    newest = json.loads(notary.role_file(gun, tuf.ROOT))
    assert newest["signed"]["version"] == 3
    assert {entry["keyid"] for entry in newest["signatures"]}.isdisjoint(pinned["keys"])
    relay.paths()
    assert content_trust.signature(repository, "1.0", digest(V1)).signed
    asked = relay.paths()
    assert "1.root.json" in asked and "2.root.json" in asked, asked
    moved = TrustCollection.objects.get(gun=gun).pinned_root
    assert set(moved["keys"]) == set(newest["signed"]["roles"]["root"]["keyids"])
    assert set(moved["keys"]).isdisjoint(pinned["keys"])
    # Both pins are in the audit log: the first sight, and the move with the keys it moved from.
    pins = AuditEvent.objects.filter(action="trust", resource_type="repository", resource_name=repository)
    assert [event.username for event in pins] == ["content trust", "content trust"]
    latest, first = pins  # newest first
    assert first.detail == {"gun": gun, "root_keys": sorted(pinned["keys"]), "threshold": 1}
    assert latest.detail["root_keys"] == sorted(moved["keys"]) and latest.detail["rotated_from"] == sorted(
        pinned["keys"]
    )


def test_notary_down_means_unreachable(settings: object, db: None) -> None:
    settings.NOTARY_INTERNAL_URL = f"https://127.0.0.1:{free_port()}"
    content_trust.record_collection(f"{HOST}/alpha/app", "alpha/app")
    found = content_trust.signatures("alpha/app")
    assert found.targets == {} and found.problem.startswith("notary unreachable"), found.problem
    answer = content_trust.signature("alpha/app", "1.0", digest(V1))
    assert not answer.signed and answer.reason.startswith("notary unreachable")


def test_notary_answering_an_error_is_said_so(settings: object, db: None) -> None:
    failing = StandIn(fault=500)
    settings.NOTARY_INTERNAL_URL = failing.url
    try:
        content_trust.record_collection(f"{HOST}/alpha/app", "alpha/app")
        found = content_trust.signatures("alpha/app")
        assert found.problem == "notary answered 500 for the timestamp metadata"
    finally:
        failing.close()


@pytest.mark.parametrize("fault", ["cut", "stall"])
def test_notary_failing_in_the_middle_of_an_answer_means_unreachable(
    fault: str, settings: object, db: None, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # A short read timeout, in connection pools made with it (and dropped afterwards).
    monkeypatch.setattr(content_trust, "TIMEOUT", (3.05, 1))
    content_trust._pool.cache_clear()
    request.addfinalizer(content_trust._pool.cache_clear)
    failing = StandIn(fault=fault)
    settings.NOTARY_INTERNAL_URL = failing.url
    with contextlib.closing(failing):
        content_trust.record_collection(f"{HOST}/alpha/app", "alpha/app")
        found = content_trust.signatures("alpha/app")
    assert found.targets == {} and found.problem.startswith("notary unreachable"), found.problem


def test_a_collection_past_its_expiry_is_not_served_from_the_cache(relay: StandIn, signed: tuple[str, str]) -> None:
    repository, _gun = signed
    assert content_trust.signatures(repository).targets
    later = datetime.now(UTC) + timedelta(days=30)  # notary-server's timestamps live 14 days
    found = content_trust.signatures(repository, now=later)
    assert found.targets == {} and found.problem.startswith("the timestamp metadata expired"), found.problem


def test_signatures_of_any_gun_a_signer_pushed_to_count(relay: StandIn, signed: tuple[str, str]) -> None:
    # Docker names trust data after the host it pushed to; a second name of the portal's has nothing yet.
    repository, _gun = signed
    content_trust.record_collection(f"wharf.example:8282/{repository}", repository)
    found = content_trust.signatures(repository)
    assert set(found.targets) == {"1.0", "latest"} and found.problem == ""


def test_deleting_trust_data_removes_it_from_notary_and_forgets_the_guns(
    relay: StandIn, notary: MemoryNotary, signed: tuple[str, str]
) -> None:
    repository, gun = signed
    content_trust.record_collection(f"wharf.example:8282/{repository}", repository)
    assert content_trust.delete_trust_data(repository) == []
    assert ("DELETE", f"/v2/{gun}/_trust/tuf/") in relay.requests
    with pytest.raises(requests.HTTPError) as gone:
        notary.role_file(gun, tuf.TIMESTAMP)
    assert gone.value.response.status_code == 404
    assert not TrustCollection.objects.filter(repository=repository).exists()
    assert content_trust.signatures(repository).problem == content_trust.NO_TRUST_DATA


def test_trust_data_notary_cannot_delete_is_kept_on_record(settings: object, db: None) -> None:
    settings.NOTARY_INTERNAL_URL = f"https://127.0.0.1:{free_port()}"
    content_trust.record_collection(f"{HOST}/alpha/app", "alpha/app")
    assert content_trust.delete_trust_data("alpha/app") == [f"{HOST}/alpha/app"]
    assert TrustCollection.objects.filter(repository="alpha/app").exists()
    failing = StandIn(fault=500)
    settings.NOTARY_INTERNAL_URL = failing.url
    with contextlib.closing(failing):
        assert content_trust.delete_trust_data("alpha/app") == [f"{HOST}/alpha/app"]
    assert TrustCollection.objects.filter(repository="alpha/app").exists()


def test_an_unreadable_pinned_root_refuses_the_gun(relay: StandIn, signed: tuple[str, str]) -> None:
    repository, gun = signed
    TrustCollection.objects.filter(gun=gun).update(pinned_root={"keys": "not keys"})
    found = content_trust.signatures(repository)
    assert found.targets == {} and found.problem == "the root keys pinned for this repository are unreadable"


def test_a_listed_file_notary_no_longer_has_is_not_called_absent_trust_data(
    relay: StandIn, signed: tuple[str, str]
) -> None:
    repository, _gun = signed
    relay.fault_paths = ("snapshot.",)
    found = content_trust.signatures(repository)
    assert found.targets == {}
    assert found.problem == "notary no longer has the snapshot metadata its parent lists", found.problem

"""registries.tuf: what verification of notary's trust data concludes, link by link of the chain
root -> timestamp -> snapshot -> targets (-> targets/releases), on data made in Python as notary makes it."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.core.certificates import pki_paths
from registries import tuf
from tests.registries.memory_notary import MemoryNotary, delegation_key, memory_notary
from tests.registries.tuf_builder import (
    GUN,
    NOW,
    Server,
    TrustRepo,
    digest,
    ecdsa_key,
    ed25519_key,
    go_time,
    meta,
    rsa_key,
    signed_file,
    verify,
    x509_key,
)

V1, V2 = b'{"schemaVersion": 2, "v": 1}', b'{"schemaVersion": 2, "v": 2}'


def test_a_valid_chain_gives_the_signed_tags_with_their_digests() -> None:
    repo = TrustRepo(targets={"1.0": V1, "latest": V2})
    collection = verify(repo.build())
    assert collection.gun == GUN
    assert {name: (t.digest, t.length, t.role) for name, t in collection.targets.items()} == {
        "1.0": (digest(V1), len(V1), "targets"),
        "latest": (digest(V2), len(V2), "targets"),
    }
    assert digest(V1).startswith("sha256:") and len(digest(V1)) == 7 + 64
    # The collection must be read again when its shortest-lived file (the timestamp) expires.
    assert collection.expires == NOW + timedelta(days=14)
    assert collection.root.keys == {key.id: key.record for key in repo.root}


def test_every_key_type_and_signing_method_notary_knows_verifies() -> None:
    repo = TrustRepo(
        root=[x509_key(private=rsa_key().private)],
        targets_keys=[rsa_key("rsapss")],
        snapshot_keys=[rsa_key("rsapkcs1v15")],
        timestamp_keys=[ecdsa_key()],
        releases_keys=[x509_key("releaser")],
        targets={"1.0": V1},
        releases={"2.0": V2},
    )
    assert {name: t.role for name, t in verify(repo.build()).targets.items()} == {
        "1.0": "targets",
        "2.0": tuf.RELEASES,
    }


def test_the_releases_delegation_wins_over_targets_for_the_same_tag() -> None:
    repo = TrustRepo(releases_keys=[ecdsa_key()], targets={"1.0": V1, "old": V1}, releases={"1.0": V2})
    targets = verify(repo.build()).targets
    assert (targets["1.0"].digest, targets["1.0"].role) == (digest(V2), tuf.RELEASES)
    assert (targets["old"].digest, targets["old"].role) == (digest(V1), tuf.TARGETS)


def test_a_delegation_signs_only_within_its_paths() -> None:
    repo = TrustRepo(
        releases_keys=[ecdsa_key()], releases_paths=["v1."], targets={"v2.0": V1}, releases={"v1.0": V2, "v2.0": V2}
    )
    targets = verify(repo.build()).targets
    assert targets["v1.0"].role == tuf.RELEASES
    assert (targets["v2.0"].digest, targets["v2.0"].role) == (digest(V1), tuf.TARGETS)


def test_a_delegation_without_paths_signs_nothing() -> None:
    # Notary writes no "paths" for a delegation added without --paths or --all-paths, and warns that it
    # "will never be able to publish content until one or more are added": docker and notary ignore its targets.
    repo = TrustRepo(releases_keys=[ecdsa_key()], releases_paths=None, targets={"1.0": V1}, releases={"1.0": V2})
    targets = verify(repo.build()).targets
    assert {name: (t.digest, t.role) for name, t in targets.items()} == {"1.0": (digest(V1), tuf.TARGETS)}
    repo.releases_paths = []
    assert verify(repo.build()).targets["1.0"].role == tuf.TARGETS


def _retarget(content: bytes, tag: str, manifest: bytes) -> bytes:
    """The targets file with the tag pointing at another manifest, its signatures kept as they were."""
    document = json.loads(content)
    document["signed"]["targets"][tag]["hashes"]["sha256"] = base64.b64encode(
        bytes.fromhex(digest(manifest)[7:])
    ).decode()
    return json.dumps(document).encode()


def test_a_tampered_targets_file_is_refused_even_when_snapshot_and_timestamp_list_it() -> None:
    # Whoever holds the snapshot and timestamp keys (notary-server holds the timestamp key) cannot retarget a tag.
    repo = TrustRepo(targets={"1.0": V1})
    tampered = _retarget(repo.targets_file(), "1.0", V2)
    with pytest.raises(tuf.TrustError, match=r"the targets metadata is not signed by its keys \(0 of 1"):
        verify(repo.build(replace={tuf.TARGETS: tampered}))


def test_a_tampered_releases_file_is_refused() -> None:
    repo = TrustRepo(releases_keys=[ecdsa_key()], releases={"1.0": V1})
    tampered = _retarget(repo.releases_file(), "1.0", V2)
    with pytest.raises(tuf.TrustError, match="the targets/releases metadata is not signed by its keys"):
        verify(repo.build(replace={tuf.RELEASES: tampered}))


def test_a_targets_file_the_snapshot_does_not_list_is_refused() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    files = repo.build()
    files[tuf.TARGETS] = _retarget(files[tuf.TARGETS], "1.0", V2)
    with pytest.raises(tuf.TrustError, match="the targets metadata does not match the checksum the snapshot lists"):
        verify(files)


def test_a_signature_by_a_key_outside_the_role_does_not_count() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    # The snapshot key is in the root, but not one of the targets role's keys; a stranger's key is in neither.
    for signer in (repo.snapshot_keys[0], ecdsa_key(), repo.root[0]):
        repo.signers = {tuf.TARGETS: [signer]}
        with pytest.raises(tuf.TrustError, match=r"targets metadata is not signed by its keys \(0 of 1"):
            verify(repo.build())


def test_a_signature_by_the_right_key_id_but_another_key_does_not_count() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    impostor = ecdsa_key()
    content = json.loads(repo.targets_file())
    content["signatures"] = [{**impostor.sign(tuf.canonical(content["signed"])), "keyid": repo.targets_keys[0].id}]
    with pytest.raises(tuf.TrustError, match="targets metadata is not signed by its keys"):
        verify(repo.build(replace={tuf.TARGETS: json.dumps(content).encode()}))


def test_a_signature_with_another_method_than_the_keys_does_not_count() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    content = json.loads(repo.targets_file())
    content["signatures"][0]["method"] = "eddsa"
    with pytest.raises(tuf.TrustError, match="targets metadata is not signed by its keys"):
        verify(repo.build(replace={tuf.TARGETS: json.dumps(content).encode()}))


def test_signatures_below_the_threshold_are_refused_and_one_key_counts_once() -> None:
    first, second = ecdsa_key(), ecdsa_key()
    repo = TrustRepo(targets_keys=[first, second], thresholds={tuf.TARGETS: 2}, targets={"1.0": V1})
    repo.signers = {tuf.TARGETS: [first]}
    with pytest.raises(tuf.TrustError, match=r"the targets metadata is not signed by its keys \(1 of 2 signatures\)"):
        verify(repo.build())
    repo.signers = {tuf.TARGETS: [first, first]}
    with pytest.raises(tuf.TrustError, match=r"\(1 of 2 signatures\)"):
        verify(repo.build())
    repo.signers = {tuf.TARGETS: [second, first]}
    assert verify(repo.build()).targets["1.0"].digest == digest(V1)


def test_a_role_without_a_threshold_is_refused() -> None:
    def no_threshold(role: str, signed: dict) -> None:
        if role == tuf.ROOT:
            signed["roles"][tuf.TARGETS]["threshold"] = 0

    with pytest.raises(tuf.TrustError, match="the targets role has no signing threshold"):
        verify(TrustRepo(targets={"1.0": V1}, mutate=no_threshold).build())


def test_a_snapshot_that_lists_another_targets_checksum_is_refused() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    other = TrustRepo(targets_keys=repo.targets_keys, targets={"1.0": V2}).targets_file()

    def list_other(role: str, signed: dict) -> None:
        if role == tuf.SNAPSHOT:
            signed["meta"][tuf.TARGETS] = meta(other)

    repo.mutate = list_other
    with pytest.raises(tuf.TrustError, match="the targets metadata does not match the checksum the snapshot lists"):
        verify(repo.build())


def test_a_listed_length_that_does_not_match_is_refused() -> None:
    def longer(role: str, signed: dict) -> None:
        if role == tuf.TIMESTAMP:
            signed["meta"][tuf.SNAPSHOT]["length"] += 1

    with pytest.raises(tuf.TrustError, match="the snapshot metadata does not match the checksum the timestamp lists"):
        verify(TrustRepo(targets={"1.0": V1}, mutate=longer).build())


def test_a_timestamp_listing_another_snapshot_is_refused() -> None:
    # An older snapshot, correctly signed: the server serves it, but the timestamp names the newer one.
    repo = TrustRepo(targets={"1.0": V1})
    old = repo.build()
    repo.targets = {"1.0": V2}
    new = repo.build()
    assert old[tuf.SNAPSHOT] != new[tuf.SNAPSHOT]
    with pytest.raises(tuf.TrustError, match="the snapshot metadata does not match the checksum the timestamp lists"):
        verify({**new, tuf.SNAPSHOT: old[tuf.SNAPSHOT], tuf.TARGETS: old[tuf.TARGETS]})


def test_a_snapshot_listing_another_root_is_refused() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    files = repo.build()
    files[tuf.ROOT] = TrustRepo(
        root=repo.root, targets_keys=repo.targets_keys, snapshot_keys=repo.snapshot_keys,
        timestamp_keys=repo.timestamp_keys, expires={tuf.ROOT: NOW + timedelta(days=9)},
    ).root_file()  # fmt: skip
    with pytest.raises(tuf.TrustError, match="the snapshot lists another root"):
        verify(files)


def test_the_timestamp_must_be_signed_by_the_timestamp_key() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    repo.signers = {tuf.TIMESTAMP: repo.snapshot_keys}
    with pytest.raises(tuf.TrustError, match="the timestamp metadata is not signed by its keys"):
        verify(repo.build())


@pytest.mark.parametrize("role", [tuf.TIMESTAMP, tuf.SNAPSHOT, tuf.TARGETS, tuf.RELEASES, tuf.ROOT])
def test_an_expired_role_file_is_refused_with_the_role_named(role: str) -> None:
    repo = TrustRepo(releases_keys=[ecdsa_key()], targets={"1.0": V1}, releases={"2.0": V2})
    repo.expires = {role: NOW - timedelta(minutes=1)}
    with pytest.raises(tuf.Expired, match=f"^the {role} metadata expired on "):
        verify(repo.build())
    # A file that expires after `now` is still good, and the collection expires with it.
    repo.expires = {role: NOW + timedelta(hours=1)}
    assert verify(repo.build()).expires == NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("written", "instant"),
    [
        # Notary writes local time with its offset (Go's time.Now()): a signer in Hawaii, one in Kiritimati.
        ("2030-01-01T04:00:00.123456789-10:00", "2030-01-01T14:00:00.123456+00:00"),
        ("2030-01-02T04:00:00.891623004+14:00", "2030-01-01T14:00:00.891623+00:00"),
        ("2030-01-01T04:00:00.12-10:00", "2030-01-01T14:00:00.120000+00:00"),
        ("2030-01-01T04:00:00-10:00", "2030-01-01T14:00:00+00:00"),
        ("2030-01-01T14:00:00Z", "2030-01-01T14:00:00+00:00"),
        ("2030-01-01T14:00:00.5Z", "2030-01-01T14:00:00.500000+00:00"),
    ],
)
def test_expiry_times_are_read_with_their_offset(written: str, instant: str) -> None:
    def expires(role: str, signed: dict) -> None:
        if role == tuf.TARGETS:
            signed["expires"] = written

    later = {role: NOW.replace(year=2031) for role in (tuf.ROOT, tuf.TIMESTAMP, tuf.SNAPSHOT)}
    repo = TrustRepo(targets={"1.0": V1}, expires=later, mutate=expires)
    assert verify(repo.build(), now=NOW.replace(year=2029)).expires.isoformat() == instant
    # The offset decides whether the file has expired at a given instant.
    moment = datetime.fromisoformat(instant)
    assert verify(repo.build(), now=moment - timedelta(microseconds=1)).expires == moment
    with pytest.raises(tuf.Expired, match="the targets metadata expired"):
        verify(repo.build(), now=moment)


@pytest.mark.parametrize("written", ["", "tomorrow", "2030-13-01T00:00:00Z", "2030-01-01", 20300101, None])
def test_an_unreadable_expiry_is_refused(written: object) -> None:
    def expires(role: str, signed: dict) -> None:
        if role == tuf.SNAPSHOT:
            signed["expires"] = written

    with pytest.raises(tuf.TrustError, match="the snapshot metadata has no valid expiry"):
        verify(TrustRepo(targets={"1.0": V1}, mutate=expires).build())


def test_a_root_certificate_for_another_gun_is_refused() -> None:
    repo = TrustRepo(root=[x509_key("127.0.0.1:8282/beta/app")], targets={"1.0": V1})
    with pytest.raises(tuf.TrustError, match=f"the root certificate is not for {GUN}"):
        verify(repo.build())
    # The same data is good for the GUN it was made for.
    assert verify(repo.build(), gun="127.0.0.1:8282/beta/app").targets["1.0"].digest == digest(V1)


def test_an_expired_or_not_yet_valid_root_certificate_is_refused() -> None:
    expired = TrustRepo(root=[x509_key(not_after=NOW - timedelta(days=1))], targets={"1.0": V1})
    with pytest.raises(tuf.Expired, match="a certificate of the root keys is valid only until"):
        verify(expired.build())
    early = TrustRepo(root=[x509_key(not_before=NOW + timedelta(days=1))], targets={"1.0": V1})
    with pytest.raises(tuf.TrustError, match="a certificate of the root keys"):
        verify(early.build())


def _rotated(repo: TrustRepo, new_root: list, signers: list) -> dict[str, bytes]:
    """The repository's files after a root key rotation to `new_root`, the root signed by `signers`."""
    repo.root = new_root
    repo.signers = {tuf.ROOT: signers}
    return repo.build()


def test_a_rotated_root_needs_the_signature_of_the_pinned_root_keys() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    pinned = verify(repo.build()).root
    old, new = repo.root[0], x509_key()
    only_new = _rotated(repo, [new], [new])
    # Trust on first use: without a pin, the new root is as good as any.
    assert verify(only_new).root.keys == {new.id: new.record}
    with pytest.raises(tuf.TrustError, match="rotated root"):
        verify(only_new, pinned=pinned)
    both = _rotated(repo, [new], [new, old])
    assert verify(both, pinned=pinned).root.keys == {new.id: new.record}
    # The pinned keys alone do not make a root: its own keys must sign it too.
    with pytest.raises(tuf.TrustError, match="the root metadata is not signed"):
        verify(_rotated(repo, [new], [old]), pinned=pinned)


def test_several_rotations_since_the_pin_are_followed_through_the_root_versions() -> None:
    first, second, third = x509_key(), x509_key(), x509_key()
    repo = TrustRepo(root=[first], targets={"1.0": V1})
    version_1 = repo.root_file()
    pinned = verify(repo.build()).root
    # Each rotation is signed by the keys before it, as notary signs one: the newest root never saw the pinned keys.
    repo.root, repo.signers, repo.versions = [second], {tuf.ROOT: [second, first]}, {tuf.ROOT: 2}
    version_2 = repo.root_file()
    repo.root, repo.signers, repo.versions = [third], {tuf.ROOT: [third, second]}, {tuf.ROOT: 3}
    files = repo.build()
    history = {"1.root": version_1, "2.root": version_2, "3.root": files[tuf.ROOT]}

    server = Server({**files, **history})
    collection = tuf.verify(GUN, server, pinned=pinned, now=NOW)
    assert collection.root.keys == {third.id: third.record}
    assert ("1.root", None) in server.asked and ("2.root", None) in server.asked
    # Once pinned to the newest keys, no version is read again.
    server = Server({**files, **history})
    tuf.verify(GUN, server, pinned=collection.root, now=NOW)
    assert not any(role.endswith(".root") for role, _ in server.asked)

    # A missing link, or a link the trusted keys did not sign, leaves the newest root refused.
    with pytest.raises(tuf.TrustError, match="rotated root"):
        verify({**files, "1.root": version_1, "3.root": files[tuf.ROOT]}, pinned=pinned)
    repo.root, repo.signers, repo.versions = [second], {tuf.ROOT: [second]}, {tuf.ROOT: 2}
    with pytest.raises(tuf.TrustError, match="rotated root"):
        verify({**files, **history, "2.root": repo.root_file()}, pinned=pinned)


def test_a_root_version_far_ahead_is_not_walked_to() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    pinned = verify(repo.build()).root
    stranger = x509_key()
    repo.root, repo.versions = [stranger], {tuf.ROOT: 10**6}
    server = Server(repo.build())
    with pytest.raises(tuf.TrustError, match="rotated root"):
        tuf.verify(GUN, server, pinned=pinned, now=NOW)
    assert server.asked == [(tuf.ROOT, None)]


def test_a_rotation_away_from_an_expired_root_certificate_is_accepted() -> None:
    # Rotating the root key is what a signer does when the root certificate expires; notary does not check the
    # expiry of the previous root's certificates when they vouch for the new root.
    old = x509_key(not_after=NOW + timedelta(days=1))
    repo = TrustRepo(root=[old], targets={"1.0": V1})
    pinned = verify(repo.build()).root
    new = x509_key()
    rotated = _rotated(repo, [new], [new, old])
    later = NOW + timedelta(days=2)
    assert verify(rotated, pinned=pinned, now=later).root.keys == {new.id: new.record}
    with pytest.raises(tuf.TrustError, match="rotated root"):
        verify(_rotated(repo, [new], [new]), pinned=pinned, now=later)


def test_a_pinned_root_threshold_cannot_be_lowered_without_the_pinned_signatures() -> None:
    first, second = x509_key(), x509_key()
    repo = TrustRepo(root=[first, second], thresholds={tuf.ROOT: 2}, targets={"1.0": V1})
    pinned = verify(repo.build()).root
    assert pinned.threshold == 2
    # Same keys, threshold lowered to one, signed by one key only: the pinned root wants two.
    repo.thresholds = {tuf.ROOT: 1}
    repo.signers = {tuf.ROOT: [first]}
    with pytest.raises(tuf.TrustError, match="rotated root"):
        verify(repo.build(), pinned=pinned)
    repo.signers = {tuf.ROOT: [first, second]}
    assert verify(repo.build(), pinned=pinned).root.threshold == 1


@pytest.mark.parametrize("role", [tuf.TIMESTAMP, tuf.SNAPSHOT, tuf.TARGETS, tuf.RELEASES, tuf.ROOT])
def test_a_role_file_older_than_one_verified_before_is_a_rollback(role: str) -> None:
    repo = TrustRepo(releases_keys=[ecdsa_key()], targets={"1.0": V1}, releases={"1.0": V1})
    repo.versions = dict.fromkeys([tuf.ROOT, tuf.TIMESTAMP, tuf.SNAPSHOT, tuf.TARGETS, tuf.RELEASES], 4)
    newer = verify(repo.build())
    assert newer.versions == {tuf.ROOT: 4, tuf.TIMESTAMP: 4, tuf.SNAPSHOT: 4, tuf.TARGETS: 4, tuf.RELEASES: 4}
    # Trust data since replaced, served again (every file validly signed, none expired): refused.
    repo.versions[role] = 3
    with pytest.raises(tuf.TrustError, match=f"rollback: notary serves {role} version 3, older than version 4"):
        verify(repo.build(), seen=newer.versions)
    # The same versions again, or newer ones, pass.
    assert verify(repo.build(), seen={**newer.versions, role: 3}).targets["1.0"].digest == digest(V1)


def test_a_key_that_does_not_match_its_id_is_refused() -> None:
    repo = TrustRepo(targets={"1.0": V1})
    stranger = ecdsa_key()

    def swap(role: str, signed: dict) -> None:
        if role == tuf.ROOT:
            signed["keys"][repo.targets_keys[0].id] = stranger.record

    repo.mutate = swap
    repo.signers = {tuf.TARGETS: [stranger]}
    files = repo.build()
    # The stranger's signature under the targets key's ID must not pass for the targets key's.
    targets = json.loads(files[tuf.TARGETS])
    targets["signatures"][0]["keyid"] = repo.targets_keys[0].id
    with pytest.raises(tuf.TrustError, match="does not match its ID"):
        verify(repo.build(replace={tuf.TARGETS: json.dumps(targets).encode()}))


@pytest.mark.parametrize("role", [tuf.ROOT, tuf.TIMESTAMP, tuf.SNAPSHOT, tuf.TARGETS, tuf.RELEASES])
def test_a_file_that_is_not_of_its_roles_type_is_refused(role: str) -> None:
    # Notary checks `_type`: a file one key signed for one role must not pass for another role's file.
    def retype(mutated_role: str, signed: dict) -> None:
        if mutated_role == role:
            signed["_type"] = "Snapshot" if role != tuf.SNAPSHOT else "Timestamp"

    repo = TrustRepo(releases_keys=[ecdsa_key()], releases={"1.0": V1}, mutate=retype)
    with pytest.raises(tuf.TrustError, match=f"the {role} metadata is not "):
        verify(repo.build())


def test_a_target_without_a_sha256_is_left_out() -> None:
    def no_hash(role: str, signed: dict) -> None:
        if role == tuf.TARGETS:
            signed["targets"]["bad"] = {"hashes": {"sha512": "AAAA"}, "length": 1}

    targets = verify(TrustRepo(targets={"1.0": V1}, mutate=no_hash).build()).targets
    assert set(targets) == {"1.0"}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"null",
        b"[]",
        b"{}",
        b"not json",
        b"\xff\xfe",
        b'{"signed": {}, "signatures": {}}',
        b'{"signed": []}',
        b"[" * 100_000,
        b'{"signed": {"a": ' + b"9" * 5000 + b'}, "signatures": []}',
    ],
)
@pytest.mark.parametrize("role", [tuf.ROOT, tuf.TIMESTAMP, tuf.SNAPSHOT, tuf.TARGETS])
def test_malformed_files_are_refused_with_a_trust_error(role: str, content: bytes) -> None:
    repo = TrustRepo(targets={"1.0": V1})
    with pytest.raises(tuf.TrustError):
        verify(repo.build(replace={role: content}))


def test_keys_of_unknown_types_and_bad_base64_are_refused() -> None:
    for keytype, public in (("dsa", "AAAA"), ("ecdsa", "not base64!"), ("ed25519", "AAAA"), ("ecdsa-x509", "AAAA")):
        repo = TrustRepo(targets={"1.0": V1})
        key = repo.targets_keys[0]
        key.record = {"keytype": keytype, "keyval": {"private": None, "public": public}}
        with pytest.raises(tuf.TrustError):
            verify(repo.build())


def test_signed_file_is_what_notary_writes() -> None:
    # The builder's own check: a file's signature verifies over the canonical JSON of its signed part.
    key = ed25519_key()
    document = json.loads(signed_file({"b": 1, "a": go_time(NOW)}, [key]))
    assert tuf.verify_signatures(document, "x", {key.id: key.record}, [key.id], 1, NOW) == document["signed"]


# Values a broken or hostile server might put anywhere: wrong types, huge and non-finite numbers, non-base64.
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, -1, 0]),
    st.floats(),
    st.text(max_size=20),
    st.sampled_from(["not base64!", "AAAA", "====", "", "targets/releases", "ecdsa-x509", "\u0000", "Z"]),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(), st.text(max_size=5), st.none()), max_size=3),
)
FUZZING = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROLES = [tuf.ROOT, tuf.TIMESTAMP, tuf.SNAPSHOT, tuf.TARGETS, tuf.RELEASES]


def _mutate_somewhere(data: st.DataObject, document: dict | list) -> None:
    """Delete or replace one value at a path drawn through the document."""
    node = document
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return
        key = data.draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and data.draw(st.booleans()):
            node = child
            continue
        if data.draw(st.booleans()):
            del node[key]
        else:
            node[key] = data.draw(JUNK)
        return


def _fuzz_repo() -> TrustRepo:
    return TrustRepo(releases_keys=[x509_key("releaser")], targets={"1.0": V1}, releases={"2.0": V2})


def _only_trust_errors(files: dict[str, bytes], pinned: tuf.RootKeys) -> None:
    """Verification of the files either succeeds or says why not with a TrustError, pinned or not."""
    for pin in (None, pinned):
        try:
            collection = verify(files, pinned=pin)
        except tuf.TrustError as exc:
            assert exc.reason
        else:
            assert all(t.digest.startswith("sha256:") and len(t.digest) == 71 for t in collection.targets.values())


@FUZZING
@given(role=st.sampled_from(ROLES), data=st.data())
def test_a_signed_part_mutated_and_signed_again_gives_a_trust_error_or_a_collection(
    role: str, data: st.DataObject
) -> None:
    # Signed again by the role's own keys, so the mutation reaches past the signature checks.
    repo = _fuzz_repo()
    pinned = verify(repo.build()).root

    def mutation(mutated_role: str, signed: dict) -> None:
        if mutated_role == role:
            _mutate_somewhere(data, signed)

    repo.mutate = mutation
    _only_trust_errors(repo.build(), pinned)


@FUZZING
@given(role=st.sampled_from(ROLES), data=st.data())
def test_a_role_file_mutated_anywhere_gives_a_trust_error_or_a_collection(role: str, data: st.DataObject) -> None:
    repo = _fuzz_repo()
    files = repo.build()
    pinned = verify(files).root
    document = json.loads(files[role])
    _mutate_somewhere(data, document)
    _only_trust_errors(repo.build(replace={role: json.dumps(document).encode()}), pinned)


@FUZZING
@given(role=st.sampled_from(ROLES), content=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_a_role_file_of_random_bytes_gives_a_trust_error(role: str, content: bytes) -> None:
    repo = _fuzz_repo()
    with pytest.raises(tuf.TrustError):
        verify(repo.build(replace={role: content}))


# Cross-check with real notary: trust data the `notary` CLI signs into a real notary-server verifies, and gives the
# digests notary itself lists.


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemoryNotary]:
    with memory_notary(tmp_path_factory.mktemp("notary"), pki_paths()) as server:
        yield server


def _listed_by_notary(notary: MemoryNotary, gun: str) -> dict[str, tuple[str, str]]:
    """`notary list`: tag -> (sha256:<hex>, role)."""
    rows = notary.cli("list", gun).splitlines()[2:]
    return {name: (f"sha256:{hexdigest}", role) for name, hexdigest, _size, role in (row.split() for row in rows)}


@pytest.mark.integration
def test_trust_data_signed_with_the_notary_cli_verifies_with_its_digests(notary: MemoryNotary, tmp_path: Path) -> None:
    gun = "127.0.0.1:8282/alpha/signed"
    v1, v2 = tmp_path / "v1.json", tmp_path / "v2.json"
    v1.write_bytes(V1)
    v2.write_bytes(V2)
    notary.cli("init", gun)
    notary.cli("add", gun, "1.0", str(v1))
    notary.cli("publish", gun)
    first = tuf.verify(gun, notary.fetch(gun))
    assert {name: (t.digest, t.role) for name, t in first.targets.items()} == {"1.0": (digest(V1), tuf.TARGETS)}
    assert _listed_by_notary(notary, gun) == {"1.0": (digest(V1), tuf.TARGETS)}
    # notary's root key is an ecdsa-x509 certificate for the GUN, good for this GUN only.
    assert [key["keytype"] for key in first.root.keys.values()] == ["ecdsa-x509"]
    with pytest.raises(tuf.TrustError, match=re.escape("the root certificate is not for 127.0.0.1:8282/alpha/other")):
        tuf.verify("127.0.0.1:8282/alpha/other", notary.fetch(gun))

    # A delegate signs into targets/releases with a key of its own, as `docker trust signer add` sets up.
    certificate, key = delegation_key(tmp_path)
    notary.cli("delegation", "add", gun, tuf.RELEASES, str(certificate), "--all-paths")
    notary.cli("publish", gun)
    notary.cli("key", "import", str(key), "--role", tuf.RELEASES)
    notary.cli("add", "--roles", tuf.RELEASES, gun, "1.0", str(v2))
    notary.cli("add", "--roles", tuf.RELEASES, gun, "2.0", str(v2))
    notary.cli("publish", gun)
    collection = tuf.verify(gun, notary.fetch(gun), pinned=first.root)
    # Docker reads targets/releases first, so the delegate's 1.0 wins; `notary list` shows the targets one.
    assert {name: (t.digest, t.role) for name, t in collection.targets.items()} == {
        "1.0": (digest(V2), tuf.RELEASES),
        "2.0": (digest(V2), tuf.RELEASES),
    }
    assert _listed_by_notary(notary, gun) == {"1.0": (digest(V1), tuf.TARGETS), "2.0": (digest(V2), tuf.RELEASES)}
    assert collection.root == first.root

    # A root key rotation: notary signs the new root with the old key too, so the pinned root accepts it.
    notary.cli("key", "rotate", gun, "root", stdin="yes\n")
    rotated = tuf.verify(gun, notary.fetch(gun), pinned=first.root)
    assert rotated.root.keys.keys().isdisjoint(first.root.keys) and rotated.targets == collection.targets
    # Without the old key's signature, the same new root is refused under the pin (and fine to a first reader).
    document = json.loads(notary.role_file(gun, tuf.ROOT))
    document["signatures"] = [s for s in document["signatures"] if s["keyid"] in rotated.root.keys]
    new_only = json.dumps(document).encode()
    with pytest.raises(tuf.TrustError, match="rotated root"):
        tuf.verify_root(new_only, gun, first.root, datetime.now(UTC))
    assert tuf.verify_root(new_only, gun, None, datetime.now(UTC))[1] == rotated.root

    # With its paths taken away, the delegation signs nothing, for notary and for the portal alike.
    notary.cli("delegation", "remove", gun, tuf.RELEASES, "--all-paths")
    notary.cli("publish", gun)
    assert _listed_by_notary(notary, gun) == {"1.0": (digest(V1), tuf.TARGETS)}
    narrowed = tuf.verify(gun, notary.fetch(gun), pinned=rotated.root)
    assert {name: (t.digest, t.role) for name, t in narrowed.targets.items()} == {"1.0": (digest(V1), tuf.TARGETS)}


@pytest.mark.integration
def test_trust_data_signed_in_another_time_zone_expires_when_notary_says(notary: MemoryNotary, tmp_path: Path) -> None:
    gun = "127.0.0.1:8282/alpha/honolulu"
    manifest = tmp_path / "v1.json"
    manifest.write_bytes(V1)
    hawaii = {"TZ": "Pacific/Honolulu"}
    notary.cli("init", gun, env=hawaii)
    notary.cli("add", gun, "1.0", str(manifest), env=hawaii)
    notary.cli("publish", gun, env=hawaii)
    assert tuf.verify(gun, notary.fetch(gun)).targets["1.0"].digest == digest(V1)
    # The signer wrote its expiry in local time; read with the offset it is the same instant as in UTC.
    signed = json.loads(notary.role_file(gun, tuf.TARGETS))["signed"]
    written = signed["expires"]
    assert written.endswith("-10:00"), written
    seconds, fraction = written[:19], written[20:-6]
    instant = datetime.fromisoformat(f"{seconds}.{fraction[:6]:0<6}-10:00")
    assert tuf._expires(signed, tuf.TARGETS, datetime.now(UTC)) == instant
    assert instant.astimezone(UTC).hour == (int(written[11:13]) + 10) % 24

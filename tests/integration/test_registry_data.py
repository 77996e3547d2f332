"""Repositories and tags against the real distribution registry: deletion keeps sibling tags, reconcile, GC, events."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

from portal.audit import Actor
from portal.jobs import JobLog
from portal.models import Job, JobState, User
from projects.models import Project
from registries import maintenance, services, tasks
from registries.client import DOCKER_MANIFEST, RegistryClient
from registries.gc import directory_size
from registries.models import Repository, Tag
from registries.token import Access, issue
from tests.integration.registry import Registry, start_registry

pytestmark = pytest.mark.integration
BY_DIGEST = "@"


@dataclass
class Image:
    """An image written straight into the registry: its manifest digest and total size (config + layer)."""

    digest: str
    size: int
    manifest: bytes


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry whose notifications go nowhere: these tests drive the services, not the receiver."""
    server = start_registry(tmp_path_factory.mktemp("registry"), notify_url="http://127.0.0.1:1/service/notifications")
    yield server
    server.stop()


@pytest.fixture
def wired(settings: Any, registry: Registry) -> Registry:
    """The portal's settings pointing at the test registry and its config."""
    settings.REGISTRY_URL = registry.url
    settings.REGISTRY_CONFIG_PATH = registry.config_path
    return registry


def _headers(repository: str) -> dict[str, str]:
    """A user's (not the portal's) token for pushing to and pulling from the repository."""
    token = issue("tester", [Access("repository", repository, ("pull", "push"))], 120)[0]
    return {"Authorization": f"Bearer {token}"}


def _upload(url: str, repository: str, data: bytes) -> str:
    """A blob upload in one PUT after opening the session; returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    headers = _headers(repository)
    opened = requests.post(f"{url}/v2/{repository}/blobs/uploads/", headers=headers, timeout=30)
    assert opened.status_code == 202, opened.text
    location = urljoin(url, opened.headers["Location"])
    separator = "&" if "?" in location else "?"
    done = requests.put(f"{location}{separator}digest={digest}", data=data, headers=headers, timeout=30)
    assert done.status_code == 201, done.text
    return digest


def push_image(url: str, repository: str, tags: list[str], layer_bytes: int = 1024) -> Image:
    """Write a tiny image (a config and one gzipped tar layer of random bytes) and tag its manifest (or BY_DIGEST)."""
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as archive:
        payload = os.urandom(layer_bytes)
        info = tarfile.TarInfo("data.bin")
        info.size = len(payload)
        archive.addfile(info, io.BytesIO(payload))
    layer = gzip.compress(tar.getvalue())
    diff_id = "sha256:" + hashlib.sha256(tar.getvalue()).hexdigest()
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]}, "config": {}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": _upload(url, repository, config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(layer),
                    "digest": _upload(url, repository, layer),
                }
            ],
        }
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    for tag in tags:
        response = requests.put(
            f"{url}/v2/{repository}/manifests/{digest if tag == BY_DIGEST else tag}",
            data=manifest,
            headers={**_headers(repository), "Content-Type": DOCKER_MANIFEST},
            timeout=30,
        )
        assert response.status_code == 201, response.text
    return Image(digest, len(config) + len(layer), manifest)


def record_rows(
    project: Project, repository: str, image: Image, tags: list[str], media_type: str = DOCKER_MANIFEST
) -> Repository:
    """The rows the receiver would have written for the push."""
    row = Repository.objects.create(project=project, name=repository)
    for tag in tags:
        Tag.objects.create(repository=row, name=tag, digest=image.digest, media_type=media_type, size=image.size)
    return row


@pytest.fixture
def admin_actor(portal_admin: User) -> Actor:
    return Actor(portal_admin, "127.0.0.1")


def test_deleting_tag_keeps_sibling_tags(wired: Registry, alpha: Project, admin_actor: Actor) -> None:
    image = push_image(wired.url, "alpha/siblings", ["1.0", "latest"])
    record_rows(alpha, "alpha/siblings", image, ["1.0", "latest"])
    client = RegistryClient()

    services.delete_tag(admin_actor, Tag.objects.get(name="1.0"))

    assert client.head_manifest("alpha/siblings", "latest")[0] == image.digest
    assert client.get_manifest("alpha/siblings", "latest").content == image.manifest
    assert client.head_manifest("alpha/siblings", "1.0") is None
    assert client.tags("alpha/siblings") == ["latest"]
    assert list(Tag.objects.values_list("name", flat=True)) == ["latest"]

    services.delete_tag(admin_actor, Tag.objects.get(name="latest"))

    assert client.get_manifest("alpha/siblings", image.digest) is None
    assert not Repository.objects.filter(name="alpha/siblings").exists()


def test_reconcile_repairs_missed_pushes_and_vanished_tags(wired: Registry, alpha: Project) -> None:
    image = push_image(wired.url, "alpha/drift", ["missed"])
    row = record_rows(alpha, "alpha/drift", image, ["vanished"])
    job = Job.objects.create(kind=services.RECONCILE, state=JobState.RUNNING)

    summary = services.reconcile(job, JobLog(job))

    tag = row.tags.get()
    assert (tag.name, tag.digest, tag.size, tag.media_type) == ("missed", image.digest, image.size, DOCKER_MANIFEST)
    assert "1 tags added" in summary and "1 removed" in summary, summary
    job.refresh_from_db()
    assert "added alpha/drift:missed" in job.log and "removed alpha/drift:vanished" in job.log


def test_gc_frees_the_blobs_of_a_deleted_repository(
    wired: Registry, alpha: Project, admin_actor: Actor, settings: Any
) -> None:
    image = push_image(wired.url, "alpha/big", ["1.0"], layer_bytes=3 * 1024 * 1024)
    repository = record_rows(alpha, "alpha/big", image, ["1.0"])
    services.delete_repository(admin_actor, repository)
    assert RegistryClient().get_manifest("alpha/big", image.digest) is None
    before = directory_size(wired.storage)

    job = services.start_gc(admin_actor)
    tasks.garbage_collect(job.pk)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.log
    freed = before - directory_size(wired.storage)
    assert freed >= 3 * 1024 * 1024
    assert f"freed {freed} bytes" in job.log
    assert "blobs deleted" in job.log and "0 blobs deleted" not in job.log
    assert "registry read-only: registry is read-only for maintenance" in job.log
    assert maintenance.read_only_reason() is None


def test_deletes_are_refused_while_the_registry_is_read_only(
    wired: Registry, alpha: Project, admin_actor: Actor
) -> None:
    image = push_image(wired.url, "alpha/frozen", ["1.0"])
    record_rows(alpha, "alpha/frozen", image, ["1.0"])
    maintenance.enter_read_only()
    try:
        with pytest.raises(services.Conflict, match="read-only"):
            services.delete_tag(admin_actor, Tag.objects.get(name="1.0"))
    finally:
        maintenance.leave_read_only()
    assert RegistryClient().head_manifest("alpha/frozen", "1.0")[0] == image.digest


def _wait_for(condition: Any, what: str, registry: Registry, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} within {seconds} s; registry log:\n{registry.log()}")


def test_registry_notifications_reach_the_receiver(
    transactional_db: None, live_server: Any, settings: Any, tmp_path: Any
) -> None:
    project = Project.objects.create(name="live")
    server = start_registry(tmp_path, notify_url=live_server.url + "/service/notifications")
    try:
        settings.REGISTRY_URL = server.url
        image = push_image(server.url, "live/app", ["1.0"])
        _wait_for(lambda: Tag.objects.filter(repository__name="live/app", name="1.0").exists(), "no tag", server)
        tag = Tag.objects.get(repository__name="live/app", name="1.0")
        assert (tag.digest, tag.size, tag.pushed_by) == (image.digest, image.size, "tester")
        assert tag.repository.project == project

        pulled = requests.get(
            f"{server.url}/v2/live/app/manifests/1.0",
            headers={**_headers("live/app"), "Accept": DOCKER_MANIFEST},
            timeout=10,
        )
        assert pulled.status_code == 200
        _wait_for(lambda: Repository.objects.get(name="live/app").pull_count == 1, "no pull counted", server)
    finally:
        server.stop()


def test_gc_keeps_the_platform_manifests_of_a_tagged_index(wired: Registry, alpha: Project, admin_actor: Actor) -> None:
    from registries.client import DOCKER_MANIFEST_LIST

    amd64 = push_image(wired.url, "alpha/multi", [BY_DIGEST])
    arm64 = push_image(wired.url, "alpha/multi", [BY_DIGEST])
    entries = [
        {"mediaType": DOCKER_MANIFEST, "size": len(image.manifest), "digest": image.digest, "platform": platform}
        for image, platform in (
            (amd64, {"architecture": "amd64", "os": "linux"}),
            (arm64, {"architecture": "arm64", "os": "linux"}),
        )
    ]
    index = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": entries}).encode()
    response = requests.put(
        f"{wired.url}/v2/alpha/multi/manifests/multi",
        data=index,
        headers={**_headers("alpha/multi"), "Content-Type": DOCKER_MANIFEST_LIST},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    record_rows(
        alpha,
        "alpha/multi",
        Image(response.headers["Docker-Content-Digest"], 0, index),
        ["multi"],
        DOCKER_MANIFEST_LIST,
    )
    client = RegistryClient()

    job = services.start_gc(admin_actor)
    tasks.garbage_collect(job.pk)

    job.refresh_from_db()
    assert job.state == JobState.SUCCEEDED, job.log
    assert "keeping untagged manifests this run" in job.log
    assert client.get_manifest("alpha/multi", "multi") is not None
    for image in (amd64, arm64):
        assert client.get_manifest("alpha/multi", image.digest) is not None, job.log


def test_blobs_collected_by_gc_are_gone_for_the_running_registry(
    wired: Registry, alpha: Project, admin_actor: Actor
) -> None:
    """No restart after GC: the live registry must not answer 'exists' for a collected blob (clients would skip it)."""
    image = push_image(wired.url, "alpha/again", ["1.0"])
    layer = json.loads(image.manifest)["layers"][0]["digest"]
    blob_url = f"{wired.url}/v2/alpha/again/blobs/{layer}"
    assert requests.head(blob_url, headers=_headers("alpha/again"), timeout=10).status_code == 200
    services.delete_repository(admin_actor, record_rows(alpha, "alpha/again", image, ["1.0"]))

    tasks.garbage_collect(services.start_gc(admin_actor).pk)

    assert requests.head(blob_url, headers=_headers("alpha/again"), timeout=10).status_code == 404
    again = push_image(wired.url, "alpha/again", ["2.0"])
    assert RegistryClient().head_manifest("alpha/again", "2.0")[0] == again.digest

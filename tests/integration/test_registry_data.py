"""Repositories and tags against the real distribution registry: deletion keeps sibling tags, reconcile, GC, events."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from portal.core.audit import Actor
from portal.core.jobs import JobContext, run_job
from portal.core.models import Job, JobState, User
from projects.models import Project
from registries import maintenance, services
from registries.client import DOCKER_MANIFEST, RegistryClient
from registries.gc import directory_size
from registries.models import Repository, Tag
from tests.integration.images import BY_DIGEST, Image, push_image, user_headers
from tests.integration.registry import Registry, point_portal_at, start_registry
from tests.integration.registry_fixtures import quiet_registry, wait_for  # noqa: F401  (the `registry` fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def wired(settings: Any, registry: Registry) -> Registry:
    """The portal's settings pointing at the test registry and its config."""
    return point_portal_at(settings, registry)


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

    summary = services.reconcile(job, JobContext(job))

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
    run_job(job.pk)

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


def test_registry_notifications_reach_the_receiver(
    transactional_db: None, live_server: Any, settings: Any, tmp_path: Any
) -> None:
    # The live server applies what it records in its own process; the push/pull tests' portal has a real worker.
    settings.CELERY_TASK_ALWAYS_EAGER = True
    project = Project.objects.create(name="live")
    server = start_registry(tmp_path, notify_url=live_server.url + "/service/notifications")
    try:
        settings.REGISTRY_URL = server.url
        # Through the portal's /v2/, as every client reaches the registry: who pushed and pulled is what it saw.
        image = push_image(live_server.url, "live/app", ["1.0"])
        wait_for(lambda: Tag.objects.filter(repository__name="live/app", name="1.0").exists(), "no tag", server)
        tag = Tag.objects.get(repository__name="live/app", name="1.0")
        assert (tag.digest, tag.size, tag.pushed_by) == (image.digest, image.size, "tester")
        assert tag.repository.project == project

        pulled = requests.get(
            f"{live_server.url}/v2/live/app/manifests/1.0",
            headers={**user_headers("live/app"), "Accept": DOCKER_MANIFEST},
            timeout=10,
        )
        assert pulled.status_code == 200
        wait_for(lambda: Repository.objects.get(name="live/app").pull_count == 1, "no pull counted", server)
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
        headers={**user_headers("alpha/multi"), "Content-Type": DOCKER_MANIFEST_LIST},
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
    run_job(job.pk)

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
    assert requests.head(blob_url, headers=user_headers("alpha/again"), timeout=10).status_code == 200
    services.delete_repository(admin_actor, record_rows(alpha, "alpha/again", image, ["1.0"]))

    run_job(services.start_gc(admin_actor).pk)

    assert requests.head(blob_url, headers=user_headers("alpha/again"), timeout=10).status_code == 404
    again = push_image(wired.url, "alpha/again", ["2.0"])
    assert RegistryClient().head_manifest("alpha/again", "2.0")[0] == again.digest


def test_a_push_event_applied_before_the_registry_links_its_tag_is_confirmed_once_the_tag_appears(
    wired: Registry,
) -> None:
    """distribution notifies a tagged push once the manifest is stored and links the tag right after."""
    import threading
    import time
    from datetime import UTC, datetime

    from registries import events

    image = push_image(wired.url, "alpha/late", [BY_DIGEST])
    event = events.Event(
        id="late-1", action="push", timestamp=datetime.now(UTC), repository="alpha/late", digest=image.digest,
        tag="1.0", media_type=DOCKER_MANIFEST, length=len(image.manifest), url="", actor="tester", address=None,
    )  # fmt: skip
    linker = threading.Timer(
        0.3,
        lambda: requests.put(
            f"{wired.url}/v2/alpha/late/manifests/1.0",
            data=image.manifest,
            headers={**user_headers("alpha/late"), "Content-Type": DOCKER_MANIFEST},
            timeout=10,
        ),
    )
    started = time.monotonic()
    linker.start()
    try:
        size = events._image_size(event)
    finally:
        linker.join()

    assert size == image.size
    assert time.monotonic() - started < events.TAG_LINK_RETRIES * events.TAG_LINK_WAIT_SECONDS + 1
    # A tag that never appears is still not believed.
    assert events._image_size(events.Event(**{**event.__dict__, "tag": "never"})) is None

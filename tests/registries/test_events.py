"""The registry's event receiver and applier: the shared secret, recording without waiting for the registry,
idempotent and order-proof applying by the worker, audit entries."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from portal.core.models import AuditEvent
from projects.models import Project
from registries import events
from registries.models import DailyPulls, ObservedManifest, RegistryEvent, Repository, Tag
from tests.loopback import LoopbackServer

URL = "/service/notifications"
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ASK_THE_REGISTRY = events._image_size


@pytest.fixture(autouse=True)
def _sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Image sizes come from the registry; these tests have none, so every image is 1234 bytes."""
    monkeypatch.setattr(events, "_image_size", lambda event: 1234)


@pytest.fixture
def secret(settings: Any) -> str:
    settings.REGISTRY_NOTIFY_SECRET = "test-notify-secret"
    return "test-notify-secret"


def event(
    action: str,
    repository: str = "alpha/app",
    tag: str = "1.0",
    digest: str = "sha256:" + "a" * 64,
    at: datetime = T0,
    actor: str = "alice",
    event_id: str | None = None,
    media_type: str = MEDIA_TYPE,
    seen: bool = True,
) -> dict[str, Any]:
    """One registry notification event as distribution 2.8 writes it, and (unless `seen` is False, or for the
    portal's own calls) the /v2/ proxy's note of serving that request, as a real push or pull leaves."""
    if seen and actor != events.SYSTEM_ACTOR:
        ObservedManifest.objects.create(
            action=action, repository=repository, digest=digest, username=actor, address="192.0.2.7"
        )
    target: dict[str, Any] = {"repository": repository, "digest": digest}
    if action != "delete":
        target |= {"mediaType": media_type, "size": 528, "length": 528, "url": f"http://r/v2/{repository}/manifests/x"}
    if tag:
        target["tag"] = tag
    return {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": at.isoformat().replace("+00:00", ".123456789Z"),
        "action": action,
        "target": target,
        "request": {"id": "r1", "addr": "192.0.2.7:53412", "host": "wharf:8282", "method": "PUT"},
        "actor": {"name": actor},
        "source": {"addr": "registry:5000", "instanceID": "i"},
    }


def notify(client: Client, secret: str, *items: dict[str, Any]) -> Any:
    """Post an envelope as the registry does."""
    return client.post(
        URL,
        json.dumps({"events": list(items)}),
        content_type="application/vnd.docker.distribution.events.v1+json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )


def post(client: Client, secret: str, *items: dict[str, Any]) -> Any:
    """Post an envelope, then apply what was recorded as the worker's task does."""
    response = notify(client, secret, *items)
    events.apply_pending()
    return response


def test_notifications_without_the_secret_are_401(client: Client, secret: str, alpha: Project) -> None:
    assert post(client, "wrong", event("push")).status_code == 401
    body = json.dumps({"events": [event("push")]})
    assert client.post(URL, body, content_type="application/json").status_code == 401
    assert not Tag.objects.exists()


def test_push_records_repository_and_tag_with_audit(client: Client, secret: str, alpha: Project) -> None:
    response = post(client, secret, event("push"))
    assert response.status_code == 200, response.content
    tag = Tag.objects.select_related("repository").get()
    assert (tag.repository.name, tag.repository.project, tag.name) == ("alpha/app", alpha, "1.0")
    assert (tag.digest, tag.media_type, tag.size, tag.pushed_by) == ("sha256:" + "a" * 64, MEDIA_TYPE, 1234, "alice")
    assert tag.pushed_at == T0 + timedelta(microseconds=123456)
    audit = AuditEvent.objects.get(action="push")
    assert (audit.resource_type, audit.resource_name, audit.project, audit.username, audit.client_address) == (
        "repository",
        "alpha/app:1.0",
        alpha,
        "alice",
        "192.0.2.7",
    )


def test_repeated_event_is_applied_once(client: Client, secret: str, alpha: Project) -> None:
    push, pull = event("push"), event("pull", at=T0 + timedelta(minutes=1))
    post(client, secret, push, pull)
    post(client, secret, push, pull)
    post(client, secret, pull)
    assert Repository.objects.get().pull_count == 1
    assert AuditEvent.objects.filter(action="push").count() == 1
    assert AuditEvent.objects.filter(action="pull").count() == 1


def test_pulls_count_once_per_event_and_keep_the_latest_time(client: Client, secret: str, alpha: Project) -> None:
    post(client, secret, event("push"))
    later, earlier = T0 + timedelta(hours=2), T0 + timedelta(hours=1)
    post(client, secret, event("pull", at=later), event("pull", at=earlier), event("pull", tag="", at=earlier))
    repository = Repository.objects.get()
    assert repository.pull_count == 3
    assert repository.last_pulled == later + timedelta(microseconds=123456)
    names = set(AuditEvent.objects.filter(action="pull").values_list("resource_name", flat=True))
    assert names == {"alpha/app:1.0", "alpha/app@sha256:" + "a" * 64}


def test_older_push_arriving_late_does_not_overwrite_newer(client: Client, secret: str, alpha: Project) -> None:
    new, old = "sha256:" + "b" * 64, "sha256:" + "a" * 64
    post(client, secret, event("push", digest=new, at=T0 + timedelta(minutes=5), actor="bob"))
    post(client, secret, event("push", digest=old, at=T0, actor="alice"))
    tag = Tag.objects.get()
    assert (tag.digest, tag.pushed_by) == (new, "bob")


def test_push_by_digest_shows_nothing(client: Client, secret: str, alpha: Project) -> None:
    post(client, secret, event("push", tag=""))
    assert not Repository.objects.exists()


def test_blob_events_are_ignored(client: Client, secret: str, alpha: Project) -> None:
    blob = event("push", media_type="application/vnd.docker.image.rootfs.diff.tar.gzip")
    blob["target"]["url"] = "http://r/v2/alpha/app/blobs/sha256:x"
    post(client, secret, blob)
    assert not Repository.objects.exists()


def test_delete_removes_the_tags_on_the_digest_and_the_empty_repository(
    client: Client, secret: str, alpha: Project
) -> None:
    shared, other = "sha256:" + "a" * 64, "sha256:" + "c" * 64
    post(client, secret, event("push", tag="1.0", digest=shared), event("push", tag="latest", digest=shared))
    post(client, secret, event("push", tag="2.0", digest=other))
    post(client, secret, event("delete", tag="", digest=shared, at=T0 + timedelta(minutes=1)))
    assert list(Tag.objects.values_list("name", flat=True)) == ["2.0"]
    deleted = set(AuditEvent.objects.filter(action="delete").values_list("resource_name", flat=True))
    assert deleted == {"alpha/app:1.0", "alpha/app:latest"}
    post(client, secret, event("delete", tag="", digest=other, at=T0 + timedelta(minutes=2)))
    assert not Repository.objects.exists()


def test_push_older_than_a_delete_of_its_digest_is_not_resurrected(client: Client, secret: str, alpha: Project) -> None:
    post(client, secret, event("delete", tag="", at=T0 + timedelta(minutes=1)))
    post(client, secret, event("push", at=T0))
    assert not Tag.objects.exists()


def test_pulls_are_counted_per_day_of_the_event_for_the_chart(client: Client, secret: str, alpha: Project) -> None:
    post(client, secret, event("push"))
    next_day = T0 + timedelta(days=1)
    pulls = [event("pull", at=T0 + timedelta(minutes=1)), event("pull", at=next_day), event("pull", at=next_day)]
    post(client, secret, *pulls)
    post(client, secret, *pulls)  # the registry repeats an envelope: nothing more is counted
    post(client, secret, event("pull", actor=events.SYSTEM_ACTOR, at=next_day))  # the portal's own read
    counts = dict(DailyPulls.objects.filter(project=alpha).values_list("day", "count"))
    assert counts == {T0.date(): 1, next_day.date(): 2}


def test_portal_own_reads_are_not_pulls(client: Client, secret: str, alpha: Project) -> None:
    post(client, secret, event("push"))
    post(client, secret, event("pull", actor=events.SYSTEM_ACTOR, at=T0 + timedelta(minutes=1)))
    assert Repository.objects.get().pull_count == 0


def test_events_of_an_unknown_project_are_ignored(client: Client, secret: str, alpha: Project) -> None:
    response = post(client, secret, event("push", repository="nowhere/app"), event("push", repository="bare"))
    assert response.status_code == 200
    assert not Repository.objects.exists()
    assert not AuditEvent.objects.filter(resource_type="repository").exists()


def test_malformed_body_is_400(client: Client, secret: str) -> None:
    response = client.post(URL, "not json", content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 400


def test_followups_run_once_the_push_is_committed(
    client: Client, secret: str, alpha: Project, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(events, "PUSH_FOLLOWUPS", [lambda tag: seen.append(str(tag))])
    with django_capture_on_commit_callbacks(execute=True):
        post(client, secret, event("push"))
    assert seen == ["alpha/app:1.0"]


def test_project_holding_repositories_cannot_be_deleted(client: Client, secret: str, alpha: Project, api) -> None:
    post(client, secret, event("push"), event("push", repository="alpha/tools/cli"))
    response = api.delete("/api/v1/projects/alpha")
    assert response.status_code == 409
    assert response.json()["detail"] == "project 'alpha' still holds 2 repositories"


def test_a_notification_is_answered_without_asking_the_registry(
    client: Client, secret: str, alpha: Project, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(events, "_image_size", ASK_THE_REGISTRY)
    stalled = LoopbackServer()  # a registry that accepts connections and never answers
    settings.REGISTRY_URL = stalled.url
    try:
        response = notify(client, secret, event("push"), event("pull", at=T0 + timedelta(minutes=1)))
        assert response.status_code == 200 and response.json() == {"received": 2}
        assert stalled.accepted == [], "the web request called the registry"
        assert not Tag.objects.exists(), "the web request applied the push itself"
        assert RegistryEvent.objects.filter(applied__isnull=True).count() == 2
    finally:
        stalled.close()
    # The registry is gone now: the pull is counted, and the push waits (for the sweep) until the registry can
    # confirm it: a notification is believed only for what the registry serves.
    settings.REGISTRY_URL = "http://127.0.0.1:9"
    assert events.apply_pending() == 1
    assert not Tag.objects.exists() and Repository.objects.get().pull_count == 1
    assert RegistryEvent.objects.filter(applied__isnull=True).get().action == "push"


@pytest.mark.django_db(transaction=True)
def test_the_registry_is_asked_before_any_row_is_locked(
    client: Client, secret: str, alpha: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked_inside_a_transaction: list[bool] = []

    def image_size(event: events.Event) -> int:
        asked_inside_a_transaction.append(connection.in_atomic_block)
        return 4321

    monkeypatch.setattr(events, "_image_size", image_size)
    monkeypatch.setattr(events, "_enqueue_apply", lambda: None)
    notify(client, secret, event("push"))
    events.apply_pending()
    assert asked_inside_a_transaction == [False]
    assert Tag.objects.get().size == 4321


def test_events_recorded_again_are_applied_once(client: Client, secret: str, alpha: Project) -> None:
    push = event("push")
    assert notify(client, secret, push, push).json() == {"received": 1}
    assert notify(client, secret, push).json() == {"received": 0}
    assert events.apply_pending() == 1 and events.apply_pending() == 0
    assert AuditEvent.objects.filter(action="push").count() == 1


def test_who_and_from_where_come_from_what_the_portal_served(client: Client, secret: str, alpha: Project) -> None:
    # The event names the viewer and another address; the proxy served the push to alice from 192.0.2.7.
    forged = event("push", actor="alice")
    forged["actor"]["name"], forged["request"]["addr"] = "viewer", "198.51.100.9:4242"
    post(client, secret, forged)
    assert Tag.objects.get().pushed_by == "alice"
    audit = AuditEvent.objects.get(action="push")
    assert (audit.username, audit.client_address) == ("alice", "192.0.2.7")
    assert not ObservedManifest.objects.exists(), "a note of the proxy is claimed once"


def test_pulls_and_deletes_the_portal_did_not_serve_are_not_believed(
    client: Client, secret: str, alpha: Project
) -> None:
    post(client, secret, event("push"))
    post(client, secret, event("pull", at=T0 + timedelta(minutes=1), seen=False))
    post(client, secret, event("delete", tag="", at=T0 + timedelta(minutes=2), seen=False))
    assert Repository.objects.get().pull_count == 0
    assert Tag.objects.exists()
    assert not AuditEvent.objects.filter(action__in=["pull", "delete"]).exists()


def test_an_event_time_without_a_zone_is_read_as_utc() -> None:
    raw = {"id": "e-naive", "action": "push", "timestamp": "2026-12-01T10:00:00", "target": {"repository": "alpha/app"}}
    event = events.parse(raw)
    assert event is not None
    assert event.timestamp.isoformat() == "2026-12-01T10:00:00+00:00"

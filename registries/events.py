"""The registry's event notifications: recorded by the web process, applied by the worker.

`receive` (the web request) only records each manifest event as a RegistryEvent row and answers;
the registry's notification queue is never held up by the portal. `apply_pending` (the worker)
applies the recorded events in timestamp order: pushes, pulls and deletes of manifests become
rows and audit events. What needs the registry (an image's size) is asked before the transaction
that locks the rows, never while a lock is held.

The registry repeats events (it retries a whole envelope until it gets a 2xx) and, with several
processes, they may be applied out of order. So every event is recorded and applied at most once
(its id is unique), an older push never overwrites a newer one, and a push older than a delete of
the same digest is not applied after it.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from portal.core import jobs
from portal.core.audit import Actor, record
from portal.core.errors import RemoteUnreachable
from projects.models import Project
from registries.client import MANIFEST_TYPES, RegistryClient
from registries.models import DailyPulls, ObservedManifest, RegistryEvent, Repository, Tag

logger = logging.getLogger(__name__)

# How long the proxy's note of a manifest request waits for the registry's event.
OBSERVATION_TTL = timedelta(days=1)
# Events applied per transaction batch by one apply_pending loop.
BATCH = 200
# How often, and how long apart, a pushed tag the registry does not show yet is asked for again.
TAG_LINK_RETRIES = 5
TAG_LINK_WAIT_SECONDS = 0.2
ENVELOPE_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
# The subject of registries.token.system_token: the portal's own registry calls. Its reads are not
# pulls, and its deletes and re-tags are applied (and audited) by the service that made them.
SYSTEM_ACTOR = "wharf-system"

# What a push starts, in one place: later features (scan on push, immediate replication) register a
# function taking the pushed Tag; each runs in the worker once the push is committed and should
# start a job (portal.core.jobs.create_job) for anything that talks to a remote system.
PUSH_FOLLOWUPS: list[Callable[[Tag], None]] = []
# What deleting tags starts (immediate replication of deletions): functions taking the project, the repository's
# full name and the deleted tags' names, run once the delete is committed, wherever it was made (the portal's
# services or a client through the /v2/ proxy).
DELETE_FOLLOWUPS: list[Callable[[Project, str, list[str]], None]] = []


def after_delete(project: Project, repository: str, tags: list[str]) -> None:
    """Run the delete followups once the transaction that removed the tags commits."""
    for followup in DELETE_FOLLOWUPS:
        transaction.on_commit(lambda followup=followup: followup(project, repository, list(tags)))


@dataclass(frozen=True)
class Event:
    """The parts of a registry notification event Wharf uses."""

    id: str
    action: str
    timestamp: datetime
    repository: str
    digest: str
    tag: str
    media_type: str
    length: int
    url: str
    actor: str
    address: str | None

    @property
    def is_manifest(self) -> bool:
        """True for manifest events (deletes carry no media type: they name a digest, which may be a manifest)."""
        if self.action == "delete":
            return True
        return self.media_type in MANIFEST_TYPES or "/manifests/" in self.url

    @classmethod
    def from_row(cls, row: RegistryEvent) -> Event:
        """The event as it was recorded."""
        return cls(
            id=row.event_id,
            action=row.action,
            timestamp=row.timestamp,
            repository=row.repository,
            digest=row.digest,
            tag=row.tag,
            media_type=row.media_type,
            length=row.length,
            url="",
            actor=row.actor,
            address=row.address,
        )

    @property
    def reference(self) -> str:
        """ "project/app:tag", or "project/app@digest" when no tag is known."""
        return f"{self.repository}:{self.tag}" if self.tag else f"{self.repository}@{self.digest}"


def parse(raw: dict[str, Any]) -> Event | None:
    """An Event from one entry of the envelope, or None when it lacks what Wharf needs."""
    target = raw.get("target") or {}
    timestamp = parse_datetime(str(raw.get("timestamp", "")))
    if not raw.get("id") or not raw.get("action") or not target.get("repository") or timestamp is None:
        return None
    if timezone.is_naive(timestamp):
        timestamp = timezone.make_aware(timestamp, UTC)
    return Event(
        id=str(raw["id"]),
        action=str(raw["action"]),
        timestamp=timestamp,
        repository=str(target["repository"]),
        digest=str(target.get("digest") or ""),
        tag=str(target.get("tag") or ""),
        media_type=str(target.get("mediaType") or ""),
        length=int(target.get("length") or target.get("size") or 0),
        url=str(target.get("url") or ""),
        actor=str((raw.get("actor") or {}).get("name") or ""),
        address=_host(str((raw.get("request") or {}).get("addr") or "")),
    )


def _host(addr: str) -> str | None:
    """The IP address of "host:port" or "[v6]:port", or None when it is not an address."""
    host = addr.rsplit(":", 1)[0] if addr.count(":") == 1 or addr.startswith("[") else addr
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def receive(envelope: dict[str, Any]) -> int:
    """Record every manifest event of a notification envelope for the worker; returns how many were new.

    Nothing here waits for the registry: the events are applied by `apply_pending` in the worker.
    """
    rows = []
    for raw in envelope.get("events") or []:
        event = parse(raw) if isinstance(raw, dict) else None
        if event is None:
            logger.warning("ignoring a malformed registry event: %.300r", raw)
            continue
        if event.is_manifest and event.action in HANDLERS:
            rows.append(
                RegistryEvent(
                    event_id=event.id,
                    action=event.action,
                    repository=event.repository[:255],
                    digest=event.digest[:150],
                    tag=event.tag[:128],
                    media_type=event.media_type[:255],
                    length=event.length,
                    actor=event.actor[:150],
                    address=event.address,
                    timestamp=event.timestamp,
                )
            )
    if not rows:
        return 0
    # A repeated envelope records nothing new: the event ids are unique.
    known = set(
        RegistryEvent.objects.filter(event_id__in=[r.event_id for r in rows]).values_list("event_id", flat=True)
    )
    new = [row for row in {r.event_id: r for r in rows}.values() if row.event_id not in known]
    RegistryEvent.objects.bulk_create(new, ignore_conflicts=True)
    if new:
        transaction.on_commit(_enqueue_apply)
    return len(new)


def _enqueue_apply() -> None:
    """Ask a worker to apply what was recorded."""
    jobs.send_task("registries.apply_events")


def apply_pending() -> int:
    """Apply every recorded event not applied yet, oldest first; returns how many changed something."""
    # A note of the proxy no event claimed in a day (a HEAD, an event the registry lost) is not kept.
    ObservedManifest.objects.filter(seen__lt=timezone.now() - OBSERVATION_TTL).delete()
    applied = 0
    while True:
        pending = list(
            RegistryEvent.objects.filter(applied__isnull=True)
            .order_by("timestamp", "id")
            .values_list("pk", flat=True)[:BATCH]
        )
        for pk in pending:
            applied += apply(pk)
        if len(pending) < BATCH:
            return applied


def apply(pk: int) -> bool:
    """Apply one recorded event once; False when it was applied already or concerns no project of ours."""
    row = RegistryEvent.objects.filter(pk=pk, applied__isnull=True).first()
    if row is None:
        return False
    event = Event.from_row(row)
    project = Project.objects.filter(name=event.repository.split("/", 1)[0]).first()
    # Asked of the registry before any row is locked: it may be slow or away (then the event waits for the sweep).
    try:
        size = _image_size(event) if project is not None and event.action == "push" and event.tag else 0
    except RemoteUnreachable as exc:
        logger.warning("registry %s of %s left for later: %s", event.action, event.reference, exc)
        return False
    with transaction.atomic():
        claimed = RegistryEvent.objects.select_for_update().filter(pk=pk, applied__isnull=True).first()
        if claimed is None:
            return False  # another worker applied it meanwhile
        RegistryEvent.objects.filter(pk=pk).update(applied=timezone.now())
        if project is None or "/" not in event.repository:
            logger.warning("ignoring registry %s of %s: no such project", event.action, event.reference)
            return False
        if size is None:
            logger.warning("ignoring a push of %s the registry does not confirm", event.reference)
            return False
        event = _as_seen(event)
        if event is None:
            return False
        return HANDLERS[event.action](event, project, size)


def _as_seen(event: Event) -> Event | None:
    """The event with the user and address the portal saw serve it; None for a pull or delete it never served.

    Registry notifications can be posted by anyone holding their secret, so who did it and from where
    come from the proxy's own note (ObservedManifest), claimed once. The portal's own registry calls do
    not pass the proxy: they keep the system actor. An unseen push that the registry confirmed is kept
    with no user and address.
    """
    if _by_portal(event):
        return event
    seen = (
        ObservedManifest.objects.select_for_update(skip_locked=True)
        .filter(action=event.action, repository=event.repository, digest=event.digest)
        .order_by("seen")
        .first()
    )
    if seen is None:
        if event.action != "push":
            logger.warning("ignoring a %s of %s the portal did not serve", event.action, event.reference)
            return None
        return replace(event, actor="", address=None)
    seen.delete()
    return replace(event, actor=seen.username, address=seen.address)


def _repository(project: Project, name: str, when: datetime) -> Repository:
    """The repository row, created on first sight, locked for this transaction."""
    Repository.objects.get_or_create(name=name, defaults={"project": project, "created": when, "updated": when})
    return Repository.objects.select_for_update().get(name=name)


def _image_size(event: Event) -> int | None:
    """The pushed image's size, once the registry confirms the push: the tag names that digest there now.

    None when it does not (a forged event, or one a later push or delete overtook: that one is applied
    instead); RemoteUnreachable when the registry cannot say. A notification is believed only for
    what the registry itself serves.
    """
    client = RegistryClient()
    head = client.head_manifest(event.repository, event.tag or event.digest)
    # distribution sends a tagged push's event once the manifest is stored and links the tag right after: an
    # event applied at once may find the tag not there yet. It is asked again for a moment before being ignored.
    for _ in range(TAG_LINK_RETRIES):
        if head is not None:
            break
        time.sleep(TAG_LINK_WAIT_SECONDS)
        head = client.head_manifest(event.repository, event.tag or event.digest)
    if head is None or head.digest != event.digest:
        return None
    manifest = client.get_manifest(event.repository, event.digest)
    if manifest is None:
        return None
    try:
        return client.image_size(event.repository, manifest)
    except (RemoteUnreachable, ValueError, KeyError) as exc:
        logger.warning("size of %s unknown, reconcile will repair it: %s", event.reference, exc)
        return event.length


def _push(event: Event, project: Project, size: int) -> bool:
    """A tagged manifest push: create or move the tag, unless a newer push or a later delete came first."""
    if not event.tag:
        return False  # pushed by digest: an index's platform manifest, or a tag still to come
    deleted_later = RegistryEvent.objects.filter(
        action="delete", repository=event.repository, digest=event.digest, timestamp__gt=event.timestamp
    )
    if deleted_later.exists():
        return False
    repository = _repository(project, event.repository, event.timestamp)
    tag = repository.tags.select_for_update().filter(name=event.tag).first()
    if tag is not None and (tag.pushed_at >= event.timestamp or (tag.digest == event.digest and _by_portal(event))):
        return False
    fields = {
        "digest": event.digest,
        "media_type": event.media_type,
        "size": size,
        "pushed_by": event.actor,
        "pushed_at": event.timestamp,
        "updated": timezone.now(),
    }
    tag, _ = Tag.objects.update_or_create(repository=repository, name=event.tag, defaults=fields)
    Repository.objects.filter(pk=repository.pk, updated__lt=event.timestamp).update(updated=event.timestamp)
    _audit(event, project)
    for followup in PUSH_FOLLOWUPS:
        transaction.on_commit(lambda followup=followup: followup(tag))
    return True


def _pull(event: Event, project: Project, size: int) -> bool:
    """A manifest pull by someone other than the portal: one more pull and the last pull time."""
    if _by_portal(event):
        return False
    repository = _repository(project, event.repository, event.timestamp)
    Repository.objects.filter(pk=repository.pk).update(
        pull_count=F("pull_count") + 1,
        last_pulled=Greatest(Coalesce(F("last_pulled"), Value(event.timestamp)), Value(event.timestamp)),
    )
    _count_daily_pull(project, event.timestamp)
    _audit(event, project)
    return True


def _count_daily_pull(project: Project, when: datetime) -> None:
    """One more pull on the event's day (UTC) for the project's pulls-per-day chart."""
    day = when.astimezone(UTC).date()
    DailyPulls.objects.get_or_create(project=project, day=day)
    # An update, not a read-add-save: two workers applying pulls of one day both count.
    DailyPulls.objects.filter(project=project, day=day).update(count=F("count") + 1)


def _delete(event: Event, project: Project, size: int) -> bool:
    """A manifest delete: remove the tags on the digest (or the named tag) not pushed since, and an empty repo."""
    if _by_portal(event):
        return False
    repository = Repository.objects.select_for_update().filter(name=event.repository).first()
    if repository is None:
        return False
    tags = repository.tags.filter(pushed_at__lte=event.timestamp)
    tags = tags.filter(digest=event.digest) if event.digest else tags.filter(name=event.tag)
    removed = list(tags.values_list("name", flat=True))
    if not removed:
        return False
    tags.delete()
    for name in removed:
        _audit(event, project, f"{event.repository}:{name}")
    if not repository.tags.exists():
        repository.delete()
    after_delete(project, event.repository, removed)
    return True


def _by_portal(event: Event) -> bool:
    return event.actor == SYSTEM_ACTOR


def _audit(event: Event, project: Project, resource_name: str | None = None) -> None:
    """The event as an audit entry, under the registry user and the client's address."""
    record(
        Actor(None, event.address, event.actor),
        event.action,
        "repository",
        resource_name or event.reference,
        project,
        digest=event.digest,
    )


HANDLERS: dict[str, Callable[[Event, Project, int], bool]] = {"push": _push, "pull": _pull, "delete": _delete}

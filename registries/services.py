"""Every change of the integrated registry's repositories and tags, and its maintenance jobs, with audit entries."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time

from django.db import transaction
from django.utils import timezone

from portal.core.audit import Actor, record
from portal.core.bulk import Outcome, apply_each
from portal.core.errors import Conflict, Forbidden, Invalid, NotFound
from portal.core.jobs import JobContext, create_job
from portal.core.models import Job
from portal.core.services import require
from projects.models import Project
from projects.roles import can
from projects.services import register_project_content
from registries import content_trust, events, maintenance
from registries.client import RegistryClient
from registries.models import GcSchedule, Repository, Tag

RECONCILE = "registry_reconcile"
GARBAGE_COLLECTION = "registry_gc"


register_project_content(Repository, "repository", "repositories")


def find_repository(user: object, project: Project, name: str) -> Repository:
    """The project's repository "project/name" if the user may pull from the project, else NotFound."""
    full_name = name if name.startswith(f"{project.name}/") else f"{project.name}/{name}"
    repository = Repository.objects.restrict(user).filter(project=project, name=full_name).first()
    if repository is None:
        raise NotFound(f"No repository '{full_name}'.")
    return repository


def _writable() -> None:
    """Refuse registry writes while garbage collection holds the registry read-only."""
    reason = maintenance.read_only_reason()
    if reason:
        raise Conflict(reason)


def _require_delete(actor: Actor, project: Project) -> None:
    if not can(actor.user, "delete_artifact", project):
        raise Forbidden("Only the project's DevOps administrators may delete repositories and tags.")


def delete_tag(actor: Actor, tag: Tag, client: RegistryClient | None = None) -> None:
    """Delete one tag; other tags on the same manifest stay (re-put with the manifest's exact bytes)."""
    repository = tag.repository
    _require_delete(actor, repository.project)
    _writable()
    (client or RegistryClient()).remove_tag(repository.name, tag.name)
    _forget_tag(actor, tag)


def delete_tags(actor: Actor, tags: Iterable[Tag], client: RegistryClient | None = None) -> list[Outcome]:
    """Delete several tags one by one (each audited); a refused one (registry down) keeps the others going."""
    client = client or RegistryClient()
    return apply_each(tags, str, lambda tag: delete_tag(actor, tag, client))


@transaction.atomic
def _forget_tag(actor: Actor, tag: Tag) -> None:
    """Drop the tag's row (and its repository's, with its trust data, when it was the last), mark the siblings
    rewritten, audit."""
    repository = Repository.objects.select_for_update().get(pk=tag.repository_id)
    Tag.objects.filter(pk=tag.pk).delete()
    repository.tags.filter(digest=tag.digest).update(updated=timezone.now())
    if not repository.tags.exists():
        repository.delete()
        # As when the repository itself is deleted (best effort: what notary keeps vouches for manifests gone).
        name = repository.name
        transaction.on_commit(lambda: content_trust.delete_trust_data(name))
    record(actor, "delete", "repository", f"{repository.name}:{tag.name}", repository.project, digest=tag.digest)
    events.after_delete(repository.project, repository.name, [tag.name])


def delete_repository(actor: Actor, repository: Repository, client: RegistryClient | None = None) -> list[str]:
    """Delete a repository: every manifest its tags point at in the registry, its trust data in notary, then its
    rows. Returns the GUNs whose trust data notary did not delete (also named in the audit entry)."""
    _require_delete(actor, repository.project)
    _writable()
    client = client or RegistryClient()
    digests = {
        head[0] for name in client.tags(repository.name) if (head := client.head_manifest(repository.name, name))
    }
    digests |= set(repository.tags.values_list("digest", flat=True))
    for digest in sorted(digests):
        client.delete_manifest(repository.name, digest)
    # The registry's data is already gone, so a notary that cannot be reached does not stop the deletion: the
    # trust data left behind is named in the audit entry, and a warning, for an administrator to remove by hand.
    # (Signatures left behind vouch only for the manifests they name, which the registry no longer holds.)
    trust_data_left = content_trust.delete_trust_data(repository.name)
    with transaction.atomic():
        name, project = repository.name, repository.project
        tags = list(repository.tags.values_list("name", flat=True))
        repository.delete()
        details: dict[str, object] = {"manifests": len(digests)}
        if trust_data_left:
            details["trust_data_left"] = trust_data_left
        record(actor, "delete", "repository", name, project, **details)
        events.after_delete(project, name, tags)
    return trust_data_left


def delete_repositories(
    actor: Actor, repositories: Iterable[Repository], client: RegistryClient | None = None
) -> tuple[list[Outcome], list[str]]:
    """Delete several repositories one by one (each audited); a refused one (registry down) keeps the others going.
    Returns each one's outcome and the GUNs whose trust data notary did not delete."""
    client = client or RegistryClient()
    trust_data_left: list[str] = []
    outcomes = apply_each(
        repositories,
        lambda repository: repository.name,
        lambda repository: trust_data_left.extend(delete_repository(actor, repository, client)),
    )
    return outcomes, trust_data_left


def start_reconcile(actor: Actor) -> Job:
    """Start a job that repairs drift between the registry and the database (portal admins only)."""
    require(actor, "manage_system")
    return create_job(actor, RECONCILE, "registry")


def start_gc(actor: Actor) -> Job:
    """Start registry garbage collection (portal admins only); one at a time."""
    require(actor, "manage_system")
    return start_scheduled_gc(actor)


def start_scheduled_gc(actor: Actor) -> Job:
    """Start garbage collection for the schedule (no user to check); one at a time."""
    return create_job(actor, GARBAGE_COLLECTION, "registry")


@transaction.atomic
def update_gc_schedule(actor: Actor, frequency: str | None = None, at: time | None = None) -> GcSchedule:
    """Set when garbage collection runs on its own (portal admins only): off, or daily at a time."""
    require(actor, "manage_system")
    schedule = GcSchedule.load()
    if frequency is not None and frequency not in GcSchedule.Frequency.values:
        choices = ", ".join(GcSchedule.Frequency.values)
        raise Invalid(f"frequency must be one of {choices}", {"frequency": [f"Choose one of {choices}."]})
    changed = {k: v for k, v in (("frequency", frequency), ("time", at)) if v is not None and getattr(schedule, k) != v}
    if changed:
        for key, value in changed.items():
            setattr(schedule, key, value)
        schedule.save()
        record(actor, "update", "settings", "garbage collection schedule", schedule=str(schedule))
        transaction.on_commit(install_gc_schedule)
    return schedule


def install_gc_schedule() -> None:
    """Bring the beat entry of scheduled garbage collection in line with GcSchedule."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    schedule = GcSchedule.load()
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(schedule.time.minute),
        hour=str(schedule.time.hour),
        day_of_week="*",
        day_of_month="*",
        month_of_year="*",
    )
    PeriodicTask.objects.update_or_create(
        name="registry garbage collection",
        defaults={
            "task": "registries.scheduled_gc",
            "crontab": crontab,
            "enabled": schedule.frequency == GcSchedule.Frequency.DAILY,
        },
    )


def reconcile(job: Job, log: JobContext, client: RegistryClient | None = None) -> str:
    """Make the database match the registry's catalog and tags: add what events missed, drop what is gone."""
    client = client or RegistryClient()
    started = timezone.now()
    projects = {p.name: p for p in Project.objects.all()}
    seen: set[str] = set()
    counts = {"added": 0, "moved": 0, "removed": 0}
    names = list(client.catalog())
    for index, name in enumerate(names, 1):
        project = projects.get(name.split("/", 1)[0]) if "/" in name else None
        if project is None:
            log(f"skipped {name}: no project '{name.split('/', 1)[0]}'")
            continue
        seen.add(name)
        for change, count in _reconcile_repository(client, project, name, started, log).items():
            counts[change] += count
        log.progress(index, len(names))
        log.checkpoint()
    gone = Repository.objects.exclude(name__in=seen).filter(updated__lt=started)
    for repository in gone:
        log(f"removed {repository.name}: not in the registry")
        counts["removed"] += repository.tags.count()
        repository.delete()
    summary = (
        f"checked {len(names)} repositories: {counts['added']} tags added, "
        f"{counts['moved']} moved, {counts['removed']} removed"
    )
    if any(counts.values()):
        record(Actor.system("reconcile"), "reconcile", "registry", "registry", summary=summary)
    return summary


def _reconcile_repository(
    client: RegistryClient, project: Project, name: str, started: datetime, log: JobContext
) -> dict[str, int]:
    """Repair one repository's tags; returns how many were added, moved and removed."""
    counts = {"added": 0, "moved": 0, "removed": 0}
    in_registry = {}
    for tag_name in client.tags(name):
        head = client.head_manifest(name, tag_name)
        if head:
            in_registry[tag_name] = head
    repository = Repository.objects.filter(name=name).first()
    if repository is None and not in_registry:
        return counts
    if repository is None:
        repository = Repository.objects.create(project=project, name=name)
    known = {tag.name: tag for tag in repository.tags.all()}
    for tag_name, (digest, media_type) in in_registry.items():
        tag = known.get(tag_name)
        if tag is not None and tag.digest == digest:
            continue
        manifest = client.get_manifest(name, digest)
        size = client.image_size(name, manifest) if manifest else 0
        Tag.objects.update_or_create(
            repository=repository,
            name=tag_name,
            defaults={"digest": digest, "media_type": media_type, "size": size, "updated": timezone.now()},
        )
        counts["moved" if tag else "added"] += 1
        log(f"{'moved' if tag else 'added'} {name}:{tag_name} -> {digest}")
    # A tag written after the job started may not be in the list we read: leave it alone.
    stale = repository.tags.exclude(name__in=in_registry).filter(updated__lt=started)
    for tag_name in stale.values_list("name", flat=True):
        log(f"removed {name}:{tag_name}: not in the registry")
    counts["removed"] += stale.delete()[0]
    if not repository.tags.exists() and repository.updated < started:
        repository.delete()
    return counts


# External registries: their models, services and Verify register themselves here too.
from registries import external_services  # noqa: E402, F401

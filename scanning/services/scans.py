"""Scans of images and the CVE allowlists: every change of their state, with its audit entry.

A scan is a job on the scans queue (its own worker, so a scan of all images never holds up provisioning or
replication). Portal administrators and a project's DevOps administrators scan a project's images; portal
administrators start the scan of all images (Scan Now), at most once every two hours as the seed says, and
manage the system-wide allowlist; a project's administrators manage the project's own.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Iterator

from django.db import IntegrityError, transaction
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from portal.core import jobs
from portal.core.audit import Actor, record
from portal.core.bulk import Outcome, apply_each
from portal.core.errors import Conflict, Forbidden, Invalid
from portal.core.jobs import create_job
from portal.core.models import ACTIVE_JOB_STATES, Job, ScanSchedule, SystemSettings
from portal.core.permissions import is_portal_admin
from projects.models import Project
from projects.roles import can
from registries.models import Tag, TagQuerySet
from scanning.models import AllowlistEntry, ImageScan, ScanState

SCAN = "scan"
SCAN_ALL = "scan_all"
SCAN_REMATCH = "scan_rematch"
SCAN_QUEUE = jobs.SCAN_QUEUE
# "You can start a manual scan only once in two hours as the procedure is resource intensive."
ALL_SCAN_INTERVAL = datetime.timedelta(hours=2)
# What a vulnerability id looks like (CVE-2024-1234, GHSA-xxxx-xxxx-xxxx, ALSA-2024:1234), for the allowlists.
CVE_ID = re.compile(r"^[A-Za-z][A-Za-z0-9]*-[A-Za-z0-9][A-Za-z0-9.:_-]{1,90}$")


# --- scans -----------------------------------------------------------------------------------------------


def _require_scan(actor: Actor, project: Project) -> None:
    if not can(actor.user, "scan", project):
        raise Forbidden(f"Only administrators of project '{project.name}' may scan its images.")


def start_scan(actor: Actor, tag: Tag) -> ImageScan:
    """Scan the image a tag names (portal and project admins); a scan of that image already queued is kept."""
    _require_scan(actor, tag.repository.project)
    return queue_scan(actor, tag.repository.name, tag.digest)


def start_scans(actor: Actor, tags: Iterable[Tag]) -> list[Outcome]:
    """Scan several tags' images one by one; a refused tag keeps the others going."""
    return apply_each(tags, lambda tag: tag.name, lambda tag: start_scan(actor, tag))


def queue_scan(actor: Actor, repository: str, digest: str) -> ImageScan:
    """Queue a scan of the image (whoever asked may: the caller checked, or a push of a project that asks)."""
    with transaction.atomic():
        scans = ImageScan.objects.select_for_update()
        scan, _ = scans.get_or_create(digest=digest, defaults={"repository": repository})
        if scan.job_id and Job.objects.filter(pk=scan.job_id, state__in=ACTIVE_JOB_STATES).exists():
            return scan
        scan.repository, scan.state, scan.requested, scan.error = repository, ScanState.PENDING, timezone.now(), ""
        scan.job = create_job(actor, SCAN, digest, {"scan": scan.pk})
        scan.save(update_fields=["repository", "state", "requested", "error", "job"])
        record(actor, "start", "scan", f"{repository}@{digest}", _project_of(repository))
    return scan


def _project_of(repository: str) -> Project | None:
    return Project.objects.filter(name=repository.split("/", 1)[0]).first()


def scan_on_push(tag: Tag) -> None:
    """A push followup: scan the pushed image when its project scans automatically on push."""
    project = tag.repository.project
    if project.auto_scan:
        queue_scan(Actor.system("scan on push"), tag.repository.name, tag.digest)


def last_scan_all() -> Job | None:
    """The newest scan of all images, scheduled or asked for."""
    return Job.objects.filter(kind=SCAN_ALL).order_by("-created", "-id").first()


def next_scan_all(now: datetime.datetime | None = None) -> datetime.datetime | None:
    """When Scan Now may run again (None: now)."""
    last = Job.objects.filter(kind=SCAN_ALL, parameters__manual=True).order_by("-created", "-id").first()
    if last is None:
        return None
    allowed = last.created + ALL_SCAN_INTERVAL
    return allowed if allowed > (now or timezone.now()) else None


def next_scheduled_scan_all(now: datetime.datetime | None = None) -> datetime.datetime | None:
    """When the daily scan of all images next starts (None: the schedule is off), on the portal's clock."""
    current = SystemSettings.load()
    if current.scan_schedule == ScanSchedule.OFF:
        return None
    local_now = timezone.localtime(now or timezone.now())
    start = local_now.replace(hour=current.scan_time.hour, minute=current.scan_time.minute, second=0, microsecond=0)
    return start if start > local_now else start + datetime.timedelta(days=1)


def start_scan_all(actor: Actor, *, scheduled: bool = False) -> Job:
    """Scan every tagged image: Scan Now (portal admins, once in two hours) or the daily schedule."""
    if not scheduled:
        if not is_portal_admin(actor.user):
            raise Forbidden("Only Management Portal administrators may scan all images.")
        again = next_scan_all()
        if again is not None:
            when = timezone.localtime(again).strftime("%Y-%m-%d %H:%M")
            raise Conflict(
                f"a manual scan of all images runs at most once in two hours: the next one may start at {when}",
                extra={"next_allowed": again.isoformat()},
            )
    job = create_job(actor, SCAN_ALL, "all images", {"manual": not scheduled})
    record(actor, "start", "scan", "all images", manual=not scheduled)
    return job


def start_rematch(actor: Actor) -> Job:
    """Match every stored image index against the vulnerability database again (after it changed); no layer
    is downloaded. A rematch already queued (not started) is the one that will see the change."""
    # One running may have read the database before this change, so a new one is queued beside it.
    queued = Job.objects.filter(kind=SCAN_REMATCH, state="pending").first()
    return queued or create_job(actor, SCAN_REMATCH, "all images", {})


def images_to_scan() -> Iterator[tuple[str, str]]:
    """(digest, repository) of every tagged image, each digest once (with the first repository holding it)."""
    rows = Tag.objects.order_by("digest", "repository__name").values_list("digest", "repository__name")
    last = None
    for digest, repository in rows.iterator(chunk_size=2000):
        if digest != last:
            last = digest
            yield digest, repository


def with_scan_summary(tags: TagQuerySet) -> TagQuerySet:
    """Tags annotated with their image's latest scan (scan_state, scan_summary, scan_fixable, scan_scanned), in
    the query that reads them: a registries.models.TAG_ANNOTATIONS function, so the tag list shows the bar."""
    scan = ImageScan.objects.filter(digest=OuterRef("digest"))
    return tags.annotate(
        **{f"scan_{field}": Subquery(scan.values(field)[:1]) for field in ("state", "summary", "fixable", "scanned")}
    )


def scan_for_tag(tag: Tag) -> ImageScan | None:
    """The latest scan of the image a tag names, if it was ever asked for."""
    return ImageScan.objects.select_related("job").filter(digest=tag.digest).first()


# --- CVE allowlists ---------------------------------------------------------------------------------------


def _require_allowlist(actor: Actor, project: Project | None) -> None:
    if project is None:
        if not is_portal_admin(actor.user):
            raise Forbidden("The system CVE allowlist is managed by Management Portal administrators.")
    elif not can(actor.user, "manage_settings", project):
        raise Forbidden(f"Only administrators of project '{project.name}' may change its CVE allowlist.")


def add_allowlist_entry(
    actor: Actor, cve: str, project: Project | None = None, expires: datetime.date | None = None
) -> AllowlistEntry:
    """Allowlist a CVE system-wide (no project) or for one project, until `expires` (inclusive) or for good."""
    _require_allowlist(actor, project)
    cve = (cve or "").strip().upper()
    if not CVE_ID.match(cve):
        message = "Give a vulnerability id such as CVE-2024-1234 or GHSA-xxxx-xxxx-xxxx."
        raise Invalid(message, {"cve": [message]})
    if expires is not None and expires < timezone.localdate():
        message = "The expiry date is in the past."
        raise Invalid(message, {"expires": [message]})
    try:
        with transaction.atomic():
            entry = AllowlistEntry.objects.create(project=project, cve=cve, expires=expires, created_by=actor.name)
    except IntegrityError as exc:
        where = f"project '{project.name}'" if project else "the system"
        raise Conflict(f"{cve} is already on the allowlist of {where}", {"cve": ["Already allowlisted."]}) from exc
    record(actor, "create", "cve_allowlist", cve, project, expires=expires.isoformat() if expires else None)
    return entry


def remove_allowlist_entry(actor: Actor, entry: AllowlistEntry) -> None:
    """Take a CVE off an allowlist."""
    _require_allowlist(actor, entry.project)
    cve, project = entry.cve, entry.project
    entry.delete()
    record(actor, "delete", "cve_allowlist", cve, project)


def allowlist_entries(project: Project, today: datetime.date | None = None) -> dict[str, AllowlistEntry]:
    """The entries that excuse a CVE in the project today, by CVE: the system's and the project's, unexpired
    (the project's own where both list it)."""
    today = today or timezone.localdate()
    current = AllowlistEntry.objects.filter(Q(project__isnull=True) | Q(project=project)).filter(
        Q(expires__isnull=True) | Q(expires__gte=today)
    )
    # The system's first, so the project's own entry for the same CVE replaces it.
    return {entry.cve: entry for entry in sorted(current, key=lambda entry: entry.project_id is not None)}


def allowlisted(project: Project, today: datetime.date | None = None) -> set[str]:
    """The CVEs that do not count for the project's policy today: the system's and the project's, unexpired."""
    return set(allowlist_entries(project, today))

"""Every change of state in scanning, with its audit event (the only writers of its models)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from django.db import DataError, transaction
from django.utils import timezone

from portal.core.audit import Actor, record
from portal.core.errors import DomainError, Invalid, NotFound, RemoteUnreachable
from portal.core.jobs import JobContext, create_job, is_transient
from portal.core.models import Job
from portal.core.services import require
from scanning import bundle
from scanning.models import AffectedPackage, FeedSource, Vulnerability
from scanning.updaters import Advisory, FeedFormatError, Updater, feed_file_name, merged, registry, updater_for_file
from scanning.updaters.fetch import download

logger = logging.getLogger(__name__)
VULNDB_UPDATE = "vulndb_update"
BATCH = 2000
ADVISORY_FIELDS = [
    "aliases",
    "summary",
    "description",
    "severity",
    "cvss_score",
    "cvss_vector",
    "links",
    "published",
    "modified",
    "withdrawn",
]


def require_admin(actor: Actor) -> None:
    """Portal administrators may load and export the database; so may the system itself (a command, the beat)."""
    # A system actor has a name but no user and no client address; an anonymous web request has no name.
    if actor.user is None and actor.address is None and actor.name:
        return
    require(actor, "manage_system")


@dataclass
class FeedResult:
    """How updating or importing one feed went: whether its advisories changed, their counts, or the error."""

    name: str
    changed: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    error: str = ""
    # Whether trying again later may help (the feed's server was unreachable or answered 5xx).
    transient: bool = False


def store_feed(name: str, source: str, advisories: Iterable[Advisory], **feed_fields: str) -> dict[str, int]:
    """Replace the advisories of one feed with a new full copy, in one transaction (a reader sees old or new).

    Advisories are upserted by (feed, name) so their ids stay stable; their affected packages are
    replaced whole, and advisories the new copy no longer holds are deleted.
    """
    # Two records of one name in one statement would make the upsert touch a row twice.
    advisories = merged(advisories)
    now = timezone.now()
    with transaction.atomic():
        rows = [
            Vulnerability(source=name, name=item.name, **{key: getattr(item, key) for key in ADVISORY_FIELDS})
            for item in advisories
        ]
        Vulnerability.objects.bulk_create(
            rows,
            batch_size=BATCH,
            update_conflicts=True,
            unique_fields=["source", "name"],
            update_fields=ADVISORY_FIELDS,
        )
        ids = dict(Vulnerability.objects.filter(source=name).values_list("name", "id"))
        AffectedPackage.objects.filter(vulnerability__source=name).delete()
        AffectedPackage.objects.bulk_create(
            (
                AffectedPackage(vulnerability_id=ids[item.name], **vars(entry))
                for item in advisories
                for entry in item.affected
            ),
            batch_size=BATCH,
        )
        current = {item.name for item in advisories}
        stale = [pk for advisory_name, pk in ids.items() if advisory_name not in current]
        for start in range(0, len(stale), BATCH):
            Vulnerability.objects.filter(pk__in=stale[start : start + BATCH]).delete()
        counts = {"vulnerabilities": len(advisories), "packages": sum(len(item.affected) for item in advisories)}
        FeedSource.objects.update_or_create(
            name=name,
            defaults={
                "source": source,
                "last_run": now,
                "last_success": now,
                "last_changed": now,
                "loaded": counts,
                "error": "",
                **feed_fields,
            },
        )
    return counts


def update_feed(actor: Actor, updater: Updater, url: str) -> FeedResult:
    """Fetch one feed if it changed and load it; a failure is recorded on the feed and keeps its old advisories."""
    name = updater.feed_name(url)
    feed, _ = FeedSource.objects.get_or_create(name=name, defaults={"source": updater.source, "url": url})
    # Validators of a copy fetched from another URL, or imported from a file, say nothing about this URL.
    same_url = feed.url == url
    try:
        fetched = download(url, feed.etag if same_url else "", feed.last_modified if same_url else "")
        if fetched.body is None:
            FeedSource.objects.filter(pk=feed.pk).update(last_run=timezone.now(), last_success=timezone.now(), error="")
            return FeedResult(name)
        with fetched.body:
            advisories = parse_feed(updater, fetched.body, name)
        counts = store_feed(
            name, updater.source, advisories, url=url, etag=fetched.etag, last_modified=fetched.last_modified
        )
    except DataError as exc:
        # A value longer than its column fails this feed, not the whole update.
        logger.exception("vulnerability feed %s could not be stored", name)
        return _failed(actor, feed, FeedFormatError(f"{name}: the feed could not be stored ({exc})"))
    except DomainError as exc:
        return _failed(actor, feed, exc)
    record(actor, "update", "vulndb", name, **counts)
    return FeedResult(name, True, counts)


def parse_feed(updater: Updater, stream: IO[bytes], name: str) -> list[Advisory]:
    """The feed's advisories; content the parser did not foresee is a FeedFormatError naming the feed."""
    try:
        return updater.parse(stream)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        logger.exception("vulnerability feed %s could not be read", name)
        raise FeedFormatError(f"{name}: the feed could not be read ({type(exc).__name__}: {exc})") from exc


def _failed(actor: Actor, feed: FeedSource, exc: DomainError) -> FeedResult:
    """Record a feed's failure on its row and in the audit log; its advisories stay as they were."""
    logger.warning("vulnerability feed %s failed: %s", feed.name, exc.message)
    FeedSource.objects.filter(pk=feed.pk).update(last_run=timezone.now(), error=exc.message)
    record(actor, "update", "vulndb", feed.name, outcome="failure", error=exc.message)
    return FeedResult(feed.name, error=exc.message, transient=is_transient(exc))


def planned_feeds(sources: Iterable[str] | None = None) -> list[tuple[Updater, str]]:
    """The (updater, URL) of every configured feed of the named sources (all by default); Invalid for unknown ones."""
    updaters = registry()
    chosen = list(sources) if sources else list(updaters)
    unknown = sorted(set(chosen) - set(updaters))
    if unknown:
        raise Invalid(f"unknown vulnerability source {', '.join(unknown)}: choose from {', '.join(updaters)}")
    return [(updaters[source], url) for source in chosen for url in updaters[source].urls()]


def update_feeds(actor: Actor, sources: Iterable[str] | None = None) -> list[FeedResult]:
    """Update every configured feed (or those of the named sources), each on its own: one failing spoils no other."""
    return [update_feed(actor, updater, url) for updater, url in planned_feeds(sources)]


def start_update(actor: Actor, sources: list[str] | None = None) -> Job:
    """Start a job updating the vulnerability database from its feeds (portal admins, the scheduler); one at a time."""
    require_admin(actor)
    planned_feeds(sources)
    return create_job(actor, VULNDB_UPDATE, "vulndb", {"sources": sources or []})


def run_update(job: Job, log: JobContext) -> str:
    """The update job's runner: each feed in turn, logged; failed feeds keep their data and fail the job at the end.

    A failure that may pass (unreachable, 5xx) makes the job retry with backoff; the feeds that
    loaded answer 304 on the next attempt and cost nothing.
    """
    feeds = planned_feeds(log.parameters.get("sources"))
    actor = Actor.system(job.created_by or "scheduler")
    failed = []
    changed = False
    for index, (updater, url) in enumerate(feeds, 1):
        log.checkpoint()
        result = update_feed(actor, updater, url)
        changed = changed or result.changed
        if result.error:
            failed.append(result)
            log(f"{result.name}: failed: {result.error}")
        elif result.changed:
            log(f"{result.name}: {result.counts['vulnerabilities']} advisories, {result.counts['packages']} packages")
        else:
            log(f"{result.name}: unchanged")
        log.progress(index, len(feeds))
    if changed:
        rematch(actor)
    if failed:
        names = ", ".join(result.name for result in failed)
        raise RemoteUnreachable(
            f"{len(failed)} of {len(feeds)} feeds failed ({names}); their previous data is kept",
            transient=any(result.transient for result in failed),
        )
    return f"{len(feeds)} feeds up to date"


def rematch(actor: Actor) -> None:
    """Match the stored image indexes against the advisories that changed; no layer is downloaded again."""
    from scanning.services.scans import start_rematch

    start_rematch(actor)


def not_a_feed(names: list[str]) -> Invalid:
    """The error for files that are neither a feed named by its source nor a bundle."""
    sources = ", ".join(registry())
    return Invalid(f"{', '.join(names)}: not a feed file (name it after its source: {sources}) nor a vulndb bundle")


def import_feed_file(actor: Actor, path: Path) -> FeedResult:
    """Load one feed file named by its source (debian.json, alpine-v3.19-main.json, pypi.zip, nvd-2024.json.gz)."""
    updater = updater_for_file(path)
    if updater is None:
        raise not_a_feed([path.name])
    name = feed_file_name(path)
    with path.open("rb") as stream:
        advisories = parse_feed(updater, stream, name)
    # Imported copies carry no validators: the next online update downloads the feed in full.
    counts = store_feed(name, updater.source, advisories, url="", etag="", last_modified="")
    record(actor, "import", "vulndb", name, file=path.name, **counts)
    return FeedResult(name, True, counts)


def import_bundle_stream(actor: Actor, stream: IO[bytes], label: str) -> list[FeedResult]:
    """Load every feed of a bundle `vulndb export` wrote."""
    results = []
    for feed, advisories in bundle.read(stream):
        counts = store_feed(feed.name, feed.source, advisories, url="", etag="", last_modified="")
        record(actor, "import", "vulndb", feed.name, file=label, **counts)
        results.append(FeedResult(feed.name, True, counts))
    return results


def import_path(actor: Actor, path: Path) -> list[FeedResult]:
    """Load a bundle file, one feed file, or a directory of them, from disk (no network)."""
    require_admin(actor)
    if not path.exists():
        raise NotFound(f"{path} does not exist")
    files = sorted(child for child in path.iterdir() if child.is_file()) if path.is_dir() else [path]
    bundles = {file for file in files if _is_bundle_file(file)}
    # Every file is checked before any is loaded, so a stray file does not leave half a directory loaded.
    strays = [file.name for file in files if file not in bundles and updater_for_file(file) is None]
    if strays:
        raise not_a_feed(strays)
    results: list[FeedResult] = []
    for file in files:
        if file in bundles:
            with file.open("rb") as stream:
                results.extend(import_bundle_stream(actor, stream, file.name))
        else:
            results.append(import_feed_file(actor, file))
    if any(result.changed for result in results):
        rematch(actor)
    return results


def _is_bundle_file(path: Path) -> bool:
    """Whether the file on disk is a vulndb bundle."""
    with path.open("rb") as stream:
        return bundle.is_bundle(stream)


def import_bundle(actor: Actor, file: IO[bytes], filename: str = "") -> list[FeedResult]:
    """Load an uploaded bundle or feed file (the Configuration page's upload); `filename` names a single feed."""
    require_admin(actor)
    # An upload (Django's UploadedFile) carries the name the browser sent.
    filename = filename or str(getattr(file, "name", "") or "")
    if bundle.is_bundle(file):
        results = import_bundle_stream(actor, file, filename or "upload")
        if any(result.changed for result in results):
            rematch(actor)
        return results
    if not filename:
        raise Invalid("not a vulndb bundle: upload the file `manage.py vulndb export` writes, or a named feed file")
    # A feed file is parsed from disk so zip feeds can seek; the upload is copied to a temporary folder.
    with tempfile.TemporaryDirectory(prefix="wharf-vulndb-") as folder:
        target = Path(folder) / Path(filename).name
        with target.open("wb") as copy:
            for chunk in iter(lambda: file.read(1024 * 1024), b""):
                copy.write(chunk)
        result = import_feed_file(actor, target)
    if result.changed:
        rematch(actor)
    return [result]


def export_bundle(actor: Actor, path: Path) -> dict[str, int]:
    """Write every feed's advisories to a bundle file another Wharf can import; returns counts."""
    require_admin(actor)
    with path.open("wb") as stream:
        counts = bundle.write(stream, FeedSource.objects.filter(last_success__isnull=False))
    record(actor, "export", "vulndb", path.name, **counts)
    return counts

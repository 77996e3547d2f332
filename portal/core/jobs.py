"""Background jobs: one row per job, one registry of runners by kind, one Celery task that runs them.

A service creates a job with `create_job` (its parameters go into the row) and the task
`portal.run_job` is queued once the row is committed. `run_job` claims the row with a conditional
update, so a second delivery of the same message does nothing; it holds a lease that a heartbeat
thread renews while the runner works. Transient faults (unreachable, timed out, 5xx) are retried
with exponential backoff up to JOB_MAX_ATTEMPTS; a stop request ends the job STOPPED at the
runner's next checkpoint. The beat's `recover_jobs` queues again a job whose lease lapsed (its
worker died) and a retry whose message was lost; runners are idempotent and start again from
their parameters, skipping what is already done.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from portal.core.audit import Actor, record
from portal.core.errors import Conflict, DomainError, Forbidden, RemoteUnreachable
from portal.core.models import ACTIVE_JOB_STATES, Job, JobLogLine, JobState, Outcome
from portal.core.permissions import is_portal_admin

logger = logging.getLogger(__name__)


class JobStopped(Exception):
    """Raised at a checkpoint when the job was asked to stop (or its lease went to another worker)."""


Runner = Callable[[Job, "JobContext"], str]
# The queue suffix of scan jobs (`<default queue>.scans`): the scanning app registers its kinds with it, and the
# launcher's scanner worker and compose's scanner service take only that queue.
SCAN_QUEUE = "scans"


@dataclass(frozen=True)
class JobKind:
    """What runs a kind of job: the runner, whether one at a time per target, and what to undo on failure."""

    name: str
    run: Runner
    # One active job per (kind, target): a second is refused with `busy` (or a message naming both).
    exclusive: bool = False
    busy: str = ""
    # Called once when the job has ended FAILED or STOPPED (not between attempts): undo what it began.
    on_failed: Callable[[Job, Exception], None] | None = None
    # A queue of its own ("scans": `<default queue>.scans`), served by its own worker, so a long batch of this kind
    # never holds up other jobs; empty: the default queue.
    queue: str = ""

    def busy_message(self, target: str) -> str:
        """What a second start of an exclusive job is told."""
        return self.busy or f"a '{self.name}' job for {target or 'this target'} is already running"


_KINDS: dict[str, JobKind] = {}
_discovered = False


def register(
    name: str,
    run: Runner,
    *,
    exclusive: bool = False,
    busy: str = "",
    on_failed: Callable[[Job, Exception], None] | None = None,
    queue: str = "",
) -> JobKind:
    """Make `run` the runner of jobs of kind `name` (each app registers its kinds in its tasks.py)."""
    kind = JobKind(name, run, exclusive, busy, on_failed, queue)
    _KINDS[name] = kind
    return kind


def job_kind(name: str) -> JobKind:
    """The registered kind; every app's tasks module is imported the first time one is asked for."""
    global _discovered
    if name not in _KINDS and not _discovered:
        autodiscover_modules("tasks")
        _discovered = True
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"no runner is registered for jobs of kind '{name}'") from None


def is_transient(exc: BaseException) -> bool:
    """Whether another attempt may succeed: the remote system was unreachable, timed out or answered 5xx."""
    return isinstance(exc, RemoteUnreachable) and exc.transient


def retry_delay(attempt: int) -> int:
    """Seconds to wait after failed attempt number `attempt`: the base delay doubling, up to the maximum."""
    return min(settings.JOB_RETRY_DELAY_SECONDS * 2 ** (attempt - 1), settings.JOB_RETRY_MAX_DELAY_SECONDS)


# --- creating, stopping ------------------------------------------------------------------------------


def create_job(
    actor: Actor,
    kind: str,
    target: str = "",
    parameters: dict[str, Any] | None = None,
    *,
    parent: Job | None = None,
    queue: bool = True,
) -> Job:
    """Create a pending job of a registered kind and queue it once the row is committed.

    An exclusive kind with a job still active for the same target is a Conflict. A child job (with a parent) is
    recorded in the audit log through its parent; `queue=False` leaves it to the parent's runner to run.
    """
    spec = job_kind(kind)
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=kind,
                target=target,
                parameters=parameters or {},
                parent=parent,
                exclusive=spec.exclusive,
                created_by=actor.name,
            )
    except IntegrityError as exc:
        raise Conflict(spec.busy_message(target)) from exc
    if parent is None:
        record(actor, "start", "job", f"{kind} #{job.pk}", target=target)
    if queue:
        transaction.on_commit(lambda: enqueue(job.pk, kind=kind))
    return job


def queue_name(suffix: str) -> str | None:
    """The Celery queue of a job kind's `queue` suffix: beside the default queue, so a deployment's (or a test's)
    own queue name carries over; None for the default queue."""
    return f"{current_app.conf.task_default_queue}.{suffix}" if suffix else None


def enqueue(job_id: int, countdown: int = 0, kind: str = "") -> None:
    """Send the job to a worker (after `countdown` seconds), on its kind's queue."""
    if not kind:
        kind = Job.objects.filter(pk=job_id).values_list("kind", flat=True).first() or ""
    try:
        suffix = job_kind(kind).queue
    except LookupError:
        suffix = ""
    send_task("portal.run_job", job_id, countdown=countdown or None, queue=queue_name(suffix))


def send_task(name: str, *args: object, countdown: int | None = None, queue: str | None = None) -> None:
    """Send the Celery task of that name (run at once when tasks are eager).

    Tasks are found by name, so a service never imports back the tasks module that calls it; a
    process that has not loaded every app's tasks module yet (a web worker) loads them first.
    """
    if name not in current_app.tasks:
        autodiscover_modules("tasks")
    current_app.tasks[name].apply_async(args, countdown=countdown, **({"queue": queue} if queue else {}))


def request_stop(actor: Actor, job: Job) -> Job:
    """Stop a job: one not running yet ends STOPPED now, a running one at its next checkpoint; children too."""
    if not may_manage(actor.user, job):
        raise Forbidden("only a portal administrator or the user who started a job may stop it")
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.is_finished:
            raise Conflict(f"job #{job.pk} has already ended ({job.get_state_display().lower()})")
        _stop_one(actor, job)
        for child in Job.objects.select_for_update().filter(parent=job, state__in=ACTIVE_JOB_STATES):
            _stop_one(actor, child)
        record(actor, "stop", "job", f"{job.kind} #{job.pk}", target=job.target)
    job.refresh_from_db()
    return job


def _stop_one(actor: Actor, job: Job) -> None:
    """Mark one job stopped (not running yet) or asked to stop (running)."""
    who = actor.name or "the system"
    if job.state == JobState.RUNNING:
        Job.objects.filter(pk=job.pk).update(stop_requested=True)
        _write_line(job.pk, job.attempts, f"stop requested by {who}")
    else:
        Job.objects.filter(pk=job.pk).update(
            stop_requested=True, state=JobState.STOPPED, finished=timezone.now(), next_attempt=None
        )
        _write_line(job.pk, job.attempts, f"stopped by {who} before it ran")
        _undo(job, JobStopped(f"stopped by {who}"))


def may_manage(user: Any, job: Job) -> bool:
    """Whether the user may follow and stop the job: portal admins any job, everyone else the jobs they started."""
    if is_portal_admin(user):
        return True
    return bool(user is not None and user.is_authenticated and job.created_by == user.get_username())


def visible_jobs(user: Any) -> QuerySet[Job]:
    """The jobs the user may follow (may_manage as a queryset): every job for portal admins, else their own."""
    if is_portal_admin(user):
        return Job.objects.all()
    if user is None or not user.is_authenticated:
        return Job.objects.none()
    return Job.objects.filter(created_by=user.get_username())


# --- running ----------------------------------------------------------------------------------------


def _write_line(job_id: int, attempt: int, text: str) -> None:
    """Append one line to a job's log."""
    JobLogLine.objects.create(job_id=job_id, attempt=attempt, text=text)


class JobContext:
    """What a runner gets besides the row: the log, progress, the stop checkpoint and the attempt number.

    Calling it appends a line to the job's log.
    """

    def __init__(self, job: Job, stop: threading.Event | None = None) -> None:
        self.job = job
        self.attempt = job.attempts
        self._stop = stop
        self._last_poll = 0.0

    @property
    def parameters(self) -> dict[str, Any]:
        """The job's parameters, as its service stored them."""
        return self.job.parameters

    def __call__(self, line: str) -> None:
        """Append one line to the job's log."""
        _write_line(self.job.pk, self.attempt, line)

    def progress(
        self, done: int, total: int | None = None, *, done_bytes: int | None = None, total_bytes: int | None = None
    ) -> None:
        """Record how far the job is: units done of total, and bytes when the job moves data."""
        changes: dict[str, Any] = {"done_units": done}
        if total is not None:
            changes["total_units"] = total
        if done_bytes is not None:
            changes["done_bytes"] = done_bytes
        if total_bytes is not None:
            changes["total_bytes"] = total_bytes
        whole = total if total is not None else self.job.total_units
        if whole:
            changes["progress"] = max(0, min(100, done * 100 // whole))
        elif total_bytes:
            changes["progress"] = max(0, min(100, (done_bytes or 0) * 100 // total_bytes))
        for name, value in changes.items():
            setattr(self.job, name, value)
        Job.objects.filter(pk=self.job.pk).update(**changes)

    def stop_requested(self) -> bool:
        """Whether the job should stop now: asked to, or its lease went to another worker."""
        if self._stop is not None:
            return self._stop.is_set()
        # No heartbeat thread (the caller holds a transaction): look at the row, at most once a second.
        now = time.monotonic()
        if now - self._last_poll < 1.0:
            return False
        self._last_poll = now
        return Job.objects.filter(pk=self.job.pk, stop_requested=True).exists()

    def checkpoint(self) -> None:
        """Raise JobStopped when the job should stop; runners call it between units of work."""
        if self.stop_requested():
            raise JobStopped()


class _Lease:
    """Renews the running job's lease every third of its length in a thread, and watches for a stop request."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.stop = threading.Event()
        self.lost = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def watching(self) -> bool:
        """Whether the heartbeat thread runs (and so sets `stop` when a stop is asked for)."""
        return self._thread is not None

    def __enter__(self) -> _Lease:
        # Inside a caller's transaction (a test's) another connection would wait on the row's lock.
        if not connection.in_atomic_block:
            self._thread = threading.Thread(target=self._beat, name=f"job-{self.job.pk}-lease", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _beat(self) -> None:
        interval = max(settings.JOB_LEASE_SECONDS / 3, 0.5)
        try:
            while not self._done.wait(interval):
                renewed = Job.objects.filter(pk=self.job.pk, state=JobState.RUNNING, attempts=self.job.attempts).update(
                    lease_expires=timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS)
                )
                if not renewed:
                    self.lost = True
                    self.stop.set()
                elif Job.objects.filter(pk=self.job.pk, stop_requested=True).exists():
                    self.stop.set()
        except Exception:  # a database fault must not kill the worker; the lease then lapses
            logger.exception("renewing the lease of job %s failed", self.job.pk)
        finally:
            connection.close()


def _claim(job_id: int) -> Job | None:
    """Take the job for this worker: pending, waiting to retry, or running with a lapsed lease; None otherwise."""
    now = timezone.now()
    claimable = Q(state__in=[JobState.PENDING, JobState.RETRYING], stop_requested=False) | Q(
        state=JobState.RUNNING, lease_expires__lt=now, stop_requested=False
    )
    claimed = Job.objects.filter(claimable, pk=job_id).update(
        state=JobState.RUNNING,
        attempts=F("attempts") + 1,
        started=Coalesce(F("started"), now),
        lease_expires=now + timedelta(seconds=settings.JOB_LEASE_SECONDS),
        next_attempt=None,
        worker=f"{socket.gethostname()}:{threading.get_native_id()}",
    )
    return Job.objects.get(pk=job_id) if claimed else None


def _end(job: Job, state: str, **changes: Any) -> bool:
    """Move the job from this attempt's RUNNING to `state`; False when the attempt no longer holds it."""
    ending = state in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED)
    return bool(
        Job.objects.filter(pk=job.pk, state=JobState.RUNNING, attempts=job.attempts).update(
            state=state, lease_expires=None, finished=timezone.now() if ending else None, **changes
        )
    )


def run_job(job_id: int) -> Job | None:
    """Claim the job, run its kind's runner, and record the outcome; None when it was not claimable."""
    job = _claim(job_id)
    if job is None:
        return None
    try:
        kind = job_kind(job.kind)
    except LookupError as exc:
        _fail(job, JobContext(job), exc, None)
        return _reloaded(job)
    with _Lease(job) as lease:
        context = JobContext(job, lease.stop if lease.watching else None)
        if job.attempts > 1:
            context(f"attempt {job.attempts} of {settings.JOB_MAX_ATTEMPTS}")
        try:
            summary = kind.run(job, context)
        except JobStopped:
            _stopped(job, context, lease, kind)
        except Exception as exc:
            if lease.lost:
                context(f"attempt {job.attempts} gave up the job: its lease went to another worker")
            elif Job.objects.filter(pk=job.pk, stop_requested=True).exists():
                # Read from the row: a stop asked since the heartbeat's last look must not become a retry.
                _stopped(job, context, lease, kind, exc)
            elif is_transient(exc) and job.attempts < settings.JOB_MAX_ATTEMPTS:
                _retry(job, context, exc)
            else:
                _fail(job, context, exc, kind)
        else:
            if _end(job, JobState.SUCCEEDED, progress=100, error=""):
                context(summary)
                _record_finish(job, summary=summary)
    return _reloaded(job)


def _record_finish(job: Job, **detail: Any) -> None:
    """The job's end in the audit log; a child job's is its parent's (a run of 500 repositories is one entry)."""
    if job.parent_id is None:
        record(Actor.system(), "finish", "job", f"{job.kind} #{job.pk}", **detail)


def _reloaded(job: Job) -> Job:
    job.refresh_from_db()
    return job


def _stopped(job: Job, context: JobContext, lease: _Lease, kind: JobKind, exc: Exception | None = None) -> None:
    """End the job STOPPED (or leave it to the worker that took it over)."""
    if lease.lost:
        context(f"attempt {job.attempts} gave up the job: its lease went to another worker")
        return
    if _end(job, JobState.STOPPED):
        context(f"stopped{f' ({exc})' if exc else ''}")
        if kind.on_failed is not None:
            kind.on_failed(job, JobStopped("stopped"))
        _record_finish(job, outcome=Outcome.FAILURE, stopped=True)


def _retry(job: Job, context: JobContext, exc: Exception) -> None:
    """Record the failed attempt and queue the next one after the backoff delay."""
    delay = retry_delay(job.attempts)
    if _end(job, JobState.RETRYING, error=str(exc), next_attempt=timezone.now() + timedelta(seconds=delay)):
        context(f"attempt {job.attempts} failed: {exc}; trying again in {delay} s")
        transaction.on_commit(lambda: enqueue(job.pk, countdown=delay, kind=job.kind))


def _fail(job: Job, context: JobContext, exc: Exception, kind: JobKind | None) -> None:
    """End the job FAILED with the error, and let its kind undo what it began."""
    if not isinstance(exc, DomainError):
        logger.error("job %s (%s) failed", job.pk, job.kind, exc_info=exc)
    if not _end(job, JobState.FAILED, error=str(exc)):
        return
    attempts = f" after {job.attempts} attempts" if job.attempts > 1 else ""
    context(f"failed{attempts}: {exc}")
    if kind is not None and kind.on_failed is not None:
        kind.on_failed(job, exc)
    _record_finish(job, outcome=Outcome.FAILURE, error=str(exc))


# --- recovery and retention ---------------------------------------------------------------------------


def recover_jobs() -> int:
    """Queue again jobs whose worker was lost (lease lapsed) and retries whose message was lost; returns how many."""
    now = timezone.now()
    count = 0
    for job in Job.objects.filter(state=JobState.RUNNING, lease_expires__lt=now):
        count += _recover_lost(job, now)
    # A retry is held by the worker as a delayed message; if that worker died, the message is gone.
    overdue = now - timedelta(seconds=settings.JOB_LEASE_SECONDS)
    for job in Job.objects.filter(state=JobState.RETRYING, next_attempt__lt=overdue):
        if Job.objects.filter(pk=job.pk, state=JobState.RETRYING, next_attempt=job.next_attempt).update(
            next_attempt=now
        ):
            enqueue(job.pk, kind=job.kind)
            count += 1
    return count


def _recover_lost(job: Job, now: Any) -> int:
    """One running job whose lease lapsed: stop, fail or queue it again; 1 when queued."""
    lapsed = Job.objects.filter(pk=job.pk, state=JobState.RUNNING, attempts=job.attempts, lease_expires__lt=now)
    lost = f"the worker running attempt {job.attempts} ({job.worker or 'unknown'}) was lost"
    if job.stop_requested:
        if lapsed.update(state=JobState.STOPPED, finished=now, lease_expires=None):
            _write_line(job.pk, job.attempts, f"{lost}; stopped as requested")
            _undo(job, JobStopped("stopped"))
        return 0
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        error = f"{lost}, and no attempts are left"
        if lapsed.update(state=JobState.FAILED, finished=now, lease_expires=None, error=error):
            _write_line(job.pk, job.attempts, f"failed: {error}")
            _undo(job, RemoteUnreachable(error))
        return 0
    if lapsed.update(state=JobState.RETRYING, next_attempt=now, lease_expires=None, error=lost):
        _write_line(job.pk, job.attempts, f"{lost}: its lease lapsed; queued again")
        enqueue(job.pk, kind=job.kind)
        return 1
    return 0


def _undo(job: Job, exc: Exception) -> None:
    """Let the job's kind undo what the job began, now that it has ended without succeeding."""
    try:
        kind = job_kind(job.kind)
    except LookupError:
        return
    if kind.on_failed is not None:
        kind.on_failed(job, exc)


def purge_finished_jobs() -> int:
    """Delete jobs (and their logs) that finished more than JOB_RETENTION_DAYS ago; returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.JOB_RETENTION_DAYS)
    old = Job.objects.filter(finished__lt=cutoff).exclude(state__in=ACTIVE_JOB_STATES)
    # A parent goes with its children; a child whose parent is still kept waits for it.
    _, deleted = old.filter(Q(parent__isnull=True) | Q(parent__finished__lt=cutoff)).delete()
    return deleted.get(Job._meta.label, 0)

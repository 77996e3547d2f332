"""Background jobs as rows: created by a service, claimed and run once by a Celery task, shown in the UI."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction
from django.db.models import F, TextField, Value
from django.db.models.functions import Concat
from django.utils import timezone

from portal.audit import Actor, record
from portal.models import Job, JobState, Outcome


class JobLog:
    """Appends lines to a job's log as it runs, so the UI can show progress."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self, line: str) -> None:
        """Append one line to the job's log."""
        stamped = f"{timezone.now():%Y-%m-%d %H:%M:%S} {line}\n"
        Job.objects.filter(pk=self.job.pk).update(log=Concat(F("log"), Value(stamped), output_field=TextField()))

    def progress(self, percent: int) -> None:
        """Record how far the job is."""
        Job.objects.filter(pk=self.job.pk).update(progress=max(0, min(100, percent)))


def create_job(actor: Actor, kind: str, target: str, enqueue: Callable[[int], None]) -> Job:
    """Create a pending job and enqueue its task once the row is committed."""
    job = Job.objects.create(kind=kind, target=target, created_by=actor.name)
    record(actor, "start", "job", f"{kind} #{job.pk}", target=target)
    transaction.on_commit(lambda: enqueue(job.pk))
    return job


def run_job(job_id: int, work: Callable[[Job, JobLog], str]) -> Job | None:
    """Claim a pending job, run `work`, record success or the error; None if already claimed."""
    claimed = Job.objects.filter(pk=job_id, state=JobState.PENDING).update(
        state=JobState.RUNNING, started=timezone.now()
    )
    if not claimed:
        return None
    job = Job.objects.get(pk=job_id)
    log = JobLog(job)
    try:
        summary = work(job, log)
    except Exception as exc:
        log(f"failed: {exc}")
        Job.objects.filter(pk=job_id).update(state=JobState.FAILED, error=str(exc), finished=timezone.now())
        record(Actor.system(), "finish", "job", f"{job.kind} #{job_id}", outcome=Outcome.FAILURE, error=str(exc))
    else:
        log(summary)
        Job.objects.filter(pk=job_id).update(state=JobState.SUCCEEDED, progress=100, finished=timezone.now())
        record(Actor.system(), "finish", "job", f"{job.kind} #{job_id}", summary=summary)
    job.refresh_from_db()
    return job

"""Running an execution: the parent job plans one task per repository and drives them; each task is a child job.

The parent's first attempt lists the repositories the rule takes, creates the destination project on a Wharf
endpoint, and creates every task with its child job in one transaction. It then runs the children itself, up to
REPLICATION_CONCURRENCY at a time, each through the core's `run_job` (claim, lease, retry with backoff, stop),
and waits for all of them. A later attempt (its worker died) finds the tasks planned and goes on driving:
children whose worker died are claimed again once their lease lapsed, and their copier skips every blob the
endpoint already holds, so nothing finished is sent twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from portal.core import jobs
from portal.core.audit import Actor
from portal.core.errors import DomainError
from portal.core.models import ACTIVE_JOB_STATES, Job, JobState
from registries.client import RegistryClient
from registries.models import Repository, Tag
from replication import remote
from replication.copier import Copier, CopyStats
from replication.models import EndpointKind, Execution, Task
from replication.services import TASK, destination_of, matches

logger = logging.getLogger(__name__)
# Seconds between two looks at the children while they run.
POLL_SECONDS = 0.5
# Where on the endpoint each blob already went, per execution, for the tasks this process runs: a task whose
# image shares a layer with another repository of the run mounts it there instead of sending it again. A hint
# only (a mount the endpoint refuses falls back to an upload); the last few executions are kept.
_BLOB_HOMES: OrderedDict[int, dict[str, str]] = OrderedDict()
_BLOB_HOMES_KEPT = 16
_BLOB_HOMES_LOCK = threading.Lock()


def blob_homes(execution_id: int) -> dict[str, str]:
    """The shared digest -> destination repository map of an execution's tasks in this process."""
    with _BLOB_HOMES_LOCK:
        homes = _BLOB_HOMES.setdefault(execution_id, {})
        _BLOB_HOMES.move_to_end(execution_id)
        while len(_BLOB_HOMES) > _BLOB_HOMES_KEPT:
            _BLOB_HOMES.popitem(last=False)
        return homes


# --- the parent ------------------------------------------------------------------------------------------


def run_execution(job: Job, context: jobs.JobContext) -> str:
    """The parent job's runner: plan the tasks once, run them, and end as they ended."""
    execution = Execution.objects.select_related("rule__project", "rule__endpoint__credential").get(job=job)
    if not execution.tasks.exists():
        _plan(execution, context)
    _drive(execution, context)
    return _outcome(execution)


def _plan(execution: Execution, context: jobs.JobContext) -> None:
    """Create one task (and its child job) per repository the run takes; the destination project first."""
    rule = execution.rule
    parameters = context.parameters
    operation = parameters.get("operation") or Task.Operation.COPY
    if parameters.get("repositories") is None:
        names = Repository.objects.filter(project=rule.project).order_by("name").values_list("name", flat=True)
    else:
        names = parameters["repositories"]
    taken = [name for name in names if matches(rule, name)]
    tags = parameters.get("tags") or []
    if not taken:
        context(f"no repository of project '{rule.project.name}' matches the rule's filters")
        return
    endpoint = rule.endpoint
    if endpoint.kind == EndpointKind.WHARF and operation == Task.Operation.COPY:
        login = remote.login_for(endpoint.credential)
        if login is not None and remote.RemoteWharf(endpoint.url, login).ensure_project(rule.destination):
            context(f"created project '{rule.destination}' on {endpoint.name} ({endpoint.url})")
    with transaction.atomic():
        for name in taken:
            child = jobs.create_job(
                Actor.system(), TASK, name, {"operation": operation}, parent=execution.job, queue=False
            )
            Task.objects.create(
                execution=execution,
                job=child,
                operation=operation,
                repository=name,
                destination=destination_of(rule, name),
                tags=tags,
            )
    what = "repositories" if len(taken) != 1 else "repository"
    context(f"{len(taken)} {what} to {'copy' if operation == Task.Operation.COPY else 'delete tags of'}")


def _ready(children: Any, busy: set[int]) -> Any:
    """Children to start now: pending, due for a retry, or running with a lapsed lease (their worker died)."""
    now = timezone.now()
    claimable = (
        Q(state=JobState.PENDING, stop_requested=False)
        | Q(state=JobState.RETRYING, next_attempt__lte=now, stop_requested=False)
        | Q(state=JobState.RUNNING, lease_expires__lt=now, stop_requested=False)
    )
    return children.filter(claimable).exclude(pk__in=busy).order_by("id")


def _run_child(job_id: int) -> None:
    """One child in a thread of the parent, through the core's run_job; the thread's connection is closed after."""
    try:
        jobs.run_job(job_id)
    except Exception:  # a crash of one child must not end the others; its row tells the story
        logger.exception("replication task job %s crashed", job_id)
    finally:
        connection.close()


def _drive(execution: Execution, context: jobs.JobContext) -> None:
    """Run the children up to the concurrency limit until none is active; a stop waits for the running ones."""
    children = Job.objects.filter(parent=execution.job)
    limit = settings.REPLICATION_CONCURRENCY
    running: dict[Future[None], int] = {}
    with ThreadPoolExecutor(max_workers=limit, thread_name_prefix=f"replication-{execution.pk}") as pool:
        try:
            while True:
                for future in [future for future in running if future.done()]:
                    running.pop(future)
                _report(execution, context)
                if not running and not children.filter(state__in=ACTIVE_JOB_STATES).exists():
                    return
                context.checkpoint()
                free = limit - len(running)
                if free > 0:
                    for child_id in _ready(children, set(running.values())).values_list("pk", flat=True)[:free]:
                        running[pool.submit(_run_child, child_id)] = child_id
                if running:
                    # The next child starts as soon as one ends, not at the next look.
                    wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                else:
                    time.sleep(POLL_SECONDS)
        except jobs.JobStopped:
            # The stop reached the children too (request_stop marks them); wait until they let go.
            for future in list(running):
                future.result()
            _report(execution, context)
            raise


def _report(execution: Execution, context: jobs.JobContext) -> None:
    """The parent's progress: tasks ended of all, bytes moved of the images' sizes."""
    children = Job.objects.filter(parent=execution.job)
    total = children.count()
    ended = children.exclude(state__in=ACTIVE_JOB_STATES).count()
    sums = children.aggregate(done=Sum("done_bytes"), total=Sum("total_bytes"))
    context.progress(ended, total, done_bytes=sums["done"] or 0, total_bytes=sums["total"] or 0)


def _outcome(execution: Execution) -> str:
    """The summary of an execution whose tasks all ended; a DomainError naming the tasks that did not succeed."""
    tasks = list(execution.tasks.select_related("job"))
    failed = [task for task in tasks if task.job.state != JobState.SUCCEEDED]
    if failed:
        named = "; ".join(f"{task.repository}: {_why(task.job)}" for task in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise DomainError(f"{len(failed)} of {len(tasks)} tasks did not succeed: {named}{more}")
    totals = {name: sum(getattr(task, name) for task in tasks) for name in Task.COUNTERS}
    return f"{len(tasks)} task{'s' * (len(tasks) != 1)} succeeded: {_counts(totals)}"


def _why(job: Job) -> str:
    return job.error or job.get_state_display().lower()


def _counts(totals: dict[str, int]) -> str:
    """What a task or an execution did, in words."""
    parts = [
        f"{totals['tags_copied']} tags copied",
        f"{totals['tags_skipped']} already there",
    ]
    if totals["tags_deleted"]:
        parts.append(f"{totals['tags_deleted']} deleted")
    parts.append(
        f"{totals['blobs_copied']} blobs sent ({_size(totals['bytes_copied'])}), {totals['blobs_mounted']} mounted, "
        f"{totals['blobs_skipped']} present"
    )
    return "; ".join(parts)


def _size(value: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value} B"


# --- a child ---------------------------------------------------------------------------------------------


def run_task(job: Job, context: jobs.JobContext) -> str:
    """A child job's runner: copy the repository's tags to the endpoint, or delete the tags there."""
    task = Task.objects.select_related("execution__rule__project", "execution__rule__endpoint__credential").get(job=job)
    rule = task.execution.rule
    endpoint = rule.endpoint
    destination = remote.registry_client(endpoint.url, remote.login_for(endpoint.credential))
    before = {name: getattr(task, name) for name in Task.COUNTERS}

    def save_counts(stats: CopyStats) -> None:
        now = stats.as_dict()
        counters = {name: before[name] + now.get(name, 0) for name in Task.COUNTERS}
        Task.objects.filter(pk=task.pk).update(**counters)
        context.progress(
            counters["tags_copied"] + counters["tags_skipped"] + counters["tags_deleted"],
            done_bytes=counters["bytes_copied"] + counters["bytes_skipped"],
        )

    copier = Copier(
        RegistryClient(),
        destination,
        checkpoint=context.checkpoint,
        on_progress=save_counts,
        log=context,
        blob_homes=blob_homes(task.execution_id),
    )
    if task.operation == Task.Operation.DELETE:
        for tag in task.tags:
            context.checkpoint()
            if not copier.delete_tag(task.destination, tag):
                context(f"{task.destination}:{tag} was not on {endpoint.name}")
        save_counts(copier.stats)
        return f"{copier.stats.tags_deleted} of {len(task.tags)} tags deleted on {endpoint.name}"
    tags = _tags_to_copy(task, rule)
    # Per tag, as the copier counts: a tag on a digest another tag already took counts its bytes as skipped.
    sizes = Tag.objects.filter(repository__name=task.repository, name__in=tags).values_list("size", flat=True)
    context.progress(0, len(tags), total_bytes=sum(sizes))
    if not tags:
        return f"{task.repository} holds no tag the rule takes"
    context(f"copying {len(tags)} tags of {task.repository} to {endpoint.name} as {task.destination}")
    try:
        copier.copy_repository(task.repository, task.destination, tags)
    finally:
        save_counts(copier.stats)
    task.refresh_from_db()
    return _counts({name: getattr(task, name) for name in Task.COUNTERS})


def _tags_to_copy(task: Task, rule: Any) -> list[str]:
    """The tags a copy takes: the event's (still matching the filter) or every tag of the repository it takes."""
    if task.tags:
        return [tag for tag in task.tags if matches(rule, task.repository, tag)]
    return [tag for tag in RegistryClient().tags(task.repository) if matches(rule, task.repository, tag)]

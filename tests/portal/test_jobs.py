"""The job framework: claim once, retry transient faults with backoff, stop, exclusivity, recovery, retention, API, UI.

Runners here are registered for the test (the framework's behaviour does not depend on what a
runner does); tests/integration/test_jobs.py runs real jobs on a real worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.core import directory, jobs
from portal.core.audit import Actor
from portal.core.errors import Conflict, Forbidden, Invalid, RemoteUnreachable
from portal.core.jobs import JobContext, create_job, recover_jobs, register, request_stop, run_job
from portal.core.models import Job, JobState, User
from tests.conftest import client_for, logged_in, page_text

pytestmark = pytest.mark.django_db


@pytest.fixture
def kind(settings) -> Iterator[Callable[..., str]]:
    """Register a job kind for the test whose runner is given; the registration is removed afterwards."""
    settings.JOB_MAX_ATTEMPTS = 3
    settings.JOB_RETRY_DELAY_SECONDS = 5
    settings.JOB_RETRY_MAX_DELAY_SECONDS = 8
    names: list[str] = []

    def make(run: Callable[[Job, JobContext], str], **options: object) -> str:
        name = f"test kind {len(names)}"
        register(name, run, **options)
        names.append(name)
        return name

    yield make
    for name in names:
        jobs._KINDS.pop(name, None)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[int, int]]:
    """What would have gone to the broker: (job id, countdown) per send."""
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(jobs, "enqueue", lambda job_id, countdown=0, kind="": calls.append((job_id, countdown)))
    return calls


def test_a_job_is_claimed_and_run_once(kind) -> None:
    runs: list[int] = []
    name = kind(lambda job, log: runs.append(job.pk) or "done")
    job = create_job(Actor.system(), name, "x", {"answer": 42})

    first = run_job(job.pk)
    second = run_job(job.pk)

    assert first is not None and first.state == JobState.SUCCEEDED and first.attempts == 1
    assert second is None and runs == [job.pk]
    assert first.parameters == {"answer": 42} and "done" in first.log


def test_a_transient_fault_is_retried_with_backoff_and_the_last_attempt_fails(
    kind, sent, django_capture_on_commit_callbacks
) -> None:
    name = kind(lambda job, log: (_ for _ in ()).throw(RemoteUnreachable("127.0.0.1:9: connection refused")))
    job = create_job(Actor.system(), name)

    delays = []
    for attempt in (1, 2):
        with django_capture_on_commit_callbacks(execute=True):
            job = run_job(job.pk)
        assert job.state == JobState.RETRYING and job.attempts == attempt
        assert job.next_attempt is not None and "connection refused" in job.error
        delays.append(sent[-1][1])
    job = run_job(job.pk)

    assert delays == [5, 8], "the delay doubles from the base and stops at the maximum"
    assert job.state == JobState.FAILED and job.attempts == 3 and job.finished is not None
    assert "attempt 1 failed: 127.0.0.1:9: connection refused; trying again in 5 s" in job.log
    assert "attempt 3 of 3" in job.log and "failed after 3 attempts" in job.log


def test_a_fault_another_attempt_cannot_mend_fails_at_once(kind, sent) -> None:
    name = kind(lambda job, log: (_ for _ in ()).throw(Invalid("the image name is not valid")))
    missing = kind(lambda job, log: (_ for _ in ()).throw(RemoteUnreachable("no binary", transient=False)))

    assert run_job(create_job(Actor.system(), name).pk).state == JobState.FAILED
    assert run_job(create_job(Actor.system(), missing).pk).state == JobState.FAILED
    assert sent == []


def test_on_failed_undoes_once_when_the_job_has_failed_for_good(kind, sent) -> None:
    undone: list[str] = []

    def fail(job: Job, log: JobContext) -> str:
        raise RemoteUnreachable("timed out")

    name = kind(fail, on_failed=lambda job, exc: undone.append(str(exc)))
    job = create_job(Actor.system(), name)
    for _ in range(3):
        run_job(job.pk)

    assert undone == ["timed out"]


def test_stop_before_the_job_runs_ends_it_at_once(kind, portal_admin) -> None:
    undone: list[Job] = []
    name = kind(lambda job, log: "ran", on_failed=lambda job, exc: undone.append(job))
    job = create_job(Actor(portal_admin), name)

    stopped = request_stop(Actor(portal_admin), job)

    assert stopped.state == JobState.STOPPED and stopped.finished is not None
    assert f"stopped by {portal_admin.username} before it ran" in stopped.log
    assert run_job(job.pk) is None, "a stopped job is never claimed"
    assert [j.pk for j in undone] == [job.pk]
    with pytest.raises(Conflict, match="has already ended"):
        request_stop(Actor(portal_admin), stopped)


def test_a_running_job_stops_at_its_next_checkpoint(kind, portal_admin) -> None:
    units: list[int] = []

    def work(job: Job, log: JobContext) -> str:
        for unit in range(1, 4):
            units.append(unit)
            log.progress(unit, 3)
            if unit == 1:
                # What Stop in the UI does while the job runs.
                Job.objects.filter(pk=job.pk).update(stop_requested=True)
                log._last_poll = 0.0
            log.checkpoint()
        return "all done"

    job = run_job(create_job(Actor(portal_admin), kind(work)).pk)

    assert job.state == JobState.STOPPED and units == [1]
    assert (job.done_units, job.total_units, job.progress) == (1, 3, 33)
    assert "all done" not in job.log and "stopped" in job.log


def test_stop_also_stops_the_children(kind, portal_admin) -> None:
    name = kind(lambda job, log: "ran")
    parent = create_job(Actor(portal_admin), name, "parent")
    child = create_job(Actor(portal_admin), name, "child", parent=parent)

    request_stop(Actor(portal_admin), parent)

    child.refresh_from_db()
    assert child.state == JobState.STOPPED and list(parent.children.all()) == [child]


def test_only_an_admin_or_the_starter_may_stop_a_job(kind, role_users) -> None:
    job = create_job(Actor(role_users["developer"]), kind(lambda job, log: "ran"))
    with pytest.raises(Forbidden):
        request_stop(Actor(role_users["project_admin"]), job)
    assert request_stop(Actor(role_users["developer"]), job).state == JobState.STOPPED


def test_an_exclusive_kind_runs_one_at_a_time_per_target(kind) -> None:
    name = kind(lambda job, log: "ran", exclusive=True, busy="the sweep is already running")
    first = create_job(Actor.system(), name, "registry")
    other_target = create_job(Actor.system(), name, "elsewhere")

    with pytest.raises(Conflict, match="the sweep is already running"):
        create_job(Actor.system(), name, "registry")
    run_job(first.pk)
    again = create_job(Actor.system(), name, "registry")

    assert {first.state, other_target.state, again.state} == {JobState.PENDING}


def test_recovery_queues_again_a_running_job_whose_lease_lapsed(kind, sent) -> None:
    name = kind(lambda job, log: "ran")
    job = create_job(Actor.system(), name)
    lapsed = timezone.now() - timedelta(seconds=1)
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1, lease_expires=lapsed, worker="w1:7")
    alive = create_job(Actor.system(), name)
    Job.objects.filter(pk=alive.pk).update(
        state=JobState.RUNNING, attempts=1, lease_expires=timezone.now() + timedelta(seconds=30)
    )

    assert recover_jobs() == 1
    job.refresh_from_db()
    assert job.state == JobState.RETRYING and sent == [(job.pk, 0)]
    assert "the worker running attempt 1 (w1:7) was lost: its lease lapsed; queued again" in job.log

    finished = run_job(job.pk)
    assert finished.state == JobState.SUCCEEDED and finished.attempts == 2
    assert Job.objects.get(pk=alive.pk).state == JobState.RUNNING


def test_recovery_fails_a_lost_job_with_no_attempts_left_and_stops_one_asked_to_stop(kind, sent) -> None:
    name = kind(lambda job, log: "ran")
    lapsed = timezone.now() - timedelta(seconds=1)
    spent = create_job(Actor.system(), name)
    Job.objects.filter(pk=spent.pk).update(state=JobState.RUNNING, attempts=3, lease_expires=lapsed)
    stopping = create_job(Actor.system(), name)
    Job.objects.filter(pk=stopping.pk).update(
        state=JobState.RUNNING, attempts=1, lease_expires=lapsed, stop_requested=True
    )

    assert recover_jobs() == 0 and sent == []
    spent.refresh_from_db()
    stopping.refresh_from_db()
    assert spent.state == JobState.FAILED and "no attempts are left" in spent.error
    assert stopping.state == JobState.STOPPED


def test_recovery_resends_a_retry_whose_message_was_lost(kind, sent, settings) -> None:
    job = create_job(Actor.system(), kind(lambda job, log: "ran"))
    overdue = timezone.now() - timedelta(seconds=settings.JOB_LEASE_SECONDS + 5)
    Job.objects.filter(pk=job.pk).update(state=JobState.RETRYING, attempts=1, next_attempt=overdue)

    assert recover_jobs() == 1 and sent == [(job.pk, 0)]
    assert recover_jobs() == 0, "sent once per lease, not at every sweep"


def test_finished_jobs_and_their_logs_go_after_the_retention_period(kind, settings) -> None:
    name = kind(lambda job, log: "ran")
    old, recent, running = (create_job(Actor.system(), name) for _ in range(3))
    run_job(old.pk)
    run_job(recent.pk)
    long_ago = timezone.now() - timedelta(days=settings.JOB_RETENTION_DAYS + 1)
    Job.objects.filter(pk=old.pk).update(finished=long_ago)

    assert jobs.purge_finished_jobs() == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, running.pk}


def test_an_unknown_kind_cannot_be_created() -> None:
    with pytest.raises(LookupError, match="no runner is registered for jobs of kind 'nonsense'"):
        create_job(Actor.system(), "nonsense")


# --- API and UI -----------------------------------------------------------------------------------


def test_the_api_lists_jobs_without_logs_and_shows_one_with_its_log(kind, portal_admin) -> None:
    job = run_job(create_job(Actor(portal_admin), kind(lambda job, log: log("step one") or "finished")).pk)
    api = client_for(portal_admin)

    listed = api.get("/api/v1/jobs").json()["results"][0]
    detail = api.get(f"/api/v1/jobs/{job.pk}").json()

    assert "log" not in listed and "parameters" not in listed
    assert listed["state"] == "succeeded" and listed["attempts"] == 1
    assert "step one" in detail["log"] and "finished" in detail["log"]


def test_the_jobs_list_is_paged_by_cursor_without_a_count(kind, portal_admin) -> None:
    name = kind(lambda job, log: "ran")
    created = [create_job(Actor(portal_admin), name, f"t{number}").pk for number in range(7)]
    Job.objects.update(created=timezone.now())  # equal times: the id decides
    api = client_for(portal_admin)

    seen: list[int] = []
    url = "/api/v1/jobs?page_size=3"
    while url:
        body = api.get(url).json()
        assert set(body) == {"next", "previous", "results"}
        seen += [job["id"] for job in body["results"]]
        url = body["next"]

    assert seen == sorted(created, reverse=True)
    assert api.get("/api/v1/jobs", {"cursor": "bm9wZQ"}).status_code == 404


def test_the_configuration_jobs_list_leaves_out_the_log_and_the_job_dialog_shows_it(client, portal_admin) -> None:
    # The Directory section lists directory synchronizations (queued here, not run: no directory is configured).
    job = create_job(Actor(portal_admin), directory.SYNC_JOB, queue=False)
    job.log_lines.create(text="copied layer 3 of 4")
    client = logged_in(client, portal_admin)

    listed = page_text(client.get(reverse("configuration")))
    dialog = page_text(client.get(reverse("job-log", args=[job.pk]), HTTP_HX_REQUEST="true"))

    assert f'id="job-{job.pk}"' in listed and "copied layer 3 of 4" not in listed
    assert "copied layer 3 of 4" in dialog


def test_stop_over_the_api(kind, role_users) -> None:
    job = create_job(Actor(role_users["developer"]), kind(lambda job, log: "ran"))

    assert client_for(role_users["viewer"]).post(f"/api/v1/jobs/{job.pk}/stop").status_code == 404
    answer = client_for(role_users["developer"]).post(f"/api/v1/jobs/{job.pk}/stop")
    assert answer.status_code == 202 and answer.json()["state"] == "stopped"
    again = client_for(role_users["portal_admin"]).post(f"/api/v1/jobs/{job.pk}/stop")
    assert again.status_code == 409 and "has already ended" in again.json()["detail"]


def test_the_job_panel_shows_progress_and_offers_stop_to_the_starter(client, kind, role_users) -> None:
    developer: User = role_users["developer"]
    job = create_job(Actor(developer), kind(lambda job, log: "ran"), "alpha/web")
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=2, done_units=3, total_units=4, progress=75)
    job.log_lines.create(text="copied layer 3")

    panel = page_text(logged_in(client, developer).get(reverse("job-panel", args=[job.pk])))

    assert "75%" in panel and "3 of 4" in panel and "attempt 2" in panel and "copied layer 3" in panel
    assert 'hx-trigger="every 2s"' in panel and reverse("job-stop", args=[job.pk]) in panel
    assert logged_in(client, role_users["viewer"]).get(reverse("job-panel", args=[job.pk])).status_code == 404


def test_stop_from_the_panel(client, kind, role_users) -> None:
    job = create_job(Actor(role_users["developer"]), kind(lambda job, log: "ran"))
    Job.objects.filter(pk=job.pk).update(state=JobState.RUNNING, attempts=1)

    answer = logged_in(client, role_users["developer"]).post(reverse("job-stop", args=[job.pk]), HTTP_HX_REQUEST="true")
    panel = page_text(client.get(reverse("job-panel", args=[job.pk])))

    assert answer.status_code == 204
    assert "Stopping" in panel and "stop requested by alpha-developer" in panel
    assert reverse("job-stop", args=[job.pk]) not in panel, "no second Stop while the first is awaited"
    refused = logged_in(client, role_users["project_admin"]).post(reverse("job-stop", args=[job.pk]))
    assert refused.status_code == 403


def test_a_fault_after_a_stop_was_asked_ends_the_job_stopped_not_retrying(kind, sent) -> None:
    def work(job: Job, log: JobContext) -> str:
        Job.objects.filter(pk=job.pk).update(stop_requested=True)
        raise RemoteUnreachable("connection reset")

    job = run_job(create_job(Actor.system(), kind(work)).pk)

    assert job.state == JobState.STOPPED and sent == []


def test_a_kind_with_a_queue_of_its_own_is_sent_beside_the_default_queue(monkeypatch, db) -> None:
    sent_to: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        jobs, "send_task", lambda name, *args, countdown=None, queue=None: sent_to.append((name, queue))
    )
    jobs.register("test-own-queue", lambda job, log: "done", queue="scans")
    jobs.register("test-default-queue", lambda job, log: "done")
    own = Job.objects.create(kind="test-own-queue")
    default = Job.objects.create(kind="test-default-queue")

    jobs.enqueue(own.pk)
    jobs.enqueue(default.pk, kind="test-default-queue")

    from portal.celery import app

    assert sent_to == [("portal.run_job", f"{app.conf.task_default_queue}.scans"), ("portal.run_job", None)]

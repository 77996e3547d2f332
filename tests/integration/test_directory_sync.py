"""The directory sync job: enqueued over Redis, run by a real Celery worker against a real slapd."""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from portal.core.jobs import run_job
from portal.core.models import Job, JobState, Source, User
from portal.core.tasks import DIRECTORY_SYNC
from tests.conftest import basic
from tests.integration.slapd import DirectoryEditor
from tests.integration.worker import Worker

pytestmark = pytest.mark.integration
JOB_DEADLINE = 30.0


def log_in(uid: str, password: str) -> None:
    """Log a directory user in over the API, which creates them and mirrors their groups."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic(uid, password))
    assert client.get("/api/v1/projects").status_code == 200


def group_names(username: str) -> set[str]:
    return set(User.objects.get(username=username).wharf_groups.values_list("name", flat=True))


def wait_for_job(api: APIClient, job_id: int, worker: Worker) -> dict:
    """Poll the job over the API until it has finished; fail with the worker's log after the deadline."""
    deadline = time.monotonic() + JOB_DEADLINE
    while True:
        job = api.get(f"/api/v1/jobs/{job_id}").json()
        if job["state"] in (JobState.SUCCEEDED, JobState.FAILED, JobState.STOPPED):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['state']} after {JOB_DEADLINE:.0f} s; worker log:\n{worker.log()}")
        time.sleep(0.2)


@pytest.mark.django_db(transaction=True)
def test_directory_sync_on_the_worker_follows_directory_changes(
    ldap_directory, worker_queue: Worker, directory_editor: DirectoryEditor, api: APIClient
):
    erin = directory_editor.add_user("erin", "erin-Secret-1", "Erin Hannon")
    frank = directory_editor.add_user("frank", "frank-Secret-1", "Frank Poole")
    directory_editor.add_group("sync-red", [erin, frank])
    directory_editor.add_group("sync-blue", [frank])
    log_in("erin", "erin-Secret-1")
    log_in("frank", "frank-Secret-1")
    assert group_names("erin") == {"sync-red"}
    directory_editor.remove_member("sync-red", erin)
    directory_editor.add_member("sync-blue", erin)
    directory_editor.delete(frank)

    response = api.post("/api/v1/jobs/directory-sync")

    assert response.status_code == 202, response.content
    job = wait_for_job(api, response.json()["id"], worker_queue)
    assert job["state"] == JobState.SUCCEEDED, job
    assert group_names("erin") == {"sync-blue"}
    assert User.objects.get(username="erin").is_active
    assert not User.objects.get(username="frank").is_active
    assert "erin: groups sync-red -> sync-blue" in job["log"]
    assert "frank: no longer in the directory, disabled" in job["log"]
    assert "synchronized 1 directory users, disabled 1" in job["log"]
    assert "Task portal.run_job[" in worker_queue.log()


@pytest.mark.django_db(transaction=True)
def test_finished_sync_job_is_not_run_again(ldap_directory, worker_queue: Worker, api: APIClient):
    job_id = api.post("/api/v1/jobs/directory-sync").json()["id"]
    finished = wait_for_job(api, job_id, worker_queue)

    assert finished["state"] == JobState.SUCCEEDED, finished
    assert run_job(job_id) is None
    assert Job.objects.get(pk=job_id).log == finished["log"]


@pytest.mark.django_db
def test_sync_disables_nobody_when_the_directory_is_down(directory_down, settings):
    settings.JOB_MAX_ATTEMPTS = 1
    user = User.objects.create(username="alice", source=Source.LDAP, dn="uid=alice,ou=people,dc=wharf,dc=test")
    job = Job.objects.create(kind=DIRECTORY_SYNC, target="directory")

    finished = run_job(job.pk)

    assert finished is not None and finished.state == JobState.FAILED
    assert "unreachable" in finished.error
    user.refresh_from_db()
    assert user.is_active

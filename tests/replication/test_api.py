"""The replication API: endpoints tested against real docker-registry processes on 127.0.0.1, the rules of
"Manage Replication Endpoints and Rules" with their messages, validation, who sees and does what, and one manual
rule run end to end (API → queued job run in-process → a real copy between two registries).

Executions whose copying is not the point are started through the API and never run: in these tests nothing
runs a queued job (the broker is the data directory's, and on_commit does not fire inside a test transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from portal.core.jobs import run_job
from portal.core.models import Credential, Job, JobState, TrustedCertificate
from projects.models import Project
from registries.client import RegistryClient
from registries.client_auth import ChallengeAuth
from registries.models import Repository, Tag
from replication.models import Endpoint, Execution, Rule, Task
from tests.conftest import client_for
from tests.integration.images import push_image
from tests.integration.registry import Registry, point_portal_at, start_registry
from tests.integration.registry_fixtures import (  # noqa: F401  (the fixtures)
    PASSWORD,
    USERNAME,
    basic_registry_fixture,
    plain_registry_fixture,
    tls_registry_fixture,
)

pytestmark = pytest.mark.integration

API = "/api/v1/replication"
CLOSED = "http://127.0.0.1:1"


@pytest.fixture
def endpoint(api: APIClient, plain_registry: Registry, alpha: Project) -> dict[str, Any]:
    """The endpoint 'dr-site' (a V2 registry), created through the API."""
    created = api.post(f"{API}/endpoints", {"name": "dr-site", "url": plain_registry.url, "kind": "registry"})
    assert created.status_code == 201, created.content
    return created.json()


def new_rule(api: APIClient, name: str = "nightly-web", **fields: Any) -> dict[str, Any]:
    """A rule of project alpha to 'dr-site', created through the API (disabled unless told: nothing starts)."""
    body = {"name": name, "project": "alpha", "endpoint": "dr-site", "enabled": False, **fields}
    created = api.post(f"{API}/rules", body, format="json")
    assert created.status_code == 201, created.content
    return created.json()


def errors_of(response: Any) -> dict[str, Any]:
    """The `errors` of a 4xx answer, after checking its shape."""
    body = response.json()
    assert set(body) >= {"detail", "errors"}, body
    return body["errors"]


# --- endpoints -----------------------------------------------------------------------------------------------


def test_endpoint_on_plain_registry_is_created_and_listed(api: APIClient, plain_registry: Registry) -> None:
    created = api.post(
        f"{API}/endpoints", {"name": "dr-site", "url": plain_registry.url + "/", "kind": "registry"}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["url"] == plain_registry.url  # normalized: no trailing slash
    assert (body["kind"], body["username"], body["used_by"], body["verify_remote_cert"]) == ("registry", "", [], True)
    assert body["last_checked"] and body["created_by"] == "root-admin"
    listed = api.get(f"{API}/endpoints", {"q": "dr-"}).json()
    assert [row["name"] for row in listed["results"]] == ["dr-site"]
    assert api.get(f"{API}/endpoints", {"q": "nothing"}).json()["count"] == 0


def test_endpoint_with_basic_auth_shows_username_never_password(api: APIClient, basic_registry: Registry) -> None:
    body = {"name": "dr-auth", "url": basic_registry.url, "kind": "registry", "username": USERNAME}
    created = api.post(f"{API}/endpoints", {**body, "password": PASSWORD}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["username"] == USERNAME
    for answer in (created, api.get(f"{API}/endpoints/dr-auth"), api.get(f"{API}/endpoints")):
        assert "password" not in answer.content.decode() and PASSWORD not in answer.content.decode()
    assert Endpoint.objects.get(name="dr-auth").credential.password() == PASSWORD


def test_wrong_password_is_a_clear_400(api: APIClient, basic_registry: Registry) -> None:
    body = {"name": "dr-auth", "url": basic_registry.url, "kind": "registry", "username": USERNAME}
    refused = api.post(f"{API}/endpoints", {**body, "password": "not-the-password"}, format="json")
    assert refused.status_code == 400, refused.content
    assert "refused" in refused.json()["detail"] and USERNAME in refused.json()["detail"]
    assert "password" in errors_of(refused)
    assert not Endpoint.objects.exists() and not Credential.objects.filter(name__startswith="replication-").exists()


def test_a_plain_registry_is_not_taken_for_a_wharf(api: APIClient, basic_registry: Registry) -> None:
    body = {"name": "dr-wharf", "url": basic_registry.url, "kind": "wharf", "username": USERNAME}
    refused = api.post(f"{API}/endpoints", {**body, "password": PASSWORD}, format="json")
    assert refused.status_code == 400, refused.content
    assert "choose the kind 'Docker registry (V2)'" in refused.json()["detail"] and "kind" in errors_of(refused)
    anonymous = api.post(f"{API}/endpoints/ping", {"url": basic_registry.url, "kind": "wharf"}, format="json")
    assert anonymous.status_code == 400 and "username" in errors_of(anonymous), anonymous.content


def test_ping_tests_without_saving_and_reuses_a_saved_password(api: APIClient, basic_registry: Registry) -> None:
    login = {"url": basic_registry.url, "kind": "registry", "username": USERNAME}
    pinged = api.post(f"{API}/endpoints/ping", {**login, "password": PASSWORD}, format="json")
    assert pinged.status_code == 200, pinged.content
    assert pinged.json() | {"message": ""} == {
        "api": "v2", "auth": "basic", "user": USERNAME, "is_admin": None, "can_create_projects": None, "message": "",
    }  # fmt: skip
    assert not Endpoint.objects.exists()
    anonymous = api.post(f"{API}/endpoints/ping", {"url": basic_registry.url, "kind": "registry"}, format="json")
    assert anonymous.status_code == 400, anonymous.content
    api.post(f"{API}/endpoints", {**login, "name": "dr-auth", "password": PASSWORD}, format="json")
    # The edit dialog tests the saved endpoint again: the password it keeps is used.
    again = api.post(f"{API}/endpoints/ping", {**login, "endpoint": "dr-auth"}, format="json")
    assert again.status_code == 200, again.content
    by_name_only = api.post(f"{API}/endpoints/ping", {"endpoint": "dr-auth", "kind": "registry"}, format="json")
    assert by_name_only.status_code == 200, by_name_only.content
    assert api.post(f"{API}/endpoints/ping", {"kind": "registry"}, format="json").status_code == 400


def test_untrusted_certificate_is_shown_then_pinned_and_the_create_retried(
    api: APIClient, tls_registry: Registry
) -> None:
    body = {"name": "dr-tls", "url": tls_registry.url, "kind": "registry"}
    # Verify Remote Cert on: only certificates the portal trusts; the answer says how to go on.
    verified = api.post(f"{API}/endpoints", body, format="json")
    assert verified.status_code == 400, verified.content
    assert "verify_remote_cert" in errors_of(verified)
    # Off: the certificate's details come back (409) for the administrator to check and pin.
    asked = api.post(f"{API}/endpoints", {**body, "verify_remote_cert": False}, format="json")
    assert asked.status_code == 409, asked.content
    certificate = asked.json()["certificate"]
    assert certificate["sha256"] and certificate["pem"].startswith("-----BEGIN CERTIFICATE-----")
    assert not Endpoint.objects.exists()
    pinned = api.post("/api/v1/certificates", {"url": tls_registry.url, "sha256": certificate["sha256"]}, format="json")
    assert pinned.status_code == 201, pinned.content
    assert TrustedCertificate.objects.filter(address=certificate["address"]).exists()
    created = api.post(f"{API}/endpoints", {**body, "verify_remote_cert": False}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["verify_remote_cert"] is False


@pytest.mark.parametrize(
    ("fields", "field", "status"),
    [
        ({"url": "ftp://127.0.0.1:5000"}, "url", 400),
        ({"url": "http://127.0.0.1:5000/some/path"}, "url", 400),
        ({"url": "http://"}, "url", 400),
        ({"url": "http://127.0.0.1:99999"}, "url", 400),
        ({"kind": "ftp"}, "kind", 400),
        ({"name": "bad name!"}, "name", 400),
        ({"username": "someone"}, "password", 400),
        ({"url": CLOSED}, None, 502),
    ],
)
def test_endpoint_input_errors(api: APIClient, fields: dict, field: str | None, status: int) -> None:
    body = {"name": "dr-site", "url": "http://127.0.0.1:5000", "kind": "registry", **fields}
    if "url" not in fields:
        body["url"] = CLOSED  # never reached: the input is refused first
    refused = api.post(f"{API}/endpoints", body, format="json")
    assert refused.status_code == status, refused.content
    if field:
        assert field in errors_of(refused), refused.json()
    assert not Endpoint.objects.exists()


def test_duplicate_endpoint_name_is_a_409(api: APIClient, endpoint: dict, plain_registry: Registry) -> None:
    again = api.post(f"{API}/endpoints", {"name": "DR-site", "url": plain_registry.url, "kind": "registry"})
    assert again.status_code == 409 and "name" in errors_of(again)


def test_an_endpoint_cannot_take_the_name_of_an_api_action(api: APIClient, plain_registry: Registry) -> None:
    refused = api.post(f"{API}/endpoints", {"name": "ping", "url": plain_registry.url, "kind": "registry"})
    assert refused.status_code == 400 and "the API uses itself" in errors_of(refused)["name"][0]
    assert not Endpoint.objects.exists()


def test_endpoint_edit_tests_again_and_delete(api: APIClient, endpoint: dict, basic_registry: Registry) -> None:
    moved = api.patch(
        f"{API}/endpoints/dr-site",
        {"url": basic_registry.url, "username": USERNAME, "password": PASSWORD, "name": "dr-2"},
        format="json",
    )
    assert moved.status_code == 200, moved.content
    assert (moved.json()["name"], moved.json()["username"]) == ("dr-2", USERNAME)
    wrong = api.patch(f"{API}/endpoints/dr-2", {"password": "wrong-one"}, format="json")
    assert wrong.status_code == 400, wrong.content
    assert Endpoint.objects.get(name="dr-2").credential.password() == PASSWORD  # the refused edit kept it
    assert api.delete(f"{API}/endpoints/dr-2").status_code == 204
    assert not Endpoint.objects.exists()
    assert not Credential.objects.filter(name__startswith="replication-").exists()


def test_endpoint_used_by_a_rule_cannot_be_edited_or_deleted(api: APIClient, endpoint: dict) -> None:
    new_rule(api)
    message = "endpoint 'dr-site' is used by rules: nightly-web"
    edited = api.patch(f"{API}/endpoints/dr-site", {"verify_remote_cert": False}, format="json")
    assert edited.status_code == 409 and message in edited.json()["detail"], edited.content
    deleted = api.delete(f"{API}/endpoints/dr-site")
    assert deleted.status_code == 409 and message in deleted.json()["detail"], deleted.content
    assert api.get(f"{API}/endpoints/dr-site").json()["used_by"] == ["nightly-web"]


# --- rules --------------------------------------------------------------------------------------------------


def test_rule_shows_every_field_by_name(api: APIClient, endpoint: dict) -> None:
    rule = new_rule(
        api, description="web images", repository_filter="web/*", tag_filter="1.*", trigger="scheduled",
        cron="0  2 * * *", destination_project="dr-alpha",
    )  # fmt: skip
    assert rule | {"created": None, "updated": None} == {
        "name": "nightly-web", "description": "web images", "project": "alpha", "repository_filter": "web/*",
        "tag_filter": "1.*", "endpoint": "dr-site", "destination_project": "dr-alpha", "destination": "dr-alpha",
        "trigger": "scheduled", "cron": "0 2 * * *", "replicate_deletion": False, "enabled": False,
        "last_execution": None, "created": None, "created_by": "root-admin", "updated": None,
    }  # fmt: skip


def test_enabled_rule_cannot_be_edited_until_disabled(api: APIClient, endpoint: dict) -> None:
    new_rule(api, enabled=True)
    refused = api.patch(f"{API}/rules/nightly-web", {"tag_filter": "2.*"}, format="json")
    assert refused.status_code == 409, refused.content
    assert refused.json()["detail"] == "rule 'nightly-web' is enabled: disable it before editing it"
    assert api.patch(f"{API}/rules/nightly-web", {"enabled": False}, format="json").json()["enabled"] is False
    edited = api.patch(f"{API}/rules/nightly-web", {"tag_filter": "2.*", "name": "nightly"}, format="json")
    assert edited.status_code == 200, edited.content
    assert (edited.json()["name"], edited.json()["tag_filter"]) == ("nightly", "2.*")
    # PUT changes what it names, as PATCH does; one call may disable, edit and enable again.
    both = api.put(f"{API}/rules/nightly", {"enabled": True, "description": "again"}, format="json")
    assert both.status_code == 200, both.content
    assert (both.json()["enabled"], both.json()["description"]) == (True, "again")


def test_enabling_a_rule_replicates_what_matches_now(api: APIClient, endpoint: dict) -> None:
    new_rule(api)
    enabled = api.patch(f"{API}/rules/nightly-web", {"enabled": True}, format="json").json()
    assert enabled["last_execution"]["cause"] == "enabled"
    assert enabled["last_execution"]["state"] == "pending"


def test_rule_with_a_running_execution_cannot_be_deleted(api: APIClient, endpoint: dict) -> None:
    new_rule(api, enabled=True)  # an enabled rule starts an execution at once
    refused = api.delete(f"{API}/rules/nightly-web")
    assert refused.status_code == 409, refused.content
    assert refused.json()["detail"].startswith("rule 'nightly-web' has 1 running execution")
    Job.objects.filter(replication_execution__rule__name="nightly-web").update(state=JobState.SUCCEEDED)
    assert api.delete(f"{API}/rules/nightly-web").status_code == 204
    assert not Rule.objects.exists() and not Execution.objects.exists()


def test_disabling_a_rule_stops_its_running_jobs(api: APIClient, endpoint: dict) -> None:
    new_rule(api, enabled=True)
    queued = Execution.objects.get().job
    running = api.post(f"{API}/rules/nightly-web/run").json()
    # A worker has claimed the second one: it is asked to stop and ends at its next checkpoint.
    Job.objects.filter(replication_execution=running["id"]).update(state=JobState.RUNNING)
    assert api.patch(f"{API}/rules/nightly-web", {"enabled": False}, format="json").status_code == 200
    queued.refresh_from_db()
    assert queued.state == JobState.STOPPED
    claimed = Execution.objects.get(pk=running["id"]).job
    assert (claimed.state, claimed.stop_requested) == (JobState.RUNNING, True)
    shown = api.get(f"{API}/executions/{running['id']}").json()
    assert shown["stop_requested"] is True
    assert "stop requested by root-admin" in claimed.log


def test_disabled_rule_cannot_run(api: APIClient, endpoint: dict) -> None:
    new_rule(api)
    refused = api.post(f"{API}/rules/nightly-web/run")
    assert refused.status_code == 409 and "disabled" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trigger": "scheduled", "cron": "0 25 * * *"}, "cron"),
        ({"trigger": "scheduled", "cron": "every night"}, "cron"),
        ({"trigger": "scheduled"}, "cron"),
        ({"repository_filter": "web /*"}, "repository_filter"),
        ({"tag_filter": "1.* 2.*"}, "tag_filter"),
        ({"destination_project": "Bad_Name"}, "destination_project"),
        ({"endpoint": "nowhere"}, "endpoint"),
        ({"project": "nowhere"}, "project"),
        ({"trigger": "hourly"}, "trigger"),
        ({"name": ""}, "name"),
        ({"name": "Ping"}, "name"),
        ({"enabled": 1}, "enabled"),
    ],
)
def test_rule_input_errors_name_the_field(api: APIClient, endpoint: dict, fields: dict, field: str) -> None:
    body = {"name": "nightly-web", "project": "alpha", "endpoint": "dr-site", "enabled": False, **fields}
    refused = api.post(f"{API}/rules", body, format="json")
    assert refused.status_code == 400, refused.content
    assert field in errors_of(refused), refused.json()
    assert not Rule.objects.exists()


def test_rule_edit_errors_name_the_field(api: APIClient, endpoint: dict) -> None:
    new_rule(api)
    for fields, field in (({"cron": "* *", "trigger": "scheduled"}, "cron"), ({"endpoint": "gone"}, "endpoint")):
        refused = api.patch(f"{API}/rules/nightly-web", fields, format="json")
        assert refused.status_code == 400 and field in errors_of(refused), refused.content
    assert (
        api.post(f"{API}/rules", {"name": "Nightly-Web", "project": "alpha", "endpoint": "dr-site"}).status_code == 409
    )


def test_rule_filters(api: APIClient, endpoint: dict, beta: Project) -> None:
    new_rule(api, description="the web images")
    new_rule(api, name="beta-all", project="beta", enabled=True)

    def names(**query: str) -> list[str]:
        answer = api.get(f"{API}/rules", query)
        assert answer.status_code == 200, answer.content
        return [row["name"] for row in answer.json()["results"]]

    assert names() == ["beta-all", "nightly-web"]
    assert names(q="WEB IMAGES") == ["nightly-web"]
    assert names(project="beta") == ["beta-all"]
    assert names(endpoint="dr-site") == ["beta-all", "nightly-web"]
    assert names(endpoint="other") == []
    assert names(enabled="true") == ["beta-all"]
    assert names(enabled="false") == ["nightly-web"]
    assert api.get(f"{API}/rules", {"enabled": "maybe"}).status_code == 400


# --- executions and tasks ------------------------------------------------------------------------------------


def planned(execution_id: int, outcomes: dict[str, str]) -> list[Task]:
    """Tasks of the execution as its parent job plans them, their jobs ended as given (repository -> state)."""
    from portal.core import jobs
    from portal.core.audit import Actor

    execution = Execution.objects.get(pk=execution_id)
    tasks = []
    for repository, state in outcomes.items():
        job = jobs.create_job(Actor.system(), "replication.task", repository, parent=execution.job, queue=False)
        Job.objects.filter(pk=job.pk).update(state=state, error="boom" if state == JobState.FAILED else "")
        tasks.append(
            Task.objects.create(execution=execution, job=job, repository=repository, destination=f"dr-{repository}")
        )
    return tasks


def test_execution_counts_tasks_and_filters(api: APIClient, endpoint: dict) -> None:
    new_rule(api, enabled=True)
    new_rule(api, name="other", enabled=True)
    run = api.post(f"{API}/rules/nightly-web/run")
    assert run.status_code == 202, run.content
    execution = run.json()
    assert (execution["rule"], execution["project"], execution["cause"], execution["state"]) == (
        "nightly-web", "alpha", "manual", "pending",
    )  # fmt: skip
    planned(execution["id"], {"alpha/a": "succeeded", "alpha/b": "failed", "alpha/c": "running", "alpha/d": "pending"})
    shown = api.get(f"{API}/executions/{execution['id']}").json()
    counts = {key: shown[key] for key in shown if key.startswith("tasks_")}
    assert counts == {
        "tasks_total": 4, "tasks_pending": 1, "tasks_running": 1, "tasks_succeeded": 1, "tasks_failed": 1,
        "tasks_stopped": 0,
    }  # fmt: skip
    ids = [row["id"] for row in api.get(f"{API}/executions", {"rule": "nightly-web"}).json()["results"]]
    assert ids == [execution["id"], Execution.objects.get(rule__name="nightly-web", cause="enabled").pk]
    assert len(api.get(f"{API}/executions").json()["results"]) == 3
    Job.objects.filter(pk=Execution.objects.get(pk=execution["id"]).job_id).update(state=JobState.FAILED)
    assert [row["id"] for row in api.get(f"{API}/executions", {"state": "failed"}).json()["results"]] == ids[:1]
    assert api.get(f"{API}/executions", {"state": "bogus"}).status_code == 400
    tasks = api.get(f"{API}/executions/{execution['id']}/tasks", {"state": "failed"}).json()["results"]
    assert [(task["repository"], task["destination"], task["error"]) for task in tasks] == [
        ("alpha/b", "dr-alpha/b", "boom")
    ]
    assert api.get(f"{API}/executions/{execution['id']}/tasks").json()["count"] == 4


def test_retry_runs_the_failed_tasks_again(api: APIClient, endpoint: dict) -> None:
    new_rule(api, enabled=True)
    first = Execution.objects.get()
    planned(first.pk, {"alpha/a": "succeeded", "alpha/b": "failed", "alpha/c": "stopped"})
    busy = api.post(f"{API}/executions/{first.pk}/retry")
    assert busy.status_code == 409 and "still running" in busy.json()["detail"]
    Job.objects.filter(pk=first.job_id).update(state=JobState.FAILED)
    retried = api.post(f"{API}/executions/{first.pk}/retry")
    assert retried.status_code == 202, retried.content
    assert retried.json()["cause"] == "retry"
    again = Execution.objects.get(pk=retried.json()["id"])
    assert again.job.parameters["repositories"] == ["alpha/b", "alpha/c"]
    Job.objects.filter(replication_task__execution=first).update(state=JobState.SUCCEEDED)
    nothing = api.post(f"{API}/executions/{first.pk}/retry")
    assert nothing.status_code == 409 and "no failed task" in nothing.json()["detail"]


def test_stop_an_execution(api: APIClient, endpoint: dict) -> None:
    new_rule(api, enabled=True)
    execution = Execution.objects.get()
    planned(execution.pk, {"alpha/a": "pending"})
    stopped = api.post(f"{API}/executions/{execution.pk}/stop")
    assert stopped.status_code == 202, stopped.content
    assert (stopped.json()["state"], stopped.json()["tasks_stopped"]) == ("stopped", 1)
    again = api.post(f"{API}/executions/{execution.pk}/stop")
    assert again.status_code == 409 and "already ended" in again.json()["detail"]


# --- who sees and does what ------------------------------------------------------------------------------------


@pytest.fixture
def rules_of_two_projects(api: APIClient, endpoint: dict, role_users: dict) -> dict[str, int]:
    """Enabled rules of alpha and beta, each with the execution enabling started, and a task in alpha's."""
    new_rule(api, enabled=True)
    new_rule(api, name="beta-all", project="beta", enabled=True)
    alpha_run = Execution.objects.get(rule__name="nightly-web")
    planned(alpha_run.pk, {"alpha/app": "failed"})
    Job.objects.filter(pk=alpha_run.job_id).update(state=JobState.FAILED)
    return {"alpha": alpha_run.pk, "beta": Execution.objects.get(rule__name="beta-all").pk}


def test_project_admin_sees_and_runs_only_their_projects_rules(role_users: dict, rules_of_two_projects: dict) -> None:
    admin_of_alpha = client_for(role_users["project_admin"])
    assert [row["name"] for row in admin_of_alpha.get(f"{API}/rules").json()["results"]] == ["nightly-web"]
    assert admin_of_alpha.get(f"{API}/rules/beta-all").status_code == 404
    assert admin_of_alpha.post(f"{API}/rules/beta-all/run").status_code == 404
    assert admin_of_alpha.post(f"{API}/rules/nightly-web/run").status_code == 202
    assert admin_of_alpha.patch(f"{API}/rules/nightly-web", {"enabled": False}, format="json").status_code == 403
    assert admin_of_alpha.patch(f"{API}/rules/nightly-web", {"cron": 5}, format="json").status_code == 403
    assert admin_of_alpha.delete(f"{API}/rules/nightly-web").status_code == 403
    runs = admin_of_alpha.get(f"{API}/executions").json()["results"]
    assert {row["rule"] for row in runs} == {"nightly-web"} and len(runs) == 2
    alpha_run, beta_run = rules_of_two_projects["alpha"], rules_of_two_projects["beta"]
    assert admin_of_alpha.get(f"{API}/executions/{beta_run}").status_code == 404
    assert admin_of_alpha.get(f"{API}/executions/{beta_run}/tasks").status_code == 404
    assert admin_of_alpha.post(f"{API}/executions/{alpha_run}/retry").status_code == 202
    task = Task.objects.get(execution_id=alpha_run)
    log = admin_of_alpha.get(f"{API}/executions/{alpha_run}/tasks/{task.pk}/log")
    assert log.status_code == 200 and log.json()["state"] == "failed" and "log" in log.json()
    assert admin_of_alpha.get(f"{API}/endpoints").status_code == 403
    assert admin_of_alpha.post(f"{API}/rules", {"name": "x"}, format="json").status_code == 403


def test_project_admin_runs_but_cannot_stop_an_execution(role_users: dict, rules_of_two_projects: dict) -> None:
    admin_of_alpha = client_for(role_users["project_admin"])
    run = admin_of_alpha.post(f"{API}/rules/nightly-web/run")
    assert run.status_code == 202 and run.json()["created_by"] == "alpha-admin", run.content
    refused = admin_of_alpha.post(f"{API}/executions/{run.json()['id']}/stop")
    assert refused.status_code == 403, refused.content
    assert "Only Management Portal administrators may stop" in refused.json()["detail"]
    assert Execution.objects.get(pk=run.json()["id"]).job.state == JobState.PENDING


@pytest.mark.parametrize("role", ["viewer", "developer", "other_project_admin"])
def test_others_see_no_rule_or_execution_of_alpha(role: str, role_users: dict, rules_of_two_projects: dict) -> None:
    client = client_for(role_users[role])
    alpha_run = rules_of_two_projects["alpha"]
    task = Task.objects.get(execution_id=alpha_run).pk
    visible = {row["name"] for row in client.get(f"{API}/rules").json()["results"]}
    assert "nightly-web" not in visible
    for path in ("rules/nightly-web", f"executions/{alpha_run}", f"executions/{alpha_run}/tasks/{task}/log"):
        assert client.get(f"{API}/{path}").status_code == 404, path
    for path in ("rules/nightly-web/run", f"executions/{alpha_run}/retry", f"executions/{alpha_run}/stop"):
        assert client.post(f"{API}/{path}").status_code == 404, path
    assert client.get(f"{API}/endpoints/dr-site").status_code == 403


# --- one manual rule end to end ------------------------------------------------------------------------------


@pytest.fixture
def source(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The integrated registry, as Wharf configures it, with the portal's settings pointing at it."""
    registry = start_registry(tmp_path_factory.mktemp("source"), notify_url="http://127.0.0.1:1/notifications")
    point_portal_at(settings, registry)
    yield registry
    registry.stop()


@pytest.mark.django_db(transaction=True)
def test_manual_rule_copies_a_project_through_the_api(
    source: Registry, plain_registry: Registry, make_user: Any
) -> None:
    """POST run queues an execution; its job, run here, copies alpha/web's tags to the endpoint."""
    admin = make_user("repl-admin", is_portal_admin=True)
    api = client_for(admin)
    alpha = Project.objects.create(name="alpha")
    repository = Repository.objects.create(project=alpha, name="alpha/web")
    images = {tag: push_image(source.url, "alpha/web", [tag]) for tag in ("1.0", "latest")}
    for tag, image in images.items():
        Tag.objects.create(repository=repository, name=tag, digest=image.digest, size=image.size)
    created = api.post(f"{API}/endpoints", {"name": "dr-site", "url": plain_registry.url, "kind": "registry"})
    assert created.status_code == 201, created.content
    body = {"name": "manual-web", "project": "alpha", "endpoint": "dr-site", "destination_project": "dr-e2e"}
    assert api.post(f"{API}/rules", {**body, "enabled": False}, format="json").status_code == 201
    Rule.objects.filter(name="manual-web").update(enabled=True)  # enabled without the run enabling would start

    run = api.post(f"{API}/rules/manual-web/run")
    assert run.status_code == 202, run.content
    execution = run.json()
    assert execution["state"] == "pending"
    finished = run_job(Execution.objects.get(pk=execution["id"]).job_id)

    assert finished is not None and finished.state == JobState.SUCCEEDED, finished and finished.error
    shown = api.get(f"{API}/executions/{execution['id']}").json()
    assert (shown["state"], shown["progress"], shown["tasks_total"], shown["tasks_succeeded"]) == (
        "succeeded",
        100,
        1,
        1,
    )
    assert shown["bytes_done"] == shown["bytes_total"] > 0 and shown["finished"]
    (task,) = api.get(f"{API}/executions/{execution['id']}/tasks").json()["results"]
    assert (task["repository"], task["destination"], task["state"]) == ("alpha/web", "dr-e2e/web", "succeeded")
    assert (task["tags_copied"], task["tags_failed"], task["blobs_failed"]) == (2, 0, 0)
    assert task["blobs_copied"] + task["blobs_mounted"] + task["blobs_skipped"] >= 2 and task["bytes_copied"] > 0
    log = api.get(f"{API}/executions/{execution['id']}/tasks/{task['id']}/log").json()
    assert "copying 2 tags of alpha/web" in log["log"]
    rule = api.get(f"{API}/rules/manual-web").json()
    assert rule["last_execution"]["id"] == execution["id"] and rule["last_execution"]["state"] == "succeeded"
    destination = RegistryClient(plain_registry.url, ChallengeAuth())
    assert sorted(destination.tags("dr-e2e/web")) == ["1.0", "latest"]
    assert destination.head_manifest("dr-e2e/web", "1.0")[0] == images["1.0"].digest


def test_nothing_is_shown_to_anonymous(client: Any, db: None) -> None:
    for path in ("endpoints", "rules", "executions"):
        assert client.get(f"{API}/{path}").status_code == 401

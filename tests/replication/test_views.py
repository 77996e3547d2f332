"""The replication pages: Replication Endpoints and Rules (portal admins), a project's Replication tab (its
administrators), an execution's page; each constraint of "Manage Replication Endpoints and Rules" shows its
message. Test Connection and the trust dialog talk to real docker-registry processes (plain HTTP and self-signed
HTTPS)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from portal.core.models import Job, JobState, TrustedCertificate
from projects.models import Project
from replication import services
from replication.models import Endpoint, EndpointKind, Execution, Rule, Task, Trigger
from tests.conftest import logged_in, page_text
from tests.integration.registry_fixtures import plain_registry_fixture, tls_registry_fixture  # noqa: F401

MIB = 1024 * 1024


@pytest.fixture
def endpoint(db) -> Endpoint:
    """An endpoint row (tests that do not connect out need no live remote)."""
    return Endpoint.objects.create(name="dr-site", kind=EndpointKind.REGISTRY, url="https://dr.example:443")


@pytest.fixture
def rule(alpha: Project, endpoint: Endpoint) -> Rule:
    """A disabled manual rule of project alpha."""
    return Rule.objects.create(name="nightly-web", project=alpha, endpoint=endpoint, enabled=False)


def execution_of(rule: Rule, state: str = JobState.SUCCEEDED, **task: object) -> Execution:
    """An execution of the rule that ran for 2 seconds, with one task holding the counters given."""
    now = timezone.now()
    job = Job.objects.create(
        kind=services.EXECUTION,
        target=rule.name,
        state=state,
        started=now - timedelta(seconds=2),
        finished=now if state != JobState.RUNNING else None,
        total_units=1,
        done_units=1,
        total_bytes=4 * MIB,
        done_bytes=4 * MIB,
    )
    execution = Execution.objects.create(rule=rule, job=job, cause=Execution.Cause.MANUAL)
    child = Job.objects.create(
        kind=services.TASK, target="alpha/web", parent=job, state=state, error=task.pop("error", "")
    )
    Task.objects.create(execution=execution, job=child, repository="alpha/web", destination="alpha/web", **task)
    return execution


# --- who sees what ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/registries/replication/endpoints/", "/registries/replication/rules/"])
def test_only_portal_admins_open_endpoints_and_rules(client, role_users, rule, url) -> None:
    assert logged_in(client, role_users["project_admin"]).get(url).status_code == 403
    page = logged_in(client, role_users["portal_admin"]).get(url)
    assert page.status_code == 200
    text = page_text(page)
    assert "Replication Endpoints" in text and "Replication Rules" in text and "Source Registries" in text
    assert "dr-site" in text


def test_endpoints_list_shows_kind_url_verify_and_rules(client, portal_admin, rule) -> None:
    text = page_text(logged_in(client, portal_admin).get("/registries/replication/endpoints/"))
    assert "+ New Endpoint" in text and "Docker registry (V2)" in text and "https://dr.example:443" in text
    assert "nightly-web" in text


def test_global_registries_has_the_replication_tabs(client, portal_admin) -> None:
    text = page_text(logged_in(client, portal_admin).get("/registries/"))
    assert 'href="/registries/replication/endpoints/"' in text and 'href="/registries/replication/rules/"' in text


def test_project_admin_sees_only_their_projects_replication(client, role_users, rule, beta, endpoint) -> None:
    Rule.objects.create(name="beta-rule", project=beta, endpoint=endpoint, enabled=False)
    logged_in(client, role_users["project_admin"])
    tab = client.get("/projects/alpha/replication/")
    assert tab.status_code == 200
    assert "nightly-web" in page_text(tab) and "beta-rule" not in page_text(tab)
    assert client.get("/projects/beta/replication/").status_code == 404
    assert 'href="/projects/alpha/replication/"' in page_text(client.get("/projects/alpha/"))


def test_developer_gets_no_replication_tab(client, role_users, rule) -> None:
    logged_in(client, role_users["developer"])
    assert client.get("/projects/alpha/replication/").status_code == 403
    assert "/projects/alpha/replication/" not in page_text(client.get("/projects/alpha/"))
    execution = execution_of(rule)
    assert client.get(f"/replication/executions/{execution.pk}/").status_code == 404


def test_project_admin_follows_an_execution_of_their_project_only(client, role_users, rule) -> None:
    execution = execution_of(rule, state=JobState.FAILED, error="remote went away", bytes_copied=MIB)
    task = execution.tasks.get()
    assert (
        logged_in(client, role_users["other_project_admin"]).get(f"/replication/executions/{execution.pk}/").status_code
        == 404
    )
    logged_in(client, role_users["project_admin"])
    text = page_text(client.get(f"/replication/executions/{execution.pk}/"))
    assert "alpha/web" in text and "remote went away" in text and "Retry failed" in text
    assert ">Stop<" not in text  # only portal admins stop executions
    log = client.get(f"/replication/executions/{execution.pk}/tasks/{task.pk}/log/", HTTP_HX_REQUEST="true")
    assert log.status_code == 200 and "alpha/web" in page_text(log)
    assert client.get(f"/replication/executions/{execution.pk}/tasks/{task.pk}/panel/").status_code == 200


# --- endpoints ----------------------------------------------------------------------------------------------


def test_test_connection_shows_what_it_found_then_ok_adds(client, portal_admin, plain_registry) -> None:
    logged_in(client, portal_admin)
    form = {"name": "plain", "kind": "registry", "url": plain_registry.url, "verify_remote_cert": "on", "test": "1"}
    tested = client.post("/registries/replication/endpoints/new/", form, HTTP_HX_REQUEST="true")
    assert tested.status_code == 200
    assert "Connection tested: V2 registry API, no login asked; repositories are created on push." in page_text(tested)
    assert not Endpoint.objects.exists()
    saved = client.post("/registries/replication/endpoints/new/", {**form, "save": "1"}, HTTP_HX_REQUEST="true")
    assert saved.status_code == 204 and saved["HX-Redirect"] == "/registries/replication/endpoints/"
    assert Endpoint.objects.get(name="plain").url == plain_registry.url


def test_test_connection_names_the_exact_failure(client, portal_admin) -> None:
    logged_in(client, portal_admin)
    form = {"name": "gone", "kind": "registry", "url": "http://127.0.0.1:1", "test": "1"}
    refused = client.post("/registries/replication/endpoints/new/", form)
    assert refused.status_code == 502 and "the registry at http://127.0.0.1:1 did not answer" in page_text(refused)
    bad = client.post("/registries/replication/endpoints/new/", {**form, "url": "https://dr.example:443/path"})
    assert bad.status_code == 400 and "without a path" in page_text(bad)


def test_untrusted_certificate_with_verify_on_is_an_error(client, portal_admin, tls_registry) -> None:
    logged_in(client, portal_admin)
    form = {"name": "tls", "kind": "registry", "url": tls_registry.url, "verify_remote_cert": "on", "save": "1"}
    answer = client.post("/registries/replication/endpoints/new/", form)
    assert answer.status_code == 400
    assert "is not trusted" in page_text(answer) and "Trust this certificate?" not in page_text(answer)
    assert not Endpoint.objects.exists()


def test_verify_off_opens_the_trust_dialog_and_trusting_pins_and_saves(client, portal_admin, tls_registry) -> None:
    logged_in(client, portal_admin)
    form = {"name": "tls", "kind": "registry", "url": tls_registry.url, "save": "1"}
    asked = client.post("/registries/replication/endpoints/new/", form, HTTP_HX_REQUEST="true")
    assert asked.status_code == 409
    text = page_text(asked)
    assert "Trust this certificate?" in text and "CN=wharf-test-registry" in text
    assert 'name="operation" value="save"' in text
    address = tls_registry.url.removeprefix("https://")
    # The dialog carries the certificate's PEM as a hidden field: read it back as the browser posts it.
    pem = text.split('name="trust_pem" value="')[1].split('"')[0].replace("&#x27;", "'")
    trusted = client.post(
        "/registries/replication/endpoints/new/",
        {"name": "tls", "kind": "registry", "url": tls_registry.url, "operation": "save", "trust": "1",
         "trust_address": address, "trust_pem": pem},
        HTTP_HX_REQUEST="true",
    )  # fmt: skip
    assert trusted.status_code == 204, page_text(trusted)
    assert Endpoint.objects.get(name="tls").verify_remote_cert is False
    assert TrustedCertificate.objects.filter(address=address).exists()


def test_endpoint_used_by_rules_cannot_be_edited_or_deleted(client, portal_admin, rule) -> None:
    logged_in(client, portal_admin)
    edit = client.get("/registries/replication/endpoints/edit/?selected=dr-site", follow=True)
    assert "endpoint &#x27;dr-site&#x27; is used by rules: nightly-web; it cannot be edited" in page_text(edit)
    delete = client.post("/registries/replication/endpoints/delete/", {"selected": "dr-site"}, follow=True)
    assert "is used by rules: nightly-web; it cannot be deleted" in page_text(delete)
    assert Endpoint.objects.filter(name="dr-site").exists()


def test_edit_and_delete_need_one_selected_endpoint(client, portal_admin, endpoint) -> None:
    logged_in(client, portal_admin)
    assert "Select exactly one endpoint first." in page_text(
        client.get("/registries/replication/endpoints/edit/", follow=True)
    )
    edit = client.get("/registries/replication/endpoints/edit/?selected=dr-site", HTTP_HX_REQUEST="true")
    assert edit.status_code == 200 and 'value="https://dr.example:443"' in page_text(edit)
    deleted = client.post("/registries/replication/endpoints/delete/", {"selected": "dr-site"}, follow=True)
    assert "Deleted endpoint dr-site." in page_text(deleted)
    assert not Endpoint.objects.exists()


# --- rules ----------------------------------------------------------------------------------------------------


def test_new_rule_dialog_creates_a_rule(client, portal_admin, alpha, endpoint) -> None:
    logged_in(client, portal_admin)
    opened = page_text(client.get("/registries/replication/rules/new/", HTTP_HX_REQUEST="true"))
    assert "New Replication Rule" in opened and 'placeholder="same as source"' in opened
    assert "Also delete on the endpoint what is deleted here" in opened
    form = {"name": "web-dr", "project": "alpha", "endpoint": "dr-site", "trigger": "scheduled", "cron": "0 2 * * *"}
    saved = client.post("/registries/replication/rules/new/", form, HTTP_HX_REQUEST="true")
    assert saved.status_code == 204
    created = Rule.objects.get(name="web-dr")
    assert created.trigger == Trigger.SCHEDULED and created.cron == "0 2 * * *" and not created.enabled


def test_rule_dialog_shows_the_service_refusal_on_the_field(client, portal_admin, alpha, endpoint) -> None:
    logged_in(client, portal_admin)
    form = {"name": "web-dr", "project": "alpha", "endpoint": "dr-site", "trigger": "scheduled", "cron": "every day"}
    answer = client.post("/registries/replication/rules/new/", form, HTTP_HX_REQUEST="true")
    assert answer.status_code == 400 and "A schedule is five cron fields" in page_text(answer)
    # The scheduled trigger's field is shown, the immediate one's hidden.
    assert 'data-value="scheduled">' in page_text(answer) and 'data-value="immediate" hidden' in page_text(answer)


def test_enabled_rule_cannot_be_edited(client, portal_admin, rule) -> None:
    Rule.objects.filter(pk=rule.pk).update(enabled=True)
    logged_in(client, portal_admin)
    edit = client.get("/registries/replication/rules/edit/?selected=nightly-web", follow=True)
    assert "rule &#x27;nightly-web&#x27; is enabled: disable it before editing it" in page_text(edit)


def test_disabled_rule_is_edited(client, portal_admin, rule) -> None:
    logged_in(client, portal_admin)
    url = "/registries/replication/rules/edit/?selected=nightly-web"
    assert 'value="nightly-web"' in page_text(client.get(url, HTTP_HX_REQUEST="true"))
    form = {"name": "nightly-web", "project": "alpha", "endpoint": "dr-site", "trigger": "immediate",
            "replicate_deletion": "on", "tag_filter": "1.*"}  # fmt: skip
    assert client.post(url, form, HTTP_HX_REQUEST="true").status_code == 204
    rule.refresh_from_db()
    assert rule.trigger == Trigger.IMMEDIATE and rule.replicate_deletion and rule.tag_filter == "1.*"


def test_rule_with_running_jobs_cannot_be_deleted(client, portal_admin, rule) -> None:
    execution_of(rule, state=JobState.RUNNING)
    logged_in(client, portal_admin)
    answer = client.post(
        "/registries/replication/rules/action/", {"selected": "nightly-web", "action": "delete"}, follow=True
    )
    assert "rule &#x27;nightly-web&#x27; has 1 running execution: stop or wait for it" in page_text(answer)
    assert Rule.objects.filter(pk=rule.pk).exists()


def test_disabling_a_rule_stops_its_running_jobs(client, portal_admin, rule) -> None:
    Rule.objects.filter(pk=rule.pk).update(enabled=True)
    execution = execution_of(rule, state=JobState.RUNNING)
    logged_in(client, portal_admin)
    answer = client.post(
        "/registries/replication/rules/action/", {"selected": "nightly-web", "action": "disable"}, follow=True
    )
    assert "Disabled rule nightly-web: its running jobs are being stopped." in page_text(answer)
    assert Job.objects.get(pk=execution.job_id).stop_requested


def test_enabling_a_rule_starts_an_execution(client, portal_admin, rule) -> None:
    logged_in(client, portal_admin)
    answer = client.post(
        "/registries/replication/rules/action/", {"selected": "nightly-web", "action": "enable"}, follow=True
    )
    assert "Enabled rule nightly-web." in page_text(answer)
    assert rule.executions.get().cause == Execution.Cause.ENABLED


def test_rules_list_shows_last_execution_and_the_chart_data(client, portal_admin, rule) -> None:
    execution = execution_of(rule, bytes_copied=4 * MIB)
    logged_in(client, portal_admin)
    text = page_text(client.get("/registries/replication/rules/"))
    assert f'href="/replication/executions/{execution.pk}/"' in text and "Succeeded" in text
    assert 'id="replication-chart-data"' in text and '"throughput": [2.0]' in text
    assert "vendor/chartjs/chart.umd.js" in text


def test_project_admin_replicates_from_the_tab(client, role_users, rule) -> None:
    Rule.objects.filter(pk=rule.pk).update(enabled=True)
    logged_in(client, role_users["project_admin"])
    answer = client.post(f"/registries/replication/rules/{rule.pk}/run/", {"back": "/projects/alpha/replication/"})
    execution = rule.executions.get()
    assert answer.status_code == 302 and answer["Location"] == f"/replication/executions/{execution.pk}/"
    assert execution.cause == Execution.Cause.MANUAL
    # Not their project's rule: not found.
    logged_in(client, role_users["other_project_admin"])
    assert client.post(f"/registries/replication/rules/{rule.pk}/run/").status_code == 404


def test_running_a_disabled_rule_says_so(client, portal_admin, rule) -> None:
    logged_in(client, portal_admin)
    answer = client.post(f"/registries/replication/rules/{rule.pk}/run/", follow=True)
    assert "rule &#x27;nightly-web&#x27; is disabled: enable it to run it" in page_text(answer)


def test_portal_admin_stops_an_execution_and_retries_failed_tasks(client, portal_admin, rule) -> None:
    Rule.objects.filter(pk=rule.pk).update(enabled=True)
    running = execution_of(rule, state=JobState.RUNNING)
    logged_in(client, portal_admin)
    assert ">Stop<" in page_text(client.get(f"/replication/executions/{running.pk}/"))
    stopped = client.post(f"/replication/executions/{running.pk}/stop/", follow=True)
    assert "Stop of execution" in page_text(stopped)
    assert Job.objects.get(pk=running.job_id).stop_requested
    failed = execution_of(rule, state=JobState.FAILED, error="timeout")
    retried = client.post(f"/replication/executions/{failed.pk}/retry/")
    retry = Execution.objects.get(cause=Execution.Cause.RETRY)
    assert retried["Location"] == f"/replication/executions/{retry.pk}/"
    assert retry.job.parameters["repositories"] == ["alpha/web"]
    succeeded = execution_of(rule)
    again = client.post(f"/replication/executions/{succeeded.pk}/retry/", follow=True)
    assert "has no failed task to retry" in page_text(again)


def test_project_admin_cannot_stop(client, role_users, rule) -> None:
    running = execution_of(rule, state=JobState.RUNNING)
    answer = logged_in(client, role_users["project_admin"]).post(f"/replication/executions/{running.pk}/stop/")
    assert answer.status_code == 403


def test_running_execution_region_polls_itself(client, portal_admin, rule) -> None:
    running = execution_of(rule, state=JobState.RUNNING)
    logged_in(client, portal_admin)
    region = page_text(client.get(f"/replication/executions/{running.pk}/", HTTP_HX_REQUEST="true"))
    assert 'id="execution-region"' in region and "<html" not in region
    assert 'hx-trigger="every 2s"' in region
    finished = execution_of(rule)
    done = page_text(client.get(f"/replication/executions/{finished.pk}/", HTTP_HX_REQUEST="true"))
    assert 'id="execution-region"' in done and "every 2s" not in done


def queries_of(client, url: str) -> int:
    """How many queries the page costs (after a first visit, which also loads the session's caches)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("url", ["/registries/replication/rules/", "/registries/replication/endpoints/"])
def test_list_pages_cost_the_same_for_more_rows(client, portal_admin, alpha, endpoint, url) -> None:
    def add(count: int, start: int) -> None:
        for number in range(start, start + count):
            other = Endpoint.objects.create(name=f"site-{number}", kind=EndpointKind.REGISTRY, url="https://x:443")
            execution_of(Rule.objects.create(name=f"rule-{number}", project=alpha, endpoint=other, enabled=True))

    logged_in(client, portal_admin)
    add(2, 0)
    few = queries_of(client, url)
    add(5, 2)
    assert queries_of(client, url) == few


def test_execution_page_costs_the_same_for_more_tasks(client, portal_admin, rule) -> None:
    execution = execution_of(rule, state=JobState.RUNNING)
    logged_in(client, portal_admin)
    url = f"/replication/executions/{execution.pk}/"
    few = queries_of(client, url)
    for number in range(5):
        child = Job.objects.create(kind=services.TASK, target=f"alpha/r{number}", parent=execution.job)
        Task.objects.create(execution=execution, job=child, repository=f"alpha/r{number}", destination="x")
    assert queries_of(client, url) == few

"""Pages of replication: Global Registries > Replication Endpoints and Replication Rules (portal admins), a
project's Replication tab (its administrators), and an execution's page with its tasks and their logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from portal.core.audit import Actor
from portal.core.bulk import Outcome
from portal.core.errors import DomainError
from portal.core.models import JobState
from portal.core.tables import back_to_table, report, selected, table_page
from portal.core.trust import UntrustedCertificate
from portal.core.trust_dialog import pin_from_post, trust_dialog
from portal.core.ui import act, dialog, finish, form_error, page_or_region, paginate, refuse, require_permission
from projects.roles import is_portal_admin
from projects.scoped import project_context, visible_project
from replication import services
from replication.filters import EndpointFilterSet, RuleFilterSet
from replication.forms import EndpointForm, RuleForm
from replication.models import Endpoint, Execution, Rule, Task

# Executions the throughput chart shows, newest last.
CHART_EXECUTIONS = 20
# Executions the project tab lists.
RECENT_EXECUTIONS = 10
TASK_PAGE_SIZE = 25
MIB = 1024 * 1024


# --- Replication Endpoints ------------------------------------------------------------------------------


def _require_admin(request: HttpRequest) -> None:
    """Endpoints and rules are managed by portal admins (403 for everyone else, as Global Registries is)."""
    require_permission(is_portal_admin(request.user))


@login_required
def endpoint_list(request: HttpRequest) -> HttpResponse:
    """The endpoints with their kind, URL, login, Verify Remote Cert and the rules using them; searchable, sortable
    by name or URL, a page at a time."""
    _require_admin(request)
    endpoints = Endpoint.objects.select_related("credential").prefetch_related("rules").order_by("name", "pk")
    context = {**table_page(request, EndpointFilterSet, endpoints), "region": "endpoint-table", "tab": "endpoints"}
    return page_or_region(request, "replication/endpoints.html", "replication/_endpoint_table.html", context)


def _ticked(request: HttpRequest, rows: QuerySet) -> list[Any]:
    """The rows ticked in a table (check boxes `selected`, holding names), by name; stale names are left out."""
    return list(rows.filter(name__in=selected(request, "selected")).order_by("name"))


def _report(request: HttpRequest, outcomes: list[Outcome], what: str, done: str, failed: str) -> None:
    """Say which ticked rows the action did and which it did not, with why. `done` has the slots {what} (the noun,
    plural for several), {their} and {{names}}; `failed` is the action's past participle."""
    count = sum(outcome.done for outcome in outcomes)
    done = done.format(what=what if count == 1 else f"{what}s", their="its" if count == 1 else "their")
    report(request, outcomes, done, f"Not {failed}: {{names}}")


def _selected(request: HttpRequest, queryset: QuerySet, back: str, what: str) -> Any:
    """The one row selected in a table (`selected` holds its name), else the page again with a message."""
    names = request.POST.getlist("selected") or request.GET.getlist("selected")
    found = queryset.filter(name=names[0]).first() if len(names) == 1 else None
    if found is None:
        messages.error(request, f"Select exactly one {what} first.")
        return finish(request, back)
    return found


@login_required
def endpoint_add(request: HttpRequest) -> HttpResponse:
    """+ New Endpoint: Test Connection reports what it found; OK tests again and adds the endpoint."""
    _require_admin(request)
    return _endpoint_dialog(request, None, reverse("replication-endpoint-add"))


@login_required
def endpoint_edit(request: HttpRequest) -> HttpResponse:
    """Edit the selected endpoint; one that rules use is refused with their names."""
    _require_admin(request)
    back = reverse("replication-endpoints")
    endpoint = _selected(request, Endpoint.objects.select_related("credential"), back, "endpoint")
    if isinstance(endpoint, HttpResponse):
        return endpoint
    try:
        services.check_endpoint_editable(endpoint)
    except DomainError as exc:
        return refuse(request, exc, back)
    action = f"{reverse('replication-endpoint-edit')}?{urlencode({'selected': endpoint.name})}"
    return _endpoint_dialog(request, endpoint, action)


def _endpoint_dialog(request: HttpRequest, endpoint: Endpoint | None, action: str) -> HttpResponse:
    """The endpoint dialog: an untrusted certificate with Verify off opens the trust dialog, which posts back
    here with the form's values, so trusting pins the certificate and retries what was asked (test or OK)."""
    back = reverse("replication-endpoints")
    posted = request.method == "POST" and "url" in request.POST
    form = EndpointForm(request.POST if posted else None, endpoint=endpoint)
    context: dict[str, Any] = {"form": form, "endpoint": endpoint, "action": action, "cancel_url": back}
    if not posted:
        return dialog(request, "replication/endpoint_dialog.html", context)
    if not form.is_valid():
        return dialog(request, "replication/endpoint_dialog.html", context, 400)
    operation = "save" if request.POST.get("operation") == "save" or "save" in request.POST else "test"
    try:
        if request.POST.get("trust"):
            pin_from_post(request)
        if operation == "save":
            saved = _save_endpoint(Actor.from_request(request), endpoint, form.cleaned_data)
            messages.success(request, f"Endpoint '{saved.name}' {'saved' if endpoint else 'added'}.")
            return finish(request, back)
        found = _test_connection(Actor.from_request(request), endpoint, form.cleaned_data)
    except UntrustedCertificate as exc:
        return trust_dialog(request, exc.certificate, action, back, {**form.retry_fields(), "operation": operation})
    except DomainError as exc:
        form_error(form, exc)
        context["failure"] = exc.message
        return dialog(request, "replication/endpoint_dialog.html", context, exc.status)
    context["found"] = f"Connection tested: {found.message}."
    return dialog(request, "replication/endpoint_dialog.html", context)


def _test_connection(actor: Actor, endpoint: Endpoint | None, data: dict[str, Any]) -> Any:
    """Test Connection with the dialog's values (an edited endpoint's saved password when none is typed)."""
    fields = {key: data[key] for key in ("username", "password", "verify_remote_cert")}
    return services.test_connection(actor, data["url"], data["kind"], endpoint=endpoint, **fields)


def _save_endpoint(actor: Actor, endpoint: Endpoint | None, data: dict[str, Any]) -> Endpoint:
    """Add the endpoint, or change the one being edited (an empty password keeps the saved one)."""
    fields = {key: data[key] for key in ("url", "kind", "username", "password", "verify_remote_cert")}
    if endpoint is None:
        return services.create_endpoint(actor, data["name"], **fields)
    return services.update_endpoint(actor, endpoint, name=data["name"], **fields)


@login_required
def endpoint_delete(request: HttpRequest) -> HttpResponse:
    """Delete: a dialog naming every ticked endpoint; its Delete deletes each on its own, and the page says which
    went and why any did not (one that rules use stays)."""
    _require_admin(request)
    back = reverse("replication-endpoints")
    endpoints = _ticked(request, Endpoint.objects.all())
    if not endpoints:
        messages.error(request, "Select at least one endpoint to delete.")
        return finish(request, back)
    if request.method != "POST":
        context = {"endpoints": endpoints, "action": reverse("replication-endpoint-delete"), "cancel_url": back}
        return dialog(request, "replication/endpoint_delete_dialog.html", context)
    outcomes = services.delete_endpoints(Actor.from_request(request), endpoints)
    _report(request, outcomes, "endpoint", "Deleted {what} {{names}}.", "deleted")
    return finish(request, back_to_table(request, back))


# --- Replication Rules ----------------------------------------------------------------------------------


def with_last_execution(rules: QuerySet[Rule]) -> QuerySet[Rule]:
    """The rules, each with the id and job state of its newest execution (one query for the whole list)."""
    newest = Execution.objects.filter(rule=OuterRef("pk")).order_by("-created", "-id")
    return rules.annotate(
        last_execution_id=Subquery(newest.values("pk")[:1]),
        last_execution_state=Subquery(newest.values("job__state")[:1]),
    )


def with_totals(executions: QuerySet[Execution]) -> QuerySet[Execution]:
    """The executions, newest first, with the bytes their tasks copied (a GROUP BY ignores Meta.ordering)."""
    return executions.annotate(bytes_copied=Sum("tasks__bytes_copied")).order_by("-created", "-id")


def chart_data(executions: QuerySet[Execution]) -> dict[str, list]:
    """The throughput (MiB/s = bytes copied / duration) and outcome of the newest executions, oldest first."""
    rows = list(with_totals(executions)[:CHART_EXECUTIONS])
    data: dict[str, list] = {"labels": [], "throughput": [], "states": [], "urls": []}
    for execution in reversed(rows):
        job = execution.job
        seconds = (job.finished - job.started).total_seconds() if job.started and job.finished else 0
        copied = execution.bytes_copied or 0  # type: ignore[attr-defined]
        data["labels"].append(f"{execution.rule.name} #{execution.pk}")
        data["throughput"].append(round(copied / MIB / seconds, 2) if seconds > 0 else 0)
        data["states"].append(job.state)
        data["urls"].append(reverse("replication-execution", args=[execution.pk]))
    return data


@login_required
def rule_list(request: HttpRequest) -> HttpResponse:
    """The rules with their project, endpoint, trigger, enabled and last execution, searchable, sortable and a page
    at a time; the throughput chart."""
    _require_admin(request)
    rules = with_last_execution(services.visible_rules(request.user)).order_by("name", "pk")
    context = {
        **table_page(request, RuleFilterSet, rules),
        "region": "rule-table",
        "tab": "rules",
        "chart": chart_data(services.visible_executions(request.user)),
    }
    return page_or_region(request, "replication/rules.html", "replication/_rule_table.html", context)


@login_required
def rule_add(request: HttpRequest) -> HttpResponse:
    """New Replication Rule; an enabled rule replicates what matches at once."""
    _require_admin(request)
    return _rule_dialog(request, None, reverse("replication-rule-add"))


@login_required
def rule_edit(request: HttpRequest) -> HttpResponse:
    """Edit the selected rule; an enabled rule is refused (disable it first)."""
    _require_admin(request)
    back = reverse("replication-rules")
    rule = _selected(request, services.visible_rules(request.user), back, "rule")
    if isinstance(rule, HttpResponse):
        return rule
    try:
        services.check_rule_editable(rule)
    except DomainError as exc:
        return refuse(request, exc, back)
    return _rule_dialog(request, rule, f"{reverse('replication-rule-edit')}?{urlencode({'selected': rule.name})}")


def _rule_dialog(request: HttpRequest, rule: Rule | None, action: str) -> HttpResponse:
    """The rule dialog: saved through the services, whose refusals land on the fields they name."""
    back = reverse("replication-rules")
    posted = request.method == "POST" and "name" in request.POST
    form = RuleForm(request.POST if posted else None, rule=rule)
    context: dict[str, Any] = {"form": form, "rule": rule, "action": action, "cancel_url": back}
    status = 200
    if posted and form.is_valid():
        try:
            saved = _save_rule(Actor.from_request(request), rule, dict(form.cleaned_data))
        except DomainError as exc:
            form_error(form, exc)
            status = exc.status
        else:
            running = " Replication of what matches has started." if saved.enabled else ""
            messages.success(request, f"Rule '{saved.name}' {'saved' if rule else 'created'}.{running}")
            return finish(request, back)
    elif posted:
        status = 400
    return dialog(request, "replication/rule_dialog.html", context, status)


def _save_rule(actor: Actor, rule: Rule | None, data: dict[str, Any]) -> Rule:
    """Create the rule, or change the (disabled) one being edited and enable it when asked."""
    name, enabled = data.pop("name"), data.pop("enabled")
    if rule is None:
        return services.create_rule(actor, name, data.pop("project"), data.pop("endpoint"), enabled=enabled, **data)
    rule = services.update_rule(actor, rule, name=name, **data)
    return services.set_rule_enabled(actor, rule, True) if enabled else rule


# Each button of the rules' toolbar: the bulk service call, what the page says of the rules done (see _report) and
# the action's past participle for the ones refused.
RULE_ACTIONS: dict[str, tuple[Callable[[Actor, list[Rule]], list[Outcome]], str, str]] = {
    "enable": (
        lambda actor, rules: services.set_rules_enabled(actor, rules, True),
        "Enabled {what} {{names}}.",
        "enabled",
    ),
    "disable": (
        lambda actor, rules: services.set_rules_enabled(actor, rules, False),
        "Disabled {what} {{names}}: {their} running jobs are being stopped.",
        "disabled",
    ),
    "delete": (services.delete_rules, "Deleted {what} {{names}}.", "deleted"),
}


def _act_on_rules(request: HttpRequest, action: str) -> HttpResponse:
    """Enable, Disable or Delete every ticked rule, each on its own; the page says which were done and why any
    were not."""
    back = reverse("replication-rules")
    if action not in RULE_ACTIONS:
        messages.error(request, "Choose Enable, Disable or Delete.")
        return finish(request, back)
    rules = _ticked(request, services.visible_rules(request.user))
    if not rules:
        messages.error(request, f"Select at least one rule to {action}.")
        return finish(request, back)
    call, done, failed = RULE_ACTIONS[action]
    _report(request, call(Actor.from_request(request), rules), "rule", done, failed)
    return finish(request, back_to_table(request, back))


@require_POST
@login_required
def rule_action(request: HttpRequest) -> HttpResponse:
    """Enable, Disable or Delete the ticked rules."""
    _require_admin(request)
    return _act_on_rules(request, request.POST.get("action", ""))


@login_required
def rule_delete(request: HttpRequest) -> HttpResponse:
    """Delete: a dialog naming every ticked rule; its Delete deletes each on its own (one with running jobs stays)."""
    _require_admin(request)
    if request.method == "POST":
        return _act_on_rules(request, "delete")
    back = reverse("replication-rules")
    rules = _ticked(request, services.visible_rules(request.user))
    if not rules:
        messages.error(request, "Select at least one rule to delete.")
        return finish(request, back)
    context = {"rules": rules, "action": reverse("replication-rule-delete"), "cancel_url": back}
    return dialog(request, "replication/rule_delete_dialog.html", context)


@require_POST
@login_required
def rule_run(request: HttpRequest, pk: int) -> HttpResponse:
    """Replicate: run the rule now (portal admins, and the project's admins from its Replication tab)."""
    rule = get_object_or_404(services.visible_rules(request.user), pk=pk)
    back = request.POST.get("back", "")
    back = back if back.startswith("/") and not back.startswith("//") else reverse("replication-rules")
    try:
        execution = services.run_rule(Actor.from_request(request), rule)
    except DomainError as exc:
        return refuse(request, exc, back)
    messages.success(request, f"Replication of rule '{rule.name}' started (execution #{execution.pk}).")
    return finish(request, reverse("replication-execution", args=[execution.pk]))


# --- a project's Replication tab -------------------------------------------------------------------------


@login_required
def project_replication(request: HttpRequest, name: str) -> HttpResponse:
    """The project's rules with their last execution and Replicate, and its latest executions."""
    project = visible_project(request, name)
    require_permission(services.may_follow(request.user, project))
    rules = with_last_execution(services.visible_rules(request.user).filter(project=project)).order_by("name")
    executions = services.visible_executions(request.user).filter(rule__project=project)
    context = {
        **project_context(request, project, "replication"),
        "rules": rules,
        "executions": with_totals(executions)[:RECENT_EXECUTIONS],
    }
    return render(request, "replication/project_replication.html", context)


# --- an execution ----------------------------------------------------------------------------------------


def _visible_execution(request: HttpRequest, pk: int) -> Execution:
    """The execution if the user may follow its rule; 404 otherwise."""
    executions = services.visible_executions(request.user).select_related("rule__project", "rule__endpoint")
    return get_object_or_404(executions, pk=pk)


@login_required
def execution_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An execution: its progress in bytes and tasks, Stop and Retry failed, the task table; the region refreshes
    itself every 2 s while the execution runs."""
    execution = _visible_execution(request, pk)
    tasks = execution.tasks.select_related("job").order_by("repository", "id")
    failed = execution.tasks.exclude(job__state=JobState.SUCCEEDED).filter(operation=Task.Operation.COPY)
    context = {
        "execution": execution,
        "job": execution.job,
        "page": paginate(request, tasks, TASK_PAGE_SIZE),
        "region": "execution-region",
        "bytes_copied": execution.tasks.aggregate(total=Sum("bytes_copied"))["total"] or 0,
        "can_stop": is_portal_admin(request.user) and not execution.job.is_finished,
        "can_retry": execution.job.is_finished and failed.exists(),
        "project": execution.rule.project,
    }
    return page_or_region(request, "replication/execution.html", "replication/_execution_region.html", context)


@login_required
def execution_panel(request: HttpRequest, pk: int) -> HttpResponse:
    """The execution's job panel (state, progress, log) alone; htmx polls it while the execution runs."""
    execution = _visible_execution(request, pk)
    return render(request, "replication/_job_panel.html", {"execution": execution, "job": execution.job})


@require_POST
@login_required
def execution_stop(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop the execution: its tasks stop at their next blob (portal admins)."""
    execution = _visible_execution(request, pk)
    back = reverse("replication-execution", args=[pk])

    def stop(actor: Actor) -> str:
        services.stop_execution(actor, execution)
        return f"Stop of execution #{execution.pk} requested: its tasks stop at their next blob."

    return act(request, stop, back)


@require_POST
@login_required
def execution_retry(request: HttpRequest, pk: int) -> HttpResponse:
    """Retry failed: a new run of the rule for the repositories whose tasks did not succeed."""
    execution = _visible_execution(request, pk)
    try:
        retry = services.retry_failed(Actor.from_request(request), execution)
    except DomainError as exc:
        return refuse(request, exc, reverse("replication-execution", args=[pk]))
    messages.success(request, f"Retry of the failed tasks started (execution #{retry.pk}).")
    return finish(request, reverse("replication-execution", args=[retry.pk]))


def _visible_task(request: HttpRequest, pk: int, task_id: int) -> Task:
    """The task of a visible execution; 404 otherwise."""
    execution = _visible_execution(request, pk)
    return get_object_or_404(execution.tasks.select_related("job", "execution"), pk=task_id)


@login_required
def task_log(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    """A task's job panel (state, progress, log) in a dialog."""
    task = _visible_task(request, pk, task_id)
    context = {"task": task, "job": task.job, "cancel_url": reverse("replication-execution", args=[pk])}
    return dialog(request, "replication/task_log_dialog.html", context)


@login_required
def task_panel(request: HttpRequest, pk: int, task_id: int) -> HttpResponse:
    """A task's job panel alone; htmx polls it while the task runs."""
    task = _visible_task(request, pk, task_id)
    return render(request, "replication/_task_panel.html", {"task": task, "job": task.job})

"""Pages of container hosts and containers: the project selector, Infrastructure, hosts, containers,
provisioning, logs and stats."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_filters import FilterSet

from hosts import charts, services, whitelist
from hosts import containers as container_service
from hosts.filters import ContainerFilterSet, HostFilterSet
from hosts.forms import HostForm, ProvisionForm
from hosts.models import Container, ContainerHost, ContainerState, HostState, WhitelistChange
from portal.core.audit import Actor
from portal.core.errors import DomainError
from portal.core.models import Job
from portal.core.tables import back_to_table, report, selected, table_page
from portal.core.trust import UntrustedCertificate
from portal.core.trust_dialog import pin_from_post, trust_dialog
from portal.core.ui import act, dialog, finish, form_error, page_or_region, paginate, refuse, require_permission
from projects.models import Project
from projects.roles import can
from projects.scoped import project_context, visible_project
from projects.selection import search_text, select, selected_project, selection

# Pages of one object that belong to one project: after switching projects, go to the list instead.
LIST_OF = {"/hosts/": "host-list", "/containers/": "container-list"}


@require_POST
@login_required
def select_project(request: HttpRequest) -> HttpResponse:
    """The header's project selector: keep the choice and reload the page it was made on."""
    select(request, request.POST.get("project", ""))
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("home")
    for prefix, list_name in LIST_OF.items():
        if back.startswith(prefix):
            back = reverse(list_name)
    return finish(request, back)


@require_GET
@login_required
def project_search(request: HttpRequest) -> HttpResponse:
    """The project selector's search: the matching projects as the selector's choices (htmx), or as a page of
    Select buttons when the search box was sent without JavaScript."""
    current, query = selection(request), search_text(request.GET.get("q", ""))
    choices, more = current.search(query) if query else (current.choices, current.more)
    back = request.GET.get("next", "")
    context = {
        "choices": choices,
        "more": more,
        "q": query,
        "selected": None if query else current.project,
        "next": back if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}) else "",
    }
    template = "hosts/_project_choices.html" if request.htmx else "hosts/project_search.html"
    return render(request, template, context)


def dialog_status(exc: DomainError) -> int:
    """The status a refused dialog answers with: remote faults too are answered 4xx, so htmx shows the dialog."""
    return exc.status if exc.status < 500 else 400


def chosen_project(request: HttpRequest) -> Project | None:
    """The selected project; ?project= (links from a project's Infrastructure tab) selects another one."""
    if request.GET.get("project"):
        return select(request, request.GET["project"])
    return selected_project(request)


def chosen_project_page(
    request: HttpRequest,
    templates: tuple[str, str],
    region: str,
    table_context: Callable[[Project], dict[str, Any]],
) -> HttpResponse:
    """A list page of the chosen project's rows (page and table templates), or only its table for htmx."""
    project = chosen_project(request)
    context: dict[str, Any] = {"project": project, "region": region}
    if project is not None:
        context |= table_context(project)
    return page_or_region(request, *templates, context)


def searched_page(request: HttpRequest, filterset: type[FilterSet], rows: QuerySet) -> dict[str, Any]:
    """The page of the rows matching the search box (?q=) and its text, for a table's context."""
    q = request.GET.get("q", "").strip()
    return {"page": paginate(request, filterset({"q": q}, rows).qs), "q": q}


def host_table_context(request: HttpRequest, project: Project, region: str) -> dict[str, Any]:
    """The hosts table of a project: filtered by ?q=, paginated, with the user's right to manage them."""
    hosts = project.hosts.select_related("credential").order_by("name")
    return searched_page(request, HostFilterSet, hosts) | {
        "region": region,
        "can_manage": can(request.user, "manage_hosts", project),
        "add_url": reverse("host-add", args=[project.name]),
    }


@login_required
def host_list(request: HttpRequest) -> HttpResponse:
    """Infrastructure > Container Hosts: the selected project's hosts with their state and facts."""
    templates = ("hosts/host_list.html", "hosts/_host_table.html")
    return chosen_project_page(
        request, templates, "host-table", lambda project: host_table_context(request, project, "host-table")
    )


@login_required
def project_infrastructure(request: HttpRequest, name: str) -> HttpResponse:
    """Administration > Projects > project > Infrastructure: the project's hosts."""
    project = visible_project(request, name)
    context = project_context(request, project, "infrastructure") | host_table_context(request, project, "host-table")
    context |= project_whitelists(request, project)
    return page_or_region(request, "hosts/project_infrastructure.html", "hosts/_host_table.html", context)


def project_whitelists(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The registry whitelist changes content trust asks of the project's VCHs (Configuration and Infrastructure)."""
    changes = WhitelistChange.objects.filter(host__project=project).select_related("host").order_by("host__name")
    return {
        "whitelist_changes": list(changes),
        "portal_registry": whitelist.portal_registry(),
        "sections": ["hosts/_whitelist_changes.html"],
    }


@login_required
def host_add(request: HttpRequest, name: str) -> HttpResponse:
    """The +Host dialog: Save connects to the host and adds it; an unknown server certificate opens the trust
    dialog, whose Trust pins the certificate and retries the add with the same values (Cancel pins nothing)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_hosts", project))
    action = reverse("host-add", args=[project.name])
    back = _back(request, project)
    form = HostForm(request.POST or None, user=request.user, project=project)
    context: dict[str, Any] = {"form": form, "project": project, "action": action, "cancel_url": back}
    if request.method != "POST":
        return dialog(request, "hosts/host_dialog.html", context)
    if not form.is_valid():
        return dialog(request, "hosts/host_dialog.html", context, 400)
    data = form.cleaned_data
    try:
        if request.POST.get("trust"):
            pin_from_post(request, project)
        host = services.add_host(
            Actor.from_request(request),
            project,
            name=data["name"],
            kind=data["kind"],
            url=data["url"],
            credential=data.get("credential"),
        )
    except UntrustedCertificate as exc:
        hidden = {**form.retry_fields(), "back": back}
        return trust_dialog(request, exc.certificate, action, back, hidden)
    except DomainError as exc:
        form_error(form, exc if exc.errors else on_field(exc, form))
        # Short field messages ("This host is not a VCH.") come with the full story above the form.
        shown = [message for messages_ in exc.errors.values() for message in messages_]
        context["failure"] = exc.message if exc.errors and exc.message not in shown else ""
        return dialog(request, "hosts/host_dialog.html", context, dialog_status(exc))
    messages.success(request, f"Host '{host.name}' added to project '{project.name}'.")
    return finish(request, back)


def on_field(exc: DomainError, form: HostForm) -> DomainError:
    """A connection failure placed on the field it concerns: the credential when the host judged the client
    certificate, else the URL (refused, timed out, TLS, not a Docker API)."""
    about_certificate = "client certificate" in exc.message and "credential" in form.fields
    exc.errors = {"credential" if about_certificate else "url": [exc.message]}
    return exc


def _back(request: HttpRequest, project: Project) -> str:
    """Where a dialog returns to: the page it was opened from (?back=, kept through the trust dialog), else the
    project's Infrastructure tab."""
    back = request.POST.get("back") or request.GET.get("back") or ""
    if url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}) and back.startswith("/"):
        return back
    return reverse("project-infrastructure", args=[project.name])


def visible_host(request: HttpRequest, pk: int) -> ContainerHost:
    """The host if the user may see its project; 404 otherwise."""
    hosts = ContainerHost.objects.restrict(request.user).select_related("project", "credential")
    return get_object_or_404(hosts, pk=pk)


@login_required
def host_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One host: its state, last error, facts and the containers found on it."""
    host = visible_host(request, pk)
    containers = host.containers.exclude(state=ContainerState.REMOVED).order_by("name", "pk")
    context = {
        "host": host,
        "project": host.project,
        "page": paginate(request, containers),
        "region": "host-containers",
        "removed_count": Container.objects.filter(host=host, state=ContainerState.REMOVED).count(),
        "can_manage": can(request.user, "manage_hosts", host.project),
        "whitelist_change": WhitelistChange.objects.filter(host=host).first(),
    }
    if not request.htmx:
        context["usage_charts"] = charts.usage_charts(host)
        context["state_chart"] = charts.containers_by_state(host.containers.all())
    return page_or_region(request, "hosts/host_detail.html", "hosts/_host_containers.html", context)


# Rows of Home's Hosts not ON.
HOME_HOSTS = 10


def home_hosts(request: HttpRequest) -> dict[str, Any]:
    """Home's Hosts not ON (unreachable first) and containers per state, over what the user may see."""
    hosts = ContainerHost.objects.restrict(request.user).exclude(state=HostState.ON).select_related("project")
    # "unreachable" sorts after "disabled": descending puts the hosts that need someone first.
    not_on = list(hosts.order_by("-state", "name", "pk")[:HOME_HOSTS])
    return {
        "hosts_not_on": not_on,
        "home_state_chart": charts.containers_by_state(Container.objects.restrict(request.user)),
        "sections": ["hosts/_home_hosts.html"],
    }


@require_POST
@login_required
def host_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable or disable a host (a disabled host is not collected and takes no new containers)."""
    host = visible_host(request, pk)
    enable = request.POST.get("enabled") == "true"
    back = reverse("host-detail", args=[host.pk])

    def toggle(actor: Actor) -> str:
        """Change the host's state through the service; the page's message."""
        services.update_host(actor, host, enabled=enable)
        return f"Host '{host.name}' {'enabled' if enable else 'disabled'}."

    return act(request, toggle, back)


@require_POST
@login_required
def host_check(request: HttpRequest, pk: int) -> HttpResponse:
    """Check now: connect to the host and record its state and facts (the failure, if any, is the message)."""
    host = visible_host(request, pk)
    back = reverse("host-detail", args=[host.pk])

    def check(actor: Actor) -> str:
        """Re-check through the service; the page's message."""
        checked = services.recheck_host(actor, host)
        return f"Host '{checked.name}' answered: {checked.get_state_display()}, Docker {checked.engine_version}."

    return act(request, check, back)


@login_required
def host_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Remove a host from its project after a confirmation saying its containers are left running."""
    host = visible_host(request, pk)
    require_permission(can(request.user, "manage_hosts", host.project))
    back = reverse("host-list") + f"?project={host.project.name}"
    if request.method == "POST":
        message = f"Host '{host.name}' removed from project '{host.project.name}'."
        return act(request, lambda actor: services.remove_host(actor, host) or message, back)
    running = host.containers.exclude(state=ContainerState.REMOVED).count()
    context = {
        "host": host,
        "running": running,
        "action": reverse("host-remove", args=[host.pk]),
        "cancel_url": reverse("host-detail", args=[host.pk]),
    }
    return dialog(request, "hosts/host_remove_dialog.html", context)


ACTIONS = {"start": "Start", "stop": "Stop", "restart": "Restart", "remove": "Remove"}


LOG_TAIL = 200


# How many lines one follow request may add: a chatty container must not make one answer huge.
FOLLOW_TAIL = 1000


def container_table_context(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The containers across the project's hosts: filtered by ?q=, removed ones only when asked, paginated."""
    show_removed = request.GET.get("removed") == "1"
    containers = Container.objects.filter(host__project=project).select_related("host").order_by("name", "pk")
    if not show_removed:
        containers = containers.exclude(state=ContainerState.REMOVED)
    return table_page(request, ContainerFilterSet, containers) | {
        "show_removed": show_removed,
        "can_operate": can(request.user, "operate_containers", project),
        "container_actions": ACTIONS.items(),
        "can_provision": can(request.user, "provision", project),
        "provision_url": reverse("container-provision", args=[project.name]),
    }


@login_required
def container_list(request: HttpRequest) -> HttpResponse:
    """Home > Containers: the selected project's containers; ?job= shows a provisioning job's progress."""

    def table_context(project: Project) -> dict[str, Any]:
        """The containers table and the provisioning job asked for."""
        return container_table_context(request, project) | {"job": visible_job(request, request.GET.get("job"))}

    templates = ("hosts/container_list.html", "hosts/_container_table.html")
    return chosen_project_page(request, templates, "container-table", table_context)


@login_required
def container_provision(request: HttpRequest, name: str) -> HttpResponse:
    """The Provision dialog: Save starts the provisioning job (pull, create, start) and shows its progress on the
    Containers page; refusals (a registry not in the project's list, the image policy) stay in the dialog."""
    project = visible_project(request, name)
    require_permission(can(request.user, "provision", project))
    initial = {"image": request.GET.get("image", "")}
    form = ProvisionForm(request.POST or None, project=project, initial=initial)
    action = reverse("container-provision", args=[project.name])
    back = reverse("container-list") + f"?project={project.name}"
    context: dict[str, Any] = {"form": form, "project": project, "action": action, "cancel_url": back}
    if request.method != "POST":
        return dialog(request, "hosts/provision_dialog.html", context)
    if not form.is_valid():
        return dialog(request, "hosts/provision_dialog.html", context, 400)
    data = form.cleaned_data
    try:
        job = container_service.provision(
            Actor.from_request(request),
            project,
            image=data["image"].strip(),
            name=data["name"].strip(),
            command=data["command"].strip(),
            environment=data["environment"] or None,
            ports=data["ports"] or None,
            restart_policy=data["restart_policy"],
            host=data["host"],
        )
    except DomainError as exc:
        form_error(form, exc)
        return dialog(request, "hosts/provision_dialog.html", context, dialog_status(exc))
    messages.success(request, f"Provisioning {data['image'].strip()} started (job #{job.pk}).")
    return finish(request, f"{back}&job={job.pk}")


def visible_container(request: HttpRequest, pk: int) -> Container:
    """The container if the user may see its project; 404 otherwise."""
    containers = Container.objects.restrict(request.user).select_related("host", "host__project")
    return get_object_or_404(containers, pk=pk)


def is_live(container: Container) -> bool:
    """Whether the container exists on its host, so logs, stats and inspect data can be asked for."""
    return bool(container.container_id) and container.state != ContainerState.REMOVED


@login_required
def container_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One container: summary, inspect data, logs and live stats (both loaded by htmx), and its actions."""
    container = visible_container(request, pk)
    context: dict[str, Any] = {
        "container": container,
        "host": container.host,
        "project": container.host.project,
        "live": is_live(container),
        "can_operate": can(request.user, "operate_containers", container.host.project),
        "actions": ACTIONS,
        "job": visible_job(request, request.GET.get("job")),
    }
    if context["live"]:
        try:
            details = container_service.container_details(Actor.from_request(request), container)
        except DomainError as exc:
            context["details_error"] = exc.message
        else:
            context["details"] = summary_of(details)
            context["details_json"] = json.dumps(details, indent=2, sort_keys=True, default=str)
    return render(request, "hosts/container_detail.html", context)


def summary_of(details: dict[str, Any]) -> list[tuple[str, str]]:
    """The inspect fields people look at first, as (label, value) rows."""
    config = details.get("Config") or {}
    state = details.get("State") or {}
    host_config = details.get("HostConfig") or {}
    restart = (host_config.get("RestartPolicy") or {}).get("Name") or "no"
    rows = [
        ("ID", details.get("Id", "")),
        ("Image", config.get("Image", "")),
        ("Command", " ".join(config.get("Cmd") or [])),
        ("State", state.get("Status", "")),
        ("Started", state.get("StartedAt", "")),
        ("Exit code", str(state.get("ExitCode", ""))),
        ("Restart policy", restart),
        ("Environment", ", ".join(config.get("Env") or [])),
    ]
    return [(label, value) for label, value in rows if value]


@login_required
def container_logs(request: HttpRequest, pk: int) -> HttpResponse:
    """The log region (?follow=0|1), or with ?after= (the follow poller) only the lines after that time."""
    container = visible_container(request, pk)
    follow = request.GET.get("follow", "1") == "1"
    after = parse_cursor(request.GET.get("after"))
    context: dict[str, Any] = {"container": container, "follow": follow and is_live(container), "tail": LOG_TAIL}
    actor = Actor.from_request(request)
    try:
        if after is None:
            lines = container_service.container_logs(actor, container, tail=LOG_TAIL)
        else:
            lines = container_service.container_logs(actor, container, tail=FOLLOW_TAIL, since=after)
    except DomainError as exc:
        context["error"] = exc.message
        lines = []
    context["lines"] = lines
    stamps = [line.time.timestamp() for line in lines if line.time is not None]
    # The next poll asks for what came after the newest line shown; with none shown yet, for every line
    # (one second after the epoch: the host's clock decides what is new, never the portal's).
    context["cursor"] = max(stamps, default=after if after is not None else 1.0)
    template = "hosts/_log_lines.html" if after is not None else "hosts/_logs.html"
    return render(request, template, context)


def parse_cursor(value: str | None) -> float | None:
    """The ?after= cursor (a Unix time) as a number; None when absent or not a positive number."""
    try:
        cursor = float(value) if value else None
    except ValueError:
        return None
    return cursor if cursor is not None and cursor > 0 else None


@login_required
def container_stats(request: HttpRequest, pk: int) -> HttpResponse:
    """The live stats fragment (CPU, memory, network), polled every 3 seconds while the page is open."""
    container = visible_container(request, pk)
    context: dict[str, Any] = {"container": container, "live": is_live(container)}
    if context["live"]:
        try:
            context["stats"] = container_service.container_stats(Actor.from_request(request), container)
        except DomainError as exc:
            context["error"] = exc.message
    return render(request, "hosts/_stats.html", context)


@require_POST
@login_required
def container_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    """Start, Stop, Restart or Remove: starts the job and returns to the container's page showing its progress."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    container = visible_container(request, pk)
    back = reverse("container-detail", args=[container.pk])
    try:
        job = container_service.container_action(Actor.from_request(request), container, action)
    except DomainError as exc:
        return refuse(request, exc, back)
    messages.success(request, f"{ACTIONS[action]} of '{container.name}' started (job #{job.pk}).")
    return finish(request, f"{back}?job={job.pk}")


@require_POST
@login_required
def container_bulk_action(request: HttpRequest, action: str) -> HttpResponse:
    """Start, Stop, Restart or Remove the containers ticked on the Containers page: one job each, and the page
    says which started and why any did not."""
    if action not in ACTIONS:
        raise Http404("No such action.")
    ids = [int(value) for value in selected(request, "container") if value.isascii() and value.isdigit()]
    containers = Container.objects.restrict(request.user).select_related("host", "host__project")
    chosen = list(containers.filter(pk__in=ids).order_by("name", "pk"))
    back = reverse("container-list")
    if chosen:
        back += f"?project={chosen[0].host.project.name}"
    else:
        messages.error(request, f"Select at least one container to {action}.")
        return finish(request, back)
    # Operating containers is a developer's right in the containers' projects: without it, a 403 as for one container.
    require_permission(all(can(request.user, "operate_containers", row.host.project) for row in chosen))
    outcomes = container_service.container_actions(Actor.from_request(request), chosen, action)
    report(request, outcomes, f"{ACTIONS[action]} started for {{names}}.", f"Could not {action}: {{names}}")
    return finish(request, back_to_table(request, back))


def visible_job(request: HttpRequest, job_id: str | None) -> Job | None:
    """A container job (provision, start, stop, restart, remove) of a project the user may see; else None."""
    if not job_id or not job_id.isdigit():
        return None
    job = Job.objects.filter(pk=int(job_id), kind__in=container_service.JOB_KINDS).first()
    # Container jobs target "project/container", as the containers API lists them under the project.
    project_name = job.target.partition("/")[0] if job is not None else ""
    if job is None or not Project.objects.restrict(request.user).filter(name=project_name).exists():
        return None
    return job


@login_required
def job_panel(request: HttpRequest, job_id: int) -> HttpResponse:
    """A container job's state, progress and log; htmx polls it every 2 seconds until the job ends."""
    job = visible_job(request, str(job_id))
    if job is None:
        raise Http404("No such job.")
    response = render(request, "hosts/_job_panel.html", {"job": job})
    if job.is_finished:
        # The containers table and the container's page refresh once the job has changed what they show.
        response["HX-Trigger"] = "container-job-finished"
    return response

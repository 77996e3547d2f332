"""UI pages of container hosts: Infrastructure > Container Hosts for the selected project, the +Host dialog
(with the trust dialog for an unknown server certificate), a host's page, enable/disable and remove, and the
project's Infrastructure tab."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from hosts import services
from hosts.filters import HostFilterSet
from hosts.forms import HostForm
from hosts.models import Container, ContainerHost, ContainerState
from hosts.selection import select, selected_project
from portal.audit import Actor
from portal.errors import DomainError
from portal.trust import UntrustedCertificate
from portal.ui import act, dialog, finish, form_error, page_or_region, paginate, require_permission
from portal.views_credentials import pin_from_post, trust_dialog
from projects.models import Project
from projects.roles import can
from projects.views import project_context, visible_project

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


def dialog_status(exc: DomainError) -> int:
    """The status a refused dialog answers with: remote faults too are answered 4xx, so htmx shows the dialog."""
    return exc.status if exc.status < 500 else 400


def chosen_project(request: HttpRequest) -> Project | None:
    """The selected project; ?project= (links from a project's Infrastructure tab) selects another one."""
    if request.GET.get("project"):
        return select(request, request.GET["project"])
    return selected_project(request)


def host_table_context(request: HttpRequest, project: Project, region: str) -> dict[str, Any]:
    """The hosts table of a project: filtered by ?q=, paginated, with the user's right to manage them."""
    q = request.GET.get("q", "").strip()
    hosts = HostFilterSet({"q": q}, project.hosts.select_related("credential").order_by("name")).qs
    return {
        "page": paginate(request, hosts),
        "q": q,
        "region": region,
        "can_manage": can(request.user, "manage_hosts", project),
        "add_url": reverse("host-add", args=[project.name]),
    }


@login_required
def host_list(request: HttpRequest) -> HttpResponse:
    """Infrastructure > Container Hosts: the selected project's hosts with their state and facts."""
    project = chosen_project(request)
    context: dict[str, Any] = {"project": project, "region": "host-table"}
    if project is not None:
        context |= host_table_context(request, project, "host-table")
    return page_or_region(request, "hosts/host_list.html", "hosts/_host_table.html", context)


@login_required
def project_infrastructure(request: HttpRequest, name: str) -> HttpResponse:
    """Administration > Projects > project > Infrastructure: the project's hosts."""
    project = visible_project(request, name)
    context = project_context(request, project, "infrastructure") | host_table_context(request, project, "host-table")
    return page_or_region(request, "hosts/project_infrastructure.html", "hosts/_host_table.html", context)


@login_required
def host_add(request: HttpRequest, name: str) -> HttpResponse:
    """The +Host dialog: Save connects to the host and adds it; an unknown server certificate opens the trust
    dialog, whose Trust pins the certificate and retries the add with the same values (Cancel pins nothing)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_hosts", project))
    action = reverse("host-add", args=[project.name])
    back = _back(request, project)
    form = HostForm(request.POST or None, user=request.user)
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
    containers = host.containers.exclude(state=ContainerState.REMOVED).order_by("name")
    context = {
        "host": host,
        "project": host.project,
        "containers": containers,
        "removed_count": Container.objects.filter(host=host, state=ContainerState.REMOVED).count(),
        "can_manage": can(request.user, "manage_hosts", host.project),
    }
    return render(request, "hosts/host_detail.html", context)


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

"""UI pages of external registries: Administration > Global Registries > Source Registries, a project's
Project Registries tab, the +Registry dialog (Verify, the trust dialog, Save), and Library > Repositories search."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.audit import Actor
from portal.errors import DomainError
from portal.trust import UntrustedCertificate
from portal.ui import act, dialog, finish, form_error, refuse, require_permission
from portal.views_credentials import pin_from_post, trust_dialog
from projects.models import Project
from projects.roles import can, is_portal_admin
from projects.views import project_context, visible_project
from registries import external_services, search
from registries.forms import RegistryForm
from registries.models import ExternalRegistry

# Administration > Global Registries > Source Registries.


@login_required
def global_registries(request: HttpRequest) -> HttpResponse:
    """The global registries with their address, credential, what Verify found, and enable/disable/delete."""
    require_permission(is_portal_admin(request.user))
    registries = ExternalRegistry.objects.filter(project__isnull=True).select_related("credential").order_by("name")
    context = {"registries": registries, "add_url": reverse("global-registry-add"), "can_manage": True}
    return render(request, "registries/global_registries.html", context)


@login_required
def global_registry_add(request: HttpRequest) -> HttpResponse:
    """The +Registry dialog of global registries."""
    require_permission(is_portal_admin(request.user))
    return _registry_dialog(request, None, reverse("global-registry-add"), reverse("global-registries"))


@login_required
def project_registry_add(request: HttpRequest, name: str) -> HttpResponse:
    """The + New Project Registry dialog (the project's DevOps administrators)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_registries", project))
    action = reverse("project-registry-add", args=[project.name])
    return _registry_dialog(request, project, action, reverse("project-registries", args=[project.name]))


def _registry_dialog(request: HttpRequest, project: Project | None, action: str, back: str) -> HttpResponse:
    """Verify shows what it found or exactly what failed; an untrusted certificate opens the trust dialog.

    Save verifies again and adds the registry. The trust dialog posts back here with the form's values,
    so accepting the certificate pins it and retries what was asked (Verify or Save).
    """
    form = RegistryForm(request.POST or None)
    context: dict[str, Any] = {"form": form, "project": project, "action": action, "cancel_url": back}
    if request.method != "POST":
        return dialog(request, "registries/registry_dialog.html", context)
    if not form.is_valid():
        return dialog(request, "registries/registry_dialog.html", context, 400)
    operation = "save" if request.POST.get("operation") == "save" or "save" in request.POST else "verify"
    data = form.cleaned_data
    try:
        if request.POST.get("trust"):
            pin_from_post(request, project)
        if operation == "save":
            registry = external_services.create_registry(
                Actor.from_request(request),
                data["name"],
                data["address"],
                credential=data["credential"],
                insecure=data["insecure"],
                project=project,
            )
            messages.success(request, f"Registry '{registry.name}' added.")
            return finish(request, back)
        found = external_services.verify(data["address"], data["credential"], data["insecure"])
    except UntrustedCertificate as exc:
        hidden = {**form.retry_fields(), "operation": operation}
        return trust_dialog(request, exc.certificate, action, back, hidden)
    except DomainError as exc:
        form_error(form, exc)
        context["failure"] = exc.message
        return dialog(request, "registries/registry_dialog.html", context, exc.status)
    auth = {"none": "no authentication", "basic": "basic authentication", "bearer": "bearer token authentication"}
    context["verified"] = f"Verified: a {found.api_version.upper()} registry with {auth[found.auth_type]}."
    return dialog(request, "registries/registry_dialog.html", context)


def _managed_registry(request: HttpRequest, pk: int) -> tuple[ExternalRegistry, str]:
    """A registry the page may act on, and the page to go back to."""
    registry = get_object_or_404(ExternalRegistry.objects.select_related("project"), pk=pk)
    if registry.project is None:
        return registry, reverse("global-registries")
    visible_project(request, registry.project.name)
    return registry, reverse("project-registries", args=[registry.project.name])


@require_POST
@login_required
def registry_toggle(request: HttpRequest, pk: int) -> HttpResponse:
    """Enable or disable a registry (a disabled one is left out of search)."""
    registry, back = _managed_registry(request, pk)
    enable = request.POST.get("enabled") == "true"
    try:
        external_services.update_registry(Actor.from_request(request), registry, enabled=enable)
    except DomainError as exc:
        return refuse(request, exc, back)
    messages.success(request, f"Registry '{registry.name}' {'enabled' if enable else 'disabled'}.")
    return finish(request, back)


@require_POST
@login_required
def registry_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a registry."""
    registry, back = _managed_registry(request, pk)
    message = f"Registry '{registry.name}' deleted."
    return act(request, lambda actor: external_services.delete_registry(actor, registry) or message, back)


# Projects > a project > Project Registries.


@login_required
def project_registries(request: HttpRequest, name: str) -> HttpResponse:
    """The project's registries, then the enabled global ones (read-only)."""
    project = visible_project(request, name)
    own = project.external_registries.select_related("credential").order_by("name")
    globals_ = ExternalRegistry.objects.filter(project__isnull=True, enabled=True).order_by("name")
    can_manage = can(request.user, "manage_registries", project)
    context = {
        **project_context(request, project, "registries"),
        "registries": own,
        "global_registries": globals_,
        "can_manage": can_manage,
        "add_url": reverse("project-registry-add", args=[project.name]),
    }
    return render(request, "registries/project_registries.html", context)


# Library > All Repositories > Repositories.


def _search_project(request: HttpRequest) -> tuple[Project | None, list[Project]]:
    """The project searched for (?project=, else the last one used, else the first) and the ones to pick from."""
    projects = list(Project.objects.restrict(request.user, "pull").order_by("name"))
    wanted = request.GET.get("project") or request.session.get("search_project")
    chosen = next((p for p in projects if p.name == wanted), projects[0] if projects else None)
    if chosen is not None:
        request.session["search_project"] = chosen.name
    return chosen, projects


@login_required
def library_search(request: HttpRequest) -> HttpResponse:
    """One search box over every registry available to the chosen project; slow registries are named."""
    project, projects = _search_project(request)
    q = request.GET.get("q", "").strip()
    context: dict[str, Any] = {"project": project, "projects": projects, "q": q, "region": "search-results"}
    if project is not None and q:
        outcome = search.search(request.user, project, q)
        context |= {"results": outcome.results, "partial": outcome.partial, "searched": True}
    template = "registries/_search_results.html" if request.htmx else "registries/search.html"
    return render(request, template, context)


@login_required
def library_tags(request: HttpRequest, name: str, registry: str, repository: str) -> HttpResponse:
    """The tags of one search result, in a dialog."""
    project = get_object_or_404(Project.objects.restrict(request.user, "pull"), name=name)
    context: dict[str, Any] = {"registry": registry, "repository": repository, "cancel_url": reverse("library-search")}
    try:
        context["tags"] = search.tags(request.user, project, registry, repository)
        context["pull_prefix"] = _pull_prefix(request, project, registry)
        context["provision_project"] = project if can(request.user, "provision", project) else None
    except DomainError as exc:
        if exc.status == 404:
            raise Http404(exc.message) from exc
        context["error"] = exc.message
    return dialog(request, "registries/tags_dialog.html", context)


def _pull_prefix(request: HttpRequest, project: Project, registry: str) -> str:
    """The host a `docker pull` of the registry's images names (this portal for the integrated registry)."""
    if registry == external_services.INTEGRATED:
        return request.get_host()
    return urlsplit(search.find_registry(project, registry).base_url).netloc

"""Project pages: the list (Administration > Projects) and one project's Summary, Members, Configuration, Logs."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.core.audit import Actor
from portal.core.audit_log import audit_log_page
from portal.core.errors import DomainError
from portal.core.identities import search_identities
from portal.core.jobs import visible_jobs
from portal.core.models import AuditEvent, JobState
from portal.core.tables import back_to_table, report, selected, table_page
from portal.core.ui import (
    act,
    dialog,
    extend_page,
    finish,
    identities_url,
    one_selected,
    page_or_region,
    paginate,
    require_permission,
    resolve_identity,
    submit,
)
from projects import services
from projects.filters import MemberFilterSet, ProjectFilterSet
from projects.forms import MemberAddForm, MemberRoleForm, ProjectCreateForm, ProjectSettingsForm
from projects.models import Membership, Project, Role
from projects.roles import can, roles_by_project
from projects.scoped import project_context, visible_project

SETTINGS_FIELDS = ("public", "content_trust", "prevent_vulnerable", "severity", "auto_scan")

# Rows of the Members tab per page: a big project has thousands of members.
MEMBERS_PAGE_SIZE = 25


# The project list.


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    """Projects the user may see, filtered by the search box, paginated."""
    projects = Project.objects.restrict(request.user).with_member_counts()
    page = paginate(request, ProjectFilterSet(request.GET, projects).qs)
    roles = roles_by_project(request.user)
    for project in page:
        project.my_role = roles.get(project.pk)
    context = {
        "page": page,
        "q": request.GET.get("q", ""),
        "region": "project-table",
        "can_create": can(request.user, "create_project"),
        "can_delete": can(request.user, "delete_project"),
    }
    return page_or_region(request, "projects/list.html", "projects/_table.html", context)


@login_required
def project_create(request: HttpRequest) -> HttpResponse:
    """The +Project dialog: name and Public; the service explains a bad or taken name."""
    require_permission(can(request.user, "create_project"))
    form = ProjectCreateForm(request.POST or None)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        project = services.create_project(Actor.from_request(request), **data)
        return f"Project '{project.name}' created.", reverse("project-detail", args=[project.name])

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    context = {"form": form, "action": reverse("project-create"), "cancel_url": reverse("project-list")}
    return dialog(request, "projects/create_dialog.html", context, status)


@require_POST
@login_required
def project_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete a project (portal admins); a refusal is shown on the list."""
    project = visible_project(request, name)
    message = f"Project '{name}' deleted."
    return act(request, lambda actor: services.delete_project(actor, project) or message, reverse("project-list"))


# One project's tabs.


@login_required
def project_detail(request: HttpRequest, name: str) -> HttpResponse:
    """The Summary tab."""
    project = visible_project(request, name)
    context = project_context(request, project, "summary")
    context["member_count"] = project.memberships.count()
    context |= extend_page("project-summary", request, project=project)
    return render(request, "projects/summary.html", context)


@login_required
def project_members(request: HttpRequest, name: str) -> HttpResponse:
    """The Members tab: users and groups with their roles, searchable, a page at a time."""
    project = visible_project(request, name)
    members = project.memberships.select_related("user", "group")
    # Groups first, then users by name; the pk keeps the order total so pages never overlap.
    members = members.order_by(F("group__name").asc(nulls_last=True), "user__username", "pk")
    context = {
        **project_context(request, project, "members"),
        **table_page(request, MemberFilterSet, members, MEMBERS_PAGE_SIZE),
        "region": "member-table",
    }
    return page_or_region(request, "projects/members.html", "projects/_member_table.html", context)


@login_required
def member_search(request: HttpRequest, name: str) -> HttpResponse:
    """The typeahead of the + Add dialog: users and groups (local, known or in the directory)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_members", project))
    query = request.GET.get("q", "").strip()
    results = search_identities(query, request.user) if query else None
    return render(request, "projects/_identity_choices.html", {"results": results, "q": query})


@login_required
def member_add(request: HttpRequest, name: str) -> HttpResponse:
    """The + Add dialog: a user or group from the search and a role in the project."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_members", project))
    form = MemberAddForm(request.POST or None)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        kind, member_name = data["identity"]
        subject = resolve_identity(kind, member_name)
        services.add_member(Actor.from_request(request), project, data["role"], **{kind: subject})
        message = f"Added {kind} '{member_name}' to project '{project.name}'."
        return message, reverse("project-members", args=[project.name])

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    context = _member_dialog(project, form, "member-add", **_identity_choices(request))
    return dialog(request, "projects/member_add_dialog.html", context, status)


def _identity_choices(request: HttpRequest) -> dict[str, Any]:
    """A refused + Add dialog shows what the user had: their search text, its results, and their pick still picked."""
    query = request.POST.get("q", "").strip()
    chosen = request.POST.get("identity", "")
    kind, _, name = chosen.partition(":")
    results = search_identities(query, request.user) if query else None
    listed = results is not None and any(f"{e.kind}:{e.name}" == chosen for e in results.entries)
    # A pick the results no longer list (or sent without a search) stays picked, named as the results name it.
    kept = {"kind": kind, "name": name} if kind in ("user", "group") and name and not listed else None
    return {"q": query, "results": results, "chosen": chosen, "kept": kept}


def _member_dialog(project: Project, form: Any, url_name: str, **extra: Any) -> dict[str, Any]:
    """The context of a member dialog."""
    return {
        "project": project,
        "form": form,
        "action": reverse(url_name, args=[project.name]),
        "cancel_url": reverse("project-members", args=[project.name]),
        **extra,
    }


def _selected_members(request: HttpRequest, project: Project) -> list[Membership]:
    """The members ticked in the table (stale or foreign ids are left out), in table order."""
    ids = [int(value) for value in selected(request, "member") if value.isascii() and value.isdigit()]
    return list(project.memberships.select_related("user", "group", "project").filter(pk__in=ids).order_by("pk"))


@login_required
def member_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The Edit dialog: change the selected member's role."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_members", project))
    members = _selected_members(request, project)
    members_url = reverse("project-members", args=[project.name])
    if len(members) != 1:
        messages.error(request, "Select one member to edit." if members else "Select a member first.")
        return finish(request, members_url)
    membership = members[0]
    form = MemberRoleForm(request.POST if "role" in request.POST else None, initial={"role": membership.role})

    def save(data: dict[str, Any]) -> tuple[str, str]:
        services.change_member_role(Actor.from_request(request), membership, data["role"])
        return f"'{membership.member_name}' is now {membership.get_role_display()}.", members_url

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    context = _member_dialog(project, form, "member-edit", membership=membership)
    return dialog(request, "projects/member_edit_dialog.html", context, status)


@require_POST
@login_required
def member_remove(request: HttpRequest, name: str) -> HttpResponse:
    """Remove the ticked members from the project, each on its own; the page says which went and which did not."""
    project = visible_project(request, name)
    members_url = reverse("project-members", args=[project.name])
    require_permission(can(request.user, "manage_members", project))
    members = _selected_members(request, project)
    if not members:
        messages.error(request, "Select at least one member to remove.")
        return finish(request, members_url)
    outcomes = services.remove_members(Actor.from_request(request), members)
    report(request, outcomes, f"Removed {{names}} from project '{project.name}'.", "Not removed: {names}")
    return finish(request, back_to_table(request, members_url))


@login_required
def project_configuration(request: HttpRequest, name: str) -> HttpResponse:
    """The Configuration tab: public, content trust, vulnerability rule, scan on push."""
    project = visible_project(request, name)
    initial = {field: getattr(project, field) for field in SETTINGS_FIELDS}
    form = ProjectSettingsForm(request.POST or None, initial=initial)
    if request.method == "POST":
        require_permission(can(request.user, "manage_settings", project))

    def save(data: dict[str, Any]) -> tuple[str, str]:
        services.update_project(Actor.from_request(request), project, **data)
        message = f"Configuration of project '{project.name}' saved."
        return message, reverse("project-configuration", args=[project.name])

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    context = {**project_context(request, project, "configuration"), "form": form}
    context |= extend_page("project-configuration", request, project=project)
    return render(request, "projects/configuration.html", context, status=status)


@login_required
def project_logs(request: HttpRequest, name: str) -> HttpResponse:
    """The Logs tab: the project's audit events, newest first, narrowed by the filters, in Newer / Older pages."""
    project = visible_project(request, name)
    events = AuditEvent.objects.filter(project_name=project.name)
    context = {**project_context(request, project, "logs"), "region": "project-log-table"}
    return audit_log_page(request, events, "projects/logs.html", context, one_project=True)


# Home.


# Rows of My projects per page: a site-wide admin sees every project, which is hundreds on a large site.
HOME_PAGE_SIZE = 25
# Rows of each other Home list: the newest few, with a link to the full list where there is one.
HOME_LIST_SIZE = 10


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: the user's projects with their role, failed jobs they may follow, and what the apps add
    (recent pushes, hosts that are not ON, containers per state), each row a link to where to act."""
    page = paginate(request, Project.objects.restrict(request.user).order_by("name"), HOME_PAGE_SIZE)
    roles = roles_by_project(request.user)
    for project in page:
        project.my_role = roles.get(project.pk)
    context: dict[str, Any] = {"page": page, "region": "home-projects"}
    if not request.htmx:
        failed = visible_jobs(request.user).filter(state=JobState.FAILED)
        context["failed_jobs"] = list(failed.order_by("-finished", "-id")[:HOME_LIST_SIZE])
        context |= extend_page("home", request)
    return page_or_region(request, "portal/home.html", "portal/_home_projects.html", context)


# Administration > Identity Management > Users & Groups: Assign Project Roles.


def _current_roles(kind: str, name: str) -> list[tuple[str, str]]:
    """The (project, role) pairs a known user or group holds now; none for directory-only entries."""
    lookup = {"user__username": name} if kind == "user" else {"group__name": name}
    return list(Membership.objects.filter(**lookup).order_by("project__name").values_list("project__name", "role"))


@login_required
def identity_projects(request: HttpRequest) -> HttpResponse:
    """The Assign Project Roles dialog: one row per project role; OK sets exactly those."""
    require_permission(can(request.user, "manage_users"))
    query = request.POST.get("q", request.GET.get("q", ""))
    selected = one_selected(request)
    if selected is None:
        messages.error(request, "Select exactly one user or group to assign project roles.")
        return finish(request, identities_url(query))
    kind, name = selected
    error, status = "", 200
    rows = _current_roles(kind, name)
    if request.method == "POST":
        rows = [
            (p, r) for p, r in zip(request.POST.getlist("project"), request.POST.getlist("role"), strict=False) if p
        ]
        try:
            with transaction.atomic():
                subject = resolve_identity(kind, name)
                services.set_member_projects(Actor.from_request(request), rows, **{kind: subject})
        except DomainError as exc:
            error, status = exc.message, exc.status
        else:
            messages.success(request, f"Project roles of {kind} '{name}' saved.")
            return finish(request, identities_url(query))
    context = {
        "kind": kind,
        "name": name,
        "q": query,
        "rows": rows or [("", Role.DEVELOPER.value)],
        "projects": Project.objects.order_by("name").values_list("name", flat=True),
        "roles": Role.choices,
        "error": error,
        "action": reverse("identity-projects"),
        "cancel_url": identities_url(query),
        "size": "lg",
    }
    return dialog(request, "portal/assign_projects_dialog.html", context, status)


@login_required
def identity_project_row(request: HttpRequest) -> HttpResponse:
    """One more empty row of the Assign Project Roles dialog (the (+) button)."""
    require_permission(can(request.user, "manage_users"))
    context = {
        "row": ("", Role.DEVELOPER.value),
        "projects": Project.objects.order_by("name").values_list("name", flat=True),
        "roles": Role.choices,
    }
    return render(request, "portal/_assign_project_row.html", context)

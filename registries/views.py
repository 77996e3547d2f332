"""Registry pages: a project's Internal Repositories and registries, repository pages, the library and its
search, global registries, garbage collection and reconcile."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max, OuterRef, QuerySet, Subquery, Sum
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.core import components
from portal.core.audit import Actor
from portal.core.charts import SUCCESS_COLOUR, Chart, Series, last_days, per_day, size
from portal.core.errors import DomainError, NotFound
from portal.core.models import Job, JobLogLine
from portal.core.tables import back_to_table, report, table_page
from portal.core.trust import UntrustedCertificate
from portal.core.trust_dialog import pin_from_post, trust_dialog
from portal.core.ui import (
    act,
    dialog,
    extend_page,
    finish,
    form_error,
    page_or_region,
    refuse,
    require_permission,
    start_job,
    submit,
)
from projects.models import Project
from projects.roles import can, is_portal_admin
from projects.scoped import project_context, visible_project
from projects.selection import select, selected_project
from registries import external_services, image_details, search, services, signed_tags
from registries.filters import RepositoryFilterSet, TagFilterSet
from registries.forms import GcScheduleForm, RegistryForm, RepositoryDeleteForm, TagDeleteForm
from registries.models import DailyPulls, ExternalRegistry, GcSchedule, Repository, Tag

GC_OUTCOME = re.compile(r"freed (\d+) bytes: (\d+) blobs deleted")


def visible_repository(request: HttpRequest, project: Project, name: str) -> Repository:
    """The project's repository if the user may pull from the project; 404 otherwise."""
    try:
        return services.find_repository(request.user, project, name)
    except NotFound as exc:
        raise Http404(exc.message) from exc


@login_required
def project_repositories(request: HttpRequest, name: str) -> HttpResponse:
    """The Internal Repositories tab: the project's repositories, searchable and paginated."""
    project = visible_project(request, name)
    table = table_page(request, RepositoryFilterSet, project.repositories.with_tag_counts())
    context = {
        **project_context(request, project, "repositories"),
        **table,
        "region": "repository-table",
        "can_delete": can(request.user, "delete_artifact", project),
    }
    return page_or_region(request, "registries/project_repositories.html", "registries/_repository_table.html", context)


@login_required
def repository_delete(request: HttpRequest, name: str) -> HttpResponse:
    """The Delete dialog of the selected repositories (DevOps administrators). Each repository is deleted on its
    own; the page says which went and why any did not (a lone refusal stays in the dialog)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "delete_artifact", project))
    back = reverse("project-repositories", args=[project.name])
    form = RepositoryDeleteForm(request.POST or request.GET, repositories=project.repositories.order_by("name"))
    if not form.is_valid():
        if request.method != "POST":
            return _back_with_error(request, form, back)
        return dialog(request, "registries/repository_delete_dialog.html", _repository_dialog(project, form), 400)
    repositories = list(form.cleaned_data["repositories"])
    if request.method != "POST":
        context = _repository_dialog(project, form, repositories)
        return dialog(request, "registries/repository_delete_dialog.html", context)
    outcomes, trust_data_left = services.delete_repositories(Actor.from_request(request), repositories)
    if not any(outcome.done for outcome in outcomes):
        for outcome in outcomes:
            form.add_error(None, f"{outcome.name}: {outcome.error}")
        context = _repository_dialog(project, form, repositories)
        return dialog(request, "registries/repository_delete_dialog.html", context, outcomes[0].status)
    report(request, outcomes, "Deleted {names}.", "Not deleted: {names}")
    if trust_data_left:
        messages.warning(request, f"Notary could not delete the trust data of {', '.join(trust_data_left)}.")
    return finish(request, back_to_table(request, back))


def _repository_dialog(project: Project, form: Any, repositories: list[Repository] | None = None) -> dict[str, Any]:
    """The Delete Repositories dialog's context."""
    return {
        "form": form,
        "project": project,
        "selected": repositories or [],
        "cancel_url": reverse("project-repositories", args=[project.name]),
        "action": reverse("repository-delete", args=[project.name]),
    }


def _back_with_error(request: HttpRequest, form: Any, url: str) -> HttpResponse:
    """Back to the table with the form's complaint (nothing or a vanished row selected)."""
    errors = [error for field_errors in form.errors.values() for error in field_errors]
    messages.error(request, errors[0] if errors else "Select something first.")
    return finish(request, url)


def _cleaned(form: Any, field: str) -> Any:
    """A field's cleaned value, or None when the form did not validate."""
    return getattr(form, "cleaned_data", {}).get(field)


@login_required
def repository_detail(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    """A repository's tags with digest, size, push time and pusher, and the command that pulls each."""
    project = visible_project(request, name)
    repository_row = visible_repository(request, project, repository)
    tags = repository_row.tags.order_by("-pushed_at", "name")
    table = table_page(request, TagFilterSet, tags)
    page = table["page"]
    # Columns and actions of other apps (scanning's Vulnerability column and Scan button) see the page's rows.
    extensions = extend_page("repository-tags", request, project=project, repository=repository_row, tags=list(page))
    show_signatures = signed_tags.shown_for(project)
    if show_signatures:
        signed_tags.attach(repository_row, page)
    context = {
        **project_context(request, project, "repositories"),
        "repository": repository_row,
        **table,
        "region": "tag-table",
        "registry_host": request.get_host(),
        "can_delete": can(request.user, "delete_artifact", project),
        "can_provision": can(request.user, "provision", project),
        "show_signatures": show_signatures,
        **extensions,
    }
    return page_or_region(request, "registries/repository_detail.html", "registries/_tag_table.html", context)


@login_required
def tag_delete(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    """The Delete dialog of the ticked tags: names the sibling tags on the same digest, which stay. Each tag is
    deleted on its own; the page says which went and why any did not (a lone refusal stays in the dialog)."""
    project = visible_project(request, name)
    repository_row = visible_repository(request, project, repository)
    require_permission(can(request.user, "delete_artifact", project))
    back = _repository_url(repository_row)
    form = TagDeleteForm(request.POST or request.GET, tags=repository_row.tags.order_by("name"))
    if not form.is_valid():
        if request.method != "POST":
            return _back_with_error(request, form, back)
        return dialog(request, "registries/tag_delete_dialog.html", _tag_dialog(project, repository_row, form), 400)
    tags = list(form.cleaned_data["tag"])
    if request.method != "POST":
        return dialog(request, "registries/tag_delete_dialog.html", _tag_dialog(project, repository_row, form, tags))
    outcomes = services.delete_tags(Actor.from_request(request), tags)
    if not any(outcome.done for outcome in outcomes):
        for outcome in outcomes:
            form.add_error(None, f"{outcome.name}: {outcome.error}")
        context = _tag_dialog(project, repository_row, form, tags)
        return dialog(request, "registries/tag_delete_dialog.html", context, outcomes[0].status)
    report(
        request,
        outcomes,
        "Deleted tag {names}." if len(tags) == 1 else "Deleted tags {names}.",
        "Not deleted: {names}",
    )
    if not Repository.objects.filter(pk=repository_row.pk).exists():
        messages.info(request, f"{repository_row.name} had no tags left: the repository is gone.")
        return finish(request, reverse("project-repositories", args=[project.name]))
    return finish(request, back_to_table(request, back))


def _tag_dialog(project: Project, repository: Repository, form: Any, tags: list[Tag] | None = None) -> dict[str, Any]:
    """The Delete dialog's context: each tag with the siblings on its digest that stay."""
    tags = tags or []
    names = {tag.name for tag in tags}
    rows = [
        (tag, [sibling for sibling in repository.tags.filter(digest=tag.digest) if sibling.name not in names])
        for tag in tags
    ]
    return {
        "form": form,
        "repository": repository,
        "rows": rows,
        "last": len(names) == repository.tags.count(),
        "cancel_url": _repository_url(repository),
        "action": reverse("tag-delete", args=[project.name, repository.short_name]),
    }


@login_required
def tag_detail(request: HttpRequest, name: str, repository: str, tag: str) -> HttpResponse:
    """A tag's details: media type, platforms, OS/architecture, created, author, labels, layers, build history,
    and the commands that pull and provision it. A registry that cannot be asked is said on the page."""
    project = visible_project(request, name)
    repository_row = visible_repository(request, project, repository)
    tag_row = get_object_or_404(repository_row.tags.all(), name=tag)
    details, problem = None, ""
    try:
        details = image_details.for_tag(tag_row)
    except DomainError as exc:
        problem = exc.message
    commands = image_details.commands(request, project, tag_row)
    context = {
        **project_context(request, project, "repositories"),
        "repository": repository_row,
        "tag": tag_row,
        "details": details,
        "problem": problem,
        "image": commands.image,
        "pull_command": commands.pull,
        "provision_command": commands.provision,
        "can_provision": can(request.user, "provision", project),
    }
    return render(request, "registries/tag_detail.html", context)


def _repository_url(repository: Repository) -> str:
    """The repository page's URL."""
    return reverse("repository-detail", args=[repository.project.name, repository.short_name])


@login_required
def library_repositories(request: HttpRequest) -> HttpResponse:
    """Every repository the user may pull from, across projects, searchable and paginated."""
    table = table_page(request, RepositoryFilterSet, Repository.objects.restrict(request.user).with_tag_counts())
    context = {**table, "region": "library-table"}
    return page_or_region(request, "registries/library.html", "registries/_library_table.html", context)


def gc_context() -> dict[str, Any]:
    """What the Garbage Collection section of Configuration shows: the schedule form and recent runs."""
    schedule = GcSchedule.load()
    form = GcScheduleForm(initial={"frequency": schedule.frequency, "time": schedule.time}, prefix="gc")
    jobs = [_with_gc_outcome(job) for job in _gc_jobs()[:10]]
    return {"gc_form": form, "gc_schedule": schedule, "gc_jobs": jobs, "gc_chart": gc_chart(jobs)}


def gc_chart(jobs: list[Job]) -> Chart | None:
    """Freed space per finished run of these (newest first), oldest first; None when no run freed or finished."""
    runs = [job for job in reversed(jobs) if job.freed_bytes is not None]  # type: ignore[attr-defined]
    if not runs:
        return None
    return Chart(
        id="gc-freed-chart",
        kind="bar",
        title="Space freed per garbage collection run",
        labels=[f"#{job.pk} {job.finished:%Y-%m-%d %H:%M}" if job.finished else f"#{job.pk}" for job in runs],
        axis="Run",
        series=[Series("Freed", [job.freed_bytes for job in runs], SUCCESS_COLOUR)],  # type: ignore[attr-defined]
        display=size,
        unit="bytes",
    )


# Days of the Summary's pulls chart, and repositories in its storage chart.
PULL_DAYS = 30
STORAGE_CHART_REPOSITORIES = 10


def project_summary(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The Summary tab's repositories, storage used, largest repositories and pulls per day (a few queries)."""
    images = Tag.objects.filter(repository__project=project).order_by()
    # Each image once, however many tags name it (layers shared between images are counted with each image).
    storage = sum(images.values("digest").annotate(image=Max("size")).values_list("image", flat=True))
    largest = (
        images.values("repository__name")
        .annotate(used=Sum("size"))
        .order_by("-used", "repository__name")[:STORAGE_CHART_REPOSITORIES]
    )
    days = last_days(PULL_DAYS)
    pulls = DailyPulls.objects.filter(project=project, day__gte=days[0]).values_list("day", "count")
    largest_chart = Chart(
        id="storage-chart",
        kind="bar",
        title=f"Largest repositories (at most {STORAGE_CHART_REPOSITORIES}), by the size of their tags",
        labels=[row["repository__name"] for row in largest],
        axis="Repository",
        series=[Series("Size", [row["used"] for row in largest])],
        display=size,
        unit="bytes",
    )
    pulls_chart = Chart(
        id="pulls-chart",
        kind="bar",
        title=f"Pulls per day, last {PULL_DAYS} days",
        labels=[day.isoformat() for day in days],
        axis="Day",
        series=[Series("Pulls", per_day(pulls, days))],
    )
    return {
        "repository_count": project.repositories.count(),
        "storage_used": storage,
        "storage_chart": largest_chart,
        "pulls_chart": pulls_chart,
        "sections": ["registries/_project_summary.html"],
    }


# Rows of Home's Recent pushes.
HOME_PUSHES = 10


def home_pushes(request: HttpRequest) -> dict[str, Any]:
    """Home's Recent pushes: the newest tags of the repositories the user may pull from, in one query."""
    repositories = Repository.objects.restrict(request.user)
    tags = Tag.objects.filter(repository__in=repositories).select_related("repository__project")
    return {
        "recent_pushes": list(tags.order_by("-pushed_at", "-id")[:HOME_PUSHES]),
        "sections": ["registries/_home_pushes.html"],
    }


def notary_context() -> dict[str, Any]:
    """What Configuration's Content Trust section shows: the address docker clients sign at and whether notary runs."""
    state, detail = components.summary(components.NOTARY)
    return {"notary_url": settings.NOTARY_URL, "notary_state": state, "notary_detail": detail}


def _gc_jobs() -> QuerySet[Job]:
    """The garbage collection runs, each with its last "freed ..." log line as gc_summary."""
    # A subquery, so that the outcome of every run shown comes in the one query that lists them.
    summaries = JobLogLine.objects.filter(job=OuterRef("pk"), text__startswith="freed ").order_by("-id")
    return Job.objects.filter(kind=services.GARBAGE_COLLECTION).annotate(
        gc_summary=Subquery(summaries.values("text")[:1])
    )


def _with_gc_outcome(job: Job) -> Job:
    """The job (from _gc_jobs) with freed_bytes and freed_blobs read from its log (None until it says)."""
    found = GC_OUTCOME.findall(job.gc_summary or "")  # type: ignore[attr-defined]
    job.freed_bytes, job.freed_blobs = (int(found[-1][0]), int(found[-1][1])) if found else (None, None)
    return job


@require_POST
@login_required
def gc_run(request: HttpRequest) -> HttpResponse:
    """Run now: start garbage collection (portal admins; one at a time)."""
    return start_job(request, services.start_gc, "Garbage collection", reverse("configuration") + "#gc-heading")


@require_POST
@login_required
def gc_schedule(request: HttpRequest) -> HttpResponse:
    """Save when garbage collection runs on its own (portal admins)."""
    require_permission(can(request.user, "manage_system"))
    back = reverse("configuration") + "#gc-heading"
    form = GcScheduleForm(request.POST, prefix="gc")

    def save(data: dict[str, Any]) -> tuple[str, str]:
        schedule = services.update_gc_schedule(Actor.from_request(request), data["frequency"], data["time"])
        return f"Garbage collection schedule saved: {schedule}.", back

    result = submit(request, form, save)
    if isinstance(result, HttpResponse):
        return result
    return _back_with_error(request, form, back)


@require_POST
@login_required
def registry_reconcile(request: HttpRequest) -> HttpResponse:
    """Reconcile now: start a job that repairs drift between the registry and the database (portal admins)."""
    return start_job(request, services.start_reconcile, "Registry reconcile", reverse("configuration") + "#gc-heading")


@login_required
def gc_job_row(request: HttpRequest, job_id: int) -> HttpResponse:
    """One garbage collection run's table row; htmx polls it while the run goes on."""
    require_permission(can(request.user, "manage_system"))
    job = get_object_or_404(_gc_jobs(), pk=job_id)
    return render(request, "registries/_gc_job_row.html", {"job": _with_gc_outcome(job)})


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


@login_required
def registry_edit(request: HttpRequest, pk: int) -> HttpResponse:
    """The Edit dialog of a registry: the add form filled in, with the same Verify and trust flow. The credential
    (and so its password) stays unless another is chosen."""
    registry, back = _managed_registry(request, pk)
    project = registry.project
    allowed = is_portal_admin(request.user) if project is None else can(request.user, "manage_registries", project)
    require_permission(allowed)
    return _registry_dialog(request, project, reverse("registry-edit", args=[registry.pk]), back, registry)


def _registry_dialog(
    request: HttpRequest, project: Project | None, action: str, back: str, registry: ExternalRegistry | None = None
) -> HttpResponse:
    """Verify shows what it found or exactly what failed; an untrusted certificate opens the trust dialog.

    Save verifies again and adds the registry (or saves the one edited). The trust dialog posts back here with
    the form's values, so accepting the certificate pins it and retries what was asked (Verify or Save).
    """
    initial = _registry_initial(registry)
    form = RegistryForm(request.POST or None, user=request.user, project=project, initial=initial)
    context: dict[str, Any] = {"form": form, "project": project, "action": action, "cancel_url": back}
    context["registry"] = registry
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
            messages.success(request, _save_registry(request, registry, project, data))
            return finish(request, back)
        found = external_services.verify_address(
            Actor.from_request(request), data["address"], data["credential"], data["insecure"], project
        )
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


def _registry_initial(registry: ExternalRegistry | None) -> dict[str, Any]:
    """The Edit dialog's starting values: the registry as saved (its address holds the namespace)."""
    if registry is None:
        return {}
    address = registry.address
    credential = registry.credential.name if registry.credential else None
    return {"address": address, "name": registry.name, "credential": credential, "insecure": registry.insecure}


def _save_registry(
    request: HttpRequest, registry: ExternalRegistry | None, project: Project | None, data: dict[str, Any]
) -> str:
    """Add the registry, or save the edited one; the message to show."""
    actor = Actor.from_request(request)
    fields = {"credential": data["credential"], "insecure": data["insecure"]}
    if registry is None:
        added = external_services.create_registry(actor, data["name"], data["address"], project=project, **fields)
        return f"Registry '{added.name}' added."
    saved = external_services.update_registry(actor, registry, name=data["name"], address=data["address"], **fields)
    return f"Registry '{saved.name}' saved."


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


@login_required
def project_registries(request: HttpRequest, name: str) -> HttpResponse:
    """The project's registries, then the enabled global ones (read-only)."""
    project = visible_project(request, name)
    own = project.external_registries.select_related("credential").order_by("name")
    globals_ = ExternalRegistry.objects.filter(project__isnull=True, enabled=True)
    globals_ = globals_.select_related("credential").order_by("name")
    can_manage = can(request.user, "manage_registries", project)
    context = {
        **project_context(request, project, "registries"),
        "registries": own,
        "global_registries": globals_,
        "can_manage": can_manage,
        "add_url": reverse("project-registry-add", args=[project.name]),
    }
    return render(request, "registries/project_registries.html", context)


def _search_project(request: HttpRequest) -> Project | None:
    """The header's project (?project= picks another there, as the header's selector would), if the user may pull
    from it: the search has no selector of its own to disagree with the header's."""
    wanted = request.GET.get("project", "")
    project = select(request, wanted) if wanted else selected_project(request)
    return project if project is not None and can(request.user, "pull", project) else None


@login_required
def library_search(request: HttpRequest) -> HttpResponse:
    """One search box over every registry available to the header's project; slow registries are named."""
    project = _search_project(request)
    q = request.GET.get("q", "").strip()
    context: dict[str, Any] = {"project": project, "q": q, "region": "search-results"}
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

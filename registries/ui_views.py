"""UI pages of the integrated registry: a project's Internal Repositories, a repository's tags, the built-in
library, and the registry maintenance section of Administration > Configuration."""

from __future__ import annotations

import re
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.audit import Actor
from portal.errors import NotFound
from portal.models import Job
from portal.ui import dialog, finish, page_or_region, paginate, require_permission, start_job, submit
from projects.models import Project
from projects.roles import can
from projects.views import project_context, visible_project
from registries import services
from registries.filters import RepositoryFilterSet, TagFilterSet
from registries.forms import GcScheduleForm, RepositoryDeleteForm, TagDeleteForm
from registries.models import GcSchedule, Repository

GC_OUTCOME = re.compile(r"freed (\d+) bytes: (\d+) blobs deleted")


def with_tag_counts(repositories: QuerySet[Repository]) -> QuerySet[Repository]:
    """Repositories with their project and number of tags, by name (one query per page)."""
    return repositories.select_related("project").annotate(tag_count=Count("tags")).order_by("name")


def visible_repository(request: HttpRequest, project: Project, name: str) -> Repository:
    """The project's repository if the user may pull from the project; 404 otherwise."""
    try:
        return services.find_repository(request.user, project, name)
    except NotFound as exc:
        raise Http404(exc.message) from exc


# Projects > a project > Internal Repositories.


@login_required
def project_repositories(request: HttpRequest, name: str) -> HttpResponse:
    """The Internal Repositories tab: the project's repositories, searchable and paginated."""
    project = visible_project(request, name)
    repositories = with_tag_counts(project.repositories.all())
    page = paginate(request, RepositoryFilterSet({"q": request.GET.get("q", "")}, repositories).qs)
    context = {
        **project_context(request, project, "repositories"),
        "page": page,
        "q": request.GET.get("q", ""),
        "region": "repository-table",
        "can_delete": can(request.user, "delete_artifact", project),
    }
    return page_or_region(request, "registries/project_repositories.html", "registries/_repository_table.html", context)


@login_required
def repository_delete(request: HttpRequest, name: str) -> HttpResponse:
    """The Delete dialog of the selected repositories (DevOps administrators); a refusal stays in the dialog."""
    project = visible_project(request, name)
    require_permission(can(request.user, "delete_artifact", project))
    back = reverse("project-repositories", args=[project.name])
    form = RepositoryDeleteForm(request.POST or request.GET, repositories=project.repositories.all())
    if request.method != "POST" and not form.is_valid():
        return _back_with_error(request, form, back)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        names = [repository.name for repository in data["repositories"]]
        for repository in data["repositories"]:
            services.delete_repository(Actor.from_request(request), repository)
        return f"Deleted {', '.join(names)}.", back

    status = submit(request, form, save) if request.method == "POST" else 200
    if isinstance(status, HttpResponse):
        return status
    context = {"form": form, "project": project, "selected": _cleaned(form, "repositories"), "cancel_url": back}
    context["action"] = reverse("repository-delete", args=[project.name])
    return dialog(request, "registries/repository_delete_dialog.html", context, status)


def _back_with_error(request: HttpRequest, form: Any, url: str) -> HttpResponse:
    """Back to the table with the form's complaint (nothing or a vanished row selected)."""
    errors = [error for field_errors in form.errors.values() for error in field_errors]
    messages.error(request, errors[0] if errors else "Select something first.")
    return finish(request, url)


def _cleaned(form: Any, field: str) -> Any:
    """A field's cleaned value, or None when the form did not validate."""
    return getattr(form, "cleaned_data", {}).get(field)


# A repository's page: its tags.


@login_required
def repository_detail(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    """A repository's tags with digest, size, push time and pusher, and the command that pulls each."""
    project = visible_project(request, name)
    repository_row = visible_repository(request, project, repository)
    tags = repository_row.tags.order_by("-pushed_at", "name")
    page = paginate(request, TagFilterSet({"q": request.GET.get("q", "")}, tags).qs)
    context = {
        **project_context(request, project, "repositories"),
        "repository": repository_row,
        "page": page,
        "q": request.GET.get("q", ""),
        "region": "tag-table",
        "registry_host": request.get_host(),
        "can_delete": can(request.user, "delete_artifact", project),
        "can_provision": can(request.user, "provision", project),
    }
    return page_or_region(request, "registries/repository_detail.html", "registries/_tag_table.html", context)


@login_required
def tag_delete(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    """The Delete tag dialog: names the sibling tags on the same digest, which stay."""
    project = visible_project(request, name)
    repository_row = visible_repository(request, project, repository)
    require_permission(can(request.user, "delete_artifact", project))
    back = _repository_url(repository_row)
    form = TagDeleteForm(request.POST or request.GET, tags=repository_row.tags.all())
    if request.method != "POST" and not form.is_valid():
        return _back_with_error(request, form, back)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        tag = data["tag"]
        services.delete_tag(Actor.from_request(request), tag)
        if not Repository.objects.filter(pk=repository_row.pk).exists():
            url = reverse("project-repositories", args=[project.name])
            return f"Deleted {tag}, the last tag: the repository is gone.", url
        return f"Deleted tag {tag}.", back

    status = submit(request, form, save) if request.method == "POST" else 200
    if isinstance(status, HttpResponse):
        return status
    tag = _cleaned(form, "tag")
    siblings = repository_row.tags.filter(digest=tag.digest).exclude(pk=tag.pk) if tag else []
    context = {"form": form, "repository": repository_row, "tag": tag, "siblings": siblings, "cancel_url": back}
    context["action"] = reverse("tag-delete", args=[project.name, repository_row.short_name])
    return dialog(request, "registries/tag_delete_dialog.html", context, status)


def _repository_url(repository: Repository) -> str:
    """The repository page's URL."""
    return reverse("repository-detail", args=[repository.project.name, repository.short_name])


# Library > All Repositories > Built-In Repositories.


@login_required
def library_repositories(request: HttpRequest) -> HttpResponse:
    """Every repository the user may pull from, across projects, searchable and paginated."""
    repositories = with_tag_counts(Repository.objects.restrict(request.user))
    page = paginate(request, RepositoryFilterSet({"q": request.GET.get("q", "")}, repositories).qs)
    context = {"page": page, "q": request.GET.get("q", ""), "region": "library-table"}
    return page_or_region(request, "registries/library.html", "registries/_library_table.html", context)


# Administration > Configuration > Garbage Collection.


def gc_context() -> dict[str, Any]:
    """What the Garbage Collection section of Configuration shows: the schedule form and recent runs."""
    schedule = GcSchedule.load()
    form = GcScheduleForm(initial={"frequency": schedule.frequency, "time": schedule.time}, prefix="gc")
    jobs = [_with_gc_outcome(job) for job in Job.objects.filter(kind=services.GARBAGE_COLLECTION)[:10]]
    return {"gc_form": form, "gc_schedule": schedule, "gc_jobs": jobs}


def _with_gc_outcome(job: Job) -> Job:
    """The job with freed_bytes and freed_blobs read from its log (None until it says)."""
    summary = job.log_lines.filter(text__startswith="freed ").order_by("-id").values_list("text", flat=True).first()
    found = GC_OUTCOME.findall(summary or "")
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
    job = get_object_or_404(Job, pk=job_id, kind=services.GARBAGE_COLLECTION)
    return render(request, "registries/_gc_job_row.html", {"job": _with_gc_outcome(job)})

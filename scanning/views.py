"""Pages of scanning: the Vulnerability column and Scan button of a repository's tags, a tag's vulnerability
report, the project Summary's chart and Configuration's allowlist, and Administration > Configuration's
Vulnerability Scanning section (database status, Scan Now, Update now, upload, the system allowlist)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from portal.core.audit import Actor
from portal.core.errors import DomainError, NotFound
from portal.core.permissions import is_portal_admin
from portal.core.tables import back_to_table, report
from portal.core.trust import UntrustedCertificate
from portal.core.trust_dialog import pin_from_post, trust_dialog
from portal.core.ui import act, dialog, finish, form_error, paginate, refuse, require_permission, start_job
from projects.models import Project
from projects.roles import can
from projects.scoped import project_context, visible_project
from registries import services as registry_services
from registries.models import Repository, Tag
from scanning import reports, services
from scanning.forms import AllowlistEntryForm, ScannerForm, VulndbUploadForm
from scanning.models import SEVERITY_ORDER, AllowlistEntry, FeedSource, ImageScan, ScannerRegistration
from scanning.services import scanners

CONFIGURATION = "configuration"


def _visible_repository(request: HttpRequest, project: Project, name: str) -> Repository:
    """The project's repository if the user may pull from the project; 404 otherwise."""
    try:
        return registry_services.find_repository(request.user, project, name)
    except NotFound as exc:
        raise Http404(exc.message) from exc


# --- extensions of other apps' pages --------------------------------------------------------------------


def tag_table(request: HttpRequest, project: Project, repository: Repository, tags: list[Tag]) -> dict[str, Any]:
    """The tags table's Vulnerability column (its scans read in one query) and Scan button."""
    reports.attach_bars(tags)
    can_scan = can(request.user, "scan", project)
    return {
        "tag_columns": [{"header": "Vulnerability", "template": "scanning/_tag_vulnerability.html"}],
        "tag_actions": ["scanning/_scan_button.html"] if can_scan else [],
        "can_select_tags": can_scan,
    }


def project_summary(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The Summary tab's chart of the severities found in the project's images."""
    totals = reports.project_totals(project)
    chart = totals.chart()
    return {"vulnerability_totals": totals, "vulnerability_chart": chart, "sections": ["scanning/_summary.html"]}


def project_configuration(request: HttpRequest, project: Project) -> dict[str, Any]:
    """The Configuration tab's CVE allowlist of the project, with its add form for those who may change it."""
    return {
        "allowlist": project.cve_allowlist.all(),
        "allowlist_form": AllowlistEntryForm(prefix="allowlist"),
        "allowlist_add_url": reverse("project-allowlist-add", args=[project.name]),
        "scanner_choice": scanners.project_choice(project),
        "scanner_effective": scanners.scanner_for_project(project),
        "scanner_options": ScannerRegistration.objects.filter(enabled=True),
        "sections": ["scanning/_project_scanner.html", "scanning/_project_allowlist.html"],
    }


def configuration_section() -> dict[str, Any]:
    """Administration > Configuration's Vulnerability Scanning: the database per feed, Scan Now, the allowlist."""
    again = services.next_scan_all()
    return {
        "feeds": FeedSource.objects.all(),
        "scan_all_job": services.last_scan_all(),
        "scan_all_again": timezone.localtime(again) if again else None,
        "upload_form": VulndbUploadForm(prefix="vulndb"),
        "system_allowlist": AllowlistEntry.objects.filter(project__isnull=True),
        "allowlist_form": AllowlistEntryForm(prefix="allowlist"),
        "allowlist_add_url": reverse("system-allowlist-add"),
        "scanner_registrations": _registrations(),
    }


def _registrations() -> list[ScannerRegistration]:
    """Every registration, the built-in one first among equals (made again should it be missing)."""
    scanners.builtin_scanner()
    return list(ScannerRegistration.objects.all())


# --- scans and reports ----------------------------------------------------------------------------------


@require_POST
@login_required
def tag_scan(request: HttpRequest, name: str, repository: str) -> HttpResponse:
    """Scan: queue a scan of every selected tag's image (portal and the project's DevOps administrators)."""
    project = visible_project(request, name)
    repository_row = _visible_repository(request, project, repository)
    back = reverse("repository-detail", args=[project.name, repository_row.short_name])
    require_permission(can(request.user, "scan", project))
    names = request.POST.getlist("tag")
    tags = list(repository_row.tags.filter(name__in=names).order_by("name"))
    if not tags:
        messages.error(request, "Select at least one tag to scan.")
        return finish(request, back)
    report(
        request,
        services.start_scans(Actor.from_request(request), tags),
        "Scan of {names} queued.",
        "Not scanned: {names}",
    )
    return finish(request, back_to_table(request, back))


@login_required
def tag_vulnerability_cell(request: HttpRequest, name: str, repository: str, tag: str) -> HttpResponse:
    """One tag's Vulnerability cell; htmx polls it while the tag's image is queued or scanned."""
    project = visible_project(request, name)
    repository_row = _visible_repository(request, project, repository)
    tag_row = get_object_or_404(repository_row.tags, name=tag)
    reports.attach_bars([tag_row])
    context = {"project": project, "repository": repository_row, "tag": tag_row}
    return render(request, "scanning/_tag_vulnerability.html", context)


@login_required
def tag_report(request: HttpRequest, name: str, repository: str, tag: str) -> HttpResponse:
    """A tag's vulnerability report: its image's findings, sortable, filterable by severity and text, paginated."""
    project = visible_project(request, name)
    repository_row = _visible_repository(request, project, repository)
    tag_row = get_object_or_404(repository_row.tags, name=tag)
    scan = ImageScan.objects.filter(digest=tag_row.digest).first()
    severity, q, sort = request.GET.get("severity", ""), request.GET.get("q", "").strip(), request.GET.get("sort", "")
    rows = reports.findings(scan, severity, q, sort or "severity") if scan else []
    page = paginate(request, rows)
    notes = reports.allowlist_notes(project, timezone.localdate())
    for finding in page:
        finding.allowlist_note = notes.get(finding.vulnerability, "")
    context = {
        **project_context(request, project, "repositories"),
        "repository": repository_row,
        "tag": tag_row,
        "scan": scan,
        "bar": reports.severity_bar(scan),
        "page": page,
        "severity": severity,
        "severities": list(reversed(SEVERITY_ORDER)),
        "q": q,
        "sort": sort or "severity",
        "region": "finding-table",
        "can_scan": can(request.user, "scan", project),
    }
    template = "scanning/_finding_table.html" if request.htmx and not request.htmx.boosted else "scanning/report.html"
    return render(request, template, context)


# --- Administration > Configuration ------------------------------------------------------------------


def _configuration_url() -> str:
    return reverse(CONFIGURATION) + "#scanning-heading"


@require_POST
@login_required
def scan_all(request: HttpRequest) -> HttpResponse:
    """Scan Now: scan every image (portal admins; once in two hours)."""
    return start_job(request, services.start_scan_all, "Scan of all images", _configuration_url())


@require_POST
@login_required
def vulndb_update(request: HttpRequest) -> HttpResponse:
    """Update now: fetch every vulnerability feed (portal admins; one update at a time)."""
    return start_job(request, services.start_update, "Vulnerability database update", _configuration_url())


@require_POST
@login_required
def vulndb_upload(request: HttpRequest) -> HttpResponse:
    """Load an uploaded bundle or feed file (air-gapped sites); the page lists each feed loaded or the reason not."""
    require_permission(is_portal_admin(request.user))
    back = _configuration_url()
    form = VulndbUploadForm(request.POST, request.FILES, prefix="vulndb")
    if not form.is_valid():
        messages.error(request, "Choose a bundle or feed file to upload.")
        return finish(request, back)
    upload = form.cleaned_data["file"]
    try:
        results = services.import_bundle(Actor.from_request(request), upload, upload.name)
    except DomainError as exc:
        return refuse(request, DomainError(f"{upload.name} was not loaded: {exc.message}"), back)
    loaded = "; ".join(
        f"{result.name}: {result.counts.get('vulnerabilities', 0)} advisories, "
        f"{result.counts.get('packages', 0)} packages"
        for result in results
    )
    messages.success(request, f"Loaded {upload.name}: {loaded or 'no feeds'}.")
    return finish(request, back)


# --- CVE allowlists ----------------------------------------------------------------------------------


def _add_entry(request: HttpRequest, project: Project | None, back: str) -> HttpResponse:
    """Add the form's CVE to the project's allowlist (or the system's); a refusal is the page's message."""
    form = AllowlistEntryForm(request.POST, prefix="allowlist")
    if not form.is_valid():
        errors = [f"{form.fields[name].label}: {error}" for name, found in form.errors.items() for error in found]
        messages.error(request, errors[0])
        return finish(request, back)
    data = form.cleaned_data

    def add(actor: Actor) -> str:
        entry = services.add_allowlist_entry(actor, data["cve"], project, data["expires"])
        return f"{entry.cve} allowlisted" + (f" until {entry.expires:%Y-%m-%d}." if entry.expires else ".")

    return act(request, add, back)


def _remove_entry(request: HttpRequest, entry: AllowlistEntry, back: str) -> HttpResponse:
    """Take the entry off its allowlist."""
    message = f"{entry.cve} is no longer allowlisted."
    return act(request, lambda actor: services.remove_allowlist_entry(actor, entry) or message, back)


@require_POST
@login_required
def system_allowlist_add(request: HttpRequest) -> HttpResponse:
    """Add a CVE to the system allowlist (portal admins)."""
    require_permission(is_portal_admin(request.user))
    return _add_entry(request, None, reverse(CONFIGURATION) + "#allowlist-heading")


@require_POST
@login_required
def system_allowlist_remove(request: HttpRequest, pk: int) -> HttpResponse:
    """Take a CVE off the system allowlist (portal admins)."""
    require_permission(is_portal_admin(request.user))
    entry = get_object_or_404(AllowlistEntry, pk=pk, project__isnull=True)
    return _remove_entry(request, entry, reverse(CONFIGURATION) + "#allowlist-heading")


@require_POST
@login_required
def project_allowlist_add(request: HttpRequest, name: str) -> HttpResponse:
    """Add a CVE to the project's allowlist (its DevOps administrators)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_settings", project))
    return _add_entry(request, project, reverse("project-configuration", args=[project.name]) + "#allowlist-heading")


@require_POST
@login_required
def project_allowlist_remove(request: HttpRequest, name: str, pk: int) -> HttpResponse:
    """Take a CVE off the project's allowlist (its DevOps administrators)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_settings", project))
    entry = get_object_or_404(project.cve_allowlist, pk=pk)
    return _remove_entry(request, entry, reverse("project-configuration", args=[project.name]) + "#allowlist-heading")


# --- scanner registrations (Configuration > Vulnerability Scanning > Scanners) ---------------------------

SCANNERS_ANCHOR = "#scanners-heading"


def _scanners_back() -> str:
    return reverse(CONFIGURATION) + SCANNERS_ANCHOR


def _registration(request: HttpRequest, name: str) -> ScannerRegistration:
    require_permission(is_portal_admin(request.user))
    scanners.builtin_scanner()
    return get_object_or_404(ScannerRegistration, name=name)


@login_required
def scanner_add(request: HttpRequest) -> HttpResponse:
    """+ New Scanner: a Clair v4 deployment or a Harbor scanner adapter (portal admins)."""
    require_permission(is_portal_admin(request.user))
    return _scanner_dialog(request, None, reverse("scanner-add"))


@login_required
def scanner_edit(request: HttpRequest, name: str) -> HttpResponse:
    """Edit a registration: its addresses, secrets (never shown), description, whether it is enabled."""
    registration = _registration(request, name)
    return _scanner_dialog(request, registration, reverse("scanner-edit", args=[registration.name]))


def _scanner_dialog(request: HttpRequest, registration: ScannerRegistration | None, action: str) -> HttpResponse:
    form = ScannerForm(request.POST if request.method == "POST" else None, registration=registration)
    context: dict[str, Any] = {
        "form": form,
        "registration": registration,
        "action": action,
        "cancel_url": _scanners_back(),
    }
    if request.method != "POST":
        return dialog(request, "scanning/scanner_dialog.html", context)
    if not form.is_valid():
        return dialog(request, "scanning/scanner_dialog.html", context, 400)
    actor = Actor.from_request(request)
    try:
        if registration is None:
            saved = scanners.create_scanner(actor, form.service_data())
        else:
            saved = scanners.update_scanner(actor, registration, form.service_data())
    except DomainError as exc:
        form_error(form, exc)
        return dialog(request, "scanning/scanner_dialog.html", context, exc.status)
    messages.success(request, f"Scanner '{saved.name}' {'saved' if registration else 'added'}.")
    return finish(request, _scanners_back())


@require_POST
@login_required
def scanner_test(request: HttpRequest, name: str) -> HttpResponse:
    """Test Connection: a dialog with the adapter's metadata or Clair's index state, or why it failed. An unknown
    HTTPS certificate opens the trust dialog, whose Trust posts back here to pin it and test again."""
    registration = _registration(request, name)
    action = reverse("scanner-test", args=[registration.name])
    try:
        pin_from_post(request)
        result = scanners.test_scanner(Actor.from_request(request), registration)
    except UntrustedCertificate as exc:
        return trust_dialog(request, exc.certificate, action, _scanners_back())
    except DomainError as exc:
        return refuse(request, exc, _scanners_back())
    context = {"registration": registration, "result": result, "cancel_url": _scanners_back()}
    return dialog(request, "scanning/scanner_test_dialog.html", context)


@require_POST
@login_required
def scanner_default(request: HttpRequest, name: str) -> HttpResponse:
    """Make default: projects that picked no scanner are scanned by this one."""
    registration = _registration(request, name)
    message = f"'{registration.name}' is now the default scanner."
    return act(request, lambda actor: scanners.make_default(actor, registration) and message, _scanners_back())


@require_POST
@login_required
def scanner_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete a registration (not the built-in one, nor the default); its projects go back to the default."""
    registration = _registration(request, name)
    message = f"Scanner '{registration.name}' deleted."
    return act(request, lambda actor: scanners.delete_scanner(actor, registration) or message, _scanners_back())


@require_POST
@login_required
def project_scanner(request: HttpRequest, name: str) -> HttpResponse:
    """The project's Configuration: pick the scanner of its images (empty: the default)."""
    project = visible_project(request, name)
    require_permission(can(request.user, "manage_settings", project))
    back = reverse("project-configuration", args=[project.name]) + "#project-scanner-heading"
    chosen = request.POST.get("scanner", "")
    registration = ScannerRegistration.objects.filter(name=chosen).first() if chosen else None
    if chosen and registration is None:
        messages.error(request, f"There is no scanner named '{chosen}'.")
        return finish(request, back)

    def pick(actor: Actor) -> str:
        scanners.set_project_scanner(actor, project, registration)
        return f"Images of '{project.name}' are scanned by {registration.name if registration else 'the default'}."

    return act(request, pick, back)

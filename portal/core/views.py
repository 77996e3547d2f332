"""Administration UI pages of the core: login, Users & Groups, Credentials and Certificates, Configuration,
logs, jobs and the user's profile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from portal.core import credentials, directory, jobs, services, throttle, trust
from portal.core.addresses import parse_url
from portal.core.audit import Actor
from portal.core.audit_log import audit_log_page
from portal.core.bulk import apply_each
from portal.core.certificates import ca_info
from portal.core.credentials import CertificateInfo, certificate_info, credentials_usages
from portal.core.errors import DomainError, Invalid, NotFound
from portal.core.forms import (
    CertificateUrlForm,
    CredentialForm,
    GroupForm,
    PasswordForm,
    PasswordResetForm,
    SettingsForm,
    TokenForm,
    UserCreateForm,
    UserEditForm,
)
from portal.core.identities import search_identities, sort_key
from portal.core.models import (
    ApiToken,
    AuditEvent,
    Credential,
    CredentialKind,
    Group,
    Job,
    Source,
    SystemSettings,
    TrustedCertificate,
    User,
)
from portal.core.permissions import PORTAL_ADMIN_LABEL, can, visible_projects
from portal.core.tables import back_to_table, report
from portal.core.trust_dialog import pin_from_post, trust_dialog
from portal.core.ui import (
    CONFIGURATION_SECTIONS,
    act,
    dialog,
    finish,
    form_error,
    identities_url,
    one_selected,
    page_or_region,
    page_size,
    parse_identity,
    refuse,
    require_permission,
    resolve_identity,
    start_job,
    submit,
)


class LoginView(auth_views.LoginView):
    """The login page, showing the portal CA's thumbprints and a link to download it."""

    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: object) -> dict[str, object]:
        """The form plus the CA's thumbprints."""
        return {**super().get_context_data(**kwargs), "ca": ca_info()}

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        """The form again; a 429 saying when to come back once the login throttle refuses."""
        refused = throttle.refusal(self.request)
        if refused is None:
            return super().form_invalid(form)
        response = self.render_to_response(self.get_context_data(form=form, lockout=refused.message), status=429)
        response["Retry-After"] = str(refused.retry_after)
        return response


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    """Log out and return to the login page."""
    logout(request)
    messages.info(request, "You have been logged out.")
    return redirect("login")


IDENTITY_ACTIONS = {
    "assign_admin": f"Assigned the {PORTAL_ADMIN_LABEL} role to",
    "unassign_admin": f"Removed the {PORTAL_ADMIN_LABEL} role from",
    "disable": "Disabled",
    "enable": "Enabled",
    "delete": "Deleted",
}


# Users and groups per page of Users & Groups: a page of each, never the whole directory of a large site.
IDENTITY_PAGE_SIZE = 25
# A page number past this is treated as page 1 rather than asking for a huge OFFSET.
MAX_IDENTITY_PAGE = 10_000


@login_required
def identities(request: HttpRequest) -> HttpResponse:
    """Search users and groups (local, known and directory); admins act on the selected rows."""
    require_permission(can(request.user, "view_project_users"))
    query = request.GET.get("q", "").strip()
    page = request.GET.get("page", "")
    number = int(page) if page.isdigit() and 0 < int(page) <= MAX_IDENTITY_PAGE else 1
    per_page = page_size(request, IDENTITY_PAGE_SIZE)
    sort = sort_key(request.GET.get("sort", "").strip())
    results = search_identities(query, request.user, number, per_page, sort)
    context = {
        "sort": sort,
        "results": results,
        "per_page": per_page,
        "page_number": number,
        "previous_page": number - 1 if number > 1 else None,
        "next_page": number + 1 if results.capped else None,
        "q": query,
        "region": "identity-table",
        "can_manage": can(request.user, "manage_users"),
        "directory_configured": directory.is_configured(),
    }
    return page_or_region(request, "portal/identities.html", "portal/_identity_table.html", context)


def known_group(name: str) -> Group:
    """The group the portal knows by this name; 404-style refusal otherwise."""
    group = Group.objects.filter(name=name).first()
    if group is None:
        raise NotFound(f"no group named '{name}'")
    return group


def apply_identity_action(actor: Actor, action: str, kind: str, name: str) -> None:
    """Take one of IDENTITY_ACTIONS on a user or group."""
    if kind == "group" and action == "delete":
        services.delete_group(actor, known_group(name))
        return
    subject = resolve_identity(kind, name)
    if action in ("assign_admin", "unassign_admin"):
        setter = services.set_user_admin if kind == "user" else services.set_group_admin
        setter(actor, subject, action == "assign_admin")
    elif kind != "user":
        raise Invalid(f"'{name}' is a group: only users can be disabled or enabled.")
    elif action == "delete":
        services.delete_user(actor, subject)
    else:
        services.update_user(actor, subject, is_active=action == "enable")


@require_POST
@login_required
def identity_action(request: HttpRequest) -> HttpResponse:
    """Assign or unassign the admin role, disable, enable or delete the selected users and groups, each on its own;
    the page names the ones refused and why."""
    require_permission(can(request.user, "manage_users"))
    action = request.POST.get("action", "")
    back = identities_url(request.POST.get("q", ""))
    selected = [parse_identity(value) for value in request.POST.getlist("selected")]
    if action not in IDENTITY_ACTIONS or not selected:
        messages.error(request, "Select at least one user or group, then an action.")
        return finish(request, back)
    # Each user or group on its own (own transaction and audit entry): one refusal does not undo or stop the others.
    actor = Actor.from_request(request)
    outcomes = apply_each(
        dict.fromkeys(selected), lambda pair: pair[1], lambda pair: apply_identity_action(actor, action, *pair)
    )
    report(request, outcomes, f"{IDENTITY_ACTIONS[action]} {{names}}.", "Not done: {names}")
    return finish(request, back_to_table(request, back))


def _form_dialog(
    request: HttpRequest,
    form: forms.Form,
    save: Callable[[dict[str, Any]], tuple[str, str]],
    template: str,
    context: dict[str, Any],
) -> HttpResponse:
    """A dialog's form saved through `save` (see `submit`), else the dialog shown again with the form."""
    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    return dialog(request, template, {"form": form, **context}, status)


def _identity_to_edit(request: HttpRequest, kind: str, query: str, refusals: tuple[str, str]) -> Any:
    """The one local user or group of that kind selected in the Users & Groups table, or that page again with
    a refusal: the first when none is selected, the second when the selected one comes from the directory."""
    selected = one_selected(request)
    identity: User | Group | None = None
    if selected is not None and selected[0] == kind:
        model, field = (User, "username") if kind == "user" else (Group, "name")
        identity = model.objects.filter(**{field: selected[1]}).first()
    if identity is not None and identity.source == Source.LOCAL:
        return identity
    messages.error(request, refusals[0] if identity is None else refusals[1])
    return finish(request, identities_url(query))


@login_required
def user_create(request: HttpRequest) -> HttpResponse:
    """The +User dialog: a local account; the password validators' messages appear on the field."""
    require_permission(can(request.user, "manage_users"))
    form = UserCreateForm(request.POST or None)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        fields = {k: v for k, v in data.items() if k not in ("username", "password", "password_again")}
        user = services.create_user(Actor.from_request(request), data["username"], data["password"], **fields)
        return f"User '{user.username}' created.", identities_url(user.username)

    context = {"action": reverse("user-create"), "cancel_url": reverse("identities")}
    return _form_dialog(request, form, save, "portal/user_create_dialog.html", context)


@login_required
def user_edit(request: HttpRequest) -> HttpResponse:
    """The Edit dialog of one selected local user: names, email, enabled."""
    require_permission(can(request.user, "manage_users"))
    query = request.POST.get("q", request.GET.get("q", ""))
    refusal = "Select exactly one local user to edit."
    user = _identity_to_edit(request, "user", query, (refusal, refusal))
    if isinstance(user, HttpResponse):
        return user
    initial = {"first_name": user.first_name, "last_name": user.last_name, "email": user.email}
    form = UserEditForm(
        request.POST if "email" in request.POST else None, initial={**initial, "is_active": user.is_active}
    )

    def save(data: dict[str, Any]) -> tuple[str, str]:
        services.update_user(Actor.from_request(request), user, **data)
        return f"User '{user.username}' saved.", identities_url(query)

    context = {"subject": user, "q": query, "action": reverse("user-edit"), "cancel_url": identities_url(query)}
    return _form_dialog(request, form, save, "portal/user_edit_dialog.html", context)


@login_required
def user_password_reset(request: HttpRequest) -> HttpResponse:
    """The Reset Password dialog of one selected user: a new password typed twice, checked by the password
    validators. A directory user's password lives in the directory, and one's own is changed on the profile
    page (with the current password): the dialog says so instead of offering fields."""
    require_permission(can(request.user, "manage_users"))
    query = request.POST.get("q", request.GET.get("q", ""))
    selected = one_selected(request)
    user = User.objects.filter(username=selected[1]).first() if selected and selected[0] == "user" else None
    if user is None:
        messages.error(request, "Select exactly one user to reset the password of.")
        return finish(request, identities_url(query))
    context: dict[str, Any] = {"subject": user, "q": query, "cancel_url": identities_url(query)}
    context["action"] = reverse("user-password-reset")
    if user.source != Source.LOCAL or user == request.user:
        context["why_not"] = "directory" if user.source != Source.LOCAL else "self"
        return dialog(request, "portal/user_password_dialog.html", context, 400 if request.method == "POST" else 200)
    form = PasswordResetForm(request.POST if "password" in request.POST else None)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        services.change_password(Actor.from_request(request), user, data["password"])
        return f"Password of '{user.username}' reset.", identities_url(query)

    return _form_dialog(request, form, save, "portal/user_password_dialog.html", context)


@login_required
def identity_edit(request: HttpRequest) -> HttpResponse:
    """The Edit button: the dialog of the one selected user or group."""
    selected = one_selected(request)
    if selected is not None and selected[0] == "group":
        return group_edit(request)
    return user_edit(request)


@login_required
def group_create(request: HttpRequest) -> HttpResponse:
    """The +Group dialog: a local group and its members."""
    require_permission(can(request.user, "manage_users"))
    form = GroupForm(request.POST or None)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        group = services.create_group(Actor.from_request(request), data["name"], list(data["members"]))
        return f"Group '{group.name}' created.", identities_url(group.name)

    context = {"action": reverse("group-create"), "cancel_url": reverse("identities")}
    return _form_dialog(request, form, save, "portal/group_dialog.html", context)


@login_required
def group_edit(request: HttpRequest) -> HttpResponse:
    """The Edit dialog of one selected local group: its members."""
    require_permission(can(request.user, "manage_users"))
    query = request.POST.get("q", request.GET.get("q", ""))
    refusals = ("Select exactly one group to edit.", services.DIRECTORY_GROUP_MEMBERS)
    group = _identity_to_edit(request, "group", query, refusals)
    if isinstance(group, HttpResponse):
        return group
    form = GroupForm(request.POST if request.method == "POST" else None, group=group)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        services.update_group_members(Actor.from_request(request), group, list(data["members"]))
        return f"Group '{group.name}' saved.", identities_url(query)

    context = {"subject": group, "q": query, "action": reverse("group-edit"), "cancel_url": identities_url(query)}
    return _form_dialog(request, form, save, "portal/group_dialog.html", context)


@login_required
def configuration(request: HttpRequest) -> HttpResponse:
    """System settings, the registry root certificate, directory synchronization and registry garbage collection."""
    require_permission(can(request.user, "manage_system"))
    current = SystemSettings.load()
    initial = {field: getattr(current, field) for field in SettingsForm.base_fields}
    form = SettingsForm(request.POST or None, initial=initial)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        services.update_settings(Actor.from_request(request), **data)
        return "System settings saved.", reverse("configuration")

    status = submit(request, form, save)
    if isinstance(status, HttpResponse):
        return status
    # The Directory section's table lists its own jobs only: garbage collection and the others have their sections.
    jobs = Job.objects.filter(kind=directory.SYNC_JOB)[:10]
    context = {"form": form, "jobs": jobs, "directory_configured": directory.is_configured()}
    for section in CONFIGURATION_SECTIONS:
        context.update(section())
    return render(request, "portal/configuration.html", context, status=status)


@require_POST
@login_required
def directory_sync(request: HttpRequest) -> HttpResponse:
    """Start synchronizing directory users and groups now."""
    return start_job(request, services.start_directory_sync, "Directory synchronization", reverse("configuration"))


@login_required
def job_row(request: HttpRequest, job_id: int) -> HttpResponse:
    """One job's table row; htmx polls it every 2 seconds while the job runs."""
    require_permission(can(request.user, "manage_system"))
    return render(request, "portal/_job_row.html", {"job": get_object_or_404(Job, pk=job_id)})


@login_required
def job_log(request: HttpRequest, job_id: int) -> HttpResponse:
    """A job's log and error, in a dialog."""
    require_permission(can(request.user, "manage_system"))
    context = {"job": get_object_or_404(Job, pk=job_id), "cancel_url": reverse("configuration")}
    return dialog(request, "portal/job_log_dialog.html", context)


@login_required
def job_panel(request: HttpRequest, job_id: int) -> HttpResponse:
    """Any job's panel (state, progress, log, Stop) for those who may follow it; htmx polls it while it runs."""
    job = get_object_or_404(Job, pk=job_id)
    if not jobs.may_manage(request.user, job):
        raise Http404("No such job.")
    return render(request, "portal/_job_panel.html", {"job": job})


@require_POST
@login_required
def job_stop(request: HttpRequest, job_id: int) -> HttpResponse:
    """Stop: a job not running yet ends now, a running one at its next checkpoint; its panel shows the outcome."""
    job = get_object_or_404(Job, pk=job_id)
    referer = request.headers.get("referer", "")
    back = referer if url_has_allowed_host_and_scheme(referer, {request.get_host()}) else reverse("home")
    try:
        jobs.request_stop(Actor.from_request(request), job)
    except DomainError as exc:
        return refuse(request, exc, back)
    if request.htmx:
        return HttpResponse(status=204)
    messages.success(request, f"Stop of job #{job.pk} requested.")
    return redirect(back)


@login_required
def logs(request: HttpRequest) -> HttpResponse:
    """Every audit event, newest first, narrowed by the filters, in Newer / Older pages."""
    require_permission(can(request.user, "view_all_logs"))
    return audit_log_page(
        request, AuditEvent.objects.all(), "portal/logs.html", {"region": "log-table"}, one_project=False
    )


def render_profile(request: HttpRequest, status: int = 200, **context: Any) -> HttpResponse:
    """The profile page with fresh forms unless bound ones are given."""
    context.setdefault("password_form", PasswordForm())
    context.setdefault("token_form", TokenForm())
    context["tokens"] = ApiToken.objects.filter(user=request.user)
    return render(request, "portal/profile.html", context, status=status)


@login_required
def profile(request: HttpRequest) -> HttpResponse:
    """The user's own account: password and API tokens."""
    return render_profile(request)


@require_POST
@login_required
def password_change(request: HttpRequest) -> HttpResponse:
    """Change one's own password, giving the current one."""
    form = PasswordForm(request.POST)
    if not form.is_valid():
        return render_profile(request, 400, password_form=form)
    try:
        services.change_password(
            Actor.from_request(request),
            request.user,
            form.cleaned_data["new_password"],
            old_password=form.cleaned_data["old_password"],
        )
    except DomainError as exc:
        form_error(form, exc, {"password": "new_password"})
        return render_profile(request, exc.status, password_form=form)
    update_session_auth_hash(request, request.user)
    messages.success(request, "Your password has been changed.")
    return redirect("profile")


@require_POST
@login_required
def token_create(request: HttpRequest) -> HttpResponse:
    """Create an API token and show its key this once."""
    form = TokenForm(request.POST)
    if not form.is_valid():
        return render_profile(request, 400, token_form=form)
    try:
        token, key = services.create_token(Actor.from_request(request), **form.cleaned_data)
    except DomainError as exc:
        form_error(form, exc)
        return render_profile(request, exc.status, token_form=form)
    return render_profile(request, new_token=token, new_key=key)


@require_POST
@login_required
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the user's API tokens."""
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    message = f"Token '{token.name}' revoked."
    return act(request, lambda actor: services.revoke_token(actor, token) or message, reverse("profile"))


@login_required
def credential_list(request: HttpRequest) -> HttpResponse:
    """The credentials with their type, user or certificate, and where each is used."""
    require_permission(can(request.user, "manage_credentials"))
    listed = list(Credential.objects.select_related("project"))
    usages = credentials_usages(listed)
    rows = [(credential, usages[credential.pk], _certificate_of(credential)) for credential in listed]
    return render(request, "portal/credentials.html", {"rows": rows, "tab": "credentials"})


def _certificate_of(credential: Credential) -> CertificateInfo | None:
    """The public certificate's subject and validity, for a certificate credential."""
    return certificate_info(credential.certificate_pem) if credential.certificate_pem else None


def _secret_fields(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The form's fields that belong to the credential's kind."""
    if kind == CredentialKind.PASSWORD:
        return {"username": data["username"], "password": data["password"]}
    return {"certificate": data["certificate"], "private_key": data["private_key"]}


@login_required
def credential_create(request: HttpRequest) -> HttpResponse:
    """The +Credential dialog; the Type radio re-renders it with the fields of that type."""
    require_permission(can(request.user, "manage_credentials"))
    kind = request.POST.get("kind") or request.GET.get("kind") or CredentialKind.PASSWORD
    kind = kind if kind in CredentialKind.values else CredentialKind.PASSWORD
    projects = list(visible_projects(request.user).order_by("name").values_list("name", flat=True))
    initial = {"kind": kind, "name": request.GET.get("name", "")}
    form = CredentialForm(request.POST or None, initial=initial, projects=projects)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        actor = Actor.from_request(request)
        project = visible_projects(request.user).filter(name=data.get("project")).first()
        secrets = _secret_fields(kind, data)
        credential = credentials.create_credential(actor, data["name"], kind, project=project, **secrets)
        return f"Credential '{credential.name}' created.", reverse("credentials")

    context = {"kind": kind, "action": reverse("credential-create"), "cancel_url": reverse("credentials")}
    return _form_dialog(request, form, save, "portal/credential_dialog.html", context)


@login_required
def credential_edit(request: HttpRequest, name: str) -> HttpResponse:
    """The Edit dialog of a credential: its name and user or certificate; empty secrets stay as they are."""
    require_permission(can(request.user, "manage_credentials"))
    credential = get_object_or_404(Credential, name=name)
    initial = {"name": credential.name, "username": credential.username, "certificate": credential.certificate_pem}
    form = CredentialForm(request.POST or None, initial={**initial, "kind": credential.kind}, editing=True)

    def save(data: dict[str, Any]) -> tuple[str, str]:
        fields = _secret_fields(credential.kind, data)
        credentials.update_credential(Actor.from_request(request), credential, name=data["name"], **fields)
        return f"Credential '{credential.name}' saved.", reverse("credentials")

    context = {
        "kind": credential.kind,
        "subject": credential,
        "action": reverse("credential-edit", args=[credential.name]),
        "cancel_url": reverse("credentials"),
    }
    return _form_dialog(request, form, save, "portal/credential_dialog.html", context)


@require_POST
@login_required
def credential_delete(request: HttpRequest, name: str) -> HttpResponse:
    """Delete a credential; refused with the message naming what uses it."""
    credential = get_object_or_404(Credential, name=name)
    message = f"Credential '{name}' deleted."
    return act(
        request, lambda actor: credentials.delete_credential(actor, credential) or message, reverse("credentials")
    )


@login_required
def certificate_list(request: HttpRequest) -> HttpResponse:
    """The trusted (pinned) server certificates with their details and where each is used."""
    require_permission(can(request.user, "manage_credentials"))
    listed = list(TrustedCertificate.objects.all())
    usages = trust.certificates_usages(listed)
    certificates = [(certificate, usages[certificate.pk]) for certificate in listed]
    return render(request, "portal/certificates.html", {"certificates": certificates, "tab": "certificates"})


@login_required
def certificate_add(request: HttpRequest) -> HttpResponse:
    """+Certificate: fetch what a server presents and show it in the trust dialog."""
    require_permission(can(request.user, "manage_credentials"))
    form = CertificateUrlForm(request.POST or None)
    status = 400 if form.is_bound else 200
    if form.is_valid():
        try:
            server = parse_url(form.cleaned_data["url"], schemes=None)
            details = trust.certificate_details(server.address, trust.fetch_certificate(server.host, server.port))
        except DomainError as exc:
            form_error(form, exc)
            status = exc.status
        else:
            return trust_dialog(
                request,
                details,
                action=reverse("certificate-trust"),
                cancel_url=reverse("certificates"),
                message=f"{server.address} presents this certificate. Compare its thumbprints with the ones its "
                "administrator gave you before you trust it.",
                status=200,
            )
    context = {"form": form, "action": reverse("certificate-add"), "cancel_url": reverse("certificates")}
    return dialog(request, "portal/certificate_add_dialog.html", context, status)


@require_POST
@login_required
def certificate_trust(request: HttpRequest) -> HttpResponse:
    """The trust dialog's default target: pin the posted certificate and go to `next` (or the list)."""
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}):
        next_url = reverse("certificates")
    try:
        pinned = pin_from_post(request)
    except DomainError as exc:
        return refuse(request, exc, next_url)
    if pinned is not None:
        messages.success(request, f"The certificate of {pinned.address} is trusted.")
    return finish(request, next_url)


@require_POST
@login_required
def certificate_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Untrust: remove the pinned certificate."""
    certificate = get_object_or_404(TrustedCertificate, pk=pk)
    message = f"The certificate of {certificate.address} is no longer trusted."
    return act(request, lambda actor: trust.untrust(actor, certificate) or message, reverse("certificates"))


@require_GET
def favicon(request: HttpRequest) -> HttpResponse:
    """/favicon.ico: the icon among the static files (served and cached there), for anyone, logged in or not."""
    return redirect(static("wharf/favicon.ico"), permanent=True)

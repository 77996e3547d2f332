"""Every change of state of container hosts, with its audit entry.

A host is saved only after the portal connected to it (/_ping, /version, /info) and found what the
administrator said it is: a Docker host, or a VCH identifying itself as VIC. Removing a host only
forgets it and its containers; nothing on the host is ever touched by that.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from hosts import whitelist
from hosts.docker import DockerClient, HostFacts, normalize_url
from hosts.models import ContainerHost, HostKind, HostState, WhitelistChange, WhitelistState, whitelist_columns
from portal.core import credentials, jobs
from portal.core.audit import Actor, record
from portal.core.credentials import CREDENTIAL_USERS
from portal.core.errors import Conflict, DomainError, Invalid
from portal.core.models import Credential, CredentialKind, TrustedCertificate
from portal.core.services import require
from portal.core.trust import CERTIFICATE_USERS
from projects.models import Project
from projects.roles import can
from projects.services import SETTINGS_FOLLOWUPS, register_project_content

# update_host's default for `credential`: None there means "no credential", so "leave it" needs its own value.
UNCHANGED = object()
NAME_MAX = 100


def client_for(host: ContainerHost, timeout: float | None = None) -> DockerClient:
    """A client of the saved host with its credential and negotiated API version."""
    return DockerClient(
        host.url,
        host.credential,
        api_version=host.api_version,
        timeout=timeout if timeout is not None else settings.HOST_TIMEOUT_SECONDS,
    )


def _check_kind(kind: str) -> str:
    """The kind, "docker" or "vch" (case-insensitive); Invalid naming the choices otherwise."""
    value = (kind or "").strip().lower()
    if value not in HostKind.values:
        message = "The host type must be docker or vch."
        raise Invalid(message, {"kind": [message]})
    return value


def _check_name(name: str, project: Project, host: ContainerHost | None = None) -> str:
    """The name, required and unique (ignoring case) in the project; Invalid or Conflict otherwise."""
    name = (name or "").strip()
    if not name:
        raise Invalid("A host name is required.", {"name": ["This field is required."]})
    if len(name) > NAME_MAX:
        message = f"A host name is at most {NAME_MAX} characters."
        raise Invalid(message, {"name": [message]})
    clashes = ContainerHost.objects.filter(project=project, name__iexact=name)
    if host is not None:
        clashes = clashes.exclude(pk=host.pk)
    if clashes.exists():
        raise Conflict(f"host '{name}' already exists in project '{project.name}'", {"name": ["This name is taken."]})
    return name


def _check_endpoint(actor: Actor, url: str) -> str:
    """The normalized URL, not yet added to any project of the portal (one project per endpoint, and per VCH).

    The conflict names the project and host holding the endpoint only to an actor who may see that project.
    """
    normalized = normalize_url(url or "")
    existing = ContainerHost.objects.filter(url=normalized).select_related("project").first()
    if existing is None:
        return normalized
    if can(actor.user, "view", existing.project):
        raise Conflict(
            f"host already exists in project '{existing.project.name}'",
            {"url": [f"{normalized} is already added as host '{existing.name}'."]},
        )
    raise Conflict("host already exists in another project", {"url": [f"{normalized} is already added elsewhere."]})


def _check_credential(actor: Actor, credential: Credential | None, url: str, project: Project) -> None:
    """Only a saved certificate credential the actor may use for the project, and only over https (it is the
    client certificate of full TLS)."""
    if credential is None:
        return
    if credential.pk is None:
        raise Invalid("Pick a saved credential.", {"credential": ["No such credential."]})
    credentials.require_use(actor, credential, project)
    if credential.kind != CredentialKind.CERTIFICATE:
        message = (
            f"credential '{credential.name}' is a username and password: a Docker host or VCH takes a "
            "certificate credential (the client certificate and key of full TLS), or none"
        )
        raise Invalid(message, {"credential": ["Pick a certificate credential, or none."]})
    if not url.startswith("https://"):
        message = (
            f"a client certificate is only used over TLS: use https:// for full TLS, "
            f"or remove credential '{credential.name}' for a host without TLS"
        )
        raise Invalid(message, {"credential": ["A certificate needs an https:// URL."]})


def _check_identity(kind: str, facts: HostFacts, url: str) -> None:
    """A VCH must report VIC in /info and a Docker host must not; Invalid saying which type to choose."""
    if kind == HostKind.VCH and not facts.is_vic:
        driver = facts.raw_info.get("Driver") or "no VIC driver"
        message = (
            f"host type is not VCH: {url} is a Docker host (Docker {facts.engine_version}, /info reports "
            f"driver '{driver}'); choose Docker as the host type"
        )
        raise Invalid(message, {"kind": ["This host is not a VCH."]})
    if kind == HostKind.DOCKER and facts.is_vic:
        message = (
            f"host type is VCH: {url} is a vSphere Integrated Containers host "
            f"({facts.raw_info.get('Driver')}); choose VCH as the host type"
        )
        raise Invalid(message, {"kind": ["This host is a VCH."]})


def _probe(kind: str, url: str, credential: Credential | None) -> HostFacts:
    """Connect (/_ping, /version, /info) and check the host is the kind it is said to be."""
    with DockerClient(url, credential, timeout=settings.HOST_TIMEOUT_SECONDS) as client:
        facts = client.probe()
    _check_identity(kind, facts, url)
    return facts


def _apply_facts(host: ContainerHost, facts: HostFacts) -> None:
    """Copy what the probe learned onto the host (not saved)."""
    host.api_version = facts.api_version
    host.engine_version = facts.engine_version[:100]
    host.operating_system = facts.operating_system[:200]
    host.cpus = facts.cpus
    host.memory_bytes = facts.memory_bytes
    host.containers_running = max(0, facts.containers_running)
    host.containers_stopped = max(0, facts.containers_stopped)
    host.images = facts.images
    for column, value in whitelist_columns(facts.raw_info).items():
        setattr(host, column, value)


def verify_host(
    actor: Actor, project: Project, *, kind: str, url: str, credential: Credential | None = None
) -> HostFacts:
    """Connect to a host and check it as add_host would, without saving anything."""
    require(actor, "manage_hosts", project)
    kind = _check_kind(kind)
    normalized = _check_endpoint(actor, url)
    _check_credential(actor, credential, normalized, project)
    return _probe(kind, normalized, credential)


def add_host(
    actor: Actor, project: Project, *, name: str, kind: str, url: str, credential: Credential | None = None
) -> ContainerHost:
    """Add a Docker host or VCH to a project after connecting to it; its collection starts once saved."""
    require(actor, "manage_hosts", project)
    name = _check_name(name, project)
    kind = _check_kind(kind)
    normalized = _check_endpoint(actor, url)
    _check_credential(actor, credential, normalized, project)
    # The probe runs outside the transaction: it may take the whole host timeout.
    facts = _probe(kind, normalized, credential)
    host = ContainerHost(
        project=project,
        name=name,
        kind=kind,
        url=normalized,
        credential=credential,
        state=HostState.ON,
        last_seen=timezone.now(),
        created_by=actor.name,
    )
    _apply_facts(host, facts)
    try:
        with transaction.atomic():
            host.save()
            record(actor, "create", "host", name, project, url=normalized, kind=kind, tls=host.tls_mode)
            judge_whitelist(actor, host)
            _collect_after_commit(host)
    except IntegrityError:
        # Someone added the same name or endpoint while we were probing: say which, as the checks do.
        _check_name(name, project)
        _check_endpoint(actor, normalized)
        raise
    return host


def _collect_after_commit(host: ContainerHost) -> None:
    """Collect the host's containers once the transaction that saved it commits."""
    host_id = host.pk

    def enqueue() -> None:
        jobs.send_task("hosts.collect_host", host_id)

    transaction.on_commit(enqueue)


def _refresh(host: ContainerHost) -> DomainError | None:
    """Probe a saved host and apply the outcome to it (not saved): facts and ON, or UNREACHABLE and the error."""
    try:
        facts = _probe(host.kind, host.url, host.credential)
    except DomainError as exc:
        host.state, host.last_error = HostState.UNREACHABLE, exc.message
        return exc
    _apply_facts(host, facts)
    host.state, host.last_error, host.last_seen = HostState.ON, "", timezone.now()
    return None


def update_host(
    actor: Actor,
    host: ContainerHost,
    *,
    name: str | None = None,
    credential: Credential | None | object = UNCHANGED,
    enabled: bool | None = None,
) -> ContainerHost:
    """Rename a host, change its credential (verified before saving), or disable or enable it.

    Disabling stops its collection (state DISABLED); enabling connects again, ending ON or
    UNREACHABLE with the error, like a collection would.
    """
    require(actor, "manage_hosts", host.project)
    changed: list[str] = []
    if name is not None and name.strip() != host.name:
        host.name = _check_name(name, host.project, host)
        changed.append("name")
    if credential is not UNCHANGED and credential != host.credential:
        credential = cast(Credential | None, credential)
        _check_credential(actor, credential, host.url, host.project)
        facts = _probe(host.kind, host.url, credential)
        host.credential = credential
        _apply_facts(host, facts)
        if host.state != HostState.DISABLED:
            host.state, host.last_error, host.last_seen = HostState.ON, "", timezone.now()
        changed.append("credential")
    was_disabled = host.state == HostState.DISABLED
    if enabled is False and not was_disabled:
        host.state, host.last_error = HostState.DISABLED, ""
        changed.append("enabled")
    elif enabled is True and was_disabled:
        _refresh(host)
        changed.append("enabled")
    if not changed:
        return host
    with transaction.atomic():
        host.save()
        detail = {"fields": changed, "state": host.state, "tls": host.tls_mode}
        if host.last_error:
            detail["error"] = host.last_error
        record(actor, "update", "host", host.name, host.project, **detail)
        judge_whitelist(actor, host)
        if host.state == HostState.ON and ("enabled" in changed or "credential" in changed):
            _collect_after_commit(host)
    return host


def recheck_host(actor: Actor, host: ContainerHost) -> ContainerHost:
    """Connect to a saved host now and record what was found; the failure, if any, is raised after it is saved.

    A disabled host keeps its DISABLED state (only its facts and last error change): enabling is a
    separate decision.
    """
    require(actor, "manage_hosts", host.project)
    previous = host.state
    error = _refresh(host)
    if previous == HostState.DISABLED:
        host.state = HostState.DISABLED
    with transaction.atomic():
        host.save()
        if host.state != previous:
            detail = {"state": host.state, "previous": previous}
            if error is not None:
                detail["error"] = error.message
            record(actor, "update", "host", host.name, host.project, **detail)
        judge_whitelist(actor, host)
    if error is not None:
        raise error
    return host


@transaction.atomic
def remove_host(actor: Actor, host: ContainerHost) -> None:
    """Forget a host and its containers; the containers on the host keep running untouched."""
    require(actor, "manage_hosts", host.project)
    name, project, url = host.name, host.project, host.url
    forgotten = host.containers.count()
    host.containers.all().delete()
    host.delete()
    record(actor, "delete", "host", name, project, url=url, containers_forgotten=forgotten)


# --- VCH whitelists under content trust ----------------------------------------------------------------


def judge_whitelist(actor: Actor, host: ContainerHost) -> WhitelistChange | None:
    """Record what content trust in the host's project asks of a VCH's registry whitelist; audit a new verdict.

    Called by the services that already checked the actor's right (adding or checking a host, switching
    content trust) and by collection. With content trust on, the VCH's last reported whitelist is judged
    against the portal's registry (hosts/whitelist.py). With it off, a VCH that had a verdict is told the
    restriction can be lifted (VIC reverts to the deployed whitelist); a VCH that never had one gets none.
    Docker hosts have no whitelist to judge.
    """
    if host.kind != HostKind.VCH:
        return None
    existing = WhitelistChange.objects.filter(host=host).first()
    if host.project.content_trust:
        judgment = whitelist.judge(host.reported_whitelist, whitelist.portal_registry())
    elif existing is None:
        return None
    else:
        reason = (
            f"content trust is off in project '{host.project.name}': the VCH may return to the whitelist it was "
            "deployed with (a VCH that took the portal's list reverts by itself)"
        )
        judgment = whitelist.Judgment(WhitelistState.LIFTED, [], reason)
    return _save_judgment(actor, host, existing, judgment)


def _save_judgment(
    actor: Actor, host: ContainerHost, existing: WhitelistChange | None, judgment: whitelist.Judgment
) -> WhitelistChange:
    """Write the verdict when it differs from the recorded one; a new state or required list is audited."""
    values = {
        "state": judgment.state,
        "current_mode": host.whitelist_mode,
        "current": list(host.whitelisted_registries),
        "required": judgment.required,
        "reason": judgment.reason,
    }
    if existing is not None and all(getattr(existing, key) == value for key, value in values.items()):
        return existing
    change = existing or WhitelistChange(host=host)
    verdict_changed = existing is None or (existing.state, existing.required) != (judgment.state, judgment.required)
    for key, value in values.items():
        setattr(change, key, value)
    change.updated = timezone.now()
    change.save()
    if verdict_changed:
        # An update of the host's record under "whitelist" (the Logs filters know the existing operations).
        detail = {"whitelist": change.state, "current": change.current, "required": change.required}
        if change.command:
            detail["command"] = change.command
        record(actor, "update", "host", host.name, host.project, reason=change.reason, **detail)
    return change


def follow_content_trust(actor: Actor, project: Project, changed: dict[str, object]) -> None:
    """After a project's settings change (projects.services.update_project): judge its VCHs' whitelists again
    when content trust was switched."""
    if "content_trust" not in changed:
        return
    for host in ContainerHost.objects.filter(project=project, kind=HostKind.VCH).select_related("project"):
        host.project = project
        judge_whitelist(actor, host)


def credential_users(credentials: Sequence[Credential]) -> dict[int, str]:
    """{credential pk: "host 'docker-1' (project 'p')" (and up to 5 in all)} for the credentials hosts use."""
    names: dict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = ContainerHost.objects.filter(credential__in=[c.pk for c in credentials])
    for credential_id, name, project in rows.values_list("credential_id", "name", "project__name"):
        names[credential_id].append((name, project))
    return {
        pk: ", ".join(f"host '{name}' (project '{project}')" for name, project in found[:5])
        for pk, found in names.items()
    }


def certificate_users(certificates: Sequence[TrustedCertificate]) -> dict[int, str]:
    """{certificate pk: "host 'docker-1' (project 'p')"} for the pinned certificates at a host's address."""
    at: dict[str, list[str]] = defaultdict(list)
    rows = ContainerHost.objects.filter(url__in={f"https://{c.address}" for c in certificates})
    for url, name, project in rows.values_list("url", "name", "project__name"):
        at[url].append(f"host '{name}' (project '{project}')")
    return {c.pk: ", ".join(at[f"https://{c.address}"]) for c in certificates if at.get(f"https://{c.address}")}


register_project_content(ContainerHost, "container host", "container hosts")
if follow_content_trust not in SETTINGS_FOLLOWUPS:
    SETTINGS_FOLLOWUPS.append(follow_content_trust)
CREDENTIAL_USERS.append(credential_users)
CERTIFICATE_USERS.append(certificate_users)

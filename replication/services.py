"""Every change of state in replication, with its audit event (the only writers of its models).

Portal administrators manage endpoints and rules. A project's administrators see the project's rules and
executions and may run them. The rules of "Manage Replication Endpoints and Rules" hold here: an endpoint a rule
uses cannot be edited or deleted; an enabled rule cannot be edited; a rule with running jobs cannot be deleted;
disabling a rule stops its running jobs; enabling one replicates what matches now.
"""

from __future__ import annotations

import fnmatch
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from portal.core import jobs
from portal.core.addresses import parse_url
from portal.core.audit import Actor, record
from portal.core.bulk import Outcome, apply_each
from portal.core.credentials import CREDENTIAL_USERS, create_credential, update_credential
from portal.core.errors import Conflict, Forbidden, Invalid, NotFound
from portal.core.models import ACTIVE_JOB_STATES, Credential, CredentialKind, Job
from portal.core.permissions import is_portal_admin, visible_projects
from portal.core.trust import UntrustedCertificate
from projects.models import Project
from projects.roles import can
from registries.client_auth import AuthenticationFailed
from replication import remote
from replication.models import Endpoint, EndpointKind, Execution, Rule, Task, Trigger

EXECUTION = "replication"
TASK = "replication.task"
SCHEDULE_TASK = "replication.run_scheduled"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PROJECT_NAME = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")


Locked = TypeVar("Locked", Endpoint, Rule)


def _locked(row: Locked) -> Locked:
    """The row again, locked for the change; refused when someone else deleted it meanwhile (a stale selection)."""
    found = type(row).objects.select_for_update().filter(pk=row.pk).first()
    if found is None:
        raise NotFound(f"{type(row).__name__.lower()} '{row.name}' no longer exists")
    return found


# --- who may do what ----------------------------------------------------------------------------------


def require_admin(actor: Actor) -> None:
    """Forbidden unless the actor is a portal admin: they alone manage endpoints and rules."""
    if not is_portal_admin(actor.user):
        raise Forbidden("Replication endpoints and rules are managed by Management Portal administrators.")


def may_follow(user: Any, project: Project) -> bool:
    """Whether the user sees the project's rules and executions and may run them: portal or project admins."""
    return is_portal_admin(user) or can(user, "replicate", project)


def _require_follow(actor: Actor, project: Project) -> None:
    if not may_follow(actor.user, project):
        raise Forbidden(f"Only administrators of project '{project.name}' may run its replication rules.")


def visible_rules(user: Any) -> QuerySet[Rule]:
    """The rules the user may see: all for portal admins, their projects' for project admins."""
    rules = Rule.objects.select_related("project", "endpoint")
    if is_portal_admin(user):
        return rules
    return rules.filter(project__in=visible_projects(user, "replicate"))


def visible_executions(user: Any) -> QuerySet[Execution]:
    """The executions of the rules the user may see."""
    return Execution.objects.filter(rule__in=visible_rules(user)).select_related("rule", "job")


# --- endpoints ------------------------------------------------------------------------------------------


# Names the API uses for its own actions beside the named resources (/replication/endpoints/ping): an endpoint
# or rule of such a name could not be addressed.
RESERVED_NAMES = frozenset({"ping"})


def _check_name(name: str, model: type[Endpoint] | type[Rule], current: Any = None) -> str:
    """The name, stripped, if it is well formed, not reserved and not taken (case-insensitively)."""
    name = (name or "").strip()
    if not _NAME.match(name):
        message = "A name is 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."
        raise Invalid(message, {"name": [message]})
    if name.lower() in RESERVED_NAMES:
        message = f"'{name}' is a word the API uses itself: choose another name."
        raise Invalid(message, {"name": [message]})
    clashes = model.objects.filter(name__iexact=name)
    if current is not None:
        clashes = clashes.exclude(pk=current.pk)
    if clashes.exists():
        what = "endpoint" if model is Endpoint else "rule"
        raise Conflict(f"{what} '{name}' already exists", {"name": ["This name is taken."]})
    return name


def normalize_url(url: str) -> str:
    """scheme://host[:port] of an endpoint URL; Invalid for anything else (a path, a query, another scheme)."""
    parsed = parse_url(url, example="https://dr.example:443")
    if parsed.path.strip("/"):
        message = "Give the registry's address without a path, e.g. https://dr.example:443."
        raise Invalid(message, {"url": [message]})
    return parsed.origin


def _kind(kind: str) -> str:
    if kind not in EndpointKind.values:
        message = f"kind must be one of {', '.join(EndpointKind.values)}"
        raise Invalid(message, {"kind": [message]})
    return kind


def test_connection(
    actor: Actor,
    url: str,
    kind: str = EndpointKind.WHARF,
    *,
    username: str = "",
    password: str = "",
    verify_remote_cert: bool = True,
    endpoint: Endpoint | None = None,
) -> remote.Probe:
    """Test Connection: what answers at the URL with that login (a saved endpoint's password when none is given)."""
    require_admin(actor)
    url = normalize_url(url)
    login = remote.Login(username, password) if username else None
    if login is not None and not password and endpoint is not None and endpoint.credential is not None:
        login = remote.Login(username, endpoint.credential.password())
    elif login is None and endpoint is not None:
        login = remote.login_for(endpoint.credential)
    return _probe(_kind(kind), url, login, verify_remote_cert)


def _probe(kind: str, url: str, login: remote.Login | None, verify_remote_cert: bool) -> remote.Probe:
    """Probe the endpoint; an unknown certificate goes to the trust dialog only when verification is off."""
    try:
        return remote.probe(kind, url, login)
    except AuthenticationFailed as exc:
        # The administrator typed a wrong login: a 400 on the login's fields, not a 502 as for a remote fault.
        if login is None:
            message = f"{url} asks for a login: give a user name and password"
            raise Invalid(message, {"username": [message]}) from exc
        message = f"{url} refused the login of '{login.username}': check the user name and password"
        raise Invalid(message, {"password": [message]}) from exc
    except UntrustedCertificate as exc:
        if not verify_remote_cert:
            raise
        message = (
            f"the certificate of {exc.address} is not trusted: install its CA in the portal's trust store, or turn "
            "off Verify Remote Cert to review its thumbprints and pin it"
        )
        raise Invalid(message, {"verify_remote_cert": [message]}) from exc


def _endpoint_credential(actor: Actor, name: str, username: str, password: str, current: Credential | None) -> Any:
    """The endpoint's own password credential, created or updated; None without a user name."""
    username = (username or "").strip()
    if not username:
        return None
    if current is not None and current.kind == CredentialKind.PASSWORD:
        return update_credential(actor, current, name=f"replication-{name}", username=username, password=password)
    _require_password(username, password)
    return create_credential(
        actor, f"replication-{name}", CredentialKind.PASSWORD, username=username, password=password
    )


def _require_password(username: str, password: str) -> None:
    if username.strip() and not password:
        raise Invalid("A password is required with a user name.", {"password": ["This field is required."]})


def _require_unused(endpoint: Endpoint, doing: str) -> None:
    names = list(endpoint.rules.order_by("name").values_list("name", flat=True))
    if names:
        raise Conflict(f"endpoint '{endpoint.name}' is used by rules: {', '.join(names)}; it cannot be {doing}")


def check_endpoint_editable(endpoint: Endpoint) -> None:
    """Conflict naming the rules that use the endpoint (the Edit dialog asks before it opens)."""
    _require_unused(endpoint, "edited")


@transaction.atomic
def create_endpoint(
    actor: Actor,
    name: str,
    url: str,
    kind: str = EndpointKind.WHARF,
    *,
    username: str = "",
    password: str = "",
    verify_remote_cert: bool = True,
) -> Endpoint:
    """Add an endpoint once Test Connection succeeds with its login; the login is kept as a credential."""
    require_admin(actor)
    name = _check_name(name, Endpoint)
    url, kind = normalize_url(url), _kind(kind)
    _require_password(username, password)  # before the connection test, which would only say "refused"
    login = remote.Login(username.strip(), password) if username.strip() else None
    _probe(kind, url, login, verify_remote_cert)
    credential = _endpoint_credential(actor, name, username, password, None)
    endpoint = Endpoint.objects.create(
        name=name,
        kind=kind,
        url=url,
        credential=credential,
        verify_remote_cert=verify_remote_cert,
        last_checked=timezone.now(),
        created_by=actor.name,
    )
    record(actor, "create", "replication_endpoint", name, url=url, kind=kind, verify_remote_cert=verify_remote_cert)
    return endpoint


@transaction.atomic
def update_endpoint(
    actor: Actor,
    endpoint: Endpoint,
    *,
    name: str | None = None,
    url: str | None = None,
    kind: str | None = None,
    username: str | None = None,
    password: str = "",
    verify_remote_cert: bool | None = None,
) -> Endpoint:
    """Change an endpoint no rule uses; the connection is tested again with the new values before saving."""
    require_admin(actor)
    endpoint = _locked(endpoint)
    _require_unused(endpoint, "edited")
    new_name = _check_name(name, Endpoint, endpoint) if name is not None else endpoint.name
    new_url = normalize_url(url) if url is not None else endpoint.url
    new_kind = _kind(kind) if kind is not None else endpoint.kind
    verify = endpoint.verify_remote_cert if verify_remote_cert is None else verify_remote_cert
    current = endpoint.credential
    user = (current.username if current else "") if username is None else username.strip()
    secret = password or (current.password() if current and current.kind == CredentialKind.PASSWORD else "")
    _probe(new_kind, new_url, remote.Login(user, secret) if user else None, verify)
    credential = _endpoint_credential(actor, new_name, user, password, current) if user else None
    changed = [
        field
        for field, old, new in (
            ("name", endpoint.name, new_name),
            ("url", endpoint.url, new_url),
            ("kind", endpoint.kind, new_kind),
            ("verify_remote_cert", endpoint.verify_remote_cert, verify),
            ("credential", current.pk if current else None, credential.pk if credential else None),
        )
        if old != new
    ] + (["password"] if password else [])
    endpoint.name, endpoint.url, endpoint.kind, endpoint.verify_remote_cert = new_name, new_url, new_kind, verify
    endpoint.credential, endpoint.last_checked = credential, timezone.now()
    endpoint.save()
    if current is not None and credential is None:
        _drop_own_credential(actor, current)
    if changed:
        record(actor, "update", "replication_endpoint", endpoint.name, fields=changed)
    return endpoint


@transaction.atomic
def delete_endpoint(actor: Actor, endpoint: Endpoint) -> None:
    """Remove an endpoint no rule uses, with the credential made for it."""
    require_admin(actor)
    endpoint = _locked(endpoint)
    _require_unused(endpoint, "deleted")
    credential, name = endpoint.credential, endpoint.name
    endpoint.delete()
    if credential is not None:
        _drop_own_credential(actor, credential)
    record(actor, "delete", "replication_endpoint", name)


def delete_endpoints(actor: Actor, endpoints: Iterable[Endpoint]) -> list[Outcome]:
    """Delete several endpoints, each on its own (own audit entry); one that rules use keeps the others going."""
    return apply_each(endpoints, lambda endpoint: endpoint.name, lambda endpoint: delete_endpoint(actor, endpoint))


def _drop_own_credential(actor: Actor, credential: Credential) -> None:
    """Delete the credential an endpoint made for itself once nothing uses it."""
    from portal.core.credentials import credential_usages, delete_credential

    if credential.name.startswith("replication-") and not credential_usages(credential):
        delete_credential(actor, credential)


def endpoint_credential_users(credentials: Sequence[Credential]) -> dict[int, str]:
    """{credential pk: "replication endpoint 'dr'"} for the credentials endpoints log in with."""
    names: dict[int, list[str]] = defaultdict(list)
    rows = Endpoint.objects.filter(credential__in=[c.pk for c in credentials]).values_list("credential_id", "name")
    for credential_id, name in rows:
        names[credential_id].append(name)
    return {pk: ", ".join(f"replication endpoint '{n}'" for n in found[:5]) for pk, found in names.items()}


CREDENTIAL_USERS.append(endpoint_credential_users)


# --- rules ------------------------------------------------------------------------------------------------


def _check_glob(value: str, field: str) -> str:
    value = (value or "").strip()
    if len(value) > 255 or any(ch in value for ch in "\n\r\t "):
        message = "A filter is a glob like 'web/*' or '1.*', without spaces."
        raise Invalid(message, {field: [message]})
    return value


def _check_destination(value: str) -> str:
    value = (value or "").strip()
    if value and not _PROJECT_NAME.match(value):
        message = "A destination project name is lower-case letters, digits and '.', '_' or '-' between them."
        raise Invalid(message, {"destination_project": [message]})
    return value


def _check_trigger(trigger: str, cron: str) -> tuple[str, str]:
    if trigger not in Trigger.values:
        message = f"trigger must be one of {', '.join(Trigger.values)}"
        raise Invalid(message, {"trigger": [message]})
    cron = " ".join((cron or "").split())
    if trigger != Trigger.SCHEDULED:
        return trigger, ""
    fields = cron.split(" ") if cron else []
    if len(fields) != 5:
        message = "A schedule is five cron fields: minute hour day-of-month month day-of-week, e.g. '0 2 * * *'."
        raise Invalid(message, {"cron": [message]})
    from celery.schedules import crontab

    try:
        crontab(*fields)
    except ValueError as exc:
        message = f"'{cron}' is not a valid schedule: {exc}"
        raise Invalid(message, {"cron": [message]}) from exc
    return trigger, cron


def _sync_schedule(rule: Rule) -> None:
    """The rule's beat entry: present and enabled for an enabled scheduled rule, absent otherwise."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    name = f"replication rule #{rule.pk}"
    if rule.trigger != Trigger.SCHEDULED or not rule.enabled:
        PeriodicTask.objects.filter(name=name).delete()
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        **dict(zip(_CRON_FIELDS, rule.cron.split(" "), strict=True)), timezone=timezone.get_current_timezone_name()
    )
    PeriodicTask.objects.update_or_create(
        name=name, defaults={"task": SCHEDULE_TASK, "crontab": crontab, "args": f"[{rule.pk}]", "enabled": True}
    )


RULE_FIELDS = (
    "description",
    "repository_filter",
    "tag_filter",
    "destination_project",
    "trigger",
    "replicate_deletion",
    "cron",
)


@transaction.atomic
def create_rule(
    actor: Actor,
    name: str,
    project: Project,
    endpoint: Endpoint,
    *,
    description: str = "",
    repository_filter: str = "",
    tag_filter: str = "",
    destination_project: str = "",
    trigger: str = Trigger.MANUAL,
    replicate_deletion: bool = False,
    cron: str = "",
    enabled: bool = True,
) -> Rule:
    """Add a rule; an enabled one replicates what matches now."""
    require_admin(actor)
    trigger, cron = _check_trigger(trigger, cron)
    rule = Rule.objects.create(
        name=_check_name(name, Rule),
        description=(description or "").strip(),
        project=project,
        endpoint=endpoint,
        repository_filter=_check_glob(repository_filter, "repository_filter"),
        tag_filter=_check_glob(tag_filter, "tag_filter"),
        destination_project=_check_destination(destination_project),
        trigger=trigger,
        replicate_deletion=bool(replicate_deletion) and trigger == Trigger.IMMEDIATE,
        cron=cron,
        enabled=enabled,
        created_by=actor.name,
    )
    _sync_schedule(rule)
    record(actor, "create", "replication_rule", rule.name, project, endpoint=endpoint.name, trigger=trigger)
    if enabled:
        start_execution(actor, rule, Execution.Cause.ENABLED)
    return rule


def check_rule_editable(rule: Rule) -> None:
    """Conflict when the rule is enabled: an enabled rule cannot be edited (the Edit dialog asks before it opens)."""
    if rule.enabled:
        raise Conflict(f"rule '{rule.name}' is enabled: disable it before editing it")


@transaction.atomic
def update_rule(actor: Actor, rule: Rule, *, name: str | None = None, **changes: Any) -> Rule:
    """Change a disabled rule (an enabled one must be disabled first)."""
    require_admin(actor)
    rule = _locked(rule)
    check_rule_editable(rule)
    unknown = set(changes) - {*RULE_FIELDS, "project", "endpoint"}
    if unknown:
        raise Invalid(f"unknown fields: {', '.join(sorted(unknown))}")
    if name is not None:
        rule.name = _check_name(name, Rule, rule)
    trigger, cron = _check_trigger(changes.get("trigger", rule.trigger), changes.get("cron", rule.cron))
    for field in ("repository_filter", "tag_filter"):
        if field in changes:
            setattr(rule, field, _check_glob(changes[field], field))
    if "destination_project" in changes:
        rule.destination_project = _check_destination(changes["destination_project"])
    if "description" in changes:
        rule.description = (changes["description"] or "").strip()
    if "project" in changes:
        rule.project = changes["project"]
    if "endpoint" in changes:
        rule.endpoint = changes["endpoint"]
    rule.trigger, rule.cron = trigger, cron
    rule.replicate_deletion = bool(changes.get("replicate_deletion", rule.replicate_deletion)) and (
        trigger == Trigger.IMMEDIATE
    )
    rule.updated = timezone.now()
    rule.save()
    _sync_schedule(rule)
    fields = sorted([*changes, *(["name"] if name is not None else [])])
    record(actor, "update", "replication_rule", rule.name, rule.project, fields=fields)
    return rule


@transaction.atomic
def set_rule_enabled(actor: Actor, rule: Rule, enabled: bool) -> Rule:
    """Enable a rule (it replicates what matches now) or disable it (its running jobs are stopped)."""
    require_admin(actor)
    rule = _locked(rule)
    if rule.enabled == enabled:
        return rule
    rule.enabled, rule.updated = enabled, timezone.now()
    rule.save(update_fields=["enabled", "updated"])
    _sync_schedule(rule)
    record(actor, "update", "replication_rule", rule.name, rule.project, enabled=enabled)
    if enabled:
        start_execution(actor, rule, Execution.Cause.ENABLED)
    else:
        for job in _running_jobs(rule):
            jobs.request_stop(actor, job)
    return rule


def _running_jobs(rule: Rule) -> QuerySet[Job]:
    return Job.objects.filter(replication_execution__rule=rule, state__in=ACTIVE_JOB_STATES)


@transaction.atomic
def delete_rule(actor: Actor, rule: Rule) -> None:
    """Remove a rule without running jobs, with its schedule and its executions' history."""
    require_admin(actor)
    rule = _locked(rule)
    running = _running_jobs(rule).count()
    if running:
        raise Conflict(
            f"rule '{rule.name}' has {running} running execution{'s' * (running > 1)}: stop or wait for "
            f"{'them' if running > 1 else 'it'} before deleting the rule"
        )
    name, project = rule.name, rule.project
    Job.objects.filter(replication_execution__rule=rule).delete()
    rule.trigger = Trigger.MANUAL
    _sync_schedule(rule)
    rule.delete()
    record(actor, "delete", "replication_rule", name, project)


def set_rules_enabled(actor: Actor, rules: Iterable[Rule], enabled: bool) -> list[Outcome]:
    """Enable or disable several rules, each on its own (own audit entry); a refusal keeps the others going."""
    return apply_each(rules, lambda rule: rule.name, lambda rule: set_rule_enabled(actor, rule, enabled))


def delete_rules(actor: Actor, rules: Iterable[Rule]) -> list[Outcome]:
    """Delete several rules, each on its own (own audit entry); one with running jobs keeps the others going."""
    return apply_each(rules, lambda rule: rule.name, lambda rule: delete_rule(actor, rule))


# --- executions -------------------------------------------------------------------------------------------


def matches(rule: Rule, repository: str, tag: str | None = None) -> bool:
    """Whether the rule's filters take the repository (its full name) and, when given, the tag."""
    prefix = f"{rule.project.name}/"
    if not repository.startswith(prefix):
        return False
    inside = repository[len(prefix) :]
    if rule.repository_filter and not fnmatch.fnmatchcase(inside, rule.repository_filter):
        return False
    return tag is None or not rule.tag_filter or fnmatch.fnmatchcase(tag, rule.tag_filter)


def destination_of(rule: Rule, repository: str) -> str:
    """Where the source repository goes on the endpoint: the destination project with the same path inside."""
    return f"{rule.destination}/{repository.split('/', 1)[1]}"


def start_execution(
    actor: Actor,
    rule: Rule,
    cause: str = Execution.Cause.MANUAL,
    *,
    repositories: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    operation: str = Task.Operation.COPY,
) -> Execution:
    """Start a run of the rule: its parent job plans one task per repository and drives them.

    Without `repositories` the run takes every repository of the project the filters match; `tags` narrows a
    run to the tags an event named (immediate rules) and `operation` deletes them instead of copying.
    """
    _require_follow(actor, rule.project)
    return _start_execution(actor, rule, cause, repositories=repositories, tags=tags, operation=operation)


def _start_execution(
    actor: Actor,
    rule: Rule,
    cause: str,
    *,
    repositories: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    operation: str = Task.Operation.COPY,
) -> Execution:
    """Create the execution and its parent job (whoever asked may: the caller checked, or a trigger fired)."""
    if not rule.enabled:
        raise Conflict(f"rule '{rule.name}' is disabled: enable it to run it")
    parameters = {
        "rule": rule.pk,
        "repositories": sorted(set(repositories)) if repositories is not None else None,
        "tags": sorted(set(tags)) if tags is not None else None,
        "operation": operation,
    }
    with transaction.atomic():
        job = jobs.create_job(actor, EXECUTION, rule.name, parameters)
        execution = Execution.objects.create(rule=rule, job=job, cause=cause)
        record(actor, "start", "replication_execution", f"{rule.name} #{execution.pk}", rule.project, cause=cause)
    return execution


def run_rule(actor: Actor, rule: Rule) -> Execution:
    """Run a rule now (Replicate), whatever its trigger."""
    return start_execution(actor, rule, Execution.Cause.MANUAL)


def retry_failed(actor: Actor, execution: Execution) -> Execution:
    """A new run of the execution's rule for the repositories whose tasks did not succeed."""
    if not execution.job.is_finished:
        raise Conflict(f"execution #{execution.pk} is still running")
    failed = list(
        execution.tasks.exclude(job__state="succeeded")
        .filter(operation=Task.Operation.COPY)
        .values_list("repository", flat=True)
    )
    if not failed:
        raise Conflict(f"execution #{execution.pk} has no failed task to retry")
    return start_execution(actor, execution.rule, Execution.Cause.RETRY, repositories=failed)


def stop_execution(actor: Actor, execution: Execution) -> Execution:
    """Stop a running execution: its tasks stop at their next blob."""
    _require_follow(actor, execution.rule.project)
    if not is_portal_admin(actor.user):
        raise Forbidden("Only Management Portal administrators may stop replication executions.")
    jobs.request_stop(actor, execution.job)
    execution.job.refresh_from_db()
    return execution


def run_scheduled(rule_id: int) -> Execution | None:
    """The beat's run of a scheduled rule; None when the rule is gone or no longer enabled and scheduled."""
    rule = Rule.objects.filter(pk=rule_id, enabled=True, trigger=Trigger.SCHEDULED).select_related("project").first()
    if rule is None:
        return None
    return _start_execution(Actor.system("schedule"), rule, Execution.Cause.SCHEDULED)


# --- what pushes and deletes start ----------------------------------------------------------------------


def replicate_push(project: Project, repository: str, tag: str) -> list[Execution]:
    """Start the project's enabled immediate rules that take a pushed tag (called once the push is applied)."""
    started = []
    for rule in Rule.objects.filter(project=project, trigger=Trigger.IMMEDIATE, enabled=True).select_related("project"):
        if matches(rule, repository, tag):
            started.append(
                _start_execution(Actor.system(), rule, Execution.Cause.IMMEDIATE, repositories=[repository], tags=[tag])
            )
    return started


def replicate_deletion(project: Project, repository: str, tags: Sequence[str]) -> list[Execution]:
    """Delete on the endpoints of the project's immediate rules that say so the tags deleted here."""
    started = []
    rules = Rule.objects.filter(project=project, trigger=Trigger.IMMEDIATE, enabled=True, replicate_deletion=True)
    for rule in rules.select_related("project"):
        taken = [tag for tag in tags if matches(rule, repository, tag)]
        if taken:
            started.append(
                _start_execution(
                    Actor.system(),
                    rule,
                    Execution.Cause.IMMEDIATE,
                    repositories=[repository],
                    tags=taken,
                    operation=Task.Operation.DELETE,
                )
            )
    return started

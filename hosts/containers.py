"""Container services: provision from an allowed image, start/stop/restart/remove, logs, live stats, inspect.

Provisioning and actions run as jobs (the host may take a while to pull or stop); logs, stats and
inspect are read live from the host. Every failure of a host becomes a DomainError saying why.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import shlex
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from hosts import docker
from hosts.images import ImageSource, resolve_image
from hosts.models import Container, ContainerHost, ContainerState, HostState
from hosts.services import client_for
from portal.core import bulk
from portal.core.audit import Actor, record
from portal.core.errors import Conflict, DomainError, Invalid
from portal.core.jobs import JobContext, create_job
from portal.core.models import Job, Outcome, User
from portal.core.services import require
from projects.models import Project
from projects.roles import can

PROVISION = "provision container"
ACTIONS = ("start", "stop", "restart", "remove")
ACTION_KINDS = {action: f"{action} container" for action in ACTIONS}
JOB_KINDS = (PROVISION, *ACTION_KINDS.values())
RESTART_POLICIES = ("no", "always", "on-failure", "unless-stopped")
PROJECT_LABEL = "wharf.project"
PROVISIONED_BY_LABEL = "wharf.provisioned-by"
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ENV_KEY = re.compile(r"^[^=\s]+$")
# Pull progress messages worth a log line: the rest ("Downloading", "Extracting") repeat per chunk.
_PULL_NOISE = frozenset({"Downloading", "Extracting", "Waiting", "Verifying Checksum"})
MAX_LOG_LINES = 5000


@dataclass(frozen=True)
class LogLine:
    """One line of a container's output."""

    stream: str  # stdout or stderr
    time: datetime | None
    text: str


@dataclass(frozen=True)
class ContainerStats:
    """One live sample of a container's resource use, computed as `docker stats` does."""

    cpu_percent: float
    memory_used: int
    memory_limit: int
    memory_percent: float
    network_rx: int
    network_tx: int
    taken_at: datetime


@dataclass(frozen=True)
class PortBinding:
    """A requested port: container port and protocol, published on host address and port (0 = any free one)."""

    private: int
    protocol: str = "tcp"
    ip: str = "0.0.0.0"
    public: int = 0

    def as_row(self) -> dict[str, Any]:
        """The shape of Container.ports."""
        return {"ip": self.ip, "private": self.private, "public": self.public or None, "protocol": self.protocol}


# --- validation ----------------------------------------------------------------------------------


def _invalid(field: str, message: str) -> Invalid:
    """A field error whose message is also the detail."""
    return Invalid(message, {field: [message]})


def check_name(name: str) -> str:
    """The container name, following docker's rule; Invalid otherwise."""
    name = (name or "").strip()
    if len(name) > 200:
        raise _invalid("name", "a container name is at most 200 characters")
    if name and not _NAME.match(name):
        raise _invalid(
            "name",
            f"'{name}' is not a valid container name: use letters, digits, '_', '.' or '-', first a letter or digit",
        )
    return name


def check_environment(lines: list[str] | None) -> list[str]:
    """KEY=VALUE lines (blank ones dropped); Invalid naming the first bad line."""
    result = []
    for number, line in enumerate(lines or [], start=1):
        if not line.strip():
            continue
        key, equals, _ = line.partition("=")
        if not equals or not _ENV_KEY.match(key):
            raise _invalid("environment", f"environment line {number} '{line}' is not KEY=VALUE")
        result.append(line)
    return result


def _port_number(text: str, spec: str) -> int:
    """A port number 1-65535 from a port binding; Invalid otherwise."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _invalid("ports", f"port binding '{spec}': '{text}' is not a port number (1-65535)")
    return int(text)


def parse_port(spec: str) -> PortBinding:
    """`[IP:][HOST:]CONTAINER[/tcp|udp]` as docker run -p reads it; Invalid otherwise."""
    text = spec.strip()
    ports, _, protocol = text.partition("/")
    protocol = protocol or "tcp"
    if protocol not in ("tcp", "udp"):
        raise _invalid("ports", f"port binding '{spec}': the protocol must be tcp or udp")
    ip, public = "0.0.0.0", ""
    head, colon, private = ports.rpartition(":")
    if colon:
        ip_part, colon, public = head.rpartition(":")
        if colon:
            try:
                ip = str(ipaddress.ip_address(ip_part.strip("[]")))
            except ValueError:
                raise _invalid("ports", f"port binding '{spec}': '{ip_part}' is not an IP address") from None
        else:
            public = head
    return PortBinding(
        private=_port_number(private, spec),
        protocol=protocol,
        ip=ip,
        public=_port_number(public, spec) if public else 0,
    )


def check_restart_policy(policy: str) -> str:
    """One of docker's restart policies; Invalid otherwise."""
    policy = (policy or "no").strip()
    if policy not in RESTART_POLICIES:
        raise _invalid("restart_policy", f"restart policy '{policy}' is not one of {', '.join(RESTART_POLICIES)}")
    return policy


def check_command(command: str) -> list[str]:
    """The command split as a shell would; Invalid for unbalanced quotes."""
    try:
        return shlex.split(command or "")
    except ValueError as exc:
        raise _invalid("command", f"the command cannot be split into arguments: {exc}") from exc


def choose_host(project: Project, host: ContainerHost | None) -> ContainerHost:
    """The given host if it is the project's and ON, else the project's least loaded ON host."""
    if host is not None:
        if host.project_id != project.pk:
            raise _invalid("host", f"host '{host.name}' is not in project '{project.name}'")
        if host.state != HostState.ON:
            raise _invalid("host", f"host '{host.name}' is {host.get_state_display()}: pick a host that is ON")
        return host
    # Containers still being provisioned count too, so quick successive requests spread out.
    pending = Count("containers", filter=Q(containers__container_id="", containers__provisioned=True))
    candidates = (
        ContainerHost.objects.filter(project=project, state=HostState.ON)
        .select_related("credential")
        .annotate(load=F("containers_running") + pending)
        .order_by("load", "-memory_bytes", "name")
    )
    chosen = candidates.first()
    if chosen is None:
        raise _invalid("host", f"project '{project.name}' has no container host that is ON: add one or wait for one")
    return chosen


def _default_name(source: ImageSource) -> str:
    """A name for a container the user did not name: the image's last path part and a random suffix."""
    leaf = source.repository.rsplit("/", 1)[-1]
    return f"{leaf}-{secrets.token_hex(3)}"


# --- provisioning ----------------------------------------------------------------------------------


def provision(
    actor: Actor,
    project: Project,
    *,
    image: str,
    name: str = "",
    command: str = "",
    environment: list[str] | None = None,
    ports: list[str] | None = None,
    restart_policy: str = "no",
    host: ContainerHost | None = None,
) -> Job:
    """Check everything that can be checked here, then start a job that pulls, creates and starts the container.

    The returned job carries the new row as `job.container`.
    """
    require(actor, "provision", project)
    name = check_name(name)
    env = check_environment(environment)
    bindings = [parse_port(spec) for spec in ports or [] if spec.strip()]
    policy = check_restart_policy(restart_policy)
    arguments = check_command(command)
    source = resolve_image(actor, project, image)
    with transaction.atomic():
        target = choose_host(project, host)
        name = name or _default_name(source)
        if Container.objects.filter(host=target, name=name).exclude(state=ContainerState.REMOVED).exists():
            raise Conflict(
                f"a container named '{name}' already exists on host '{target.name}'", {"name": ["This name is taken."]}
            )
        container = Container.objects.create(
            host=target,
            name=name,
            image=source.full_reference,
            command=shlex.join(arguments)[:1000],
            status="provisioning",
            ports=[binding.as_row() for binding in bindings],
            provisioned=True,
            provisioned_by=actor.name,
        )
        spec = {
            "container": container.pk,
            "user": actor.user.pk if actor.user else None,
            "actor": actor.name,
            "image": source.full_reference,
            "command": arguments,
            "environment": env,
            "ports": [binding.__dict__ for binding in bindings],
            "restart_policy": policy,
        }
        record(
            actor, "provision", "container", name, project, host=target.name, image=source.full_reference,
            registry=source.registry_name,
        )  # fmt: skip
        job = create_job(actor, PROVISION, f"{project.name}/{name}", spec)
    # The caller learns which row the job fills in (the API answers with both).
    job.container = container
    return job


def _create_config(spec: dict[str, Any], project: Project) -> dict[str, Any]:
    """The body of POST /containers/create for the provisioning spec."""
    bindings = [PortBinding(**binding) for binding in spec["ports"]]
    exposed = {f"{b.private}/{b.protocol}": {} for b in bindings}
    published: dict[str, list[dict[str, str]]] = {}
    for binding in bindings:
        published.setdefault(f"{binding.private}/{binding.protocol}", []).append(
            {"HostIp": binding.ip, "HostPort": str(binding.public) if binding.public else ""}
        )
    config: dict[str, Any] = {
        "Image": spec["image"],
        "Env": spec["environment"],
        "ExposedPorts": exposed,
        "Labels": {PROJECT_LABEL: project.name, PROVISIONED_BY_LABEL: spec["actor"]},
        "HostConfig": {
            "PortBindings": published,
            "RestartPolicy": {"Name": spec["restart_policy"], "MaximumRetryCount": 0},
        },
    }
    if spec["command"]:
        config["Cmd"] = spec["command"]
    return config


def _pull(client: docker.DockerClient, source: ImageSource, log: JobContext) -> None:
    """Pull the image on the host with the registry's credentials, logging each layer's milestones."""
    log(f"pulling {source.full_reference} from {source.registry_name}")
    name = source.reference.name
    for message in client.pull(name, source.reference.version, source.auth):
        status = str(message.get("status") or "")
        if status and status not in _PULL_NOISE:
            layer = message.get("id")
            log(f"pulling {layer}: {status}" if layer else f"pulling: {status}")


def _load(container_pk: int) -> Container:
    """The job's container row; gone when its host was removed from the project before the job ran."""
    container = Container.objects.select_related("host__project", "host__credential").filter(pk=container_pk).first()
    if container is None:
        raise Conflict("the container is no longer recorded (its host was removed from the project)")
    return container


def run_provision(job: Job, log: JobContext) -> str:
    """The provisioning job: pull, create, start, record; a failed attempt removes what it created on the host.

    The row stays while attempts are left (a retry starts again from the job's parameters);
    `provision_failed` removes it when the job has failed for good.
    """
    spec = job.parameters
    container = _load(spec["container"])
    host, project = container.host, container.host.project
    actor = _actor(spec)
    created = ""
    client: docker.DockerClient | None = None
    try:
        # Checked again at run time: the role, the registry list or the policy may have changed meanwhile.
        source = resolve_image(actor, project, spec["image"], with_auth=True)
        client = client_for(host)
        _pull(client, source, log)
        log.progress(3, 5)
        log.checkpoint()
        log(f"creating container {container.name} on host {host.name}")
        created = client.create(container.name, _create_config(spec, project))
        _attach_id(container, created)
        log.progress(4, 5)
        log.checkpoint()
        log(f"starting container {container.name}")
        client.start(created)
        _refresh(container, client.inspect(created))
    except BaseException:
        _undo(client, container, created, log)
        raise
    finally:
        if client is not None:
            client.close()
    return f"container {container.name} is {container.state} on host {host.name}"


def _actor(spec: dict[str, Any]) -> Actor:
    """Who asked for the provisioning, as the job's parameters name them."""
    user = User.objects.filter(pk=spec["user"]).first() if spec["user"] else None
    return Actor(user, name=spec["actor"])


def provision_failed(job: Job, exc: Exception) -> None:
    """The provisioning job failed or was stopped for good: forget the row and record the failure."""
    spec = job.parameters
    container = Container.objects.select_related("host__project").filter(pk=spec["container"]).first()
    if container is None:
        return
    Container.objects.filter(pk=container.pk).delete()
    record(
        _actor(spec), "provision", "container", container.name, container.host.project, outcome=Outcome.FAILURE,
        error=str(exc),
    )  # fmt: skip


def _attach_id(container: Container, container_id: str) -> None:
    """Record the new container's id; a row collection made for it meanwhile gives way to ours."""
    with transaction.atomic():
        Container.objects.filter(host=container.host, container_id=container_id, provisioned=False).delete()
        container.container_id = container_id
        try:
            container.save(update_fields=["container_id"])
        except IntegrityError as exc:
            raise Conflict(f"container {container_id[:12]} is already recorded on host {container.host}") from exc


def _undo(client: docker.DockerClient | None, container: Container, created: str, log: JobContext) -> None:
    """Remove what this attempt made on the host, so no half-created container stays behind."""
    if client is not None and created:
        try:
            client.remove(created, force=True)
            log(f"removed the half-created container {created[:12]} from the host")
        except DomainError as exc:
            log(f"could not remove the half-created container {created[:12]}: {exc}")
    Container.objects.filter(pk=container.pk).update(container_id="")


def _refresh(container: Container, inspected: dict[str, Any]) -> None:
    """Copy state, status, ports and the command from docker inspect onto the row."""
    state = inspected.get("State") or {}
    status = str(state.get("Status") or "")
    container.state = status if status in ContainerState.values else container.state
    container.status = _status_text(state)
    container.ports = _ports(inspected) or container.ports
    config = inspected.get("Config") or {}
    command = [*(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]
    container.command = shlex.join(command)[:1000] if command else container.command
    container.last_seen = timezone.now()
    container.save(update_fields=["state", "status", "ports", "command", "last_seen"])


def _status_text(state: dict[str, Any]) -> str:
    """A short status like the CLI's: "running since ...", "exited (137)"."""
    status = str(state.get("Status") or "")
    if status == "running":
        return f"running since {state.get('StartedAt', '')[:19].replace('T', ' ')}"
    if status == "exited":
        return f"exited ({state.get('ExitCode', 0)})"
    return status


def _ports(inspected: dict[str, Any]) -> list[dict[str, Any]]:
    """The published ports from docker inspect's NetworkSettings (the host ports actually chosen)."""
    rows = []
    published = (inspected.get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in sorted(published.items()):
        private, _, protocol = key.partition("/")
        for binding in bindings or []:
            rows.append(
                {
                    "ip": binding.get("HostIp") or "0.0.0.0",
                    "private": int(private),
                    "public": int(binding["HostPort"]) if binding.get("HostPort") else None,
                    "protocol": protocol or "tcp",
                }
            )
    return rows


# --- actions ---------------------------------------------------------------------------------------


def _require_live(container: Container) -> None:
    """Conflict for a container that is removed or still being provisioned (nothing on the host to act on)."""
    if container.state == ContainerState.REMOVED:
        raise Conflict(f"container '{container.name}' was removed")
    if not container.container_id:
        raise Conflict(f"container '{container.name}' is still being provisioned")


def container_action(actor: Actor, container: Container, action: str) -> Job:
    """Start a job that starts, stops, restarts or removes the container on its host."""
    project = container.host.project
    require(actor, "operate_containers", project)
    if action not in ACTIONS:
        raise _invalid("action", f"'{action}' is not a container action: use {', '.join(ACTIONS)}")
    _require_live(container)
    with transaction.atomic():
        record(actor, action, "container", container.name, project, host=container.host.name)
        parameters = {"container": container.pk, "action": action}
        return create_job(actor, ACTION_KINDS[action], f"{project.name}/{container.name}", parameters)


def container_actions(actor: Actor, containers: list[Container], action: str) -> list[bulk.Outcome]:
    """Start one action job per container (each audited); a refused container keeps the others going."""
    return bulk.apply_each(containers, lambda container: container.name, lambda c: container_action(actor, c, action))


def run_action(job: Job, log: JobContext) -> str:
    """The action job: ask the host, then record the container's new state (or its removal)."""
    action = job.parameters["action"]
    container = _load(job.parameters["container"])
    _require_live(container)
    log(f"{action} {container.name} on host {container.host.name}")
    with client_for(container.host) as client:
        getattr(client, action)(container.container_id)
        if action == "remove":
            Container.objects.filter(pk=container.pk).update(
                state=ContainerState.REMOVED, status="removed", removed=timezone.now()
            )
            return f"container {container.name} removed from host {container.host.name}"
        _refresh(container, client.inspect(container.container_id))
    return f"container {container.name} is {container.state} ({container.status})"


# --- live reads ------------------------------------------------------------------------------------


def _parse_time(text: str) -> datetime | None:
    """A Docker RFC 3339 timestamp with nanoseconds as a datetime (microseconds kept); None if unreadable."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        return None
    fraction = (match[2] or "0")[:6].ljust(6, "0")
    zone = "+00:00" if match[3] == "Z" else match[3]
    try:
        return datetime.fromisoformat(f"{match[1]}.{fraction}{zone}")
    except ValueError:
        return None


def _is_multiplexed(body: bytes) -> bool:
    """True when the log body carries Docker's 8-byte frame headers (the container has no TTY)."""
    return len(body) >= 8 and body[0] in (0, 1, 2) and body[1:4] == b"\x00\x00\x00"


def container_logs(actor: Actor, container: Container, tail: int = 200, since: float = 0) -> list[LogLine]:
    """The container's last `tail` lines, or those after `since` (a Unix time) when following."""
    require(actor, "view", container.host.project)
    _require_live(container)
    tail = max(1, min(int(tail), MAX_LOG_LINES))
    params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "tail": tail}
    if since > 0:
        params["since"] = f"{since:.6f}"
    with client_for(container.host) as client:
        path = f"/containers/{quote(container.container_id)}/logs"
        body = client.call("GET", path, params=params).content
    after = datetime.fromtimestamp(since, UTC) if since > 0 else None
    lines = []
    for stream, raw in docker.demultiplex(body, tty=not _is_multiplexed(body)):
        stamp, _, text = raw.partition(" ")
        moment = _parse_time(stamp)
        if moment is None:
            text = raw
        # Docker's since is inclusive: a follower asking after its last line must not get it again.
        if after is not None and moment is not None and moment <= after:
            continue
        lines.append(LogLine(stream, moment, text))
    return lines


def container_stats(actor: Actor, container: Container) -> ContainerStats:
    """One live stats sample: CPU %, memory used/limit, network in/out, as `docker stats` shows them."""
    require(actor, "view", container.host.project)
    _require_live(container)
    with client_for(container.host) as client:
        sample = client.stats(container.container_id) or {}
    used, limit = docker.memory_usage(sample)
    received, sent = docker.network_io(sample)
    return ContainerStats(
        cpu_percent=round(docker.cpu_percent(sample), 2),
        memory_used=used,
        memory_limit=limit,
        memory_percent=round(used / limit * 100.0, 2) if limit else 0.0,
        network_rx=received,
        network_tx=sent,
        taken_at=_sample_time(sample),
    )


def _sample_time(sample: dict[str, Any]) -> datetime:
    """When the sample was read; now for a stopped container, whose sample carries Go's zero time."""
    moment = _parse_time(str(sample.get("read") or ""))
    return moment if moment is not None and moment.year > 1970 else timezone.now()


def container_details(actor: Actor, container: Container) -> dict[str, Any]:
    """docker inspect of the container, live from its host; to an actor who may not operate the project's
    containers (a viewer) its environment is names only, because values are often secrets (`DB_PASSWORD=...`)."""
    require(actor, "view", container.host.project)
    _require_live(container)
    with client_for(container.host) as client:
        details = client.inspect(container.container_id)
    if not can(actor.user, "operate_containers", container.host.project):
        details = environment_names_only(details)
    return details


def environment_names_only(details: dict[str, Any]) -> dict[str, Any]:
    """The inspect data with `Config.Env`'s `NAME=value` lines cut down to their names."""
    config = details.get("Config")
    if not isinstance(config, dict) or not config.get("Env"):
        return details
    names = [str(line).split("=", 1)[0] for line in config["Env"]]
    return {**details, "Config": {**config, "Env": names}}

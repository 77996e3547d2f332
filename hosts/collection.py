"""Health and data collection: poll every enabled host concurrently, record its state, facts and containers.

One cycle (the beat runs it every HOST_COLLECTION_INTERVAL_SECONDS) polls each host that is not
DISABLED in its own thread: /version and /info for the facts, /containers/json?all=1 for the
containers. Every host's whole poll is bounded by one deadline, so a dead or trickling host costs
the cycle at most its timeout, never N x timeout. Threads only talk to hosts; every database read
and write happens in the calling thread, because Django's connections are per thread and one
connection per host per cycle would exhaust the database's connection slots.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import logging
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from hosts.docker import DockerClient, HostFacts, Usage
from hosts.models import (
    Container,
    ContainerHost,
    ContainerState,
    HostKind,
    HostSample,
    HostState,
    whitelist_columns,
)
from hosts.services import client_for, judge_whitelist
from portal.core.audit import Actor, record
from portal.core.errors import DomainError

logger = logging.getLogger(__name__)

# Seconds a cycle waits past the timeout, so a host failing at its own per-call timeout reports its
# own message ("timed out after 10 s", "connection refused") rather than the cycle's deadline.
DEADLINE_MARGIN = 0.5
# The key of the PostgreSQL advisory lock that keeps two cycles from overlapping (any fixed number).
LOCK_KEY = zlib.crc32(b"wharf.hosts.collect_all")
COLLECTOR = "collector"
KNOWN_STATES = {state.value for state in ContainerState} - {ContainerState.REMOVED.value}
# Container fields a collection refreshes (last_seen is written separately for every seen row).
CONTAINER_FIELDS = ("name", "image", "command", "state", "status", "ports", "created", "removed")


@dataclass
class Poll:
    """What one host answered: its facts and containers, or the error that stopped the poll."""

    facts: HostFacts | None = None
    containers: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""
    seconds: float = 0.0
    usage: Usage | None = None


@dataclass
class HostOutcome:
    """One host's result in a cycle."""

    host_id: int
    name: str
    state: str
    error: str = ""
    containers: int = 0
    seconds: float = 0.0


@dataclass
class CycleReport:
    """What a collection cycle did: how many hosts it polled, how long it took, each host's outcome."""

    hosts: int = 0
    took: float = 0.0
    outcomes: list[HostOutcome] = field(default_factory=list)
    # True when another cycle was still running, so this one did nothing.
    skipped: bool = False

    def outcome(self, host: ContainerHost) -> HostOutcome | None:
        """The outcome of `host` in this cycle, if it was polled."""
        return next((o for o in self.outcomes if o.host_id == host.pk), None)


def poll(client: DockerClient, timeout: float) -> Poll:
    """Ask one host for its facts and containers; never raises (the error is in the result)."""
    started = time.monotonic()
    result = Poll()
    try:
        result.facts = client.facts()
        result.containers = client.containers()
        # Stats may take at most half of what is left of the poll: a slow sample must not make the host UNREACHABLE.
        result.usage = _usage(client, result.containers, started + timeout / 2)
    except DomainError as exc:
        result.facts, result.error = None, exc.message
    except Exception as exc:  # A host answering nonsense must not stop the cycle for the others.
        logger.exception("polling %s failed", client.url)
        result.facts, result.error = None, f"{client.address}: unexpected answer ({type(exc).__name__})"
    finally:
        client.close()
    result.seconds = time.monotonic() - started
    return result


def _usage(client: DockerClient, containers: list[dict[str, Any]], deadline: float) -> Usage | None:
    """The running containers' summed stats (at most HOST_SAMPLE_MAX_CONTAINERS); None when they cannot be had."""
    limit = settings.HOST_SAMPLE_MAX_CONTAINERS
    if not limit:
        return None
    running = [str(c.get("Id")) for c in containers if c.get("Id") and _state(c) == ContainerState.RUNNING]
    try:
        return client.usage(running[:limit], deadline)
    except DomainError as exc:
        # A host that lists its containers but cannot give stats is still ON: only its sample is missing.
        logger.info("no usage sample of %s: %s", client.address, exc.message)
        return None


# --- entry points ------------------------------------------------------------------------------


def collect_host_by_id(host_id: int) -> None:
    """Collect one host now (after it is added or enabled); a host gone or disabled meanwhile is skipped."""
    host = ContainerHost.objects.select_related("project", "credential").filter(pk=host_id).first()
    if host is None:
        logger.info("host %s is gone: nothing to collect", host_id)
        return
    collect_host(host)


def collect_host(host: ContainerHost) -> None:
    """Poll one host and record what it answered (nothing for a DISABLED host)."""
    if host.state == HostState.DISABLED:
        return
    _collect([host], settings.HOST_TIMEOUT_SECONDS)


def collect_all(timeout: float | None = None) -> CycleReport:
    """One collection cycle over every host that is not DISABLED; skipped while another cycle runs."""
    with cycle_lock() as acquired:
        if not acquired:
            logger.info("host collection skipped: the previous cycle is still running")
            return CycleReport(skipped=True)
        hosts = list(ContainerHost.objects.exclude(state=HostState.DISABLED).select_related("project", "credential"))
        report = _collect(hosts, timeout or settings.HOST_TIMEOUT_SECONDS)
    unreachable = sum(1 for o in report.outcomes if o.state == HostState.UNREACHABLE)
    logger.info("collected %d hosts in %.2f s, %d unreachable", report.hosts, report.took, unreachable)
    return report


# --- the cycle ---------------------------------------------------------------------------------


def _collect(hosts: list[ContainerHost], timeout: float) -> CycleReport:
    """Poll `hosts` concurrently within one deadline, then record each outcome in this thread."""
    started = time.monotonic()
    report = CycleReport(hosts=len(hosts))
    if not hosts:
        return report
    polls = _poll_concurrently(hosts, timeout)
    # Read every host's known containers in one query rather than one per host.
    known = _known_containers(hosts)
    for host in hosts:
        report.outcomes.append(_record_safely(host, polls[host.pk], known.get(host.pk, {})))
    report.took = time.monotonic() - started
    return report


def _poll_concurrently(hosts: list[ContainerHost], timeout: float) -> dict[int, Poll]:
    """Each host's poll, one thread per host; a host still busy at the deadline counts as timed out."""
    # Clients are built here: building one reads the host's pinned certificates from the database.
    clients: dict[int, DockerClient | Poll] = {}
    for host in hosts:
        try:
            clients[host.pk] = client_for(host, timeout)
        except DomainError as exc:
            clients[host.pk] = Poll(error=exc.message)
        except Exception as exc:  # A credential that cannot be loaded must not stop the cycle for the others.
            logger.exception("building the client of host %s failed", host.name)
            clients[host.pk] = Poll(error=f"cannot connect with the host's settings ({type(exc).__name__})")
    polls = {pk: c for pk, c in clients.items() if isinstance(c, Poll)}
    pending = {pk: c for pk, c in clients.items() if isinstance(c, DockerClient)}
    if not pending:
        return polls
    # One thread per host (they wait on the network, not the CPU): with fewer, dead hosts would queue
    # behind each other and the cycle would cost more than one timeout.
    pool = ThreadPoolExecutor(max_workers=len(pending), thread_name_prefix="host-poll")
    futures: dict[int, Future[Poll]] = {pk: pool.submit(poll, client, timeout) for pk, client in pending.items()}
    wait(futures.values(), timeout=timeout + DEADLINE_MARGIN)
    # Stragglers keep their thread until their own call times out; their answers are discarded.
    pool.shutdown(wait=False, cancel_futures=True)
    for pk, future in futures.items():
        if future.done() and not future.cancelled():
            polls[pk] = future.result()
        else:
            address = pending[pk].address
            polls[pk] = Poll(error=f"{address}: timed out: no complete answer within {timeout:g} s", seconds=timeout)
    return polls


def _known_containers(hosts: list[ContainerHost]) -> dict[int, dict[str, Container]]:
    """host id -> container id -> row, for the containers these hosts had at the last collection.

    Rows already marked removed stay out: they pile up as containers come and go, and a cycle reads
    them only when a host lists one of their ids again.
    """
    known: dict[int, dict[str, Container]] = {host.pk: {} for host in hosts}
    rows = Container.objects.filter(host__in=hosts).exclude(container_id="").exclude(state=ContainerState.REMOVED)
    for row in rows:
        known[row.host_id][row.container_id] = row
    return known


def _record_safely(host: ContainerHost, result: Poll, known: dict[str, Container]) -> HostOutcome:
    """Record one host's poll; a database fault for one host is logged and the cycle goes on."""
    try:
        with transaction.atomic():
            return _record(host, result, known)
    except Exception as exc:
        logger.exception("recording the collection of host %s failed", host.name)
        return HostOutcome(host.pk, host.name, host.state, f"recording failed: {exc}", seconds=result.seconds)


def _record(host: ContainerHost, result: Poll, known: dict[str, Container]) -> HostOutcome:
    """Write the host's new state and facts, audit a state change, and sync its containers when it answered."""
    now = timezone.now()
    state = HostState.ON if result.facts is not None else HostState.UNREACHABLE
    fields: dict[str, Any] = {"state": state, "last_error": result.error, "last_collected": now}
    if result.facts is not None:
        fields.update(_fact_fields(result.facts), last_seen=now)
    # Conditional, so a host an administrator disabled (or removed) during the cycle stays as they left it.
    updated = ContainerHost.objects.filter(pk=host.pk, state__in=[HostState.ON, HostState.UNREACHABLE]).update(**fields)
    if not updated:
        return HostOutcome(host.pk, host.name, host.state, "disabled or removed during the cycle")
    if host.state != state:
        detail = {"from": host.state, "to": state, "error": result.error}
        record(Actor.system(COLLECTOR), "state", "host", host.name, project=host.project, **detail)
    for name, value in fields.items():
        setattr(host, name, value)
    if result.facts is not None:
        _sync_containers(host, result.containers, known, now)
        _sample(host, result, now)
        if host.kind == HostKind.VCH and host.project.content_trust:
            # The whitelist may have changed since it was judged (the vSphere administrator redeployed the VCH).
            judge_whitelist(Actor.system(COLLECTOR), host)
    return HostOutcome(host.pk, host.name, state, result.error, len(result.containers), result.seconds)


def _sample(host: ContainerHost, result: Poll, now: datetime.datetime) -> None:
    """Keep this poll's CPU and memory reading of the host, and drop the readings past their retention."""
    facts, usage = result.facts, result.usage or Usage()
    if facts is None:
        return
    previous = HostSample.objects.filter(host=host, time__lt=now).order_by("-time").first()
    HostSample.objects.create(
        host=host,
        time=now,
        cpu_percent=_cpu_percent(previous, usage) if result.usage is not None else None,
        memory_used_bytes=usage.memory_used_bytes,
        memory_total_bytes=max(0, facts.memory_bytes),
        containers_running=max(0, facts.containers_running),
        container_cpu_ns=usage.container_cpu_ns,
        system_cpu_ns=usage.system_cpu_ns,
    )
    retention = datetime.timedelta(minutes=settings.HOST_SAMPLE_RETENTION_MINUTES)
    HostSample.objects.filter(host=host, time__lt=now - retention).delete()


def _cpu_percent(previous: HostSample | None, usage: Usage) -> float | None:
    """The containers' share of the host's CPU since the previous sample, 0-100; None without a usable one."""
    if usage.system_cpu_ns == 0:
        # No container is running (or none answered): they use none of the CPU.
        return 0.0
    if previous is None or previous.system_cpu_ns == 0 or usage.system_cpu_ns <= previous.system_cpu_ns:
        return None
    # The host's CPU time counts every CPU; the containers' is the sum over them, so the ratio is already a share
    # of the whole host. Containers that started or stopped in between bend the sum: the share is clamped.
    share = (usage.container_cpu_ns - previous.container_cpu_ns) / (usage.system_cpu_ns - previous.system_cpu_ns)
    return round(min(max(share * 100.0, 0.0), 100.0), 2)


def _fact_fields(facts: HostFacts) -> dict[str, Any]:
    """The host columns a successful poll refreshes (the API version stays the one agreed at adding)."""
    return {
        "engine_version": facts.engine_version[:100],
        "operating_system": facts.operating_system[:200],
        "cpus": max(0, facts.cpus),
        "memory_bytes": max(0, facts.memory_bytes),
        "containers_running": max(0, facts.containers_running),
        "containers_stopped": max(0, facts.containers_stopped),
        "images": max(0, facts.images),
        **whitelist_columns(facts.raw_info),
    }


# --- containers --------------------------------------------------------------------------------


def _sync_containers(
    host: ContainerHost, listed: list[dict[str, Any]], known: dict[str, Container], now: datetime.datetime
) -> None:
    """Upsert the host's containers from its listing and mark the ones gone from it removed; a few queries."""
    listing: dict[str, dict[str, Any]] = {}
    for item in listed:
        values = container_values(item)
        container_id = values.pop("container_id")
        if container_id:
            listing[container_id] = values
    rows = dict(known)
    unknown = [cid for cid in listing if cid not in known]
    if unknown:
        # Rows the snapshot left out: marked removed earlier, or given their id by a provisioning job since.
        rows.update((row.container_id, row) for row in Container.objects.filter(host=host, container_id__in=unknown))
    new: list[Container] = []
    changed: list[Container] = []
    for container_id, values in listing.items():
        row = rows.get(container_id)
        if row is None:
            # Not provisioned through the portal (or its job has not recorded the id yet): discovered.
            new.append(Container(host=host, container_id=container_id, provisioned=False, last_seen=now, **values))
        elif any(getattr(row, name) != value for name, value in values.items()):
            for name, value in values.items():
                setattr(row, name, value)
            changed.append(row)
    # A provisioning job may record the same id meanwhile; its row (provisioned=True) wins.
    Container.objects.bulk_create(new, ignore_conflicts=True)
    if changed:
        Container.objects.bulk_update(changed, CONTAINER_FIELDS, batch_size=500)
    still_there = [cid for cid in listing if cid in rows]
    if still_there:
        Container.objects.filter(host=host, container_id__in=still_there).update(last_seen=now)
    # Only rows known before the poll can be judged gone: a row whose id a provisioning job recorded
    # after the host listed its containers is not in `known`, and stays as the job left it.
    gone = [row.pk for cid, row in known.items() if cid not in listing]
    if gone:
        Container.objects.filter(pk__in=gone).update(state=ContainerState.REMOVED, removed=now)


def container_values(item: dict[str, Any]) -> dict[str, Any]:
    """The Container columns for one entry of GET /containers/json."""
    names = item.get("Names") or []
    container_id = str(item.get("Id") or "")
    return {
        "container_id": container_id,
        "name": (str(names[0]).lstrip("/") if names else container_id[:12])[:255],
        "image": str(item.get("Image") or "")[:500],
        "command": str(item.get("Command") or "")[:1000],
        "state": _state(item),
        "status": str(item.get("Status") or "")[:200],
        "ports": [_port(port) for port in item.get("Ports") or []],
        "created": datetime.datetime.fromtimestamp(int(item.get("Created") or 0), tz=datetime.UTC),
        "removed": None,
    }


def _state(item: dict[str, Any]) -> str:
    """The container's state; derived from Status when State is missing or unknown (old engines, VIC)."""
    state = str(item.get("State") or "").lower()
    if state in KNOWN_STATES:
        return state
    status = str(item.get("Status") or "").lower()
    if status.startswith("up"):
        return ContainerState.PAUSED if "paused" in status else ContainerState.RUNNING
    if status.startswith("created"):
        return ContainerState.CREATED
    if status.startswith("restarting"):
        return ContainerState.RESTARTING
    return ContainerState.EXITED


def _port(port: dict[str, Any]) -> dict[str, Any]:
    """One published or exposed port as the portal stores it."""
    return {
        "ip": str(port.get("IP") or ""),
        "private": port.get("PrivatePort"),
        "public": port.get("PublicPort"),
        "protocol": str(port.get("Type") or "tcp"),
    }


# --- no overlapping cycles ---------------------------------------------------------------------


@contextlib.contextmanager
def cycle_lock() -> Iterator[bool]:
    """Hold the collection lock for a cycle; yields False when another cycle (in any process) holds it.

    A lock that its holder's death releases (a PostgreSQL session advisory lock, or a file lock in the
    data directory when the database is SQLite, which means one machine): a crashed worker never
    leaves a stale lock behind, so there is no expiry to tune against the cycle's length.
    """
    if connection.vendor == "postgresql":
        with advisory_lock(LOCK_KEY) as acquired:
            yield acquired
    else:
        with file_lock(settings.DATA_DIR / "host-collection.lock") as acquired:
            yield acquired


@contextlib.contextmanager
def advisory_lock(key: int) -> Iterator[bool]:
    """A PostgreSQL session advisory lock, if free; yields whether this connection got it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        acquired = bool(cursor.fetchone()[0])
    try:
        yield acquired
    finally:
        if acquired:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[bool]:
    """An exclusive lock on a file, if free; yields whether this open of the file got it."""
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

"""Replicate 20 repositories (about 1 GiB) through a replication rule, with the copier alone and with skopeo.

The source is the portal's integrated registry: a docker-registry in token mode (Wharf's configuration,
registries.registry_config) trusting the portal's token certificate, which settings.REGISTRY_URL points at and
which the portal reads with its system tokens. It gets 20 repositories of random layers in project `bench`, each
with three tags (two on one digest, a third image sharing its base layer), and the Repository and Tag rows the
registry's events would have written. Each round copies all of them to three empty destination registries
(plain HTTP, no auth): with Wharf as a user runs it - an endpoint of kind registry, a rule, then Replicate
(services.run_rule) and the parent job run in this process as a worker runs it (portal.core.jobs.run_job), which
runs one child job per repository, REPLICATION_CONCURRENCY (--parallel) at a time - with the copier alone
(replication.copier.Copier in threads, no jobs), and with `skopeo sync --src docker --dest docker`, --parallel
processes at a time, given a system token for the source. The order of the three rotates between rounds. Prints
MiB/s for each, the rule's and the copier's ratio to skopeo per round and their medians (budget: the rule >= 0.9
x skopeo), where the rule's time went, then a rerun of each with nothing changed: its time and the blob bytes
sent (budget 0, read from the tasks' counters and the destination's access log).

    .venv/bin/python bench/replication.py [--size-mib 1024] [--repositories 20] [--parallel 4] [--rounds 2]
                                          [--db sqlite|postgres]

The portal's database is SQLite in a temporary data directory, or (--db postgres) a scratch PostgreSQL database,
`wharf_bench_replication` on the test server (WHARF_BENCH_POSTGRES_URL to name another), created empty and
dropped after.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path: put the repository root there instead, so `bench.*`
# and the portal's apps import.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from bench.common import free_port, migrated_portal, scratch_postgres

if TYPE_CHECKING:
    from portal.core.audit import Actor
    from projects.models import Project
    from registries.client import RegistryClient
    from replication.copier import CopyStats
    from replication.models import Execution, Rule

POSTGRES_URL = os.environ.get("WHARF_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/wharf_bench_replication")
MIB = 1024 * 1024
PROJECT = "bench"
WAYS = ("rule", "copier", "skopeo")
BUDGET = 0.9
T = TypeVar("T")
# The access log line of a request: "METHOD /path HTTP/1.1" status.
ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/1\.1" (\d{3})')


@dataclass
class Registry:
    """A docker-registry on the loopback: its URL, storage and access log."""

    url: str
    storage: Path
    log: Path
    process: subprocess.Popen

    @property
    def address(self) -> str:
        return self.url.removeprefix("http://")

    def blob_uploads(self) -> int:
        """How many blob uploads the registry has finished (monolithic PUTs and the last PUT of chunked ones)."""
        text = self.log.read_text(errors="replace")
        return sum(1 for m in ACCESS.finditer(text) if m[1] == "PUT" and "/blobs/uploads/" in m[2] and m[3] == "201")


def plain_config(workdir: Path, port: int) -> dict[str, Any]:
    """A destination: plain HTTP on the loopback, no auth, the access log on."""
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": False}},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
        "http": {"addr": f"127.0.0.1:{port}", "secret": "bench"},
    }


def integrated_config(workdir: Path, port: int) -> dict[str, Any]:
    """The integrated registry as Wharf configures it: token auth with the portal's token certificate.

    Without notifications: no web process is there to take them, and the registry sends them in the background,
    off the requests' path.
    """
    from django.conf import settings

    from portal.core.certificates import ensure_pki
    from registries import registry_config

    config = registry_config.render(
        listen=f"127.0.0.1:{port}",
        storage_dir=workdir / "storage",
        token_cert=ensure_pki().token_cert,
        realm="http://127.0.0.1:1/service/token",
        notify_url="http://127.0.0.1:1/service/notifications",
        notify_secret="bench",
        http_secret="bench",
        service=settings.REGISTRY_SERVICE,
        issuer=settings.TOKEN_ISSUER,
    )
    config.pop("notifications")
    return config


@contextlib.contextmanager
def registry(workdir: Path, port: int | None = None, integrated: bool = False) -> Iterator[Registry]:
    """docker-registry on a loopback port (a free one unless given); stopped and its storage removed after."""
    from registries import registry_config

    binary = shutil.which("docker-registry")
    if binary is None:
        sys.exit("docker-registry is not installed: apt-get install docker-registry")
    port = port or free_port()
    settings = (integrated_config if integrated else plain_config)(workdir, port)
    config = registry_config.write(workdir / "config.yml", settings)
    log = workdir / "registry.log"
    process = subprocess.Popen([binary, "serve", str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"docker-registry did not start:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(requests.ConnectionError):
                requests.get(f"{url}/v2/", timeout=1)
                break
            time.sleep(0.1)
        yield Registry(url, Path(settings["storage"]["filesystem"]["rootdirectory"]), log, process)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# The data set.


@dataclass(frozen=True)
class Image:
    """A pushed image: its manifest digest and size (config plus layers), as a Tag row holds them."""

    digest: str
    size: int


def fill(repositories: int, size_mib: int, parallel: int) -> dict[str, dict[str, Image]]:
    """Push the repositories (random layers, `size_mib` in all) to the integrated registry; each one's tags."""
    from registries.client import RegistryClient

    per_repository = size_mib * MIB // repositories
    names = [f"{PROJECT}/app{number:02d}" for number in range(repositories)]

    def push_repository(name: str) -> dict[str, Image]:
        client = RegistryClient()
        base = _push_blob(client, name, os.urandom(per_repository // 2))
        first = _push_blob(client, name, os.urandom(per_repository // 4))
        second = _push_blob(client, name, os.urandom(per_repository - per_repository // 2 - per_repository // 4))
        one = _push_image(client, name, ["1.0", "latest"], [base, first])
        other = _push_image(client, name, ["1.1"], [base, second])
        return {"1.0": one, "1.1": other, "latest": one}

    with ThreadPoolExecutor(parallel) as pool:
        return dict(zip(names, pool.map(push_repository, names), strict=True))


def _push_blob(client: RegistryClient, repository: str, data: bytes) -> dict[str, Any]:
    """Upload a blob; returns its descriptor."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.upload_blob(repository, digest, io.BytesIO(data))
    return {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(data), "digest": digest}


def _push_image(client: RegistryClient, repository: str, tags: list[str], layers: list[dict[str, Any]]) -> Image:
    """Upload a config and put a Docker v2 manifest of it and the layers under the tags."""
    from registries.client import DOCKER_MANIFEST, Manifest, manifest_digest

    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    descriptor = _push_blob(client, repository, config)
    descriptor["mediaType"] = "application/vnd.docker.container.image.v1+json"
    content = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor, "layers": layers}
    ).encode()
    manifest = Manifest(content, DOCKER_MANIFEST, manifest_digest(content))
    for tag in tags:
        client.put_manifest(repository, tag, manifest)
    return Image(manifest.digest, sum(part["size"] for part in [descriptor, *layers]))


def record_pushes(images: dict[str, dict[str, Image]]) -> Project:
    """Project `bench` with the Repository and Tag rows the registry's push events write."""
    from projects.models import Project
    from registries.models import Repository, Tag

    project = Project.objects.create(name=PROJECT)
    for name, tags in images.items():
        repository = Repository.objects.create(project=project, name=name)
        Tag.objects.bulk_create(
            Tag(repository=repository, name=tag, digest=image.digest, size=image.size) for tag, image in tags.items()
        )
    return project


# The three ways to copy.


class Wharf:
    """The portal's side: an administrator who adds an endpoint and a rule per destination and runs the rules."""

    def __init__(self, project: Project) -> None:
        from portal.core.audit import Actor
        from portal.core.models import User

        admin = User.objects.create_user("bench-admin", password="Bench-Passw0rd", is_portal_admin=True)
        self.actor: Actor = Actor(admin, "127.0.0.1")
        self.project = project
        self.rules = 0

    def rule_to(self, destination: Registry) -> Rule:
        """An endpoint of kind registry for the destination and an enabled rule to it, replicating the project.

        Enabling a rule starts a run at once; that one is stopped before it ran, so the measured run is a Replicate.
        """
        from portal.core import jobs
        from replication import services
        from replication.models import EndpointKind, Execution

        self.rules += 1
        endpoint = services.create_endpoint(
            self.actor, f"dr{self.rules}", destination.url, EndpointKind.REGISTRY, verify_remote_cert=False
        )
        rule = services.create_rule(self.actor, f"to-dr{self.rules}", self.project, endpoint)
        for execution in Execution.objects.filter(rule=rule).select_related("job"):
            jobs.request_stop(self.actor, execution.job)
        return rule

    def replicate(self, rule: Rule) -> Execution:
        """Replicate: start a run of the rule, run its parent job here as a worker would; exit unless it succeeded."""
        from portal.core import jobs
        from portal.core.models import JobState
        from replication import services

        execution = services.run_rule(self.actor, rule)
        job = jobs.run_job(execution.job_id)
        if job is None or job.state != JobState.SUCCEEDED:
            sys.exit(f"the run of rule {rule.name} did not succeed:\n{job.log if job else 'not claimed'}")
        return execution


def copy_repositories(destination_url: str, repositories: dict[str, list[str]], parallel: int) -> CopyStats:
    """Copy each repository's tags from the integrated registry to the same name at the destination with the
    copier alone, `parallel` at a time, with the clients a task uses; returns the summed CopyStats."""
    from registries.client import RegistryClient
    from replication import remote
    from replication.copier import Copier, CopyStats

    # Shared, so a blob one copier sent can be mounted by another (none here: every repository's blobs differ).
    homes: dict[str, str] = {}

    def copy(name: str) -> CopyStats:
        copier = Copier(RegistryClient(), remote.registry_client(destination_url, None), blob_homes=homes)
        return copier.copy_repository(name, name, repositories[name])

    total = CopyStats()
    with ThreadPoolExecutor(parallel) as pool:
        for stats in pool.map(copy, repositories):
            total.add(stats)
    return total


def skopeo_sync(source: Registry, destination: Registry, repositories: dict[str, list[str]], parallel: int) -> None:
    """`skopeo sync` each repository to the same name at the destination, `parallel` processes at a time."""
    from registries.token import Access, system_token

    home = Path(tempfile.mkdtemp(prefix="skopeo-home-"))

    def sync(name: str) -> None:
        namespace, _, _ = name.rpartition("/")
        # The token a client gets from the portal's token service for a pull of this repository.
        token = system_token([Access("repository", name, ("pull",))])
        command = ["skopeo", "--insecure-policy", "sync", "--src", "docker", "--dest", "docker", "--preserve-digests"]
        command += ["--src-tls-verify=false", "--dest-tls-verify=false", f"--src-registry-token={token}"]
        command += [f"{source.address}/{name}", f"{destination.address}/{namespace}"]
        # A HOME of its own: no stored credentials or settings interfere.
        result = subprocess.run(command, env={**os.environ, "HOME": str(home)}, capture_output=True)
        if result.returncode != 0:
            sys.exit(f"skopeo sync {name} failed:\n{result.stderr.decode()}")

    try:
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(sync, repositories))
    finally:
        shutil.rmtree(home, ignore_errors=True)


def timed(action: Callable[[], T]) -> tuple[float, T]:
    """Seconds an action took (after a sync, so the previous copy's writeback does not land on it), its result."""
    os.sync()
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def check_copied(destination: Registry, images: dict[str, dict[str, Image]]) -> None:
    """Exit unless every tag is at the destination on its source digest."""
    from registries.client import RegistryClient

    client = RegistryClient(destination.url)
    for name, tags in images.items():
        for tag, image in tags.items():
            found = client.head_manifest(name, tag)
            if found is None or found.digest != image.digest:
                sys.exit(f"{destination.url}: {name}:{tag} is {found}, not the source's {image.digest}")


# The run.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="bytes of all repositories together")
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="repositories copied at a time")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite", help="the portal's database")
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed: apt-get install skopeo")
    # The caller's WHARF_* variables stay out (an eager task setting, another database): the run measures its own.
    for name in [name for name in os.environ if name.startswith("WHARF_")]:
        os.environ.pop(name)
    port = free_port()
    settings = {
        "WHARF_REGISTRY_URL": f"http://127.0.0.1:{port}",
        "WHARF_REPLICATION_CONCURRENCY": str(args.parallel),
        "WHARF_LOG_LEVEL": "WARNING",
    }
    with contextlib.ExitStack() as stack:
        if args.db == "postgres":
            settings["WHARF_DATABASE_URL"] = stack.enter_context(scratch_postgres(POSTGRES_URL))
        work = stack.enter_context(migrated_portal("wharf-bench-replication-", settings))
        run(work, port, args)


@dataclass(frozen=True)
class Run:
    """What every copy of a run shares: the portal, the source and its repositories' tags, copies at a time."""

    wharf: Wharf
    source: Registry
    repositories: dict[str, list[str]]
    parallel: int


def run(work: Path, port: int, args: argparse.Namespace) -> None:
    """Fill the source, then the rounds and the reruns; print the figures."""
    from django.db import connection

    # Queuing the run's job (for a worker this bench does not start) says the filesystem broker has no host.
    logging.getLogger("kombu.connection").setLevel(logging.ERROR)
    with registry(work / "source", port, integrated=True) as source:
        started = time.perf_counter()
        images = fill(args.repositories, args.size_mib, args.parallel)
        wharf = Wharf(record_pushes(images))
        repositories = {name: sorted(tags) for name, tags in images.items()}
        bench = Run(wharf, source, repositories, args.parallel)
        mib = sum(_bytes(source.storage / "docker/registry/v2/blobs")) / MIB
        print(
            f"{len(repositories)} repositories, 3 tags each (2 images, 2 of the tags on one digest), {mib:.0f} MiB of "
            f"blobs, pushed in {time.perf_counter() - started:.0f} s; {args.parallel} at a time; portal on "
            f"{connection.vendor}; skopeo {_skopeo_version()}; load average {_load()}"
        )
        seconds: dict[str, list[float]] = {who: [] for who in WAYS}
        reruns: dict[str, str] = {}
        for number in range(args.rounds):
            # Rotate which goes first: the machine's speed drifts within a run.
            for who in WAYS[number % 3 :] + WAYS[: number % 3]:
                with registry(work / f"{who}-{number}") as destination:
                    rule = wharf.rule_to(destination) if who == "rule" else None
                    took, execution = copy_with(bench, who, rule, destination)
                    seconds[who].append(took)
                    check_copied(destination, images)
                    if who == "rule":
                        print(f"  the rule's run: {breakdown(execution, took)}")
                    if number == args.rounds - 1:
                        reruns[who] = rerun(bench, who, rule, destination)
            line = ", ".join(
                f"{label(who)} {mib / seconds[who][-1]:.0f} MiB/s ({seconds[who][-1]:.1f} s)" for who in WAYS
            )
            ratios = ", ".join(f"{who} x skopeo {seconds['skopeo'][-1] / seconds[who][-1]:.2f}" for who in WAYS[:2])
            print(f"round {number + 1}: {line}: {ratios}")
        for who in WAYS[:2]:
            ratio = statistics.median(b / a for a, b in zip(seconds[who], seconds["skopeo"], strict=True))
            verdict = f" (budget >= {BUDGET}: {'held' if ratio >= BUDGET else 'MISSED'})" if who == "rule" else ""
            print(f"{label(who)} x skopeo, median of the rounds: {ratio:.2f}{verdict}")
        for who in WAYS:
            print(f"rerun, nothing changed: {reruns[who]}")
        print(f"load average at the end {_load()}")


def label(who: str) -> str:
    return {"rule": "rule (jobs)", "copier": "copier alone", "skopeo": "skopeo sync"}[who]


def copy_with(run: Run, who: str, rule: Rule | None, destination: Registry) -> tuple[float, Any]:
    """Copy every repository one way; the seconds it took and what it returns (the Execution, the CopyStats)."""
    if who == "rule" and rule is not None:
        return timed(lambda: run.wharf.replicate(rule))
    if who == "copier":
        return timed(lambda: copy_repositories(destination.url, run.repositories, run.parallel))
    return timed(lambda: skopeo_sync(run.source, destination, run.repositories, run.parallel))[0], None


def task_totals(execution: Execution) -> dict[str, int]:
    """The execution's tasks' counters, summed."""
    from django.db.models import Sum

    from replication.models import Task

    sums = execution.tasks.aggregate(**{name: Sum(name) for name in Task.COUNTERS})
    return {name: value or 0 for name, value in sums.items()}


def breakdown(execution: Execution, took: float) -> str:
    """Where the rule's time went: before the parent ran, planning, the children, the slots they left idle, after."""
    from portal.core.models import Job

    parent = Job.objects.get(pk=execution.job_id)
    children = list(Job.objects.filter(parent=parent).order_by("started"))
    first = min(child.started for child in children)
    last = max(child.finished for child in children)
    busy = sum((child.finished - child.started).total_seconds() for child in children)
    span = (last - first).total_seconds()
    slots = min(len(children), _concurrency())
    idle = slots * span - busy
    return (
        f"{took:.2f} s in all; parent job {(parent.finished - parent.started).total_seconds():.2f} s, "
        f"first child started after {(first - parent.started).total_seconds():.2f} s, children "
        f"{span:.2f} s ({busy:.1f} task-seconds over {slots} slots, {idle:.1f} slot-seconds idle), parent ended "
        f"{(parent.finished - last).total_seconds():.2f} s after the last child"
    )


def _concurrency() -> int:
    from django.conf import settings

    return settings.REPLICATION_CONCURRENCY


def rerun(run: Run, who: str, rule: Rule | None, destination: Registry) -> str:
    """Copy again with nothing changed; its time and the blob bytes and uploads sent, in words."""
    uploads = destination.blob_uploads()
    took, result = copy_with(run, who, rule, destination)
    sent = destination.blob_uploads() - uploads
    logged = f"{sent} blob uploads in the destination's log ({uploads} in the first copy)"
    if who == "skopeo":
        return f"skopeo sync {took:.2f} s, {logged}"
    if who == "rule":
        totals = task_totals(result)
        copied, skipped = totals["bytes_copied"], totals["tags_skipped"]
        what = f"rule (jobs) {took:.2f} s, {result.tasks.count()} tasks, their bytes_copied {copied}"
    else:
        copied, skipped = result.bytes_copied, result.tags_skipped
        what = f"copier alone {took:.2f} s, {copied} blob bytes sent"
    verdict = "held" if copied == 0 and sent == 0 else "MISSED"
    return f"{what}, {logged}, {skipped} tags skipped (budget 0 bytes: {verdict})"


def _bytes(folder: Path) -> Iterator[int]:
    return (path.stat().st_size for path in folder.rglob("data"))


def _skopeo_version() -> str:
    return subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip().split()[-1]


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


if __name__ == "__main__":
    main()

"""Replicate 20 repositories (about 1 GiB) between two docker-registry processes with the copier and with skopeo.

The source registry gets 20 repositories of random layers, each with three tags (two on one digest, a third
image sharing its base layer). Each round copies all of them to an empty destination with the copier
(replication.copier.Copier, 4 repositories at a time in threads, as an execution runs its tasks) and, to another
empty destination, with `skopeo sync --src docker --dest docker` (4 processes at a time); the order of the two
alternates between rounds. All registries are plain HTTP on the loopback with the same configuration. Prints
MiB/s for both, the copier's ratio to skopeo per round and its median (budget >= 0.9), then a rerun of both with
nothing changed: its time and the blob bytes the copier sent (budget 0, also read from the destination's
access log).

    .venv/bin/python bench/replication.py [--size-mib 1024] [--repositories 20] [--parallel 4] [--rounds 2]
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
from typing import TYPE_CHECKING, TypeVar

import requests

from bench.common import free_port

if TYPE_CHECKING:
    from registries.client import RegistryClient
    from replication.copier import CopyStats

MIB = 1024 * 1024
T = TypeVar("T")
# The access log line of a request: "METHOD /path HTTP/1.1" status.
ACCESS = re.compile(r'"([A-Z]+) (\S+) HTTP/1\.1" (\d{3})')


@dataclass
class Registry:
    """A plain-HTTP docker-registry on the loopback: its URL, storage and access log."""

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


@contextlib.contextmanager
def registry(workdir: Path) -> Iterator[Registry]:
    """docker-registry on a free loopback port, plain HTTP and no auth; stopped and its storage removed after."""
    from registries import registry_config

    binary = shutil.which("docker-registry")
    if binary is None:
        sys.exit("docker-registry is not installed: apt-get install docker-registry")
    port = free_port()
    storage = workdir / "storage"
    config = registry_config.write(
        workdir / "config.yml",
        {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
            "http": {"addr": f"127.0.0.1:{port}", "secret": "bench"},
        },
    )
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
        yield Registry(url, storage, log, process)
    finally:
        process.terminate()
        process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


# The data set.


def fill(url: str, repositories: int, size_mib: int, parallel: int) -> dict[str, list[str]]:
    """Push the repositories (random layers, `size_mib` in all) to the source; returns each one's tags."""
    from registries.client import RegistryClient

    per_repository = size_mib * MIB // repositories
    names = [f"bench/app{number:02d}" for number in range(repositories)]

    def push_repository(name: str) -> None:
        client = RegistryClient(url)
        base = _push_blob(client, name, os.urandom(per_repository // 2))
        first = _push_blob(client, name, os.urandom(per_repository // 4))
        second = _push_blob(client, name, os.urandom(per_repository - per_repository // 2 - per_repository // 4))
        _push_image(client, name, ["1.0", "latest"], [base, first])
        _push_image(client, name, ["1.1"], [base, second])

    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(push_repository, names))
    return {name: ["1.0", "1.1", "latest"] for name in names}


def _push_blob(client: RegistryClient, repository: str, data: bytes) -> dict[str, object]:
    """Upload a blob; returns its descriptor."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.upload_blob(repository, digest, io.BytesIO(data))
    return {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": len(data), "digest": digest}


def _push_image(client: RegistryClient, repository: str, tags: list[str], layers: list[dict[str, object]]) -> None:
    """Upload a config and put a Docker v2 manifest of it and the layers under the tags."""
    from registries.client import DOCKER_MANIFEST, Manifest, manifest_digest

    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    descriptor = _push_blob(client, repository, config)
    descriptor["mediaType"] = "application/vnd.docker.container.image.v1+json"
    content = json.dumps(
        {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": descriptor, "layers": layers}
    ).encode()
    for tag in tags:
        client.put_manifest(repository, tag, Manifest(content, DOCKER_MANIFEST, manifest_digest(content)))


# The two ways to copy.


def copy_repositories(
    source_url: str, destination_url: str, repositories: dict[str, list[str]], parallel: int
) -> CopyStats:
    """Copy each repository's tags to the same name at the destination with the copier, `parallel` at a time;
    returns the summed CopyStats. (An execution's tasks run the same way, one copier per repository.)"""
    from registries.client import RegistryClient
    from replication.copier import Copier, CopyStats

    # Shared, so a blob one copier sent can be mounted by another (none here: every repository's blobs differ).
    homes: dict[str, str] = {}

    def copy(name: str) -> CopyStats:
        copier = Copier(RegistryClient(source_url), RegistryClient(destination_url), blob_homes=homes)
        return copier.copy_repository(name, name, repositories[name])

    total = CopyStats()
    with ThreadPoolExecutor(parallel) as pool:
        for stats in pool.map(copy, repositories):
            total.add(stats)
    return total


def skopeo_sync(source: Registry, destination: Registry, repositories: dict[str, list[str]], parallel: int) -> None:
    """`skopeo sync` each repository to the same name at the destination, `parallel` processes at a time."""
    home = Path(tempfile.mkdtemp(prefix="skopeo-home-"))

    def sync(name: str) -> None:
        namespace, _, _ = name.rpartition("/")
        command = ["skopeo", "--insecure-policy", "sync", "--src", "docker", "--dest", "docker", "--preserve-digests"]
        command += ["--src-tls-verify=false", "--dest-tls-verify=false"]
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


def check_copied(source: Registry, destination: Registry, repositories: dict[str, list[str]]) -> None:
    """Exit unless every tag is at the destination on its source digest."""
    from registries.client import RegistryClient

    source_client, destination_client = RegistryClient(source.url), RegistryClient(destination.url)
    for name, tags in repositories.items():
        for tag in tags:
            expected = source_client.head_manifest(name, tag)
            if destination_client.head_manifest(name, tag) != expected:
                sys.exit(f"{destination.url}: {name}:{tag} is not the source's {expected}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="bytes of all repositories together")
    parser.add_argument("--repositories", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=4, help="repositories copied at a time")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed: apt-get install skopeo")
    with tempfile.TemporaryDirectory(prefix="wharf-bench-replication-") as tmp:
        os.environ.update(WHARF_DATA_DIR=tmp, DJANGO_SETTINGS_MODULE="portal.settings", WHARF_LOG_LEVEL="WARNING")
        import django

        django.setup()
        run(Path(tmp), args)


def run(work: Path, args: argparse.Namespace) -> None:
    """Fill the source, then the rounds and the rerun; print the figures."""
    with registry(work / "source") as source:
        started = time.perf_counter()
        repositories = fill(source.url, args.repositories, args.size_mib, args.parallel)
        mib = sum(_bytes(source.storage / "docker/registry/v2/blobs")) / MIB
        print(
            f"{len(repositories)} repositories, 3 tags each (2 images, 2 of the tags on one digest), {mib:.0f} MiB of "
            f"blobs, pushed in {time.perf_counter() - started:.0f} s; {args.parallel} at a time; "
            f"skopeo {_skopeo_version()}"
        )
        seconds: dict[str, list[float]] = {"copier": [], "skopeo": []}
        for number in range(args.rounds):
            # Alternate which goes first: the machine's speed drifts within a run.
            for who in ("copier", "skopeo") if number % 2 == 0 else ("skopeo", "copier"):
                with registry(work / f"{who}-{number}") as destination:
                    seconds[who].append(copy_with(who, source, destination, repositories, args.parallel)[0])
                    check_copied(source, destination, repositories)
                    if number == args.rounds - 1:
                        rerun(who, source, destination, repositories, args.parallel)
            ours, theirs = seconds["copier"][-1], seconds["skopeo"][-1]
            print(
                f"round {number + 1}: copier {mib / ours:.0f} MiB/s ({ours:.1f} s), skopeo sync "
                f"{mib / theirs:.0f} MiB/s ({theirs:.1f} s): copier x skopeo {theirs / ours:.2f}"
            )
        ratio = statistics.median(b / a for a, b in zip(seconds["copier"], seconds["skopeo"], strict=True))
        verdict = "held" if ratio >= 0.9 else "MISSED"
        print(f"copier x skopeo, median of the rounds: {ratio:.2f} (budget >= 0.9: {verdict})")


def copy_with(
    who: str, source: Registry, destination: Registry, repositories: dict[str, list[str]], parallel: int
) -> tuple[float, CopyStats | None]:
    """Copy every repository with the copier or skopeo; the seconds it took and the copier's stats."""
    if who == "copier":
        return timed(lambda: copy_repositories(source.url, destination.url, repositories, parallel))
    return timed(lambda: skopeo_sync(source, destination, repositories, parallel))[0], None


def rerun(who: str, source: Registry, destination: Registry, repositories: dict[str, list[str]], parallel: int) -> None:
    """Copy again with nothing changed; print its time and, for the copier, the blob bytes and uploads sent."""
    uploads = destination.blob_uploads()
    took, stats = copy_with(who, source, destination, repositories, parallel)
    sent = destination.blob_uploads() - uploads
    if stats is None:
        print(
            f"rerun, nothing changed: skopeo sync {took:.2f} s, {sent} blob uploads in the destination's log "
            f"({uploads} in the first copy)"
        )
        return
    verdict = "held" if stats.bytes_copied == 0 and sent == 0 else "MISSED"
    print(
        f"rerun, nothing changed: copier {took:.2f} s, {stats.bytes_copied} blob bytes sent, {sent} blob uploads "
        f"in the destination's log ({uploads} in the first copy), {stats.tags_skipped} tags skipped "
        f"(budget 0 bytes: {verdict})"
    )


def _bytes(folder: Path) -> Iterator[int]:
    return (path.stat().st_size for path in folder.rglob("data"))


def _skopeo_version() -> str:
    return subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip().split()[-1]


if __name__ == "__main__":
    main()

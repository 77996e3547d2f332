"""One host collection cycle over N hosts holding 200 containers, with and without dead hosts (budget: a dead
host adds at most its timeout to the cycle, not N x timeout).

Starts two real dockerds on loopback and creates 200 containers on them (100 each, 20 of them running).
Each host the portal polls is a distinct endpoint: a small proxy in front of one of the two daemons
(tests/integration/vch_proxy.EngineProxy, not pretending VIC) that passes every call through and keeps
only its share of the daemon's containers in /containers/json, so the live hosts of a row hold the 200
containers between them. Dead hosts are ports that take connections and never answer a byte. The
portal is a throwaway SQLite database in a temporary data directory.

For each N it times hosts.collection.collect_all: the first cycle (inserting every container) and a
steady one (updating them), with no dead host and then with dead ones. The peer figure is the same
polling done one host after another (no database writes), which is what a sequential collector costs:
every dead host adds a whole timeout.

    .venv/bin/python bench/collection.py [--hosts 1,5,10,20,40] [--timeout 2] [--containers 200]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path: put the repository root there instead, so `bench.*`
# and the portal's apps import.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import json
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from bench.common import migrated_portal
from tests.integration.vch_proxy import EngineProxy

IMAGE = "wharf-bench/busybox:1"
SLOT = "wharf.bench.slot"
RUNNING_EVERY = 10  # one container in ten runs; the others are created and never started
# A dead host may cost its timeout plus the cycle's deadline margin and some scheduling slack.
SLACK = 1.0


class ShareProxy(EngineProxy):
    """A distinct endpoint in front of a dockerd that lists only the containers of its share of the slots."""

    def __init__(self, target: str, share: int, shares: int) -> None:
        super().__init__(target, vic=False)
        self.share, self.shares = share, shares

    def rewrite(self, path: str, content: bytes) -> bytes:
        """/containers/json keeps the containers whose slot falls in this endpoint's share."""
        if path.endswith("/containers/json"):
            listed = json.loads(content)
            mine = [c for c in listed if int((c.get("Labels") or {}).get(SLOT, -1)) % self.shares == self.share]
            return json.dumps(mine).encode()
        return super().rewrite(path, content)


def silent_listener(stack: ExitStack) -> str:
    """A port that accepts connections into its backlog and never answers; its URL."""
    listener = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=128))
    return f"http://127.0.0.1:{listener.getsockname()[1]}"


def fill(url: str, first_slot: int, count: int) -> None:
    """Create `count` containers on a daemon through its API (the docker CLI's own calls), every tenth running."""
    from hosts.docker import DockerClient

    def create(slot: int) -> None:
        with DockerClient(url, timeout=120) as client:
            running = slot % RUNNING_EVERY == 0
            config = {
                "Image": IMAGE,
                "Cmd": ["sleep", "3600"] if running else ["true"],
                "Labels": {SLOT: str(slot)},
                "HostConfig": {"NetworkMode": "none"},
            }
            container_id = client.create(f"bench-{slot:03d}", config)
            if running:
                client.start(container_id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(first_slot, first_slot + count)))


def endpoints(stack: ExitStack, daemons: list[Any], live: int) -> list[str]:
    """`live` distinct endpoints split over the daemons, each listing its share of its daemon's containers."""
    per_daemon = [len(range(index, live, len(daemons))) for index in range(len(daemons))]
    urls = []
    for number in range(live):
        daemon = number % len(daemons)
        proxy = ShareProxy(daemons[daemon].url, number // len(daemons), per_daemon[daemon])
        stack.callback(proxy.close)
        urls.append(proxy.url)
    return urls


def sequential(timeout: float) -> float:
    """Seconds to poll every host one after another (network only): the peer a concurrent cycle beats."""
    from hosts.collection import poll
    from hosts.models import ContainerHost
    from hosts.services import client_for

    started = time.monotonic()
    for host in ContainerHost.objects.select_related("credential"):
        poll(client_for(host, timeout), timeout)
    return time.monotonic() - started


def measure(project: Any, daemons: list[Any], hosts: int, dead: int, timeout: float) -> dict[str, Any]:
    """Register `hosts` hosts (`dead` of them never answering) and time the cycles and the sequential peer."""
    from hosts.collection import collect_all
    from hosts.models import Container, ContainerHost, HostState

    ContainerHost.objects.all().delete()
    with ExitStack() as stack:
        urls = endpoints(stack, daemons, hosts - dead) + [silent_listener(stack) for _ in range(dead)]
        for number, url in enumerate(urls):
            ContainerHost.objects.create(project=project, name=f"host-{number:02d}", url=url)
        first = collect_all(timeout)
        steady = collect_all(timeout)
        peer = sequential(timeout)
    states = [o.state for o in steady.outcomes]
    assert states.count(HostState.UNREACHABLE) == dead, [(o.name, o.error) for o in steady.outcomes]
    return {
        "hosts": hosts,
        "dead": dead,
        "containers": Container.objects.count(),
        "first": first.took,
        "steady": steady.took,
        "sequential": peer,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="1,5,10,20,40", help="comma-separated host counts")
    parser.add_argument("--timeout", type=float, default=2.0, help="per-host timeout in seconds")
    parser.add_argument("--containers", type=int, default=200)
    args = parser.parse_args()
    with migrated_portal("wharf-bench-collection-") as workdir:
        logging.getLogger("hosts.collection").setLevel(logging.WARNING)
        run(workdir, args)


def run(workdir: Path, args: argparse.Namespace) -> None:
    """Start and fill the daemons, then print one row per host count, without and with dead hosts."""
    from projects.models import Project
    from tests.integration.dockerd import start_dockerd

    daemons = []
    try:
        for _ in range(2):
            daemons.append(start_dockerd(tcp=True, image=IMAGE))
        half = args.containers // 2
        for index, daemon in enumerate(daemons):
            fill(daemon.url, index * half, half if index == 0 else args.containers - half)
        project = Project.objects.create(name="bench")
        print(f"2 dockerds, {args.containers} containers ({args.containers // RUNNING_EVERY} running), ", end="")
        print(f"per-host timeout {args.timeout:g} s")
        header = f"{'hosts':>5} {'dead':>4} {'containers':>10} {'first s':>8} {'cycle s':>8} {'sequential s':>12}"
        print(f"{header}  budget (dead hosts add <= one timeout)")
        for hosts in (int(n) for n in args.hosts.split(",")):
            baseline = measure(project, daemons, hosts, 0, args.timeout)
            print_row(baseline, "")
            dead = max(1, hosts // 10)
            if dead >= hosts:
                continue
            row = measure(project, daemons, hosts, dead, args.timeout)
            extra = row["steady"] - baseline["steady"]
            held = extra <= args.timeout + SLACK
            print_row(row, f"+{extra:.2f} s over no dead host: {'held' if held else 'BROKEN'}")
    finally:
        for daemon in daemons:
            daemon.stop()


def print_row(row: dict[str, Any], verdict: str) -> None:
    """One line of the table."""
    print(
        f"{row['hosts']:>5} {row['dead']:>4} {row['containers']:>10} {row['first']:>8.2f} {row['steady']:>8.2f} "
        f"{row['sequential']:>12.2f}  {verdict}"
    )


if __name__ == "__main__":
    main()

"""Image search across 4 real registries holding 2,000 repositories each (budget: warm <= 300 ms, cold <= 2 s).

Starts four docker-registry processes on loopback, fills each with 2,000 repositories (one tiny image whose
config blob is mounted cross-repository, so filling is quick), adds them as global registries of a
throwaway portal database (SQLite in a temporary data directory), and times registries.search.search for
a project: cold (catalog cache empty: every registry's paginated catalog is fetched concurrently) and warm
(catalogs cached). For comparison it times one direct catalog fetch of one registry with requests.

    .venv/bin/python bench/search.py [--repositories 2000] [--registries 4] [--runs 20]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path: put the repository root there instead, so `bench.*`
# and the portal's apps import.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import migrated_portal


def fill(url: str, prefix: str, count: int) -> None:
    """Push `count` repositories named <prefix>/service-NNNN, mounting the config blob from the first."""
    from tests.integration.registry import push_tiny_image

    first = f"{prefix}/service-0000"
    push_tiny_image(url, first, ["latest"])
    with ThreadPoolExecutor(max_workers=8) as pool:
        names = [f"{prefix}/service-{n:04d}" for n in range(1, count)]
        list(pool.map(lambda name: push_tiny_image(url, name, ["latest"], mount_from=first), names))


def timed(call, runs: int = 1) -> list[float]:
    """Milliseconds of each run of `call`."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=2000)
    parser.add_argument("--registries", type=int, default=4)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with migrated_portal("wharf-bench-search-") as workdir:
        from django.core.cache import cache

        run(workdir, args, cache)


def run(workdir: Path, args: argparse.Namespace, cache) -> None:
    """Start and fill the registries, register them, and print the timings."""
    import requests

    from portal.core.audit import Actor
    from portal.core.models import User
    from projects.models import Project
    from registries import external_services, search
    from registries.models import ExternalRegistry
    from tests.integration.registry import start_standalone_registry

    registries = [start_standalone_registry(workdir / f"registry{i}") for i in range(args.registries)]
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=args.registries) as pool:
            list(pool.map(lambda pair: fill(pair[1].url, f"team{pair[0]}", args.repositories), enumerate(registries)))
        total = args.registries * args.repositories
        print(f"filled {args.registries} registries with {total} repositories in {time.monotonic() - started:.1f} s")

        ExternalRegistry.objects.update(enabled=False)  # Docker Hub: never the internet
        admin = User.objects.create_user("bench", password="x", is_portal_admin=True)
        project = Project.objects.create(name="bench")
        for index, registry in enumerate(registries):
            external_services.create_registry(Actor(admin), f"bench{index}", registry.url, insecure=True)

        def direct_catalog() -> None:
            url = f"{registries[0].url}/v2/_catalog?n=1000"
            while url:
                response = requests.get(url, timeout=30)
                link = response.links.get("next", {}).get("url")
                url = f"{registries[0].url}{link}" if link else None

        for query in ("service-07", "service"):
            cold = []
            for _ in range(3):
                cache.clear()
                cold += timed(lambda q=query: search.search(admin, project, q))
            outcome = search.search(admin, project, query)
            assert not outcome.partial, outcome.partial
            warm = timed(lambda q=query: search.search(admin, project, q), args.runs)
            print(
                f"search {query!r}: {len(outcome.results)} results; "
                f"cold median {statistics.median(cold):.0f} ms (budget 2000), "
                f"warm median {statistics.median(warm):.1f} ms / p95 {sorted(warm)[int(len(warm) * 0.95) - 1]:.1f} ms "
                f"(budget 300)"
            )
        baseline = timed(direct_catalog, 5)
        print(
            f"baseline: one direct catalog fetch of {args.repositories} repositories "
            f"(1 registry, no portal) median {statistics.median(baseline):.0f} ms"
        )
    finally:
        for registry in registries:
            registry.stop()


if __name__ == "__main__":
    main()

"""Token issuance rate of the registry token service with 8 concurrent clients (budget: >= 200 tokens/s).

Starts a throwaway portal (gunicorn over HTTPS with the launcher's 2 workers x 4 threads, SQLite) and
asks /service/token for push+pull on a private project as a developer authenticating with an API token
(what CI and `docker login` with a token send), and for pull on a public project anonymously. For
comparison it measures a password login too: PBKDF2's deliberate cost, not the token service, bounds it.

    .venv/bin/python bench/token_service.py [--seconds 10] [--clients 8]
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
import tempfile
import threading
import time
from base64 import b64encode
from urllib.parse import urlencode, urlsplit

import urllib3

from bench.registry_proxy import running_portal


def hammer(url: str, params: dict, auth: tuple[str, str] | None, ca: str, clients: int, seconds: float) -> tuple:
    """`clients` threads asking for tokens for `seconds`; returns (tokens per second, failures, p95 ms)."""
    stop = time.monotonic() + seconds
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    # A lean keep-alive client (urllib3, one connection per thread), so the clients sharing the machine's
    # CPUs with the server cost as little as possible.
    address = urlsplit(url)
    path = f"{address.path}?{urlencode(params)}"
    headers = {"Authorization": "Basic " + b64encode(":".join(auth).encode()).decode()} if auth else {}

    def client() -> None:
        pool = urllib3.HTTPSConnectionPool(address.hostname, address.port, maxsize=1, ca_certs=ca, retries=False)
        mine = []
        while time.monotonic() < stop:
            started = time.perf_counter()
            response = pool.request("GET", path, headers=headers, timeout=30)
            if response.status == 200 and json.loads(response.data).get("token"):
                mine.append(time.perf_counter() - started)
            else:
                with lock:
                    failures[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.monotonic() - started
    latencies.sort()
    p95 = latencies[int(len(latencies) * 0.95)] * 1000 if latencies else float("nan")
    return len(latencies) / took, failures[0], p95


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp, running_portal(Path(tmp)) as portal:
        url = f"{portal.url}/service/token"
        cases = [
            ("API token, push+pull, private project", "repository:bench/app:push,pull", ("bench", portal.api_key)),
            ("anonymous, pull, public project", "repository:pub/app:pull", None),
            ("password (PBKDF2), push+pull", "repository:bench/app:push,pull", ("bench", "Bench-Passw0rd")),
        ]
        hammer(url, {"service": "wharf-registry", "scope": cases[0][1]}, cases[0][2], portal.ca, 2, 1)  # warm up
        print(f"{args.clients} concurrent clients, {args.seconds:.0f} s each, gunicorn 2 workers x 4 threads, HTTPS")
        for name, scope, auth in cases:
            params = {"service": "wharf-registry", "scope": scope}
            seconds = args.seconds if auth is None or auth[1] == portal.api_key else min(args.seconds, 5)
            rate, failures, p95 = hammer(url, params, auth, portal.ca, args.clients, seconds)
            print(f"{name:42s} {rate:8.1f} tokens/s   p95 {p95:7.1f} ms   failures {failures}")


if __name__ == "__main__":
    main()

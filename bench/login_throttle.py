"""/api/v1/systeminfo latency while 16 clients brute-force passwords, throttle off and on (budget: p95 < 200 ms).

Starts a throwaway portal twice (gunicorn over HTTPS with the launcher's 2 workers x 4 threads, SQLite, Django's
PBKDF2 hasher): once with WHARF_LOGIN_FAILURE_LIMIT=0, the portal as it was before the throttle, and once with the
default limit. In each, 16 clients in a process of their own send wrong passwords for user `bench`, round-robin over
the UI login, API Basic auth and the token service, while one client in this process asks /api/v1/systeminfo
every 20 ms. Prints the probe's median and p95 with no attack, then under attack for both runs.

    .venv/bin/python bench/login_throttle.py [--seconds 20] [--clients 16]
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder leads sys.path: put the repository root there instead, so `bench.*`
# and the portal's apps import.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import multiprocessing
import tempfile
import threading
import time
from base64 import b64encode
from collections import Counter
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlsplit

import urllib3

from bench.registry_proxy import running_portal

TOKEN_PATH = "/service/token?" + urlencode({"service": "wharf-registry", "scope": "repository:bench/app:pull"})


def _basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + b64encode(f"bench:{password}".encode()).decode()}


def _attacker(pool: urllib3.HTTPSConnectionPool, number: int, stop: float, statuses: Counter) -> None:
    """Wrong passwords until `stop`, cycling UI login, API Basic auth and the token service."""
    page = pool.request("GET", "/login/", timeout=60)
    cookie = SimpleCookie(page.headers.get("Set-Cookie", ""))["csrftoken"].value
    form_headers = {
        "Cookie": f"csrftoken={cookie}",
        "Referer": f"https://{pool.host}:{pool.port}/login/",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    attempt = number
    while time.monotonic() < stop:
        password = f"guess-{number}-{attempt}"
        kind = attempt % 3
        if kind == 0:
            body = urlencode({"username": "bench", "password": password, "csrfmiddlewaretoken": cookie})
            response = pool.request("POST", "/login/", body=body, headers=form_headers, timeout=60, redirect=False)
        elif kind == 1:
            response = pool.request("GET", "/api/v1/tokens", headers=_basic(password), timeout=60)
        else:
            response = pool.request("GET", TOKEN_PATH, headers=_basic(password), timeout=60)
        statuses[(("ui", "api", "token")[kind], response.status)] += 1
        attempt += 3


def attack(host: str, port: int, ca: str, clients: int, seconds: float, results: multiprocessing.Queue) -> None:
    """`clients` threads of wrong passwords (run in a process of its own, so the probe never waits on their GIL)."""
    stop = time.monotonic() + seconds
    statuses: Counter = Counter()

    def client(number: int) -> None:
        pool = urllib3.HTTPSConnectionPool(host, port, maxsize=1, ca_certs=ca, retries=False)
        _attacker(pool, number, stop, statuses)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(dict(statuses))


def probe(host: str, port: int, ca: str, seconds: float) -> tuple[float, float, int]:
    """GET /api/v1/systeminfo every 20 ms for `seconds`; returns (median ms, p95 ms, answers)."""
    pool = urllib3.HTTPSConnectionPool(host, port, maxsize=1, ca_certs=ca, retries=False)
    stop = time.monotonic() + seconds
    latencies = []
    while time.monotonic() < stop:
        started = time.perf_counter()
        response = pool.request("GET", "/api/v1/systeminfo", timeout=120)
        assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    latencies.sort()
    return latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.95)], len(latencies)


def run(label: str, limit: str, clients: int, seconds: float) -> None:
    """One throwaway portal with WHARF_LOGIN_FAILURE_LIMIT=limit: the probe idle, then under attack."""
    settings = {"WHARF_LOGIN_FAILURE_LIMIT": limit}
    with (
        tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp,
        running_portal(Path(tmp), settings=settings) as portal,
    ):
        address = urlsplit(portal.url)
        host, port = address.hostname or "127.0.0.1", address.port or 443
        probe(host, port, portal.ca, 1)  # warm up
        idle_median, idle_p95, _ = probe(host, port, portal.ca, min(seconds, 5))
        results: multiprocessing.Queue = multiprocessing.Queue()
        attackers = multiprocessing.Process(target=attack, args=(host, port, portal.ca, clients, seconds, results))
        attackers.start()
        time.sleep(1)  # the attack under way before measuring
        median, p95, answers = probe(host, port, portal.ca, seconds - 2)
        statuses = results.get(timeout=seconds + 120)
        attackers.join()
    attempts = sum(statuses.values())
    refused = sum(count for (_, status), count in statuses.items() if status == 429)
    print(
        f"{label:28s} idle p95 {idle_p95:6.1f} ms (median {idle_median:5.1f})   "
        f"attacked p95 {p95:7.1f} ms (median {median:6.1f}, {answers} probes)   "
        f"{attempts / seconds:6.1f} attempts/s, {refused} refused with 429"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--limit", default="10", help="WHARF_LOGIN_FAILURE_LIMIT of the throttled run")
    args = parser.parse_args()
    print(
        f"/api/v1/systeminfo with {args.clients} wrong-password clients, {args.seconds:.0f} s, "
        "gunicorn 2 workers x 4 threads, HTTPS, PBKDF2"
    )
    run("unthrottled (limit 0)", "0", args.clients, args.seconds)
    run(f"throttled (limit {args.limit})", args.limit, args.clients, args.seconds)


if __name__ == "__main__":
    main()

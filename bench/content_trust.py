"""What content trust costs a manifest pull: the same signed image pulled through the portal from a project with
content trust on and from one without it, and straight from the registry, with the same token.

A fresh SQLite portal (gunicorn over HTTPS) in front of a real docker-registry, real notary-server and notary-signer
(on a scratch PostgreSQL database: the Debian notary has no sqlite3 driver), and the image signed with the stock
notary CLI through the portal's token service. Each row is N sequential manifest GETs with one client connection;
the first content-trust pull, which fetches and verifies the whole chain, is reported on its own.

    .venv/bin/python bench/content_trust.py [--pulls 300] [--postgres postgres://postgres@127.0.0.1:5432/wharf_bench_notary]
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

import requests

from bench.common import free_port, percentile, scratch_postgres
from bench.registry_proxy import PYTHON, ROOT, running_portal, skopeo_copy, write_layout

PASSPHRASES = {f"NOTARY_{role}_PASSPHRASE": "bench-passphrase" for role in ("ROOT", "TARGETS", "SNAPSHOT")}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

PROJECTS = """
from projects.models import Membership, Project, Role
from portal.core.models import User
trusted = Project.objects.create(name="trusted", content_trust=True)
Membership.objects.create(project=trusted, user=User.objects.get(username="bench"), role=Role.DEVELOPER)
plain = Project.objects.get_or_create(name="bench")[0]
"""


def manage(env: dict[str, str], *args: str, **kwargs: object) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env, check=True, **kwargs)


def start_notary(env: dict[str, str], work: Path, ca: str) -> list[subprocess.Popen]:
    """`manage.py notary config`, then notary-signer and notary-server as compose runs them; waits for the server."""
    manage(env, "notary", "config", capture_output=True)
    processes = []
    for role in ("signer", "server"):
        log = (work / f"notary-{role}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [PYTHON, str(ROOT / "manage.py"), "notary", role], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        )
    url = f"https://{env['WHARF_NOTARY_LISTEN']}/_notary_server/health"
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(url, verify=ca, timeout=5).status_code == 200:
                return processes
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"notary did not start:\n{(work / 'notary-server.log').read_text()[-3000:]}")
        time.sleep(0.3)


def sign(notary_url: str, ca: str, gun: str, tag: str, manifest: bytes, user: str, secret: str, work: Path) -> None:
    """Publish the manifest's bytes as the tag's target with the notary CLI, logged in through the portal."""
    target = work / "manifest.json"
    target.write_bytes(manifest)
    auth = base64.b64encode(f"{user}:{secret}".encode()).decode()
    env = {**os.environ, **PASSPHRASES, "NOTARY_AUTH": auth}
    base = ["notary", "-s", notary_url, "-d", str(work / "trust"), "--tlscacert", ca]
    for command in (["init", gun], ["add", gun, tag, str(target)], ["publish", gun]):
        result = subprocess.run([*base, *command], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            sys.exit(f"notary {command[0]} failed:\n{result.stdout}\n{result.stderr}")


def token(portal_url: str, ca: str, key: str, repositories: list[str]) -> str:
    scopes = [f"repository:{name}:pull" for name in repositories]
    response = requests.get(
        f"{portal_url}/service/token",
        params={"service": "wharf-registry", "scope": scopes},
        auth=("bench", key),
        verify=ca,
        timeout=10,
    )
    return response.json()["token"]


def pulls(session: requests.Session, url: str, bearer: str, count: int, ca: str | bool) -> list[float]:
    """Milliseconds of each of `count` manifest GETs (each must answer 200)."""
    took = []
    headers = {"Authorization": f"Bearer {bearer}", "Accept": OCI_MANIFEST}
    for _ in range(count):
        started = time.perf_counter()
        response = session.get(url, headers=headers, verify=ca, timeout=30)
        took.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            sys.exit(f"GET {url} answered {response.status_code}: {response.text[:300]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pulls", type=int, default=300)
    parser.add_argument("--postgres", default="postgres://postgres@127.0.0.1:5432/wharf_bench_notary")
    args = parser.parse_args()
    for binary in ("notary", "notary-server", "notary-signer", "skopeo"):
        if shutil.which(binary) is None:
            sys.exit(f"{binary} is not installed: apt-get install notary skopeo")
    notary_listen = f"127.0.0.1:{free_port()}"
    knobs = {
        "WHARF_NOTARY_LISTEN": notary_listen,
        "WHARF_NOTARY_INTERNAL_URL": f"https://{notary_listen}",
        "WHARF_NOTARY_SIGNER_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    with (
        tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp,
        scratch_postgres(args.postgres) as notary_db,
        running_portal(Path(tmp), settings=knobs) as portal,
    ):
        work = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
        env.update(knobs, WHARF_DATA_DIR=str(portal.data_dir), WHARF_NOTARY_DATABASE_URL=notary_db)
        env.update(DJANGO_SETTINGS_MODULE="portal.settings", WHARF_LOG_LEVEL="WARNING")
        env["WHARF_REGISTRY_TOKEN_REALM"] = f"{portal.url}/service/token"
        manage(env, "shell", "-c", PROJECTS)
        notary = start_notary(env, work, portal.ca)
        try:
            write_layout(work / "layout", 1)
            creds = f"bench:{portal.api_key}"
            for project in ("trusted", "bench"):
                skopeo_copy(
                    f"oci:{work / 'layout'}:1", f"docker://{portal.host}/{project}/app:1", creds, work / project
                )
            bearer = token(portal.url, portal.ca, portal.api_key, ["trusted/app", "bench/app"])
            manifest = requests.get(
                f"{portal.registry_url}/v2/bench/app/manifests/1",
                headers={"Authorization": f"Bearer {bearer}", "Accept": OCI_MANIFEST},
                timeout=10,
            ).content
            sign(
                f"https://{notary_listen}",
                portal.ca,
                f"{portal.host}/trusted/app",
                "1",
                manifest,
                "bench",
                portal.api_key,
                work,
            )
            session = requests.Session()
            first = pulls(session, f"{portal.url}/v2/trusted/app/manifests/1", bearer, 1, portal.ca)[0]
            rows = [
                ("registry, direct (HTTP)", f"{portal.registry_url}/v2/bench/app/manifests/1", False),
                ("portal, no content trust", f"{portal.url}/v2/bench/app/manifests/1", portal.ca),
                ("portal, content trust (signed)", f"{portal.url}/v2/trusted/app/manifests/1", portal.ca),
            ]
            results = {label: pulls(session, url, bearer, args.pulls, ca) for label, url, ca in rows}
        finally:
            for process in notary:
                process.terminate()
                process.wait(timeout=20)
    print(f"{args.pulls} sequential manifest GETs each, one client connection; 1 MiB image signed with notary")
    print(f"{'path':32} {'p50 ms':>8} {'p95 ms':>8} {'pulls/s':>8}")
    for label, took in results.items():
        rate = len(took) / (sum(took) / 1000)
        print(f"{label:32} {percentile(took, 0.5):8.2f} {percentile(took, 0.95):8.2f} {rate:8.0f}")
    plain, trusted = results["portal, no content trust"], results["portal, content trust (signed)"]
    extra = percentile(trusted, 0.5) - percentile(plain, 0.5)
    print(f"first content-trust pull (fetch and verify root, timestamp, snapshot, targets): {first:.1f} ms")
    print(f"content trust adds {extra:.2f} ms to a pull's median (one timestamp request to notary, cached chain)")
    print(json.dumps({label: round(percentile(took, 0.5), 2) for label, took in results.items()}))


if __name__ == "__main__":
    main()

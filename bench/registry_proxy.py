"""Push and pull a 256 MiB image with skopeo through the portal's /v2/ proxy and directly against a registry.

All registries are real docker-registry processes with the same configuration; the direct ones take the
portal's tokens too, one over plain HTTP (as the portal reaches its registry), one serving HTTPS itself (as a
registry clients reach directly must). Prints MiB/s for each path, the ratio portal/direct per round and its
median (budget: >= 0.8), the web processes' CPU per copy and their resident memory before and after (budget:
flat - the proxy never buffers a blob).

    .venv/bin/python bench/registry_proxy.py [--size-mib 256] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SETUP = """
from portal.certificates import ensure_pki
ensure_pki()
from portal.audit import Actor
from portal.models import User
from portal.services import create_token
from projects.models import Membership, Project, Role
user = User.objects.create_user("bench", password="Bench-Passw0rd")
project = Project.objects.create(name="bench")
Project.objects.create(name="pub", public=True)
Membership.objects.create(project=project, user=user, role=Role.DEVELOPER)
print("KEY=" + create_token(Actor(user), "bench")[1])
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Portal:
    """A portal (gunicorn over HTTPS, as `make run` serves it) with its registry, in a throwaway data dir."""

    url: str
    host: str
    ca: str
    api_key: str
    data_dir: Path
    processes: list[subprocess.Popen]
    registry_url: str

    def web_pids(self) -> list[int]:
        """The gunicorn master and its workers."""
        master = self.processes[-1].pid
        return [master] + [int(p) for p in _children(master)]

    def web_rss_mib(self) -> float:
        """Resident memory of the gunicorn master and workers, in MiB."""
        return sum(_rss_kib(pid) for pid in self.web_pids()) / 1024

    def web_cpu_seconds(self) -> float:
        """CPU time (user + system) the gunicorn master and workers have used so far."""
        return sum(_cpu_seconds(pid) for pid in self.web_pids())


def _children(pid: int) -> list[str]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return path.read_text().split() if path.exists() else []


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(url: str, ca: str | bool, what: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"{what} exited:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            requests.get(url, timeout=5, verify=ca)
            return
        time.sleep(0.2)
    sys.exit(f"{what} did not answer on {url}:\n{log.read_text()[-3000:]}")


def start_registry(
    workdir: Path, data_dir: Path, realm: str, notify_url: str, tls: bool = False
) -> tuple[subprocess.Popen, str]:
    """A docker-registry with Wharf's configuration on a free loopback port; with `tls`, serving HTTPS itself."""
    binary = shutil.which("docker-registry")
    if binary is None:
        sys.exit("docker-registry is not installed: apt-get install docker-registry")
    sys.path.insert(0, str(ROOT))
    from registries import registry_config

    port = free_port()
    config = registry_config.render(
        listen=f"127.0.0.1:{port}",
        storage_dir=workdir / "storage",
        token_cert=data_dir / "pki" / "token.crt",
        realm=realm,
        notify_url=notify_url,
        notify_secret=(data_dir / "registry_notify_secret").read_text().strip(),
        http_secret="bench",
        service="wharf-registry",
        issuer="wharf-token-service",
    )
    if tls:
        pki = data_dir / "pki"
        config["http"]["tls"] = {"certificate": str(pki / "server.crt"), "key": str(pki / "server.key")}
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yml"
    path.write_text(yaml.safe_dump(config))
    log = workdir / "registry.log"
    env = {**os.environ, "SSL_CERT_FILE": str(data_dir / "pki" / "ca.crt")}
    process = subprocess.Popen([binary, "serve", str(path)], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    _wait(f"{url}/v2/", str(data_dir / "pki" / "ca.crt") if tls else False, "docker-registry", process, log)
    return process, url


@contextlib.contextmanager
def running_portal(workdir: Path, workers: int = 2, threads: int = 4) -> Iterator[Portal]:
    """Migrate a fresh SQLite portal, create user `bench` (developer of `bench`) with an API token, serve it."""
    data_dir = workdir / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update(WHARF_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings", WHARF_LOG_LEVEL="WARNING")
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run([*manage, "shell", "-c", SETUP], cwd=ROOT, env=env, check=True, capture_output=True)
    key = out.stdout.decode().split("KEY=")[1].strip()
    url = f"https://127.0.0.1:{port}"
    registry, registry_url = start_registry(
        workdir / "registry", data_dir, f"{url}/service/token", f"{url}/service/notifications"
    )
    env["WHARF_REGISTRY_URL"] = registry_url
    log = workdir / "gunicorn.log"
    web = subprocess.Popen(
        [
            PYTHON, "-m", "gunicorn", "portal.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", str(workers), "--threads", str(threads), "--timeout", "300",
            "--certfile", str(data_dir / "pki" / "server.crt"), "--keyfile", str(data_dir / "pki" / "server.key"),
        ],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    ca = str(data_dir / "pki" / "ca.crt")
    _wait(f"{url}/v2/", ca, "gunicorn", web, log)
    portal = Portal(url, f"127.0.0.1:{port}", ca, key, data_dir, [registry, web], registry_url)
    try:
        yield portal
    finally:
        for process in reversed(portal.processes):
            process.terminate()
            process.wait(timeout=20)


def write_layout(layout: Path, size_mib: int) -> int:
    """An OCI layout `bench:1` with one uncompressed layer holding size_mib MiB of random data; returns its size."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    payload = layout.parent / "payload.bin"
    with payload.open("wb") as out:
        for _ in range(size_mib):
            out.write(os.urandom(1024 * 1024))
    layer_tmp = layout.parent / "layer.tar"
    with tarfile.open(layer_tmp, "w") as tar:
        tar.add(payload, arcname="payload.bin")
    payload.unlink()
    digest = hashlib.sha256()
    with layer_tmp.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{digest.hexdigest()}"}
    layer["size"] = layer_tmp.stat().st_size
    layer_tmp.rename(blobs / digest.hexdigest())

    def blob(document: dict, media_type: str) -> dict:
        data = json.dumps(document).encode()
        name = hashlib.sha256(data).hexdigest()
        (blobs / name).write_bytes(data)
        return {"mediaType": media_type, "digest": f"sha256:{name}", "size": len(data)}

    config = blob(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}},
        "application/vnd.oci.image.config.v1+json",
    )
    media = "application/vnd.oci.image.manifest.v1+json"
    manifest = blob({"schemaVersion": 2, "mediaType": media, "config": config, "layers": [layer]}, media)
    manifest["annotations"] = {"org.opencontainers.image.ref.name": "1"}
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [manifest]}))
    return int(layer["size"])


def skopeo_copy(source: str, destination: str, creds: str, home: Path) -> float:
    """Copy with skopeo (HOME of its own: no stored credentials or settings interfere); returns seconds taken."""
    home.mkdir(parents=True)
    command = ["skopeo", "--insecure-policy", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
    if source.startswith("docker://"):
        command += ["--src-creds", creds]
    else:
        command += ["--dest-creds", creds]
    # Start each copy with no dirty pages left by the previous one, so its writeback does not land on this one.
    os.sync()
    started = time.perf_counter()
    result = subprocess.run([*command, source, destination], env={**os.environ, "HOME": str(home)}, capture_output=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"skopeo copy {source} {destination} failed:\n{result.stderr.decode()}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        sys.exit("skopeo is not installed: apt-get install skopeo")
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as tmp, running_portal(Path(tmp)) as portal:
        work = Path(tmp)
        # A fresh random layer per round: skopeo run as root keeps one blob-info cache for the whole machine
        # (/var/lib/containers/cache), so a layer it pushed once would be mounted instead of sent again.
        size = 0
        for round_ in range(args.rounds):
            size = write_layout(work / f"layout{round_}", args.size_mib)
        realm, notify = f"{portal.url}/service/token", f"{portal.url}/service/notifications"
        # Two peers: the registry as the portal reaches it (plain HTTP on the loopback), and the same registry
        # serving HTTPS itself, as a registry that clients reach directly must: TLS costs both ends CPU, so that
        # peer shows what the proxy adds beyond the TLS every client-facing registry pays for.
        direct_process, direct_url = start_registry(work / "direct", portal.data_dir, realm, notify)
        tls_process, tls_url = start_registry(work / "direct-tls", portal.data_dir, realm, notify, tls=True)
        try:
            creds = f"bench:{portal.api_key}"
            rss_before = portal.web_rss_mib()
            timings: dict[str, list[float]] = {}
            # The web processes' CPU time per copy: steadier than wall time on a busy machine, and what the
            # proxy costs (the direct copies show the token requests and event deliveries alone).
            web_cpu: dict[str, list[float]] = {}
            paths = [
                ("portal", portal.host),
                ("direct", direct_url.removeprefix("http://")),
                ("direct-tls", tls_url.removeprefix("https://")),
            ]
            # One 256 MiB copy takes about two seconds, so a single sample is at the mercy of whatever else the
            # machine does: take several rounds, rotating which path goes first.
            for round_ in range(args.rounds):
                for name, host in paths[round_ % 3 :] + paths[: round_ % 3]:
                    image = f"docker://{host}/bench/big{round_}:1"  # a new repository: nothing to skip or mount
                    home = work / f"home-{name}-{round_}"
                    layout = f"oci:{work / f'layout{round_}'}:1"
                    cpu = portal.web_cpu_seconds()
                    timings.setdefault(f"push {name}", []).append(skopeo_copy(layout, image, creds, home / "push"))
                    web_cpu.setdefault(f"push {name}", []).append(portal.web_cpu_seconds() - cpu)
                    out = work / f"out-{name}"
                    cpu = portal.web_cpu_seconds()
                    timings.setdefault(f"pull {name}", []).append(
                        skopeo_copy(image, f"oci:{out}:1", creds, home / "pull")
                    )
                    web_cpu.setdefault(f"pull {name}", []).append(portal.web_cpu_seconds() - cpu)
                    shutil.rmtree(out)
            rss_after = portal.web_rss_mib()
        finally:
            for process in (direct_process, tls_process):
                process.terminate()
                process.wait(timeout=20)
    mib = size / (1 << 20)
    print(f"image: one {mib:.0f} MiB layer (random, uncompressed), skopeo {skopeo_version()}, {args.rounds} rounds")
    for direction in ("push", "pull"):
        through = timings[f"{direction} portal"]
        print(f"{direction}: portal {mib / statistics.median(through):6.1f} MiB/s (rounds {_rates(mib, through)})")
        for peer in ("direct", "direct-tls"):
            times = timings[f"{direction} {peer}"]
            # The machine's speed drifts over a run (the same copy takes 1.6 s or 2.3 s minutes apart), so each
            # ratio is taken within a round, between copies made one after the other; the figure is their median.
            ratios = [d / p for p, d in zip(through, times, strict=True)]
            print(
                f"    {peer:<10} {mib / statistics.median(times):6.1f} MiB/s (rounds {_rates(mib, times)})"
                f"   ratio portal/{peer} {statistics.median(ratios):.2f} (rounds {'/'.join(f'{r:.2f}' for r in ratios)})"
            )
    print(
        "web CPU per copy (median): "
        + ", ".join(f"{key} {statistics.median(values):.2f} s" for key, values in sorted(web_cpu.items()))
    )
    print(f"web processes RSS: before {rss_before:.0f} MiB, after {rss_after:.0f} MiB ({rss_after - rss_before:+.0f})")


def _rates(mib: float, seconds: list[float]) -> str:
    """The MiB/s of each round, e.g. "131/118/140"."""
    return "/".join(f"{mib / took:.0f}" for took in seconds)


def skopeo_version() -> str:
    return subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip().split()[-1]


if __name__ == "__main__":
    main()

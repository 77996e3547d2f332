"""Push and pull a 256 MiB image with skopeo through the portal's /v2/ proxy and directly against a registry.

All registries are real docker-registry processes with the same configuration; the direct ones take the
portal's tokens too, one over plain HTTP (as the portal reaches its registry), one serving HTTPS itself (as a
registry clients reach directly must). With nginx installed, nginx in front of another one is a peer proxy.
Prints MiB/s for each path, each path's ratio to direct per round and its median (budget for the portal:
>= 0.8), each proxy's CPU per copy, and the web processes' resident memory before and after (budget: flat -
the proxy never buffers a blob).

    .venv/bin/python bench/registry_proxy.py [--size-mib 256] [--rounds 5] [--no-nginx]
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
import json
import os
import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import requests
import yaml

from bench.common import free_port
from portal.launcher import web_command

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

SETUP = """
from portal.core.certificates import ensure_pki
ensure_pki()
from portal.core.audit import Actor
from portal.core.models import User
from portal.core.services import create_token
from projects.models import Membership, Project, Role
user = User.objects.create_user("bench", password="Bench-Passw0rd")
project = Project.objects.create(name="bench")
Project.objects.create(name="pub", public=True)
Membership.objects.create(project=project, user=user, role=Role.DEVELOPER)
print("KEY=" + create_token(Actor(user), "bench")[1])
"""


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

    def web_rss_mib(self) -> float:
        """Resident memory of the gunicorn master and workers, in MiB."""
        return sum(_rss_kib(pid) for pid in _with_children(self.processes[-1].pid)) / 1024

    def web_cpu_seconds(self) -> float:
        """CPU time (user + system) the gunicorn master and workers have used so far."""
        return tree_cpu_seconds(self.processes[-1].pid)


def _with_children(pid: int) -> list[int]:
    return [pid] + [int(child) for child in _children(pid)]


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its children (gunicorn or nginx workers) have used so far."""
    return sum(_cpu_seconds(each) for each in _with_children(pid))


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


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {work}/error.log;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    client_max_body_size 0;
    client_body_buffer_size 1m;
    proxy_http_version 1.1;
    proxy_request_buffering off;
    proxy_buffering off;
    upstream registry {{ server {registry}; keepalive 16; }}
    server {{
        listen {listen} ssl;
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        location / {{
            proxy_pass http://registry;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """nginx, if installed (Debian puts it in /usr/sbin, which may not be on a user's PATH)."""
    found = shutil.which("nginx")
    return found or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def start_nginx(binary: str, workdir: Path, data_dir: Path, registry_url: str) -> tuple[subprocess.Popen, str]:
    """nginx terminating TLS (the portal's certificate) and streaming everything to the registry at registry_url."""
    port = free_port()
    workdir.mkdir(parents=True)
    config = workdir / "nginx.conf"
    config.write_text(
        NGINX_CONF.format(
            work=workdir,
            registry=registry_url.removeprefix("http://"),
            listen=f"127.0.0.1:{port}",
            certificate=data_dir / "pki" / "server.crt",
            key=data_dir / "pki" / "server.key",
        )
    )
    log = workdir / "nginx.log"
    process = subprocess.Popen(
        [binary, "-c", str(config), "-p", str(workdir)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    url = f"https://127.0.0.1:{port}"
    _wait(f"{url}/v2/", str(data_dir / "pki" / "ca.crt"), "nginx", process, log)
    return process, url


@contextlib.contextmanager
def running_portal(
    workdir: Path, workers: int = 2, threads: int = 4, settings: dict[str, str] | None = None
) -> Iterator[Portal]:
    """Migrate a fresh SQLite portal, create user `bench` (developer of `bench`) with an API token, serve it.

    `settings` are WHARF_* variables the portal runs with on top of the embedded defaults."""
    data_dir = workdir / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WHARF_")}
    env.update(WHARF_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="portal.settings", WHARF_LOG_LEVEL="WARNING")
    env.update(settings or {})
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
    pki = data_dir / "pki"
    command = web_command(
        f"127.0.0.1:{port}", pki / "server.crt", pki / "server.key", workers, threads, "--timeout", "300"
    )
    web = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
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
    parser.add_argument(
        "--no-nginx", dest="nginx", action="store_false", help="leave out the nginx peer (used when it is installed)"
    )
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
        # The peers: the registry as the portal reaches it (plain HTTP on the loopback); the same registry serving
        # HTTPS itself, as a registry that clients reach directly must; and, when it is installed, nginx in front
        # of a registry, terminating TLS and streaming both ways - a C reverse proxy doing the proxy's job.
        direct_process, direct_url = start_registry(work / "direct", portal.data_dir, realm, notify)
        tls_process, tls_url = start_registry(work / "direct-tls", portal.data_dir, realm, notify, tls=True)
        processes = [direct_process, tls_process]
        # Which processes proxy each path: their CPU per copy is what the proxying costs.
        proxy_cpu = {"portal": portal.web_cpu_seconds}
        paths = [
            ("portal", portal.host),
            ("direct", direct_url.removeprefix("http://")),
            ("direct-tls", tls_url.removeprefix("https://")),
        ]
        try:
            nginx = nginx_binary() if args.nginx else None
            if nginx:
                behind, behind_url = start_registry(work / "behind-nginx", portal.data_dir, realm, notify)
                front, front_url = start_nginx(nginx, work / "nginx", portal.data_dir, behind_url)
                processes += [behind, front]
                paths.append(("nginx", front_url.removeprefix("https://")))
                proxy_cpu["nginx"] = lambda: tree_cpu_seconds(front.pid)
            elif args.nginx:
                print("nginx is not installed (apt-get install nginx-light): no nginx peer in this run")
            creds = f"bench:{portal.api_key}"
            rss_before = portal.web_rss_mib()
            timings: dict[str, list[float]] = {}
            # The proxy's CPU time per copy: steadier than wall time on a busy machine. For the direct paths the web
            # processes' (token requests and event deliveries alone).
            cpu_used: dict[str, list[float]] = {}
            # Untimed: the first requests a gunicorn worker serves import and set up what the views need (about
            # 0.4 s of CPU), which is not what a copy costs.
            write_layout(work / "warm-up", 1)
            for name, host in paths:
                image = f"docker://{host}/bench/warm-up:1"
                skopeo_copy(f"oci:{work / 'warm-up'}:1", image, creds, work / f"home-warm-up-{name}" / "push")
                skopeo_copy(image, f"oci:{work / f'warm-up-{name}'}:1", creds, work / f"home-warm-up-{name}" / "pull")
            # One 256 MiB copy takes about two seconds, so a single sample is at the mercy of whatever else the
            # machine does: take several rounds, rotating which path goes first.
            for round_ in range(args.rounds):
                for name, host in paths[round_ % len(paths) :] + paths[: round_ % len(paths)]:
                    image = f"docker://{host}/bench/big{round_}:1"  # a new repository: nothing to skip or mount
                    home = work / f"home-{name}-{round_}"
                    layout = f"oci:{work / f'layout{round_}'}:1"
                    measure = proxy_cpu.get(name, portal.web_cpu_seconds)
                    cpu = measure()
                    timings.setdefault(f"push {name}", []).append(skopeo_copy(layout, image, creds, home / "push"))
                    cpu_used.setdefault(f"push {name}", []).append(measure() - cpu)
                    out = work / f"out-{name}"
                    cpu = measure()
                    timings.setdefault(f"pull {name}", []).append(
                        skopeo_copy(image, f"oci:{out}:1", creds, home / "pull")
                    )
                    cpu_used.setdefault(f"pull {name}", []).append(measure() - cpu)
                    shutil.rmtree(out)
            rss_after = portal.web_rss_mib()
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=20)
    mib = size / (1 << 20)
    print(f"image: one {mib:.0f} MiB layer (random, uncompressed), skopeo {skopeo_version()}, {args.rounds} rounds")
    for direction in ("push", "pull"):
        direct = timings[f"{direction} direct"]
        print(f"{direction}: MiB/s (median, then each round)   and x direct (median of the rounds' ratios, then each)")
        for name in [name for name in ("portal", "direct", "direct-tls", "nginx") if f"{direction} {name}" in timings]:
            times = timings[f"{direction} {name}"]
            line = f"    {name:<10} {mib / statistics.median(times):6.1f} ({_rates(mib, times)})"
            if name != "direct":
                # The machine's speed drifts over a run (the same copy takes 1.6 s or 2.3 s minutes apart), so each
                # ratio is taken within a round, between copies made one after the other.
                ratios = [d / t for t, d in zip(times, direct, strict=True)]
                line += f"   x direct {statistics.median(ratios):.2f} ({'/'.join(f'{r:.2f}' for r in ratios)})"
            print(line)
    for direction in ("push", "pull"):
        print(
            f"{direction} CPU per copy (median): "
            + ", ".join(
                f"{name} {statistics.median(cpu_used[f'{direction} {name}']):.2f} s"
                + (" (gunicorn)" if name == "portal" else " (nginx)" if name == "nginx" else " (web: tokens, events)")
                for name, _ in paths
            )
        )
    print(f"web processes RSS: before {rss_before:.0f} MiB, after {rss_after:.0f} MiB ({rss_after - rss_before:+.0f})")


def _rates(mib: float, seconds: list[float]) -> str:
    """The MiB/s of each round, e.g. "131/118/140"."""
    return "/".join(f"{mib / took:.0f}" for took in seconds)


def skopeo_version() -> str:
    return subprocess.run(["skopeo", "--version"], capture_output=True, text=True).stdout.strip().split()[-1]


if __name__ == "__main__":
    main()

"""The embedded launcher behind `make run`: web (HTTPS), Celery worker, beat and the registry as child processes."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from portal.core.certificates import PkiPaths
from registries import notary, registry_config

SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# How long notary-server's child waits for the signer to serve before it starts all the same.
SIGNER_WAIT_SECONDS = 60


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    process: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    # host, port the child serves on: it counts as running once that port accepts connections.
    probe: tuple[str, int] | None = None


# gthread whose threads never wait for a slow client (see its module).
WEB_WORKER_CLASS = "portal.web_worker.GuardedThreadWorker"


def web_command(address: str, certfile: Path, keyfile: Path, workers: int, threads: int, *options: str) -> list[str]:
    """gunicorn serving the portal over HTTPS on address (host:port), with the server hooks.

    The launcher's web child, and the live portals of the integration tests and the benchmarks.
    """
    return [
        sys.executable, "-m", "gunicorn", "portal.wsgi:application", "-c", "python:portal.gunicorn_hooks",
        "--worker-class", WEB_WORKER_CLASS,
        "--bind", address, "--certfile", str(certfile), "--keyfile", str(keyfile),
        "--workers", str(workers), "--threads", str(threads), *options,
    ]  # fmt: skip


def children(pki: PkiPaths, bind: str, port: int) -> list[Child]:
    """The processes of the embedded portal."""
    python = sys.executable
    return [
        Child(
            "web",
            web_command(
                f"{bind}:{port}", pki.server_cert, pki.server_key, settings.WEB_WORKERS, 4,
                "--access-logfile", "-", "--graceful-timeout", "5",
            ),
        ),
        Child(
            "worker",
            [python, "-m", "celery", "-A", "portal", "worker", "-n", "worker@%h", "--loglevel", "INFO",
             "--concurrency", "2"],
        ),
        # Scans have a queue and a worker of their own: a scan of all images never holds up the other jobs.
        Child("scanner", scan_worker_command(python)),
        Child(
            "beat",
            [python, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
             "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")],
        ),
    ]  # fmt: skip


def scan_worker_command(python: str, concurrency: int = 1) -> list[str]:
    """The Celery worker of scan jobs alone, as the launcher and compose's scanner service run it."""
    from portal.core.jobs import SCAN_QUEUE

    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}.{SCAN_QUEUE}"
    return [
        python, "-m", "celery", "-A", "portal", "worker", "-n", "scanner@%h", "-Q", queue,
        "--loglevel", "INFO", "--concurrency", str(concurrency),
    ]  # fmt: skip


def registry_listen_address() -> str:
    """host:port of WHARF_REGISTRY_URL, which must be on the loopback: clients only reach the registry via /v2/."""
    url = urlsplit(settings.REGISTRY_URL)
    host = url.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback or url.scheme != "http":
        raise ImproperlyConfigured(
            f"WHARF_REGISTRY_URL={settings.REGISTRY_URL}: the embedded registry listens on the loopback only "
            "(e.g. http://127.0.0.1:5000)"
        )
    return f"{host}:{url.port or 80}"


def trust_bundle(pki: PkiPaths, path: Path) -> Path:
    """The system CAs plus the portal CA, so the registry's Go client trusts the portal's HTTPS (notifications)."""
    system = SYSTEM_CA_BUNDLE.read_text() if SYSTEM_CA_BUNDLE.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(system.rstrip("\n") + "\n" + pki.ca_cert.read_text())
    return path


def write_registry_config(pki: PkiPaths, listen: str, realm: str, notify_url: str) -> tuple[Path, Path]:
    """Write the registry's config to WHARF_REGISTRY_CONFIG_PATH and its trust bundle beside it.

    The one code path for every way the registry runs: the launcher's child (`make run`) and a
    registry of its own (`manage.py registry_config`, docker-compose.yml). Returns (config, bundle);
    start the registry with SSL_CERT_FILE=bundle so it trusts the portal's HTTPS for notifications.
    """
    config_path = Path(settings.REGISTRY_CONFIG_PATH)
    workdir = config_path.parent
    config = registry_config.render(
        listen=listen,
        storage_dir=settings.REGISTRY_STORAGE_DIR,
        token_cert=pki.token_cert,
        realm=realm,
        notify_url=notify_url,
        notify_secret=settings.REGISTRY_NOTIFY_SECRET,
        http_secret=_registry_http_secret(workdir),
        service=settings.REGISTRY_SERVICE,
        issuer=settings.TOKEN_ISSUER,
    )
    registry_config.write(config_path, config)
    return config_path, trust_bundle(pki, workdir / "ca-bundle.crt")


def registry_child(pki: PkiPaths, public_host: str, port: int) -> Child | None:
    """The distribution registry configured for this portal, or None when its binary is not installed."""
    binary = shutil.which(settings.REGISTRY_BINARY)
    if binary is None:
        return None
    listen = registry_listen_address()
    config_path, bundle = write_registry_config(
        pki,
        listen=listen,
        realm=f"https://{public_host}:{port}/service/token",
        notify_url=f"https://127.0.0.1:{port}/service/notifications",
    )
    host, port_text = listen.rsplit(":", 1)
    return Child(
        "registry",
        [binary, "serve", str(config_path)],
        env={"SSL_CERT_FILE": str(bundle)},
        probe=(host, int(port_text)),
    )


def _loopback_probe(address: str) -> tuple[str, int]:
    """Where the launcher checks that a child listening on address (host:port, maybe 0.0.0.0) answers."""
    host, port = address.rsplit(":", 1)
    return ("127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host.strip("[]")), int(port)


def notary_children(pki: PkiPaths, public_host: str, port: int) -> list[Child]:
    """notary-signer and notary-server configured for this portal (schema created, configs written); raises
    notary.NotaryUnavailable with the reason when they cannot run (not installed, no PostgreSQL)."""
    listen = {"signer": settings.NOTARY_SIGNER_ADDRESS, "server": settings.NOTARY_LISTEN}
    # Both binaries first: a missing one leaves no database created and no configs written.
    commands = {role: notary.command(role) for role in listen}
    notary.write_configs(pki, realm=f"https://{public_host}:{port}/service/token")
    # The server waits for the signer to serve, then becomes notary-server in the same process (as compose's
    # `manage.py notary server` does), so its first dial reaches the signer (see notary_health.wait_for_signer).
    signer = notary.signer_client(pki)
    server_argv, _ = commands["server"]
    commands["server"] = (
        [sys.executable, "-m", "registries.notary_health", signer.address, signer.ca_file, signer.cert_file,
         signer.key_file, str(SIGNER_WAIT_SECONDS), "--", *server_argv],
        {"PYTHONPATH": str(settings.BASE_DIR)},
    )  # fmt: skip
    return [
        Child(f"notary-{role}", argv, env=env, probe=_loopback_probe(listen[role]))
        for role, (argv, env) in commands.items()
    ]


def _registry_http_secret(workdir: Path) -> str:
    """The registry's upload-state secret, kept across restarts so open uploads survive them."""
    path = workdir / "http_secret"
    if not path.exists():
        workdir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def restrict_data_dir(data_dir: Path, skip: tuple[Path, ...] = ()) -> None:
    """Make the data directory and everything in it owner-only (0700 folders, 0600 files).

    It holds the SQLite database (sessions, password hashes, the audit log), the PKI's private keys and the
    generated secrets. Files created from now on get these modes from the launcher's umask (077), which the
    children inherit; this fixes what an older version or another umask left readable. Folders in `skip` (the
    registry's blob store, which may be large) are not walked: the data directory's own 0700 already keeps
    others out of them.
    """
    data_dir.chmod(0o700)
    skipped = {path.resolve() for path in skip}
    for folder, folders, files in os.walk(data_dir):
        folders[:] = [name for name in folders if (Path(folder) / name).resolve() not in skipped]
        for name in folders + files:
            _restrict(Path(folder) / name)


def _restrict(path: Path) -> None:
    """Take the group's and others' bits off one file or folder, keeping the owner's (symlinks are left alone)."""
    with contextlib.suppress(FileNotFoundError):
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode) and info.st_mode & 0o077:
            path.chmod(stat.S_IMODE(info.st_mode) & 0o700)

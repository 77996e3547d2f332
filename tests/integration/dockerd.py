"""A private Docker daemon for the integration tests: its own socket, data and config, no network of its own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.processes import stop_process
from tests.integration.tls_pki import CertificateAuthority

START_TIMEOUT = 60.0
BUSYBOX = Path("/bin/busybox")
BUSYBOX_LINKS = ("sh", "ls", "echo", "cat", "sleep", "true")


def _binary(name: str, package: str) -> str:
    """The path of a program the tests need; a missing one fails the run (never a skip)."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/bin")
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {package} (make test does)")
    return path


@dataclass
class Dockerd:
    """A running dockerd and a docker CLI bound to it with a private client config."""

    root: Path
    process: subprocess.Popen
    cli: str
    command: list[str]
    # The TCP port it listens on (127.0.0.1), when it does; its TLS mode: "", "server" or "verify".
    port: int = 0
    tls: str = ""
    ca: CertificateAuthority | None = None

    @property
    def url(self) -> str:
        """The endpoint a portal adds: http://127.0.0.1:PORT, or https:// in a TLS mode."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def config_dir(self) -> Path:
        return self.root / "client"

    def log(self) -> str:
        """The daemon's output so far (for failure messages)."""
        return (self.root / "dockerd.log").read_text(errors="replace")[-4000:]

    def run(
        self, *args: str, input: str | None = None, timeout: float = 180, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess:
        """Run `docker <args>` against this daemon (with extra environment); returns the completed process whatever
        its exit code."""
        env = {**os.environ, **(env or {}), "DOCKER_CONFIG": str(self.config_dir), "DOCKER_CLI_HINTS": "false"}
        env.pop("DOCKER_HOST", None)
        return subprocess.run(
            [self.cli, "--host", f"unix://{self.socket}", *args],
            input=input,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def ok(self, *args: str, input: str | None = None, timeout: float = 180, env: dict[str, str] | None = None) -> str:
        """Run `docker <args>`; fail the test with the output when it does not succeed."""
        result = self.run(*args, input=input, timeout=timeout, env=env)
        assert result.returncode == 0, f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def halt(self) -> None:
        """Stop the daemon (its containers stop with it), keeping its data for a restart."""
        stop_process(self.process, grace=20)

    def restart(self) -> None:
        """Start the daemon again on the same socket, port, data and certificates."""
        self.halt()
        self.process = _spawn(self.command, self.root)
        _wait_until_up(self)

    def stop(self) -> None:
        """Stop the daemon and remove its directory."""
        self.halt()
        # Unmount whatever overlay mounts the daemon left behind before deleting its data.
        subprocess.run(["umount", "-R", str(self.root / "data")], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


def dockerd_fixture(description: str, **options: Any) -> Any:
    """A module-scoped fixture (named by the attribute it is assigned to) giving a dockerd started with these
    options (see `start_dockerd`) and stopping it after the module; `description` is its docstring."""

    def running() -> Iterator[Dockerd]:
        daemon = start_dockerd(**options)
        try:
            yield daemon
        finally:
            daemon.stop()

    running.__doc__ = description
    return pytest.fixture(scope="module")(running)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _spawn(command: list[str], root: Path) -> subprocess.Popen:
    with (root / "dockerd.log").open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_until_up(dockerd: Dockerd) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if dockerd.process.poll() is not None:
            pytest.fail(f"dockerd exited with {dockerd.process.returncode}:\n{dockerd.log()}")
        if dockerd.socket.exists() and dockerd.run("version", timeout=10).returncode == 0:
            return
        time.sleep(0.3)
    dockerd.stop()
    pytest.fail(f"dockerd did not answer within {START_TIMEOUT:.0f} s:\n{dockerd.log()}")


def start_dockerd(tcp: bool = False, tls: str = "", image: str = "") -> Dockerd:
    """Start dockerd on a unix socket under a short /tmp path (socket paths max 108 bytes); wait until it answers.

    With `tcp` it also listens on 127.0.0.1:<free port>: plain HTTP, or with `tls="server"` HTTPS with a
    server certificate only (`--tls`), or with `tls="verify"` HTTPS requiring a client certificate signed
    by its CA (`--tlsverify`). The CA (`dockerd.ca`) issues client certificates for the tests. With `image`, a
    busybox root filesystem is imported under that reference (`docker import`; nothing can be pulled here).
    """
    assert tls in ("", "server", "verify") and (tcp or not tls)
    daemon = _binary("dockerd", "docker.io")
    cli = _binary("docker", "docker.io")
    root = Path(tempfile.mkdtemp(prefix="wd-", dir="/tmp"))
    (root / "client").mkdir()
    command = [
        daemon,
        "--host", f"unix://{root / 'docker.sock'}",
        "--data-root", str(root / "data"),
        "--exec-root", str(root / "exec"),
        "--pidfile", str(root / "pid"),
        "--bridge=none", "--iptables=false", "--ip-masq=false",
    ]  # fmt: skip
    port = free_port() if tcp else 0
    ca = None
    if tcp:
        command += ["--host", f"tcp://127.0.0.1:{port}"]
    if tls:
        ca = CertificateAuthority(root / "pki")
        server = ca.server()
        # dockerd reads a CA file even with --tls alone (it then asks no client certificate).
        command += ["--tlscert", str(server.cert), "--tlskey", str(server.key), "--tlscacert", str(ca.pair.cert)]
        command += ["--tlsverify"] if tls == "verify" else ["--tls", "--tlsverify=false"]
    dockerd = Dockerd(root, _spawn(command, root), cli, command, port, tls, ca)
    _wait_until_up(dockerd)
    if image:
        try:
            dockerd.ok("import", str(busybox_rootfs(root / "rootfs" / "busybox.tar")), image)
        except BaseException:
            dockerd.stop()
            raise
    return dockerd


def busybox_rootfs(path: Path) -> Path:
    """A tarball of a tiny root filesystem: busybox-static and a few applet links."""
    if not BUSYBOX.exists():
        pytest.fail("/bin/busybox is missing: apt-get install busybox-static (make test does)")
    root = path.parent / "rootfs"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in BUSYBOX_LINKS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    with tarfile.open(path, "w") as tar:
        tar.add(root, arcname=".")
    return path

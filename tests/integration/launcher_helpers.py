"""Start `manage.py run` as a user would, read what it prints, and watch its process tree."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
# Variables that would point the launcher away from its embedded defaults (SQLite, filesystem broker).
NOT_EMBEDDED = (
    "WHARF_DATABASE_URL", "WHARF_BROKER_URL", "WHARF_ADMIN_PASSWORD", "WHARF_PORT", "WHARF_BIND",
    "WHARF_NOTARY_DATABASE_URL",
)  # fmt: skip


_GIVEN: set[int] = set()


def free_port() -> int:
    """A TCP port on the loopback address that nothing listens on right now, never one given out before.

    A launcher's web port and its registry's port are both asked for before either listens; the
    kernel may hand out the same free port twice, and then gunicorn finds it taken by the registry.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _GIVEN:
            _GIVEN.add(port)
            return port


def embedded_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """This process's environment minus anything that leaves the embedded defaults, plus `extra`.

    Notary is off unless `extra` turns it on (WHARF_NOTARY_ENABLED=true): on the embedded defaults it would take
    the fixed ports 4443 and 7899, which parallel runs share, and leave a database in the machine's PostgreSQL.
    """
    env = {k: v for k, v in os.environ.items() if k not in NOT_EMBEDDED}
    env.update(WHARF_DATA_DIR=str(data_dir), WHARF_WEB_WORKERS="2", PYTHONUNBUFFERED="1", WHARF_NOTARY_ENABLED="false")
    env.update(extra)
    return env


@dataclass
class Launcher:
    """A running `manage.py run`; its output is collected in the background so the pipe never fills."""

    process: subprocess.Popen
    port: int
    data_dir: Path
    lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, data_dir: Path, **extra_env: str) -> Launcher:
        """Start the launcher on a free loopback port."""
        assert PYTHON.exists(), f"{PYTHON} is missing: create the virtualenv with `make run` first"
        port = free_port()
        process = subprocess.Popen(
            [str(PYTHON), "manage.py", "run", "--bind", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=embedded_env(data_dir, **extra_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        launcher = cls(process, port, data_dir)
        threading.Thread(target=launcher._collect, daemon=True).start()
        return launcher

    def _collect(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        return str(self.data_dir / "pki" / "ca.crt")

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def get(self, path: str, **kwargs: object) -> requests.Response:
        """GET a portal URL, verifying TLS against the portal's own CA."""
        return requests.get(self.url + path, verify=self.ca, timeout=10, **kwargs)

    def post(self, path: str, **kwargs: object) -> requests.Response:
        """POST to a portal URL, verifying TLS against the portal's own CA."""
        return requests.post(self.url + path, verify=self.ca, timeout=10, **kwargs)

    def wait_until_serving(self, timeout: float = 40.0) -> requests.Response:
        """Wait for /api/v1/systeminfo to answer over verified HTTPS; fail with the output if it never does."""
        deadline = time.monotonic() + timeout
        error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"launcher exited with {self.process.returncode}:\n{self.output}"
            if Path(self.ca).exists():
                try:
                    return self.get("/api/v1/systeminfo")
                except requests.ConnectionError as exc:
                    error = exc
            time.sleep(0.3)
        raise AssertionError(f"{self.url} did not answer within {timeout} s ({error}):\n{self.output}")

    def process_tree(self) -> set[int]:
        """The launcher and every process below it, including those in the children's own sessions."""
        return {self.process.pid} | descendants(self.process.pid)

    def interrupt(self, timeout: float = 15.0) -> tuple[int, float]:
        """Press Ctrl-C (SIGINT to the launcher alone); returns its exit code and how long it took."""
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        """Clean up after a failed test: kill the launcher and everything it started."""
        for pid in self.process_tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, session id) of a live process from /proc, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name sits in parentheses and may itself hold spaces or parentheses.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[3])


def _all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> set[int]:
    """Every live process whose parent chain leads to `root`."""
    parents = {pid: stat[1] for pid in _all_pids() if (stat := _stat(pid))}
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def children_of(parent: int) -> set[int]:
    """The live direct children of a process."""
    return {pid for pid in _all_pids() if (stat := _stat(pid)) and stat[1] == parent and stat[0] != "Z"}


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (zombies waiting for their parent count as gone)."""
    return {pid for pid in pids if (stat := _stat(pid)) and stat[0] != "Z"}


def in_sessions(sessions: set[int]) -> set[int]:
    """Live processes in any of these sessions: catches a child's stragglers that were re-parented to init."""
    return {pid for pid in _all_pids() if (stat := _stat(pid)) and stat[0] != "Z" and stat[2] in sessions}


def session_of(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[2] if stat else None


def wait_gone(pids: set[int], sessions: set[int], timeout: float) -> set[int]:
    """Wait until none of `pids` nor anything in `sessions` runs; returns what is still running at the end."""
    deadline = time.monotonic() + timeout
    while True:
        left = alive(pids) | in_sessions(sessions)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def thumbprints(output: str) -> dict[str, str]:
    """The CA thumbprints the launcher printed, by algorithm."""
    return dict(re.findall(r"CA (SHA-1|SHA-256):\s+([0-9A-F:]+)", output))


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a Compose env file (comments and blank lines skipped, one level of quotes removed)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        assert match, f"{path.name} line {number} is not KEY=VALUE: {line!r}"
        key, value = match.groups()
        assert key not in values, f"{path.name} sets {key} twice (line {number})"
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = value.split(" #", 1)[0].strip()
        values[key] = value
    return values


def documented_env_names(path: Path) -> set[str]:
    """Variables an env file mentions only as commented-out examples (`# NAME=value`)."""
    return set(re.findall(r"^#\s*([A-Z][A-Z0-9_]*)=", path.read_text(), re.MULTILINE))

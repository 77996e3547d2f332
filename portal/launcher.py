"""The embedded launcher behind `make run`: web (HTTPS), Celery worker and beat as child processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from django.conf import settings

from portal.certificates import PkiPaths


@dataclass
class Child:
    """One supervised process."""

    name: str
    argv: list[str]
    process: subprocess.Popen | None = None


def children(pki: PkiPaths, bind: str, port: int) -> list[Child]:
    """The processes of the embedded portal."""
    python = sys.executable
    return [
        Child(
            "web",
            [
                python, "-m", "gunicorn", "portal.wsgi:application",
                "--bind", f"{bind}:{port}",
                "--certfile", str(pki.server_cert), "--keyfile", str(pki.server_key),
                "--workers", str(settings.WEB_WORKERS), "--threads", "4",
                "--access-logfile", "-", "--graceful-timeout", "5",
            ],
        ),
        Child("worker", [python, "-m", "celery", "-A", "portal", "worker", "--loglevel", "INFO", "--concurrency", "2"]),
        Child(
            "beat",
            [python, "-m", "celery", "-A", "portal", "beat", "--loglevel", "INFO",
             "--schedule", str(settings.DATA_DIR / "celerybeat-schedule")],
        ),
    ]  # fmt: skip


# prctl(2) option: the signal a process receives when its parent dies.
PR_SET_PDEATHSIG = 1


def _die_with_launcher() -> None:
    """Run in each child before exec: have Linux SIGTERM it if the launcher dies without stopping it (kill -9)."""
    # Not on Linux there is no prctl; Ctrl-C and SIGTERM still stop everything through _terminate.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def supervise(procs: list[Child]) -> int:
    """Start every child; stop all of them on Ctrl-C, SIGTERM or when one exits. Returns an exit code."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for child in procs:
        # Own process groups, so Ctrl-C reaches only the launcher, which stops children in order.
        child.process = subprocess.Popen(
            child.argv, env=os.environ.copy(), start_new_session=True, preexec_fn=_die_with_launcher
        )
    exit_code = 0
    while not stopping:
        for child in procs:
            code = child.process.poll()
            if code is not None:
                print(f"wharf: {child.name} exited with status {code}; stopping the portal", file=sys.stderr)
                exit_code = code or 1
                stopping = True
                break
        time.sleep(0.5)
    print("wharf: stopping web, worker and beat", file=sys.stderr, flush=True)
    _terminate(procs)
    return exit_code


def _terminate(procs: list[Child], grace: float = 10.0) -> None:
    """SIGTERM every child, SIGKILL those still running after the grace period, then sweep their groups."""
    for child in procs:
        if child.process and child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + grace
    for child in procs:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(child.process.pid)
            child.process.wait()
    # A child that exited may leave processes of its own behind (a pool worker whose master died);
    # each child leads its own session and group, so killing the group catches every straggler.
    for child in procs:
        if child.process is not None:
            _kill_group(child.process.pid)


def _kill_group(pgid: int) -> None:
    """SIGKILL whatever is left in a process group; nothing left is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)

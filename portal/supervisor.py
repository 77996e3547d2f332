"""Supervision of the launcher's children: start them, restart any that dies with backoff, stop them all on a signal.

One dead child no longer takes the portal down: the registry, the worker, the beat and web itself are each
started again, 1 s after a first failure and twice as long after each further one in a row, up to a minute.
A child that ran for a while before it died starts its backoff over. The state of every child is written to
the data directory (portal.core.components) for the web process to show, and each restart is audited.

The one exception: web exiting before it ever answered on its port stops the portal. That is a start-up
failure (the port is taken, the certificate cannot be read) that no restart cures, and with web down
nothing else could show it; `make run` prints the reason and exits as it always did.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from portal.core import components
from portal.core.components import OFF, RESTARTING, RUNNING, STARTING, ComponentStatus
from portal.launcher import Child

FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
# A child that ran this long before it died is not crash-looping: its next restart waits the first delay again.
STABLE_AFTER_SECONDS = 30.0
POLL_SECONDS = 0.25

# (component, reason, restarts so far, delay waited) for each restart; called off the supervision loop.
RestartRecorder = Callable[[str, str, int, float], None]


def restart_delay(failures: int, first: float = FIRST_DELAY_SECONDS, maximum: float = MAX_DELAY_SECONDS) -> float:
    """Seconds to wait before starting a child again after `failures` deaths in a row (1, 2, 4, ... 60)."""
    return min(maximum, first * 2 ** max(0, failures - 1))


def exit_reason(code: int) -> str:
    """How a child ended, as Popen.returncode tells it (negative: the signal that killed it)."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with status {code}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Supervised:
    """A child and what the supervisor knows of it."""

    child: Child
    state: str = STARTING
    since: str = ""
    detail: str = ""
    restarts: int = 0
    failures: int = 0
    started_at: float = 0.0
    restart_at: float = 0.0
    answered: bool = False
    reason: str = ""

    def status(self) -> ComponentStatus:
        return ComponentStatus(self.state, self.since, self.restarts, self.detail)

    def enter(self, state: str, detail: str) -> None:
        self.state, self.detail, self.since = state, detail, _now()


def _answers(address: tuple[str, int]) -> bool:
    """Whether something accepts TCP connections at host:port (the child's port is open)."""
    try:
        with socket.create_connection(address, timeout=0.2):
            return True
    except OSError:
        return False


# prctl(2) option: the signal a process receives when its parent dies.
PR_SET_PDEATHSIG = 1


def _die_with_launcher() -> None:
    """Run in each child before exec: have Linux SIGTERM it if the launcher dies without stopping it (kill -9)."""
    # Not on Linux there is no prctl; Ctrl-C and SIGTERM still stop everything through _terminate.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Keeps a set of children running; `step()` is one look at all of them."""

    def __init__(
        self,
        procs: list[Child],
        record_restart: RestartRecorder | None = None,
        status_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        left_off: dict[str, str] | None = None,
    ) -> None:
        self.entries = [Supervised(child) for child in procs]
        self.record_restart = record_restart
        self.status_path = status_path
        self.clock = clock
        self.written_at: float | None = None
        # Parts the launcher did not start, with the reason: reported as off, so the UI can say why.
        self.left_off = {name: ComponentStatus(OFF, _now(), 0, reason) for name, reason in (left_off or {}).items()}

    def start_all(self) -> None:
        for entry in self.entries:
            self._start(entry)
        self._write_status()

    def _start(self, entry: Supervised) -> None:
        child = entry.child
        # Own process groups, so Ctrl-C reaches only the launcher, which stops children in order.
        child.process = subprocess.Popen(
            child.argv, env={**os.environ, **child.env}, start_new_session=True, preexec_fn=_die_with_launcher
        )
        entry.started_at = self.clock()
        entry.enter(STARTING, f"restart {entry.restarts}, last run {entry.reason}" if entry.restarts else "started")

    def step(self) -> int | None:
        """Look at every child once: mark the ready, schedule the dead, restart the due. Returns an exit code
        when the portal must stop (web never came up), otherwise None."""
        now = self.clock()
        changed = False
        for entry in self.entries:
            process = entry.child.process
            code = process.poll() if process is not None and entry.state != RESTARTING else None
            if code is not None:
                if entry.child.name == "web" and not entry.answered:
                    print(f"wharf: web {exit_reason(code)} before it served; stopping the portal", file=sys.stderr)
                    return code or 1
                self._schedule_restart(entry, code, now)
                changed = True
            elif entry.state == RESTARTING and now >= entry.restart_at:
                self._restart(entry, now)
                changed = True
            elif entry.state == STARTING and self._ready(entry):
                entry.answered = True
                entry.enter(RUNNING, f"pid {process.pid}")
                changed = True
        if changed or self.written_at is None or now - self.written_at >= components.HEARTBEAT_SECONDS:
            self._write_status()
        return None

    def _ready(self, entry: Supervised) -> bool:
        probe = entry.child.probe
        return _answers(probe) if probe is not None else True

    def _schedule_restart(self, entry: Supervised, code: int, now: float) -> None:
        # What the dead child left in its group (a pool worker whose master died) goes with it.
        _kill_group(entry.child.process.pid)
        ran = now - entry.started_at
        entry.failures = 1 if ran >= STABLE_AFTER_SECONDS else entry.failures + 1
        delay = restart_delay(entry.failures)
        entry.reason = exit_reason(code)
        entry.restart_at = now + delay
        entry.enter(RESTARTING, f"{entry.reason}; restart {entry.restarts + 1} in {delay:g} s")
        print(f"wharf: {entry.child.name} {entry.reason} after {ran:.0f} s; restarting in {delay:g} s", file=sys.stderr)

    def _restart(self, entry: Supervised, now: float) -> None:
        waited = restart_delay(entry.failures)
        entry.restarts += 1
        self._start(entry)
        print(f"wharf: {entry.child.name} restarted (restart {entry.restarts})", file=sys.stderr, flush=True)
        if self.record_restart is not None:
            self.record_restart(entry.child.name, entry.reason, entry.restarts, waited)

    def _write_status(self) -> None:
        self.written_at = self.clock()
        statuses = {**self.left_off, **{entry.child.name: entry.status() for entry in self.entries}}
        # The web process learns the parts' health only from this file; failing to write it must not stop them.
        try:
            components.write(statuses, self.status_path)
        except OSError as exc:
            print(f"wharf: cannot write the components' status: {exc}", file=sys.stderr)

    def stop(self) -> None:
        """Stop every child and forget the status file."""
        procs = [entry.child for entry in self.entries]
        print(f"wharf: stopping {', '.join(child.name for child in procs)}", file=sys.stderr, flush=True)
        _terminate(procs)
        with contextlib.suppress(OSError):
            components.remove(self.status_path)


class AuditQueue:
    """Runs the restart recorder in a thread of its own: a busy database never holds up a restart."""

    def __init__(self, record: RestartRecorder) -> None:
        self.record = record
        self.pending: queue.Queue[tuple[str, str, int, float] | None] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="restart-audit", daemon=True)
        self.thread.start()

    def __call__(self, name: str, reason: str, restarts: int, delay: float) -> None:
        self.pending.put((name, reason, restarts, delay))

    def _run(self) -> None:
        while (item := self.pending.get()) is not None:
            try:
                self.record(*item)
            except Exception as exc:  # an audit failure is reported, never fatal to the supervisor
                print(f"wharf: could not audit the restart of {item[0]}: {exc}", file=sys.stderr)

    def close(self, timeout: float = 5.0) -> None:
        self.pending.put(None)
        self.thread.join(timeout)


def supervise(
    procs: list[Child], record_restart: RestartRecorder | None = None, left_off: dict[str, str] | None = None
) -> int:
    """Start every child and keep them running until Ctrl-C or SIGTERM; then stop all. Returns an exit code.

    `left_off` names the parts not started, with the reason, for the components' status."""
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    auditor = AuditQueue(record_restart) if record_restart is not None else None
    supervisor = Supervisor(procs, auditor, left_off=left_off)
    supervisor.start_all()
    exit_code = 0
    while not stopping:
        code = supervisor.step()
        if code is not None:
            exit_code = code
            break
        time.sleep(POLL_SECONDS)
    supervisor.stop()
    if auditor is not None:
        auditor.close()
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

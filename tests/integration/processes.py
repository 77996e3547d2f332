"""Ending the real services the integration tests start."""

from __future__ import annotations

import subprocess


def stop_process(process: subprocess.Popen, grace: float) -> None:
    """Ask a process to end (SIGTERM) and wait `grace` seconds for it, then kill it; nothing when it has ended."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

"""The launcher's supervision: backoff, restarts of real child processes, the status file, owner-only data."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

from portal.core import components
from portal.launcher import Child, restrict_data_dir
from portal.supervisor import Supervisor, exit_reason, restart_delay


class Clock:
    """A monotonic clock the test moves by hand, so backoff is checked without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def python_child(name: str, code: str, probe: tuple[str, int] | None = None) -> Child:
    return Child(name, [sys.executable, "-c", code], probe=probe)


def wait_exit(child: Child) -> None:
    child.process.wait(timeout=10)


@pytest.fixture
def supervisors() -> list[Supervisor]:
    """Supervisors a test made; their children are stopped when it ends."""
    made: list[Supervisor] = []
    yield made
    for supervisor in made:
        supervisor.stop()


def supervisor_of(made: list[Supervisor], tmp_path: Path, *procs: Child) -> tuple[Supervisor, Clock, list]:
    clock, restarts = Clock(), []
    supervisor = Supervisor(list(procs), lambda *args: restarts.append(args), tmp_path / "components.json", clock)
    made.append(supervisor)
    supervisor.start_all()
    return supervisor, clock, restarts


def test_restart_delay_doubles_from_one_second_up_to_a_minute() -> None:
    assert [restart_delay(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_exit_reason_names_the_signal_or_the_status() -> None:
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(3) == "exited with status 3"


def test_crash_looping_child_is_restarted_with_growing_delays_and_each_restart_recorded(
    tmp_path: Path, supervisors: list
) -> None:
    child = python_child("worker", "import sys; sys.exit(3)")
    supervisor, clock, restarts = supervisor_of(supervisors, tmp_path, child)
    for attempt, delay in enumerate([1, 2, 4, 8], 1):
        wait_exit(child)
        assert supervisor.step() is None, "a dying worker must not stop the portal"
        status = components.read(tmp_path / "components.json")["worker"]
        assert (status.state, status.restarts) == ("restarting", attempt - 1)
        assert status.detail == f"exited with status 3; restart {attempt} in {delay} s"
        clock.now += delay - 0.1
        supervisor.step()
        assert child.process.poll() == 3, "restarted before its delay was over"
        clock.now += 0.1
        supervisor.step()
        status = components.read(tmp_path / "components.json")["worker"]
        assert (status.state, status.detail) == ("starting", f"restart {attempt}, last run exited with status 3")
    assert restarts == [("worker", "exited with status 3", n, d) for n, d in [(1, 1), (2, 2), (3, 4), (4, 8)]]


def test_child_that_ran_a_while_starts_its_backoff_over(tmp_path: Path, supervisors: list) -> None:
    child = python_child("beat", "import sys; sys.exit(1)")
    supervisor, clock, _ = supervisor_of(supervisors, tmp_path, child)
    for delay in (1, 2):
        wait_exit(child)
        supervisor.step()
        clock.now += delay
        supervisor.step()
    wait_exit(child)
    clock.now += 31  # the third run "lasted" longer than STABLE_AFTER_SECONDS
    supervisor.step()
    assert supervisor.entries[0].restart_at == clock.now + 1


def test_killed_child_comes_back_and_running_needs_its_port_open(tmp_path: Path, supervisors: list) -> None:
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        port = reserved.getsockname()[1]
    serve = f"import socket, time; s = socket.create_server(('127.0.0.1', {port})); time.sleep(60)"
    child = python_child("registry", serve, probe=("127.0.0.1", port))
    supervisor, clock, restarts = supervisor_of(supervisors, tmp_path, child)
    wait_running(supervisor, "registry")
    first = child.process.pid
    child.process.kill()
    wait_exit(child)
    supervisor.step()
    status = components.read(tmp_path / "components.json")["registry"]
    assert (status.state, status.detail) == ("restarting", "killed by SIGKILL; restart 1 in 1 s")
    clock.now += 1
    supervisor.step()
    assert child.process.pid != first
    wait_running(supervisor, "registry")
    assert restarts == [("registry", "killed by SIGKILL", 1, 1)]


def wait_running(supervisor: Supervisor, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while components.read(supervisor.status_path)[name].state != "running":
        assert time.monotonic() < deadline, f"{name} is not running: {components.read(supervisor.status_path)}"
        supervisor.step()
        time.sleep(0.05)


def test_web_that_never_served_stops_the_portal_with_its_status(tmp_path: Path, supervisors: list) -> None:
    web = python_child("web", "import sys; sys.exit(4)", probe=("127.0.0.1", 9))
    supervisor, _, _ = supervisor_of(supervisors, tmp_path, web)
    wait_exit(web)
    assert supervisor.step() == 4


def test_web_that_served_is_restarted_like_the_others(tmp_path: Path, supervisors: list) -> None:
    web = python_child("web", "import time; time.sleep(60)")
    supervisor, _, _ = supervisor_of(supervisors, tmp_path, web)
    wait_running(supervisor, "web")
    web.process.kill()
    wait_exit(web)
    assert supervisor.step() is None
    assert components.read(tmp_path / "components.json")["web"].state == "restarting"


def test_stopping_removes_the_status_file(tmp_path: Path, supervisors: list) -> None:
    supervisor, _, _ = supervisor_of(supervisors, tmp_path, python_child("beat", "import time; time.sleep(60)"))
    assert (tmp_path / "components.json").exists()
    supervisor.stop()
    assert not (tmp_path / "components.json").exists()


def test_a_status_file_nobody_keeps_up_to_date_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "components.json"
    components.write({"registry": components.ComponentStatus("restarting", "", 0, "killed by SIGKILL")}, path)
    assert components.read(path)["registry"].state == "restarting"
    document = json.loads(path.read_text())
    document["updated"] -= components.STALE_AFTER_SECONDS + 1
    path.write_text(json.dumps(document))
    assert components.read(path) == {}, "a launcher killed with -9 leaves its last word behind"


def test_data_dir_is_made_owner_only_except_the_skipped_blob_store(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "pki").mkdir(parents=True)
    (data / "registry" / "docker").mkdir(parents=True)
    for path in (data, data / "pki", data / "registry"):
        path.chmod(0o755)
    (data / "wharf.sqlite3").write_text("")
    (data / "pki" / "ca.key").write_text("")
    (data / "registry" / "docker" / "blob").write_text("")
    for path in (data / "wharf.sqlite3", data / "pki" / "ca.key", data / "registry" / "docker" / "blob"):
        path.chmod(0o644)
    restrict_data_dir(data, skip=(data / "registry" / "docker",))
    modes = {str(p.relative_to(data)): p.stat().st_mode & 0o777 for p in data.rglob("*")}
    assert data.stat().st_mode & 0o777 == 0o700
    assert modes == {
        "pki": 0o700,
        "pki/ca.key": 0o600,
        "registry": 0o700,
        "registry/docker": 0o755,
        "registry/docker/blob": 0o644,
        "wharf.sqlite3": 0o600,
    }


def test_parts_left_off_are_reported_off_with_the_reason_and_gone_with_the_launcher(supervisors, tmp_path) -> None:
    path = tmp_path / "components.json"
    supervisor = Supervisor(
        [python_child("worker", "import time; time.sleep(60)")], status_path=path, left_off={"notary-server": "why"}
    )
    supervisors.append(supervisor)
    supervisor.start_all()
    supervisor.step()
    status = components.read(path)["notary-server"]
    assert (status.state, status.restarts, status.detail) == ("off", 0, "why")
    assert components.read(path)["worker"].state in ("starting", "running")
    supervisor.stop()
    assert components.read(path) == {}

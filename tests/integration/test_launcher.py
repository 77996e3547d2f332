"""The README's quick start for real: `manage.py run` on the embedded defaults, HTTPS with its own CA, Ctrl-C."""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import requests
import yaml

from tests.integration.images import write_oci_layout
from tests.integration.launcher_helpers import (
    NOT_EMBEDDED,
    PYTHON,
    ROOT,
    Launcher,
    children_of,
    command_line,
    embedded_env,
    free_port,
    read_env_file,
    session_of,
    thumbprints,
    wait_gone,
)

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "Quick-start-Passw0rd"
# How long Ctrl-C may take to stop everything: gunicorn's and Celery's graceful shutdowns run in parallel.
STOP_WITHIN = 15.0


@pytest.fixture
def launchers() -> Iterator[list[Launcher]]:
    """Launchers a test started; any still running when it ends is killed with its whole tree."""
    started: list[Launcher] = []
    yield started
    for launcher in started:
        if launcher.process.poll() is None:
            launcher.kill()


def start(launchers: list[Launcher], data_dir: Path, **env: str) -> Launcher:
    # The registry child on a port of its own, so parallel runs never collide on the default 5000.
    env.setdefault("WHARF_REGISTRY_URL", f"http://127.0.0.1:{free_port()}")
    launcher = Launcher.start(data_dir, **env)
    launchers.append(launcher)
    return launcher


def stop_and_check_everything_exits(launcher: Launcher) -> None:
    """Ctrl-C the launcher; it and every process it started (in their own sessions) must be gone in time."""
    tree = launcher.process_tree()
    names = " ".join(command_line(pid) for pid in tree)
    for expected in ("gunicorn", "-n worker@", "-n scanner@", "celery -A portal beat"):
        assert expected in names, f"no {expected!r} process runs under the launcher; processes: {names}"
    sessions = {session_of(pid) for pid in tree} - {os.getsid(0), None}
    code, took = launcher.interrupt(timeout=STOP_WITHIN)
    assert code == 0, f"launcher exited with {code} after Ctrl-C:\n{launcher.output[-3000:]}"
    left = wait_gone(tree, sessions, timeout=max(1.0, STOP_WITHIN - took))
    assert not left, "still running after Ctrl-C: " + "; ".join(f"{pid} {command_line(pid)}" for pid in left)


def test_quick_start_serves_verified_https_and_ctrl_c_stops_every_process(tmp_path, launchers) -> None:
    registry_url = f"http://127.0.0.1:{free_port()}"
    launcher = start(launchers, tmp_path / "data", WHARF_ADMIN_PASSWORD=ADMIN_PASSWORD, WHARF_REGISTRY_URL=registry_url)
    info = launcher.wait_until_serving()
    assert info.status_code == 200, info.text

    output = launcher.output
    assert f"https://127.0.0.1:{launcher.port}/" in output, f"the portal URL is not printed:\n{output}"
    printed = thumbprints(output)
    assert printed == {"SHA-1": info.json()["ca_sha1"], "SHA-256": info.json()["ca_sha256"]}, (
        f"printed CA thumbprints {printed} differ from /api/v1/systeminfo's {info.json()}"
    )
    assert ADMIN_PASSWORD not in output, "a password given in WHARF_ADMIN_PASSWORD must not be printed"

    projects = launcher.get("/api/v1/projects", auth=("admin", ADMIN_PASSWORD))
    assert projects.status_code == 200, projects.text
    assert [(p["name"], p["public"]) for p in projects.json()["results"]] == [("default-project", True)]

    # No directory is configured in the embedded default: the sync is refused with a reason, not queued.
    sync = launcher.post("/api/v1/jobs/directory-sync", auth=("admin", ADMIN_PASSWORD))
    assert sync.status_code == 400, sync.text
    assert "No directory is configured" in sync.json()["detail"]

    # The registry runs as a fourth child behind the portal's /v2/, which sends clients to its token service.
    assert shutil.which("docker-registry"), "docker-registry is not installed: apt-get install docker-registry"
    assert f"registry: {registry_url}" in output, f"the registry is not reported as running:\n{output}"
    challenge = wait_for_registry(launcher)
    assert challenge.status_code == 401, challenge.text
    assert f'Bearer realm="{launcher.url}/service/token"' in challenge.headers["WWW-Authenticate"]
    # A developer's token on the embedded SQLite database (the role lookup once broke only there).
    admin = ("admin", ADMIN_PASSWORD)
    created = launcher.post("/api/v1/users", auth=admin, json={"username": "dev", "password": "Dock-side-2026"})
    assert created.status_code == 201, created.text
    member = {"user": "dev", "role": "developer"}
    assert launcher.post("/api/v1/projects/default-project/members", auth=admin, json=member).status_code == 201
    scope = "repository:default-project/app:pull,push"
    token = launcher.get(f"/service/token?service=wharf-registry&scope={scope}", auth=("dev", "Dock-side-2026"))
    assert token.status_code == 200, token.text
    claims = jwt.decode(token.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [{"type": "repository", "name": "default-project/app", "actions": ["pull", "push"]}]
    config = yaml.safe_load((tmp_path / "data" / "registry" / "config.yml").read_text())
    assert config["http"]["addr"] == registry_url.removeprefix("http://")
    assert config["notifications"]["endpoints"][0]["url"] == f"https://127.0.0.1:{launcher.port}/service/notifications"
    assert any("docker-registry serve" in command_line(pid) for pid in launcher.process_tree())

    stop_and_check_everything_exits(launcher)


def wait_for_registry(launcher: Launcher, timeout: float = 20.0) -> requests.Response:
    """GET /v2/ through the portal until the registry behind it answers (it may start after the web server)."""
    deadline = time.monotonic() + timeout
    while True:
        response = launcher.get("/v2/")
        if response.status_code != 503 or time.monotonic() > deadline:
            return response
        time.sleep(0.3)


def test_generated_admin_password_is_printed_once_and_keeps_working(tmp_path, launchers) -> None:
    data_dir = tmp_path / "data"
    first = start(launchers, data_dir)
    first.wait_until_serving()
    found = re.findall(r"admin user: admin / (\S+)", first.output)
    assert len(found) == 1, f"expected the generated admin password printed once:\n{first.output}"
    password = found[0]
    assert first.get("/api/v1/projects", auth=("admin", password)).status_code == 200
    stop_and_check_everything_exits(first)

    second = start(launchers, data_dir)
    second.wait_until_serving()
    assert not re.search(r"admin user: admin / ", second.output), (
        f"a second start printed a new admin password:\n{second.output}"
    )
    assert password not in second.output, "a second start printed the admin password again"
    assert second.get("/api/v1/projects", auth=("admin", password)).status_code == 200, (
        "the password generated at the first start no longer works"
    )
    stop_and_check_everything_exits(second)


def test_container_init_web_command_and_healthcheck_work_without_docker(tmp_path) -> None:
    # The compose stack's own commands, run here with .env.example's settings (but SQLite instead of the
    # postgres service, which needs Docker): init prepares everything, web serves HTTPS, the healthcheck passes.
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    stack = read_env_file(ROOT / ".env.example")
    # Everything of .env.example but the postgres and redis URLs and the container's /data path.
    kept = {k: v for k, v in stack.items() if k not in (*NOT_EMBEDDED, "WHARF_DATA_DIR")}
    data_dir, port = tmp_path / "data", free_port()
    env = embedded_env(data_dir, **kept, WHARF_PORT=str(port), WHARF_BIND="127.0.0.1")
    env["WHARF_ADMIN_PASSWORD"] = stack["WHARF_ADMIN_PASSWORD"]
    env["PATH"] = f"{PYTHON.parent}{os.pathsep}{env['PATH']}"

    init = subprocess.run(
        ["docker/entrypoint.sh", *services["init"]["command"]], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert init.returncode == 0, f"init failed:\n{init.stdout}\n{init.stderr}"
    assert (data_dir / "pki" / "server.crt").exists(), "init did not create the HTTPS certificate"
    check_registry_service_config(services["registry"], data_dir, tmp_path, env, init.stderr)

    web = subprocess.Popen(
        ["docker/entrypoint.sh", *services["web"]["command"]],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        healthcheck = services["web"]["healthcheck"]["test"][1:]
        deadline = time.monotonic() + 30
        while subprocess.run(healthcheck, cwd=ROOT, env=env, capture_output=True).returncode != 0:
            assert web.poll() is None, f"web exited with {web.returncode}:\n{web.stdout.read()}"
            assert time.monotonic() < deadline, "the web healthcheck did not pass within 30 s"
            time.sleep(0.5)
        projects = requests.get(
            f"https://127.0.0.1:{port}/api/v1/projects",
            auth=("admin", env["WHARF_ADMIN_PASSWORD"]),
            verify=str(data_dir / "pki" / "ca.crt"),
            timeout=10,
        )
        assert projects.status_code == 200, projects.text
        assert [p["name"] for p in projects.json()["results"]] == ["default-project"]
    finally:
        web.terminate()
        web.wait(timeout=15)


def check_registry_service_config(registry: dict, data_dir: Path, tmp_path: Path, env: dict, init_stderr: str) -> None:
    """The registry config init wrote is what the registry service needs, and a real registry serves it."""
    config_path = data_dir / "registry" / "config.yml"
    assert registry["command"][-1] == "/data/registry/config.yml", "the registry serves another file than init writes"
    config = yaml.safe_load(config_path.read_text())
    assert config["http"]["addr"] == "0.0.0.0:5000"
    assert config["notifications"]["endpoints"][0]["url"] == "https://web:8282/service/notifications"
    assert config["auth"]["token"]["rootcertbundle"] == str(data_dir / "pki" / "token.crt")
    # The realm is derived from the first WHARF_HOSTNAMES entry and WHARF_PORT (a free port in this test).
    realm = f"https://wharf.example.com:{env['WHARF_PORT']}/service/token"
    assert config["auth"]["token"]["realm"] == realm
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    bundle = data_dir / "registry" / "ca-bundle.crt"
    assert (data_dir / "pki" / "ca.crt").read_text().strip() in bundle.read_text()
    assert "does not name" not in init_stderr, f"web's certificate must name the notify host `web`:\n{init_stderr}"

    # Debian's build of the same distribution registry serves a copy, on a free loopback port and a temp storage.
    port = free_port()
    served = yaml.safe_load(config_path.read_text())
    served["http"]["addr"] = f"127.0.0.1:{port}"
    served["storage"]["filesystem"]["rootdirectory"] = str(tmp_path / "registry-storage")
    copy = tmp_path / "registry-config.yml"
    copy.write_text(yaml.safe_dump(served))
    binary = shutil.which("docker-registry")
    assert binary, "install Debian's docker-registry (apt-get install docker-registry)"
    process = subprocess.Popen(
        [binary, "serve", str(copy)],
        env={**env, "SSL_CERT_FILE": registry["environment"]["SSL_CERT_FILE"].replace("/data", str(data_dir))},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"the registry exited with {process.returncode}:\n{process.stdout.read()}"
            try:
                response = requests.get(f"http://127.0.0.1:{port}/v2/", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, "the registry did not answer within 20 s"
                time.sleep(0.2)
        assert response.status_code == 401, f"/v2/ should ask for a token: {response.status_code} {response.text}"
        challenge = response.headers.get("WWW-Authenticate", "")
        assert f'realm="{realm}"' in challenge, challenge
        assert 'service="wharf-registry"' in challenge, challenge
        # The compose healthcheck, with busybox's wget as in the registry:2 image (alpine), against this port.
        bin_dir = tmp_path / "busybox-bin"
        bin_dir.mkdir()
        (bin_dir / "wget").symlink_to(shutil.which("busybox"))
        healthcheck = registry["healthcheck"]["test"]
        assert healthcheck[0] == "CMD-SHELL"
        shell = healthcheck[1].replace("127.0.0.1:5000", f"127.0.0.1:{port}")
        probe_env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
        assert subprocess.run(["sh", "-c", shell], env=probe_env, timeout=20).returncode == 0, "healthcheck fails"
        down = shell.replace(f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}")
        assert subprocess.run(["sh", "-c", down], env=probe_env, timeout=20).returncode != 0, (
            "healthcheck passes on a dead port"
        )
    finally:
        process.terminate()
        process.wait(timeout=10)


class Watch:
    """Asks /api/v1/systeminfo every 0.2 s in the background and keeps every answer that was not a 200."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.asked = 0
        self.failures: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                response = self.launcher.get("/api/v1/systeminfo")
                if response.status_code != 200:
                    self.failures.append(f"{response.status_code} {response.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.asked += 1
            time.sleep(0.2)

    def stop(self) -> None:
        self.running = False
        self.thread.join(timeout=15)


def component(launcher: Launcher, name: str) -> dict:
    return launcher.get("/api/v1/systeminfo").json()["components"][name]


def wait_component(launcher: Launcher, name: str, state: str, restarts: int, timeout: float = 30.0) -> dict:
    """Wait for systeminfo to report the part in `state` after `restarts` restarts."""
    deadline = time.monotonic() + timeout
    while True:
        status = component(launcher, name)
        if status["state"] == state and status["restarts"] == restarts:
            return status
        assert time.monotonic() < deadline, f"{name} is {status}, not {state} after {restarts} restarts"
        time.sleep(0.1)


def child_pid(launcher: Launcher, command: str) -> int:
    """The launcher's direct child whose command line holds `command`."""
    found = [pid for pid in children_of(launcher.process.pid) if command in command_line(pid)]
    assert len(found) == 1, f"expected one {command!r} child of the launcher, found {found}"
    return found[0]


def kill_and_time_recovery(launcher: Launcher, name: str, command: str) -> tuple[float, list[str]]:
    """SIGKILL one part; returns how long until systeminfo reports it running again and the /v2/ 503s seen meanwhile."""
    pid = child_pid(launcher, command)
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    unavailable: list[str] = []
    deadline = killed + 30
    while True:
        if name == "registry":
            answer = launcher.get("/v2/")
            if answer.status_code == 503:
                unavailable.append(answer.json()["errors"][0]["message"])
        status = component(launcher, name)
        if status["state"] == "running" and status["restarts"] == 1:
            took = time.monotonic() - killed
            break
        assert time.monotonic() < deadline, f"{name} did not come back within 30 s: {status}\n{launcher.output[-3000:]}"
        time.sleep(0.05)
    assert child_pid(launcher, command) != pid
    return took, unavailable


def test_killed_registry_and_worker_come_back_while_the_portal_answers(tmp_path, launchers) -> None:
    launcher = start(launchers, tmp_path / "data", WHARF_ADMIN_PASSWORD=ADMIN_PASSWORD)
    launcher.wait_until_serving()
    for name in ("web", "worker", "beat", "registry"):
        wait_component(launcher, name, "running", 0)
    watch = Watch(launcher)
    try:
        registry_took, unavailable = kill_and_time_recovery(launcher, "registry", "docker-registry serve")
        worker_took, _ = kill_and_time_recovery(launcher, "worker", "-n worker@")
    finally:
        watch.stop()
    print(f"registry back in {registry_took:.1f} s, worker back in {worker_took:.1f} s; {watch.asked} systeminfo asks")
    assert registry_took < 10 and worker_took < 10, (registry_took, worker_took)
    assert not watch.failures, f"the portal did not answer while a part was down: {watch.failures[:5]}"
    assert watch.asked > 5
    # Docker prints this message (`unavailable: ...`) while the registry is down.
    assert unavailable, "no 503 from /v2/ was seen while the registry was down"
    # Until the launcher notices (it looks four times a second) the proxy knows only that the registry is gone.
    assert any(m.startswith("the registry is restarting (killed by SIGKILL") for m in unavailable), unavailable
    assert all(m.startswith("the registry ") and "<" not in m for m in unavailable), unavailable

    admin = ("admin", ADMIN_PASSWORD)
    events = launcher.get("/api/v1/audit-logs?q=restart", auth=admin).json()["results"]
    restarts = sorted((e["username"], e["resource_type"], e["resource_name"], e["detail"]["reason"]) for e in events)
    assert restarts == [
        ("system", "component", "registry", "killed by SIGKILL"),
        ("system", "component", "worker", "killed by SIGKILL"),
    ]

    # A push after both restarts works, and the restarted worker applies the registry's event.
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not installed: apt-get install skopeo (make test does)"
    write_oci_layout(tmp_path / "layout", "1")
    copy = subprocess.run(
        [
            skopeo, "--insecure-policy", "copy", "--dest-tls-verify=false", "--dest-creds", f"admin:{ADMIN_PASSWORD}",
            f"oci:{tmp_path / 'layout'}:1", f"docker://127.0.0.1:{launcher.port}/default-project/after-restart:1",
        ],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert copy.returncode == 0, f"skopeo copy failed:\n{copy.stdout}\n{copy.stderr}"
    deadline = time.monotonic() + 30
    while True:
        listed = launcher.get("/api/v1/projects/default-project/repositories", auth=admin).json()["results"]
        if [r["name"] for r in listed] == ["default-project/after-restart"]:
            break
        assert time.monotonic() < deadline, f"the pushed repository is not listed: {listed}\n{launcher.output[-3000:]}"
        time.sleep(0.3)

    stop_and_check_everything_exits(launcher)


def test_data_directory_is_owner_only_after_start(tmp_path, launchers) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    # A file an older version left readable to everyone.
    (data_dir / "secret_key").write_text("an-old-readable-secret-key-of-enough-length-for-django")
    (data_dir / "secret_key").chmod(0o644)
    launcher = start(launchers, data_dir)
    launcher.wait_until_serving()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("wharf.sqlite3", "secret_key", "pki/ca.key", "pki/server.key", "pki/token.key", "registry/config.yml"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    readable = [
        f"{path.relative_to(data_dir)} {stat.S_IMODE(path.lstat().st_mode):o}"
        for path in data_dir.rglob("*")
        if not path.is_symlink() and path.lstat().st_mode & 0o077
    ]
    assert not readable, f"readable by others: {readable}"
    stop_and_check_everything_exits(launcher)


def test_notary_runs_under_the_launcher_on_postgres_and_not_without_it(tmp_path, launchers) -> None:
    from django.db import connection

    from tests.integration.worker import database_url

    # Without a PostgreSQL that answers, notary has no persistent store: the launcher says so and how to give it one,
    # runs on, and reports notary off.
    plain = start(
        launchers,
        tmp_path / "plain",
        WHARF_ADMIN_PASSWORD=ADMIN_PASSWORD,
        WHARF_NOTARY_ENABLED="true",
        WHARF_NOTARY_DATABASE_URL=f"postgres://nobody@127.0.0.1:{free_port()}/notary",
    )
    info = plain.wait_until_serving().json()
    assert not {"notary-server", "notary-signer"} & set(info["components"])
    assert (info["notary_state"], info["with_notary"]) == ("off", False), info
    assert "notary: NOT RUNNING" in plain.output and "WHARF_NOTARY_DATABASE_URL=" in plain.output, plain.output
    plain.interrupt(timeout=STOP_WITHIN)

    name = f"{connection.settings_dict['NAME']}_launcher_notary_{os.getpid()}"
    server_url = database_url(connection.settings_dict).rsplit("/", 1)[0]
    listen = f"127.0.0.1:{free_port()}"
    launcher = start(
        launchers,
        tmp_path / "data",
        WHARF_ADMIN_PASSWORD=ADMIN_PASSWORD,
        WHARF_NOTARY_ENABLED="true",
        WHARF_NOTARY_DATABASE_URL=f"{server_url}/{name}",
        WHARF_NOTARY_LISTEN=listen,
        WHARF_NOTARY_SIGNER_ADDRESS=f"127.0.0.1:{free_port()}",
    )
    try:
        launcher.wait_until_serving()
        for part in ("notary-signer", "notary-server"):
            wait_component(launcher, part, "running", 0)
        assert f"notary (content trust): https://127.0.0.1:{listen.rsplit(':', 1)[1]}" in launcher.output
        # The server's TLS certificate comes from the portal CA, and it asks the portal's token service.
        health = requests.get(f"https://{listen}/_notary_server/health", verify=launcher.ca, timeout=10)
        assert health.status_code == 200, health.text
        challenge = requests.get(f"https://{listen}/v2/", verify=launcher.ca, timeout=10).headers["WWW-Authenticate"]
        assert f"{launcher.url}/service/token" in challenge and 'service="wharf-notary"' in challenge, challenge
        stop_and_check_everything_exits(launcher)
    finally:
        import psycopg2

        admin = psycopg2.connect(f"{server_url}/postgres")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()

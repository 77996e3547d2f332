"""docker-compose.yml, .env.example and the Dockerfile agree with what the portal's settings read.

No Docker engine is needed: the files are parsed, and the settings module is imported with the
variables of .env.example, the way every container of the stack imports it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.launcher_helpers import documented_env_names, read_env_file

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
# The services built from this repository; they must run the same code with the same settings.
APP_SERVICES = ("init", "web", "worker", "beat")
LONG_RUNNING = ("web", "worker", "beat")
# What a production stack cannot run without, each with the reason.
REQUIRED = {
    "WHARF_DATABASE_URL": "the embedded default is a SQLite file, not the postgres service",
    "WHARF_BROKER_URL": "the embedded default is the filesystem broker, not the redis service",
    "WHARF_SECRET_KEY": "every web replica must sign sessions with the same key",
    "WHARF_ADMIN_PASSWORD": "otherwise the password is only in the init service's log",
    "WHARF_DATA_DIR": "web, worker and beat find the PKI in the shared volume",
    "WHARF_HOSTNAMES": "the HTTPS certificate must name the host people and docker clients use",
    "WHARF_ALLOWED_HOSTS": "Django must answer to the portal's host name",
}
ENV_READERS = {"env_str", "env_bool", "env_int", "env_list", "env_secret"}
CODE_FOLDERS = ("portal", "projects", "registries", "hosts", "replication", "scanning", "docker")


def _read_calls(tree: ast.AST) -> list[tuple[str, str, ast.expr | None]]:
    """(reader, variable name, default expression) of every WHARF_* read in a module."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            name = node.args[0]
            if not (isinstance(name, ast.Constant) and str(name.value).startswith("WHARF_")):
                continue
            func = node.func
            reader = func.id if isinstance(func, ast.Name) else ast.unparse(func)
            if reader in ENV_READERS or reader in ("os.environ.get", "os.getenv"):
                found.append((reader, name.value, node.args[1] if len(node.args) > 1 else None))
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
            if isinstance(key, ast.Constant) and str(key.value).startswith("WHARF_"):
                found.append(("os.environ", key.value, None))
    return found


def _portal_reads() -> dict[str, tuple[str, ast.expr | None]]:
    """Every WHARF_* variable the portal's code reads, with the reader and default it uses."""
    reads: dict[str, tuple[str, ast.expr | None]] = {}
    for folder in CODE_FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for reader, name, default in _read_calls(ast.parse(path.read_text(), str(path))):
                reads.setdefault(name, (reader, default))
    return reads


PORTAL_READS = _portal_reads()


def known_variables() -> set[str]:
    """Names the portal understands: those it reads, plus NAME_FILE for each secret."""
    names = set(PORTAL_READS)
    names |= {f"{name}_FILE" for name, (reader, _) in PORTAL_READS.items() if reader == "env_secret"}
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


def env_files(service: dict[str, Any]) -> list[str]:
    """A service's env_file entries, whichever of Compose's spellings it uses."""
    value = service.get("env_file", [])
    entries = value if isinstance(value, list) else [value]
    return [entry["path"] if isinstance(entry, dict) else entry for entry in entries]


def command(service: dict[str, Any]) -> list[str]:
    value = service.get("command", [])
    return value.split() if isinstance(value, str) else [str(part) for part in value]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the final stage, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages = [i for i, line in enumerate(lines) if line.upper().startswith("FROM ")]
    assert stages, "the Dockerfile has no FROM line"
    return [tuple(line.split(None, 1)) for line in lines[stages[-1] :]]  # type: ignore[misc]


def dockerfile_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction, arguments in dockerfile_instructions():
        if instruction.upper() == "ENV":
            values.update(re.findall(r"(\w+)=(\S+)", arguments))
    return values


def test_portal_reads_its_settings_through_the_typed_helpers() -> None:
    # Guards the scanner below: if this finds nothing, every other check here would pass vacuously.
    for name in ("WHARF_DATABASE_URL", "WHARF_BROKER_URL", "WHARF_SECRET_KEY", "WHARF_DATA_DIR", "WHARF_PORT"):
        assert name in PORTAL_READS, f"no env_*({name!r}) call found in the portal's code"


def test_env_example_sets_only_variables_the_portal_reads(env) -> None:
    mentioned = {name for name in env | dict.fromkeys(documented_env_names(ENV_EXAMPLE)) if name.startswith("WHARF_")}
    unknown = sorted(mentioned - known_variables())
    assert not unknown, f".env.example mentions variables no code reads (typo or removed knob?): {unknown}"


def test_compose_sets_only_variables_the_portal_reads(services) -> None:
    for name, service in services.items():
        environment = service.get("environment") or {}
        names = environment if isinstance(environment, dict) else [item.split("=", 1)[0] for item in environment]
        unknown = sorted(n for n in names if n.startswith("WHARF_") and n not in known_variables())
        assert not unknown, f"service {name} sets variables no code reads: {unknown}"


def test_env_example_sets_what_production_needs(env) -> None:
    for name, reason in REQUIRED.items():
        assert env.get(name), f".env.example must set {name}: {reason}"


def test_env_example_lists_every_knob_the_portal_reads(env) -> None:
    listed = set(env) | documented_env_names(ENV_EXAMPLE)
    missing = sorted(set(PORTAL_READS) - listed)
    assert not missing, (
        f"add these to .env.example (set, or commented out with their default) so it stays the one reference: {missing}"
    )


def test_env_example_loads_into_settings_pointing_at_the_compose_services(env, services, tmp_path) -> None:
    # Import the settings in a fresh interpreter with exactly the file's variables, as a container does;
    # a malformed boolean, integer or URL fails here with the variable's name.
    child_env = {**env, "WHARF_DATA_DIR": str(tmp_path), "PATH": os.environ["PATH"]}
    probe = (
        "import json; from django.conf import settings; from kombu.utils.url import url_to_parts; "
        "print(json.dumps({'db': settings.DATABASES['default'], 'broker': url_to_parts(settings.CELERY_BROKER_URL),"
        " 'beat': settings.CELERY_BEAT_SCHEDULER, 'proxy': settings.SECURE_PROXY_SSL_HEADER}, default=str))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={**child_env, "DJANGO_SETTINGS_MODULE": "portal.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"the settings do not load with .env.example's values:\n{result.stderr}"
    loaded = json.loads(result.stdout.strip().splitlines()[-1])

    database, postgres = loaded["db"], services["postgres"]["environment"]
    assert database["ENGINE"] == "django.db.backends.postgresql", f"WHARF_DATABASE_URL is not PostgreSQL: {database}"
    assert database["HOST"] == "postgres" and "postgres" in services, (
        f"WHARF_DATABASE_URL points at host {database['HOST']!r}, not the postgres service"
    )
    assert int(database["PORT"] or 5432) == 5432, "postgres listens on 5432"
    assert database["NAME"] == postgres["POSTGRES_DB"], "WHARF_DATABASE_URL names another database than POSTGRES_DB"
    assert database["USER"] == postgres["POSTGRES_USER"], "WHARF_DATABASE_URL's user is not POSTGRES_USER"
    assert database["PASSWORD"] == env.get("POSTGRES_PASSWORD"), (
        "the password in WHARF_DATABASE_URL differs from POSTGRES_PASSWORD in .env.example"
    )
    broker = loaded["broker"]
    assert broker[0] == "redis" and broker[1] == "redis" and "redis" in services, (
        f"WHARF_BROKER_URL should be redis://redis:6379/N (the redis service), got {env['WHARF_BROKER_URL']}"
    )
    assert int(broker[2] or 6379) == 6379, "redis listens on 6379"
    assert loaded["proxy"] is None, ".env.example should keep the default: web serves HTTPS itself"


def test_compose_interpolates_only_variables_env_example_sets(env) -> None:
    used = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    missing = sorted(used - set(env))
    assert not missing, f"docker-compose.yml interpolates {missing}, which .env.example does not set"


def test_app_services_run_one_image_with_one_env_file(services) -> None:
    for name in APP_SERVICES:
        assert name in services, f"docker-compose.yml has no {name} service"
    reference = services["web"]
    assert reference.get("build") in (".", {"context": "."}), "web must be built from this repository's Dockerfile"
    for name in APP_SERVICES:
        service = services[name]
        assert (service.get("image"), service.get("build")) == (reference.get("image"), reference.get("build")), (
            f"{name} runs another image or build than web: the processes must run the same code"
        )
        assert env_files(service) == [".env"], f"{name} must read its settings from env_file .env, not {service}"


def test_web_worker_and_beat_share_the_data_volume(compose, services, env) -> None:
    data_dir = env["WHARF_DATA_DIR"]
    assert dockerfile_env().get("WHARF_DATA_DIR") == data_dir, (
        "the Dockerfile and .env.example disagree on the data dir"
    )
    mounts = {}
    for name in (*LONG_RUNNING, "init"):
        volumes = [v for v in services[name].get("volumes", []) if str(v).split(":")[1:2] == [data_dir]]
        assert volumes, f"{name} does not mount a volume at WHARF_DATA_DIR={data_dir} (the shared PKI)"
        mounts[name] = str(volumes[0]).split(":")[0]
    assert len(set(mounts.values())) == 1, f"web, worker, beat and init mount different data volumes: {mounts}"
    assert next(iter(mounts.values())) in (compose.get("volumes") or {}), "the data volume is not a named volume"


def test_postgres_and_redis_keep_state_in_named_volumes(compose, services) -> None:
    assert str(services["postgres"]["image"]).startswith("postgres:15"), "the database is PostgreSQL 15"
    assert str(services["redis"]["image"]).startswith("redis:7"), "the broker is Redis 7"
    volumes = [str(v).split(":") for v in services["postgres"].get("volumes", [])]
    data = [source for source, target, *_ in volumes if target == "/var/lib/postgresql/data"]
    assert data and data[0] in (compose.get("volumes") or {}), "postgres data must live in a named volume"


def test_processes_run_the_commands_settings_expect(services) -> None:
    web = command(services["web"])
    assert web[0] == "gunicorn" and "portal.wsgi:application" in web, f"web must run gunicorn on portal.wsgi: {web}"
    config = web[web.index("--config") + 1] if "--config" in web else None
    assert config and (ROOT / config).is_file(), f"web's gunicorn --config {config} does not exist"
    worker = command(services["worker"])
    assert worker[:4] == ["celery", "-A", "portal", "worker"], f"worker must run `celery -A portal worker`: {worker}"
    beat = command(services["beat"])
    assert beat[:4] == ["celery", "-A", "portal", "beat"], f"beat must run `celery -A portal beat`: {beat}"
    if "--scheduler" in beat:
        scheduler = beat[beat.index("--scheduler") + 1]
        assert scheduler == "django_celery_beat.schedulers:DatabaseScheduler", f"beat uses scheduler {scheduler}"
    assert command(services["init"]) == ["init"], "init must run the entrypoint's init step"


def test_entrypoint_migrates_and_bootstraps_on_init() -> None:
    entrypoint = ROOT / "docker" / "entrypoint.sh"
    assert entrypoint.stat().st_mode & stat.S_IXUSR, "docker/entrypoint.sh must be executable"
    text = entrypoint.read_text()
    assert "manage.py migrate" in text and "manage.py bootstrap" in text, "init must migrate, then bootstrap"
    entry = [args for instruction, args in dockerfile_instructions() if instruction.upper() == "ENTRYPOINT"]
    assert entry and "docker/entrypoint.sh" in entry[-1], "the image's ENTRYPOINT must be docker/entrypoint.sh"


def test_web_publishes_the_port_it_listens_on(services, env) -> None:
    default = PORTAL_READS["WHARF_PORT"][1]
    port = int(env.get("WHARF_PORT") or ast.literal_eval(default))
    published = [str(p) for p in services["web"].get("ports", [])]
    assert f"{port}:{port}" in published, f"web must publish {port}:{port} (WHARF_PORT), publishes {published}"
    assert any(args.split()[0] == str(port) for ins, args in dockerfile_instructions() if ins.upper() == "EXPOSE")


def test_services_wait_for_healthy_postgres_and_redis(services) -> None:
    for name in ("postgres", "redis", "web"):
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in LONG_RUNNING:
        depends = services[name].get("depends_on") or {}
        for dependency in ("postgres", "redis"):
            condition = depends.get(dependency, {}).get("condition") if isinstance(depends, dict) else None
            assert condition == "service_healthy", f"{name} must wait for {dependency} to be healthy, has {depends}"
        condition = depends.get("init", {}).get("condition")
        assert condition == "service_completed_successfully", f"{name} must start after init finished, has {depends}"
    init = services["init"].get("depends_on") or {}
    assert init.get("postgres", {}).get("condition") == "service_healthy", "init must wait for a healthy postgres"
    assert services["init"].get("restart", "no") == "no", "init is one-shot: it must not restart"


def test_web_healthcheck_host_is_allowed(services, env) -> None:
    allowed = [host.strip() for host in env.get("WHARF_ALLOWED_HOSTS", "*").split(",")]
    assert "*" in allowed or "127.0.0.1" in allowed, "the healthcheck asks 127.0.0.1; add it to WHARF_ALLOWED_HOSTS"


def test_image_runs_as_a_non_root_user_from_the_agreed_base() -> None:
    text = DOCKERFILE.read_text()
    bases = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert bases and all(base == "python:3.11-slim-bookworm" for base in bases), f"base images: {bases}"
    users = [args for instruction, args in dockerfile_instructions() if instruction.upper() == "USER"]
    assert users and users[-1] not in ("root", "0"), "the image must run as a non-root user"
    volumes = [args for instruction, args in dockerfile_instructions() if instruction.upper() == "VOLUME"]
    assert any("/data" in v for v in volumes), "the image must declare the /data volume"


def test_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = {line.strip().strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for entry in (".env", ".venv", "node_modules", "data", ".git"):
        assert entry in ignored, f".dockerignore must leave out {entry}"

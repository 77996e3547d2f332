"""docker-compose.yml, .env.example and the Dockerfile agree with what the portal's settings read.

No Docker engine is needed: the files are parsed, and the settings module is imported with the
variables of .env.example, the way every container of the stack imports it.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from django.core.management import call_command

from portal.core.certificates import pki_paths
from tests.integration.launcher_helpers import documented_env_names, read_env_file

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
# The services built from this repository; they must run the same code with the same settings.
APP_SERVICES = ("init", "web", "worker", "scanner", "beat")
LONG_RUNNING = ("web", "worker", "scanner", "beat")
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
    assert command(services["scanner"]) == ["python", "manage.py", "scan_worker"], "scanner runs scan_worker"
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
    assert text.index("manage.py bootstrap") < text.index("manage.py registry_config"), (
        "init must write the registry's config (manage.py registry_config) after bootstrap made the PKI it names"
    )
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


# --- The registry service ----------------------------------------------------------------------


def volume_at(service: dict[str, Any], target: str) -> tuple[str, list[str]] | None:
    """(source, options) of the service's volume mounted at target, or None."""
    for volume in service.get("volumes", []):
        source, mounted, *options = str(volume).split(":")
        if mounted == target:
            return source, options
    return None


@pytest.fixture(scope="module")
def registry_settings(env, tmp_path_factory) -> dict[str, str]:
    """The registry settings as the portal computes them from .env.example, in a fresh interpreter.

    The data dir is a temporary one (settings create it); paths under it are rebased onto
    .env.example's WHARF_DATA_DIR, i.e. where they are inside the containers.
    """
    data_dir = tmp_path_factory.mktemp("data").resolve()
    probe = (
        "import json; from django.conf import settings as s; print(json.dumps({name: str(getattr(s, name)) for name in"
        " ('DATA_DIR', 'REGISTRY_URL', 'REGISTRY_BINARY', 'REGISTRY_STORAGE_DIR', 'REGISTRY_CONFIG_PATH',"
        " 'REGISTRY_LISTEN', 'REGISTRY_NOTIFY_URL', 'REGISTRY_TOKEN_REALM', 'PORT', 'EXTRA_HOSTNAMES',"
        " 'NOTARY_LISTEN', 'NOTARY_SIGNER_ADDRESS', 'NOTARY_DATABASE_URL', 'NOTARY_INTERNAL_URL')}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={
            **env,
            "WHARF_DATA_DIR": str(data_dir),
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"the settings do not load with .env.example's values:\n{result.stderr}"
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("REGISTRY_STORAGE_DIR", "REGISTRY_CONFIG_PATH"):
        path = Path(loaded[name])
        if path.is_relative_to(data_dir):
            loaded[name] = str(Path(env["WHARF_DATA_DIR"]) / path.relative_to(data_dir))
    return loaded


def test_registry_service_serves_the_config_init_writes(services, env, registry_settings) -> None:
    registry = services.get("registry")
    assert registry, "docker-compose.yml has no registry service"
    assert registry.get("image") == "registry:2", f"the registry service runs {registry.get('image')}, not registry:2"
    config = registry_settings["REGISTRY_CONFIG_PATH"]
    assert command(registry) == ["registry", "serve", config], (
        f"the registry must serve the config init writes (WHARF_REGISTRY_CONFIG_PATH={config}): {command(registry)}"
    )
    environment = registry.get("environment") or {}
    bundle = str(Path(config).parent / "ca-bundle.crt")
    assert environment.get("SSL_CERT_FILE") == bundle, (
        f"the registry must trust the portal CA through the bundle init writes beside its config ({bundle})"
    )
    data = volume_at(registry, env["WHARF_DATA_DIR"])
    assert data and data[0] == volume_at(services["init"], env["WHARF_DATA_DIR"])[0], (
        "the registry must mount the data volume init writes its config, bundle and token certificate into"
    )
    assert Path(config).is_relative_to(env["WHARF_DATA_DIR"]), "the registry config must be in the shared data volume"
    depends = registry.get("depends_on") or {}
    assert depends.get("init", {}).get("condition") == "service_completed_successfully", (
        f"the registry must start after init wrote its config, has {depends}"
    )
    assert registry.get("healthcheck", {}).get("test"), "the registry has no healthcheck"
    assert "curl" not in str(registry["healthcheck"]["test"]), "registry:2 has no curl (busybox wget only)"


def test_registry_publishes_no_ports_and_the_portal_reaches_it_in_the_network(services, env, registry_settings) -> None:
    registry = services["registry"]
    assert not registry.get("ports"), f"clients reach the registry only through web's /v2/: {registry.get('ports')}"
    url = urlsplit(registry_settings["REGISTRY_URL"])
    listen_host, _, listen_port = registry_settings["REGISTRY_LISTEN"].rpartition(":")
    assert url.scheme == "http" and url.hostname == "registry", (
        f"WHARF_REGISTRY_URL={env.get('WHARF_REGISTRY_URL')} must name the registry service"
    )
    assert (url.port or 80) == int(listen_port), "WHARF_REGISTRY_URL and WHARF_REGISTRY_LISTEN disagree on the port"
    assert listen_host == "0.0.0.0", "inside the compose network the registry listens on every address of its container"
    assert listen_port in str(registry["healthcheck"]["test"]), "the healthcheck asks another port than it listens on"
    notify = urlsplit(registry_settings["REGISTRY_NOTIFY_URL"])
    assert (notify.hostname, notify.port, notify.path) == (
        "web",
        int(registry_settings["PORT"]),
        "/service/notifications",
    )
    assert notify.scheme == ("https" if env.get("WHARF_BEHIND_PROXY", "false") == "false" else "http")
    assert "web" in [h.strip() for h in env["WHARF_HOSTNAMES"].split(",")], (
        "the registry verifies web's certificate for its notifications: WHARF_HOSTNAMES must name `web`"
    )
    first_host = env["WHARF_HOSTNAMES"].split(",")[0].strip()
    assert (
        registry_settings["REGISTRY_TOKEN_REALM"] == f"https://{first_host}:{registry_settings['PORT']}/service/token"
    )


def test_worker_collects_garbage_on_the_registry_storage(compose, services, registry_settings) -> None:
    storage = registry_settings["REGISTRY_STORAGE_DIR"]
    in_registry, in_worker = volume_at(services["registry"], storage), volume_at(services["worker"], storage)
    assert in_registry, f"the registry does not mount a volume at WHARF_REGISTRY_STORAGE_DIR={storage}"
    assert in_worker, f"the worker (garbage collection) does not mount the registry storage at {storage}"
    assert in_registry[0] == in_worker[0] and in_registry[0] in (compose.get("volumes") or {}), (
        f"registry and worker must share one named storage volume: {in_registry[0]} vs {in_worker[0]}"
    )
    assert "ro" not in in_registry[1] + in_worker[1], "the registry and garbage collection write the storage"
    assert not Path(storage).is_relative_to(Path(registry_settings["REGISTRY_CONFIG_PATH"]).parent), (
        "a storage volume mounted over the config's folder hides the config init writes"
    )
    # GC reads the config at WHARF_REGISTRY_CONFIG_PATH in the worker, the same data volume.
    config = registry_settings["REGISTRY_CONFIG_PATH"]
    assert volume_at(services["worker"], str(Path(config).parents[len(Path(config).parents) - 2])), (
        "the worker does not mount the data volume holding the registry config"
    )
    # The registry binary GC runs is in the Wharf image, on PATH, under the name WHARF_REGISTRY_BINARY.
    binary = registry_settings["REGISTRY_BINARY"]
    copies = [
        args.split() for ins, args in dockerfile_instructions() if ins.upper() == "COPY" and "--from=registry:2" in args
    ]
    assert copies and copies[0][-1] in (f"/usr/local/bin/{binary}", f"/usr/bin/{binary}"), (
        f"the Dockerfile must copy registry:2's binary onto PATH as {binary} (WHARF_REGISTRY_BINARY): {copies}"
    )
    # The volume is first mounted by init (the Wharf image): that gives it the wharf user's ownership.
    assert volume_at(services["init"], storage) and services["registry"].get("user", "").split(":")[0] == "10001"


def test_registry_config_command_writes_the_config_and_trust_bundle(settings, tmp_path) -> None:
    settings.REGISTRY_CONFIG_PATH = tmp_path / "registry" / "config.yml"
    settings.REGISTRY_STORAGE_DIR = Path("/var/lib/registry")
    settings.REGISTRY_LISTEN = "0.0.0.0:5000"
    settings.REGISTRY_NOTIFY_URL = "https://web:8282/service/notifications"
    settings.REGISTRY_TOKEN_REALM = "https://wharf.example.com:8282/service/token"
    out, err = io.StringIO(), io.StringIO()
    call_command("registry_config", stdout=out, stderr=err)

    config = yaml.safe_load(settings.REGISTRY_CONFIG_PATH.read_text())
    assert config["http"]["addr"] == "0.0.0.0:5000"
    assert config["storage"]["filesystem"]["rootdirectory"] == "/var/lib/registry"
    assert config["storage"]["delete"]["enabled"] is True
    endpoint = config["notifications"]["endpoints"][0]
    assert endpoint["url"] == "https://web:8282/service/notifications"
    assert endpoint["headers"]["Authorization"] == [f"Bearer {settings.REGISTRY_NOTIFY_SECRET}"]
    token = config["auth"]["token"]
    assert token["realm"] == "https://wharf.example.com:8282/service/token"
    assert token["rootcertbundle"] == str(pki_paths().token_cert)
    assert (token["service"], token["issuer"]) == (settings.REGISTRY_SERVICE, settings.TOKEN_ISSUER)
    assert stat.S_IMODE(settings.REGISTRY_CONFIG_PATH.stat().st_mode) == 0o600, "the config holds the notify secret"
    bundle = settings.REGISTRY_CONFIG_PATH.parent / "ca-bundle.crt"
    assert pki_paths().ca_cert.read_text().strip() in bundle.read_text(), "the trust bundle lacks the portal CA"
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    assert system.read_text().strip()[:200] in bundle.read_text(), "the trust bundle lacks the system CAs"
    printed = out.getvalue()
    for expected in (str(settings.REGISTRY_CONFIG_PATH), "listen: 0.0.0.0:5000", "storage: /var/lib/registry",
                     "notifications: https://web:8282/service/notifications", f"SSL_CERT_FILE): {bundle}"):  # fmt: skip
        assert expected in printed, f"{expected!r} not in the command's output:\n{printed}"
    # The test PKI's certificate does not name `web`: the registry would reject web's HTTPS, so say so.
    assert "does not name 'web'" in err.getvalue() and "WHARF_HOSTNAMES" in err.getvalue()

    # Repeatable (init runs at every `up`): the upload secret stays, and a certified host draws no warning.
    secret = config["http"]["secret"]
    settings.REGISTRY_NOTIFY_URL = "https://127.0.0.1:8282/service/notifications"
    err = io.StringIO()
    call_command("registry_config", stdout=io.StringIO(), stderr=err)
    again = yaml.safe_load(settings.REGISTRY_CONFIG_PATH.read_text())
    assert again["http"]["secret"] == secret, "a new http secret breaks uploads in progress across restarts"
    assert again["notifications"]["endpoints"][0]["url"] == "https://127.0.0.1:8282/service/notifications"
    assert err.getvalue() == ""


# --- Notary ------------------------------------------------------------------------------------


def test_notary_services_run_the_debian_binaries_on_postgres(services, env, registry_settings) -> None:
    server, signer = services.get("notary-server"), services.get("notary-signer")
    assert server and signer, "docker-compose.yml needs notary-server and notary-signer services"
    assert command(server) == ["python", "manage.py", "notary", "server"], command(server)
    assert command(signer) == ["python", "manage.py", "notary", "signer"], command(signer)
    for service in (server, signer):
        # The Wharf image carries Debian's notary binaries and reads the configs init writes into the data volume.
        assert service.get("image") == services["web"]["image"] and env_files(service) == [".env"]
        assert volume_at(service, env["WHARF_DATA_DIR"]), "notary reads its configs and the PKI from the data volume"
        assert "init" in (service.get("depends_on") or {}), "notary starts after init wrote its configs and tables"
    assert any(
        "notary" in arguments.split() for instruction, arguments in dockerfile_instructions() if instruction == "RUN"
    )
    assert "manage.py notary config" in (ROOT / "docker" / "entrypoint.sh").read_text(), (
        "init must write notary's configs"
    )

    # Docker clients reach the server on the published port it listens on; the signer only inside the network.
    listen_port = registry_settings["NOTARY_LISTEN"].rsplit(":", 1)[1]
    assert [str(port) for port in server.get("ports", [])] == [f"{listen_port}:{listen_port}"]
    assert not signer.get("ports"), "the signer answers the server alone"
    assert registry_settings["NOTARY_SIGNER_ADDRESS"].rsplit(":", 1)[0] == "notary-signer"
    # The portal reads trust data from the server's service in the network, on the port it listens on (its
    # certificate names the service).
    internal = urlsplit(registry_settings["NOTARY_INTERNAL_URL"])
    assert (internal.scheme, internal.hostname, str(internal.port)) == ("https", "notary-server", listen_port), internal
    # Persistent storage on the postgres service (the memory store would lose trust data at every restart).
    database = urlsplit(registry_settings["NOTARY_DATABASE_URL"])
    assert database.scheme == "postgres" and database.hostname == "postgres", registry_settings["NOTARY_DATABASE_URL"]


def test_notary_services_have_healthchecks_and_the_server_waits_for_a_healthy_signer(services) -> None:
    # docker/ is no package (and `docker` is the Docker SDK's name): load the script by its path.
    spec = importlib.util.spec_from_file_location("wharf_healthcheck", ROOT / "docker" / "healthcheck.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    server, signer = services["notary-server"], services["notary-signer"]
    for name, service in (("notary-server", server), ("notary-signer", signer)):
        healthcheck = service.get("healthcheck") or {}
        # The Wharf image's own check (the image has no curl and no gRPC client): docker/healthcheck.py <service>.
        assert healthcheck.get("test") == ["CMD", "python", "docker/healthcheck.py", name], healthcheck
        assert name in script.CHECKS, f"docker/healthcheck.py has no check named {name}"
        depends = service.get("depends_on") or {}
        assert depends.get("postgres", {}).get("condition") == "service_healthy", f"{name}: {depends}"
        assert depends.get("init", {}).get("condition") == "service_completed_successfully", f"{name}: {depends}"
        assert "redis" not in depends, f"{name} does not use Redis; it must not wait for it"
    # The server signs timestamps through the signer: it starts once the signer answers its health service.
    assert (server["depends_on"].get("notary-signer") or {}).get("condition") == "service_healthy", server["depends_on"]
    # The portal serves without notary (content trust then says notary does not answer): nothing else waits for it.
    for name, service in services.items():
        if name != "notary-server":
            assert not {"notary-server", "notary-signer"} & set(service.get("depends_on") or {}), name

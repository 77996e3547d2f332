"""A real distribution registry (Debian's docker-registry) configured as Wharf configures it."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from django.conf import settings

from portal.certificates import ensure_pki
from registries import registry_config
from tests.integration.slapd import free_port


@dataclass
class Registry:
    """A running registry process and where it listens."""

    url: str
    config_path: Path
    storage: Path
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        """Terminate the registry and wait for it."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        """What the registry printed so far (for failure messages)."""
        return self.log_path.read_text(errors="replace")[-4000:]


def start_registry(workdir: Path, notify_url: str, realm: str = "http://127.0.0.1:1/service/token") -> Registry:
    """Start docker-registry on a free loopback port with token auth and notifications; wait until it answers."""
    binary = shutil.which(settings.REGISTRY_BINARY)
    if binary is None:
        pytest.fail(f"{settings.REGISTRY_BINARY} is not installed: apt-get install docker-registry (make test does)")
    paths = ensure_pki()
    port = free_port()
    storage = workdir / "storage"
    config = registry_config.render(
        listen=f"127.0.0.1:{port}",
        storage_dir=storage,
        token_cert=paths.token_cert,
        realm=realm,
        notify_url=notify_url,
        notify_secret=settings.REGISTRY_NOTIFY_SECRET,
        http_secret="test-http-secret",
        service=settings.REGISTRY_SERVICE,
        issuer=settings.TOKEN_ISSUER,
    )
    config_path = registry_config.write(workdir / "config.yml", config)
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    registry = Registry(f"http://127.0.0.1:{port}", config_path, storage, process, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited with {process.returncode}:\n{registry.log()}")
        try:
            if requests.get(f"{registry.url}/v2/", timeout=1).status_code == 401:
                return registry
        except requests.ConnectionError:
            time.sleep(0.1)
    registry.stop()
    pytest.fail(f"docker-registry did not answer on {registry.url}:\n{registry.log()}")

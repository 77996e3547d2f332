"""A real distribution registry (Debian's docker-registry) configured as Wharf configures it."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings

from portal.core.certificates import ensure_pki
from registries import registry_config
from tests.integration.slapd import free_port
from tests.integration.tls_pki import KeyPair


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

    def kill(self) -> None:
        """Kill the registry at once, as an outage would (no graceful end of the requests in flight)."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start the registry again after stop() or kill(): the same configuration, port and storage."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [shutil.which(settings.REGISTRY_BINARY) or settings.REGISTRY_BINARY, "serve", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                requests.get(f"{self.url}/v2/", timeout=1, verify=False)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        pytest.fail(f"docker-registry did not come back on {self.url}:\n{self.log()}")

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
    return _launch(binary, workdir, config, f"http://127.0.0.1:{port}", expect=(401,))


@dataclass(frozen=True)
class TokenAuth:
    """Where a registry in token mode sends clients, and the certificate that verifies the tokens."""

    realm: str
    service: str
    issuer: str
    cert: Path


def start_standalone_registry(
    workdir: Path,
    tls: KeyPair | None = None,
    htpasswd: Path | None = None,
    token: TokenAuth | None = None,
    names_match: bool = True,
    extra_config: dict | None = None,
) -> Registry:
    """Start docker-registry as an external registry: plain HTTP or HTTPS, and no auth, htpasswd or token auth.

    `names_match=False`: the certificate does not name 127.0.0.1, so the start-up check cannot verify it.
    `extra_config`: more top-level sections of the configuration (e.g. `compatibility`).
    """
    binary = shutil.which(settings.REGISTRY_BINARY)
    if binary is None:
        pytest.fail(f"{settings.REGISTRY_BINARY} is not installed: apt-get install docker-registry (make test does)")
    port = free_port()
    http: dict = {"addr": f"127.0.0.1:{port}", "secret": "test-http-secret"}
    if tls is not None:
        http["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
    config: dict = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {"filesystem": {"rootdirectory": str(workdir / "storage")}, "delete": {"enabled": True}},
        "http": http,
        **(extra_config or {}),
    }
    if htpasswd is not None:
        config["auth"] = {"htpasswd": {"realm": "wharf-test", "path": str(htpasswd)}}
    elif token is not None:
        config["auth"] = {
            "token": {
                "realm": token.realm,
                "service": token.service,
                "issuer": token.issuer,
                "rootcertbundle": str(token.cert),
            }
        }
    scheme = "https" if tls else "http"
    expect = (200,) if htpasswd is None and token is None else (401,)
    return _launch(
        binary,
        workdir,
        config,
        f"{scheme}://127.0.0.1:{port}",
        expect,
        verify=str(tls.cert) if tls and names_match else not tls,
    )


def _launch(
    binary: str, workdir: Path, config: dict, url: str, expect: tuple[int, ...], verify: str | bool = True
) -> Registry:
    """Write the config, start the registry and wait until /v2/ answers with an expected status."""
    config_path = registry_config.write(workdir / "config.yml", config)
    storage = Path(config["storage"]["filesystem"]["rootdirectory"])
    log_path = workdir / "registry.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([binary, "serve", str(config_path)], stdout=log, stderr=subprocess.STDOUT)
    registry = Registry(url, config_path, storage, process, log_path)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"docker-registry exited with {process.returncode}:\n{registry.log()}")
        try:
            if requests.get(f"{registry.url}/v2/", timeout=1, verify=verify).status_code in expect:
                return registry
        except requests.ConnectionError:
            time.sleep(0.1)
    registry.stop()
    pytest.fail(f"docker-registry did not answer on {registry.url}:\n{registry.log()}")


def push_tiny_image(
    url: str,
    repository: str,
    tags: list[str],
    headers: dict[str, str] | None = None,
    verify: str | bool = True,
    mount_from: str | None = None,
) -> str:
    """Write a tiny image (a small config blob, no layers) under the tags; returns the manifest digest.

    With `mount_from`, the config blob is mounted from that repository instead of uploaded again, which
    makes filling a registry with thousands of repositories quick.
    """
    import hashlib
    import json
    from urllib.parse import urljoin

    headers = headers or {}
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}'
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    uploads = f"{url}/v2/{repository}/blobs/uploads/"
    if mount_from:
        opened = requests.post(
            f"{uploads}?mount={digest}&from={mount_from}", headers=headers, verify=verify, timeout=30
        )
    else:
        opened = requests.post(uploads, headers=headers, verify=verify, timeout=30)
    if opened.status_code == 202:
        location = urljoin(url, opened.headers["Location"])
        separator = "&" if "?" in location else "?"
        done = requests.put(
            f"{location}{separator}digest={digest}", data=config, headers=headers, verify=verify, timeout=30
        )
        assert done.status_code == 201, done.text
    else:
        assert opened.status_code == 201, opened.text
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": len(config),
                "digest": digest,
            },
            "layers": [],
        }
    ).encode()
    for tag in tags:
        response = requests.put(
            f"{url}/v2/{repository}/manifests/{tag}",
            data=manifest,
            headers={**headers, "Content-Type": "application/vnd.docker.distribution.manifest.v2+json"},
            verify=verify,
            timeout=30,
        )
        assert response.status_code == 201, response.text
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def point_portal_at(settings: Any, registry: Registry) -> Registry:
    """Wharf's settings (the pytest-django `settings` fixture) talking to this registry and its config."""
    settings.REGISTRY_URL = registry.url
    settings.REGISTRY_CONFIG_PATH = registry.config_path
    return registry

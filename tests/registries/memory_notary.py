"""A real notary-server (Debian's notary 0.7) with memory storage and its own timestamp keys, and the `notary` CLI
to sign into it: the quick way to have trust data exactly as notary writes it.

The server speaks TLS with the portal CA's notary certificate, as in production, so `registries.content_trust`
reaches it on its real path (https, the portal CA). No token auth: the portal's bearer token is ignored, which
the unit-level tests accept; the token path is the integration tests' (tests/integration/test_content_trust.py).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from portal.core.certificates import PkiPaths
from registries import tuf
from tests.integration.slapd import free_port

# The passphrases the CLI asks for, as a CI job would set them.
PASSPHRASES = {
    f"NOTARY_{role}_PASSPHRASE": "wharf-test-passphrase" for role in ("ROOT", "TARGETS", "SNAPSHOT", "DELEGATION")
}


@dataclass
class MemoryNotary:
    """A running notary-server on a loopback port; `cli` signs into it with one trust directory."""

    url: str
    process: subprocess.Popen
    workdir: Path
    ca_cert: Path

    def cli(
        self, *args: str, stdin: str | None = None, env: dict[str, str] | None = None, trust_dir: Path | None = None
    ) -> str:
        """Run the notary CLI against the server (as the signer whose keys are in `trust_dir`, by default the one
        signer of the tests); its output, or AssertionError with what it said."""
        trust_dir = trust_dir or self.workdir / "trust"
        result = subprocess.run(
            ["notary", "-s", self.url, "-d", str(trust_dir), "--tlscacert", str(self.ca_cert), *args],
            env={**os.environ, **PASSPHRASES, **(env or {})},
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, f"notary {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def role_file(self, gun: str, role: str) -> bytes:
        """A role file as the server serves it (the newest)."""
        response = requests.get(f"{self.url}/v2/{gun}/_trust/tuf/{role}.json", verify=str(self.ca_cert), timeout=10)
        response.raise_for_status()
        return response.content

    def fetch(self, gun: str) -> tuf.Fetch:
        """A tuf.Fetch reading the GUN's files from the server, by checksum when one is asked for."""

        def fetch(role: str, checksum: str | None) -> bytes:
            name = f"{role}.{checksum}.json" if checksum else f"{role}.json"
            response = requests.get(f"{self.url}/v2/{gun}/_trust/tuf/{name}", verify=str(self.ca_cert), timeout=10)
            response.raise_for_status()
            return response.content

        return fetch

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def memory_notary(workdir: Path, pki: PkiPaths) -> Iterator[MemoryNotary]:
    """notary-server on a free loopback port with memory storage and a local trust service, stopped afterwards."""
    binary = shutil.which("notary-server")
    assert binary is not None and shutil.which("notary"), "notary is not installed (apt-get install notary)"
    workdir.mkdir(parents=True, exist_ok=True)
    listen = f"127.0.0.1:{free_port()}"
    config = {
        "server": {"http_addr": listen, "tls_cert_file": str(pki.notary_cert), "tls_key_file": str(pki.notary_key)},
        "trust_service": {"type": "local"},
        "storage": {"backend": "memory"},
        "logging": {"level": "info"},
    }
    (workdir / "server.json").write_text(json.dumps(config))
    log = (workdir / "server.log").open("wb")
    process = subprocess.Popen(
        [binary, "-config", str(workdir / "server.json")], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
    )
    server = MemoryNotary(f"https://{listen}", process, workdir, pki.ca_cert)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (workdir / "server.log").read_text()
            with contextlib.suppress(requests.RequestException):
                health = requests.get(f"{server.url}/_notary_server/health", verify=str(pki.ca_cert), timeout=2)
                if health.status_code == 200:
                    break
            assert time.monotonic() < deadline, (workdir / "server.log").read_text()
            time.sleep(0.1)
        yield server
    finally:
        server.stop()
        log.close()


def delegation_key(workdir: Path, common_name: str = "releaser") -> tuple[Path, Path]:
    """(certificate, private key) PEM files of a delegate, as `docker trust key generate` would give one."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / f"{common_name}.crt", workdir / f"{common_name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path

"""A small client of the Docker Engine API over HTTP or HTTPS, speaking the portal's trust flow.

We talk to hosts with requests and the portal's own TLS session (pinned certificates, client
certificates from the credential store) rather than docker-py: that keeps one trust flow for
every outbound connection and lets every failure say exactly what went wrong, which is what an
administrator adding a host needs ("server requires a client certificate", "not a Docker API").
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from portal import trust
from portal.addresses import parse_url
from portal.errors import DomainError, Invalid, RemoteUnreachable
from portal.models import Credential, CredentialKind

# Docker 1.12 / API 1.24 is the oldest engine we manage (VIC 1.4 speaks 1.25); 1.41 is what we speak.
MIN_API_VERSION = (1, 24)
MAX_API_VERSION = (1, 41)
# A VCH names its backend in /info's Driver ("vSphere Integrated Containers v1.4.0 Backend Engine").
VIC_DRIVER = "vSphere Integrated Containers"
DEFAULT_TIMEOUT = 10.0
# The Docker daemon's ports: 2376 with TLS, 2375 without.
DOCKER_PORTS = {"https": 2376, "http": 2375}
# Go's TLS server answers plain HTTP on a TLS port with this body.
HTTP_TO_HTTPS = "Client sent an HTTP request to an HTTPS server"


class HostUnreachable(RemoteUnreachable):
    """The host did not answer usefully: refused, timed out, TLS failed."""


class NotADockerHost(Invalid):
    """Something answered, but not as a Docker API we can manage."""

    def __init__(self, message: str) -> None:
        super().__init__(message, {"url": [message]})


class DockerError(DomainError):
    """The Docker API refused a request; carries the daemon's own message and status."""

    def __init__(self, status: int, message: str) -> None:
        # What the daemon answered; `status` is what the portal answers (a daemon's 5xx is a bad gateway).
        self.http_status = status
        self.status = status if 400 <= status < 500 else 502
        super().__init__(message)


def version_tuple(text: str) -> tuple[int, int]:
    """(1, 41) for "1.41"; (0, 0) when unreadable."""
    try:
        major, minor = text.split(".")[:2]
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return (0, 0)


def normalize_url(url: str) -> str:
    """scheme://host:port of a host endpoint; Invalid for anything but http(s) with a host name."""
    return parse_url(url, default_scheme=None, default_ports=DOCKER_PORTS, example="https://docker.example:2376").origin


@dataclass
class HostFacts:
    """What /version and /info tell about a host."""

    api_version: str
    engine_version: str
    operating_system: str
    is_vic: bool
    cpus: int = 0
    memory_bytes: int = 0
    containers_running: int = 0
    containers_stopped: int = 0
    images: int = 0
    raw_info: dict[str, Any] = field(default_factory=dict)


def _tls_alert(text: str, sent_certificate: bool) -> str:
    """A message for the TLS alerts that say what the host thought of our client certificate (or its absence)."""
    upper = text.upper()
    alerts = ("CERTIFICATE_REQUIRED", "BAD_CERTIFICATE", "UNKNOWN_CA", "CERTIFICATE_UNKNOWN", "DECRYPT_ERROR")
    if any(alert in upper for alert in alerts):
        # Go's TLS server answers a missing certificate with "bad certificate" too; what we sent tells them apart.
        if not sent_certificate:
            return "the host requires a client certificate: pick a certificate credential (full TLS)"
        return "the host rejected the client certificate: it is not signed by a CA the host trusts"
    if "WRONG_VERSION_NUMBER" in upper or "RECORD_LAYER_FAILURE" in upper or "PACKET_LENGTH_TOO_LONG" in upper:
        return "the host does not speak TLS on this port: use http:// (no TLS) or the host's TLS port"
    return ""


class DockerClient:
    """Calls to one host's Docker Engine API; every failure becomes a domain error saying what went wrong."""

    def __init__(
        self,
        url: str,
        credential: Credential | None = None,
        api_version: str = "",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = normalize_url(url)
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname or "", parts.port or 0
        self.address = trust.address_of(self.host, self.port)
        self.tls = parts.scheme == "https"
        self.api_version = api_version
        self.timeout = timeout
        self.session = trust.session(self.address, credential) if self.tls else requests.Session()
        self.sends_certificate = self.tls and credential is not None and credential.kind == CredentialKind.CERTIFICATE

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> DockerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------

    def _path(self, path: str) -> str:
        """The URL of an API path, under the negotiated version once there is one."""
        prefix = f"/v{self.api_version}" if self.api_version else ""
        return f"{self.url}{prefix}{path}"

    def call(
        self,
        method: str,
        path: str,
        *,
        timeout: float | None = None,
        stream: bool = False,
        **kwargs: Any,
    ) -> requests.Response:
        """One API request; raises HostUnreachable, NotADockerHost, UntrustedCertificate or DockerError."""
        try:
            response = self.session.request(
                method, self._path(path), timeout=timeout or self.timeout, stream=stream, **kwargs
            )
        except requests.RequestException as exc:
            raise self._translate(exc, timeout or self.timeout) from exc
        if response.status_code == 400 and HTTP_TO_HTTPS in response.text:
            raise HostUnreachable(f"{self.address} speaks TLS: use https://{self.address}")
        if response.status_code >= 400:
            raise DockerError(response.status_code, self._error_message(response))
        return response

    def _translate(self, exc: requests.RequestException, timeout: float) -> DomainError:
        """The domain error for a failed request, naming TLS alerts the generic translation cannot."""
        alert = _tls_alert(repr(exc), self.sends_certificate)
        if alert:
            return HostUnreachable(f"{self.address}: {alert}")
        error = trust.translate_request_error(exc, self.url, timeout)
        if isinstance(error, RemoteUnreachable) and not isinstance(error, HostUnreachable):
            return HostUnreachable(error.message)
        return error

    def _error_message(self, response: requests.Response) -> str:
        """The daemon's error message ({"message": ...}), or a description of what answered."""
        try:
            message = response.json().get("message")
        except (ValueError, AttributeError):
            message = None
        if message:
            return str(message)
        return f"{self.address} answered {response.status_code} {response.reason}"

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a request; NotADockerHost when the answer is not JSON."""
        response = self.call(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise NotADockerHost(f"{self.address} is not a Docker API: {path} did not answer JSON") from exc

    # --- identification ----------------------------------------------------------------------

    def probe(self) -> HostFacts:
        """/_ping, /version and /info: who the host is, checked, with the API version to speak."""
        self.api_version = ""
        try:
            ping = self.call("GET", "/_ping")
        except DockerError as exc:
            raise NotADockerHost(f"{self.address} is not a Docker API: /_ping answered HTTP {exc.http_status}") from exc
        if ping.text.strip() != "OK":
            raise NotADockerHost(f"{self.address} is not a Docker API: /_ping did not answer OK")
        version = self._version()
        self.api_version = version
        return self.facts()

    def _version(self) -> str:
        """The API version to speak: the lower of the host's and ours; Invalid when the host's is too old."""
        try:
            answer = self.json("GET", "/version")
        except DockerError as exc:
            raise NotADockerHost(
                f"{self.address} is not a Docker API: /version answered HTTP {exc.http_status}"
            ) from exc
        if not isinstance(answer, dict) or "ApiVersion" not in answer:
            raise NotADockerHost(f"{self.address} is not a Docker API: /version has no ApiVersion")
        theirs = version_tuple(str(answer["ApiVersion"]))
        if theirs < MIN_API_VERSION:
            oldest = ".".join(map(str, MIN_API_VERSION))
            raise NotADockerHost(
                f"{self.address} speaks Docker API {answer['ApiVersion']}, which is too old: "
                f"the oldest supported is {oldest} (Docker 1.12)"
            )
        return ".".join(map(str, min(theirs, MAX_API_VERSION)))

    def facts(self) -> HostFacts:
        """The host's facts from /version and /info (with the API version already negotiated)."""
        version = self.json("GET", "/version") or {}
        info = self.json("GET", "/info") or {}
        running = int(info.get("ContainersRunning") or 0)
        return HostFacts(
            api_version=self.api_version,
            engine_version=str(version.get("Version") or info.get("ServerVersion") or ""),
            operating_system=str(info.get("OperatingSystem") or version.get("Os") or ""),
            is_vic=str(info.get("Driver") or "").startswith(VIC_DRIVER),
            cpus=int(info.get("NCPU") or 0),
            memory_bytes=int(info.get("MemTotal") or 0),
            containers_running=running,
            containers_stopped=int(info.get("Containers") or 0) - running,
            images=int(info.get("Images") or 0),
            raw_info=info,
        )

    # --- containers -------------------------------------------------------------------------

    def containers(self) -> list[dict[str, Any]]:
        """Every container on the host, running or not (docker ps -a)."""
        return self.json("GET", "/containers/json", params={"all": "1"}) or []

    def inspect(self, container_id: str) -> dict[str, Any]:
        """docker inspect of one container."""
        return self.json("GET", f"/containers/{quote(container_id)}/json")

    def start(self, container_id: str) -> None:
        """Start a container (already running is fine)."""
        self.call("POST", f"/containers/{quote(container_id)}/start")

    def stop(self, container_id: str, seconds: int = 10) -> None:
        """Stop a container, killing it after `seconds` (already stopped is fine)."""
        self.call("POST", f"/containers/{quote(container_id)}/stop", params={"t": seconds}, timeout=seconds + 30)

    def restart(self, container_id: str, seconds: int = 10) -> None:
        """Restart a container."""
        self.call("POST", f"/containers/{quote(container_id)}/restart", params={"t": seconds}, timeout=seconds + 30)

    def remove(self, container_id: str, force: bool = True) -> None:
        """Remove a container (and its anonymous volumes); a container already gone is fine."""
        try:
            self.call("DELETE", f"/containers/{quote(container_id)}", params={"force": int(force), "v": 1})
        except DockerError as exc:
            if exc.status != 404:
                raise

    def create(self, name: str, config: dict[str, Any]) -> str:
        """Create a container; returns its id."""
        answer = self.json("POST", "/containers/create", params={"name": name} if name else None, json=config)
        return answer["Id"]

    def pull(self, image: str, tag: str, registry_auth: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Pull an image, yielding Docker's progress messages; DockerError when the pull fails."""
        headers = {}
        if registry_auth:
            headers["X-Registry-Auth"] = base64.urlsafe_b64encode(json.dumps(registry_auth).encode()).decode()
        response = self.call(
            "POST",
            "/images/create",
            params={"fromImage": image, "tag": tag},
            headers=headers,
            stream=True,
            timeout=max(self.timeout, 600),
        )
        with response:
            for line in response.iter_lines():
                if not line:
                    continue
                try:
                    message = json.loads(line)
                except ValueError:
                    continue
                if message.get("error"):
                    raise DockerError(400, str(message["error"]))
                yield message

    def logs(self, container_id: str, tail: int = 200, since: int = 0, tty: bool = False) -> list[tuple[str, str]]:
        """The container's recent output as (stream, line) pairs, with timestamps at the start of each line."""
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "tail": tail, "since": since}
        body = self.call("GET", f"/containers/{quote(container_id)}/logs", params=params).content
        return list(demultiplex(body, tty))

    def stats(self, container_id: str) -> dict[str, Any]:
        """One stats sample (with the previous CPU sample, as `docker stats` uses)."""
        return self.json("GET", f"/containers/{quote(container_id)}/stats", params={"stream": "false"}, timeout=30)


def demultiplex(body: bytes, tty: bool = False) -> Iterator[tuple[str, str]]:
    """Split Docker's log stream into (stream, line): 8-byte frame headers unless the container has a TTY."""
    if tty:
        for line in body.decode(errors="replace").splitlines():
            yield "stdout", line
        return
    offset = 0
    pending = {"stdout": "", "stderr": ""}
    while offset + 8 <= len(body):
        kind, size = struct.unpack(">BxxxL", body[offset : offset + 8])
        chunk = body[offset + 8 : offset + 8 + size].decode(errors="replace")
        offset += 8 + size
        stream = "stderr" if kind == 2 else "stdout"
        lines = (pending[stream] + chunk).split("\n")
        pending[stream] = lines.pop()
        for line in lines:
            yield stream, line
    for stream, rest in pending.items():
        if rest:
            yield stream, rest


def cpu_percent(sample: dict[str, Any]) -> float:
    """CPU use in percent of one CPU, as `docker stats` computes it from a sample and its predecessor."""
    cpu, previous = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (previous.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - previous.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if cpu_delta <= 0 or system_delta <= 0:
        return 0.0
    return cpu_delta / system_delta * cpus * 100.0


def memory_usage(sample: dict[str, Any]) -> tuple[int, int]:
    """(used, limit) bytes as `docker stats` shows them: usage minus the page cache."""
    memory = sample.get("memory_stats") or {}
    stats = memory.get("stats") or {}
    # cgroup v1 reports total_inactive_file, v2 inactive_file; docker stats subtracts it.
    cache = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    used = max(0, int(memory.get("usage") or 0) - int(cache or 0))
    return used, int(memory.get("limit") or 0)


def network_io(sample: dict[str, Any]) -> tuple[int, int]:
    """(received, sent) bytes over every interface of the container."""
    networks = sample.get("networks") or {}
    return (
        sum(int(n.get("rx_bytes") or 0) for n in networks.values()),
        sum(int(n.get("tx_bytes") or 0) for n in networks.values()),
    )

"""A client of the Docker Engine API over HTTP or HTTPS: the docker SDK's APIClient on the portal's trust flow.

The SDK's APIClient is a requests session, so the portal's trust adapter (pinned certificates, client
certificates from the credential store) is mounted on it: one trust flow for every outbound connection.
What the SDK raises is translated here so that every failure says exactly what went wrong, which is what
an administrator adding a host needs ("server requires a client certificate", "not a Docker API").
The few calls the SDK cannot make as the portal needs stay hand-written (`call`), each saying why.
"""

from __future__ import annotations

import contextlib
import math
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3
from docker import APIClient
from docker.errors import APIError

from portal.core import trust
from portal.core.addresses import parse_url
from portal.core.errors import DomainError, Invalid, RemoteUnreachable
from portal.core.models import Credential, CredentialKind

# Docker 1.12 / API 1.24 is the oldest engine we manage (VIC 1.4 speaks 1.25); 1.41 is what we speak.
MIN_API_VERSION = (1, 24)
MAX_API_VERSION = (1, 41)
API_VERSION = ".".join(map(str, MAX_API_VERSION))
# A VCH names its backend in /info's Driver ("vSphere Integrated Containers v1.4.0 Backend Engine").
VIC_DRIVER = "vSphere Integrated Containers"
DEFAULT_TIMEOUT = 10.0
# Pulling a large image over a slow registry link can leave the progress stream quiet for minutes.
PULL_TIMEOUT = 600.0
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


@dataclass
class Usage:
    """What the running containers of a host use, summed over their one-shot stats."""

    container_cpu_ns: int = 0
    system_cpu_ns: int = 0
    online_cpus: int = 0
    memory_used_bytes: int = 0


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


class _EngineAPI(APIClient):
    """The SDK's APIClient, except that no request waits forever: the SDK sends a streamed pull without a timeout."""

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


class DockerClient(contextlib.AbstractContextManager):
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
        self.credential = credential
        self.sends_certificate = self.tls and credential is not None and credential.kind == CredentialKind.CERTIFICATE
        self.api = self._engine()

    def _engine(self) -> APIClient:
        """The SDK's client of the host, at the saved API version (ours until one is negotiated), on the trust flow."""
        # Always an explicit version: without one the SDK asks /version itself when it is made, at its own version.
        api = _EngineAPI(self.url, version=self.api_version or API_VERSION, timeout=self.timeout)
        return trust.configure(api, self.address, self.credential) if self.tls else api

    def close(self) -> None:
        """Close the pooled connections."""
        self.api.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- transport -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _calling(self, path: str, timeout: float | None = None) -> Iterator[None]:
        """Run SDK calls on `path` (with `timeout`, not the client's), turning what they raise into domain errors."""
        seconds = timeout or self.timeout
        self.api.timeout = seconds
        try:
            yield
        except APIError as exc:
            raise self._refused(exc.response) from exc
        except requests.JSONDecodeError as exc:
            raise NotADockerHost(f"{self.address} is not a Docker API: {path} did not answer JSON") from exc
        except requests.RequestException as exc:
            raise self._translate(exc, seconds) from exc
        except urllib3.exceptions.HTTPError as exc:
            # The SDK reads a pull's progress from the raw urllib3 response; requests wraps its faults so.
            raise self._translate(requests.ConnectionError(exc), seconds) from exc
        finally:
            self.api.timeout = self.timeout

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
        """One hand-written request on the SDK's session, for what the SDK cannot give (see _ping and logs)."""
        seconds = timeout or self.timeout
        with self._calling(path, seconds):
            response = self.api.request(method, self._path(path), timeout=seconds, stream=stream, **kwargs)
        if response.status_code >= 400:
            raise self._refused(response)
        return response

    def _refused(self, response: requests.Response) -> DomainError:
        """The error for an HTTP error answer: HostUnreachable when the port speaks TLS, else DockerError."""
        if response.status_code == 400 and HTTP_TO_HTTPS in response.text:
            return HostUnreachable(f"{self.address} speaks TLS: use https://{self.address}")
        return DockerError(response.status_code, self._error_message(response))

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
        """The JSON body of a hand-written request; NotADockerHost when the answer is not JSON."""
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
        self._ping()
        self._speak(self._version())
        return self.facts()

    def _ping(self) -> None:
        """/_ping with no version in the path; NotADockerHost unless it answers OK.

        Hand-written: the SDK's ping() puts its API version in the path, and an engine older than that
        version (a VCH speaks 1.25) refuses the request before we know which version to speak.
        """
        try:
            ping = self.call("GET", "/_ping")
        except DockerError as exc:
            raise NotADockerHost(f"{self.address} is not a Docker API: /_ping answered HTTP {exc.http_status}") from exc
        if ping.text.strip() != "OK":
            raise NotADockerHost(f"{self.address} is not a Docker API: /_ping did not answer OK")

    def _version(self) -> str:
        """The API version to speak: the lower of the host's and ours; Invalid when the host's is too old."""
        try:
            with self._calling("/version"):
                answer = self.api.version(api_version=False)
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

    def _speak(self, version: str) -> None:
        """Speak `version` from now on; the SDK fixes a client's version when it is made, so make it again."""
        self.api_version = version
        self.api.close()
        self.api = self._engine()

    def facts(self) -> HostFacts:
        """The host's facts from /version and /info (with the API version already negotiated)."""
        with self._calling("/version"):
            version = self.api.version() or {}
        with self._calling("/info"):
            info = self.api.info() or {}
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
        with self._calling("/containers/json"):
            return self.api.containers(all=True) or []

    def inspect(self, container_id: str) -> dict[str, Any]:
        """docker inspect of one container."""
        with self._calling(f"/containers/{quote(container_id)}/json"):
            return self.api.inspect_container(container_id)

    def start(self, container_id: str) -> None:
        """Start a container (already running is fine)."""
        with self._calling(f"/containers/{quote(container_id)}/start"):
            self.api.start(container_id)

    def stop(self, container_id: str, seconds: int = 10) -> None:
        """Stop a container, killing it after `seconds` (already stopped is fine); the SDK waits that much longer."""
        with self._calling(f"/containers/{quote(container_id)}/stop"):
            self.api.stop(container_id, timeout=seconds)

    def restart(self, container_id: str, seconds: int = 10) -> None:
        """Restart a container; the SDK waits `seconds` longer than the client's timeout."""
        with self._calling(f"/containers/{quote(container_id)}/restart"):
            self.api.restart(container_id, timeout=seconds)

    def remove(self, container_id: str, force: bool = True) -> None:
        """Remove a container (and its anonymous volumes); a container already gone is fine."""
        try:
            with self._calling(f"/containers/{quote(container_id)}"):
                self.api.remove_container(container_id, v=True, force=force)
        except DockerError as exc:
            if exc.status != 404:
                raise

    def create(self, name: str, config: dict[str, Any]) -> str:
        """Create a container; returns its id."""
        with self._calling("/containers/create"):
            return self.api.create_container_from_config(config, name or None)["Id"]

    def pull(self, image: str, tag: str, registry_auth: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """Pull an image, yielding Docker's progress messages; DockerError when the pull fails."""
        # An empty auth config rather than none: with none the SDK sends the portal user's own ~/.docker logins.
        with self._calling("/images/create", max(self.timeout, PULL_TIMEOUT)):
            for message in self.api.pull(image, tag, stream=True, decode=True, auth_config=registry_auth or {}):
                if message.get("error"):
                    raise DockerError(400, str(message["error"]))
                yield message

    def logs(self, container_id: str, tail: int = 200, since: int = 0, tty: bool = False) -> list[tuple[str, str]]:
        """The container's recent output as (stream, line) pairs, with timestamps at the start of each line.

        Hand-written: the SDK's logs() merges stdout and stderr into one text (and asks /json for the TTY first).
        """
        params = {"stdout": 1, "stderr": 1, "timestamps": 1, "tail": tail, "since": since}
        body = self.call("GET", f"/containers/{quote(container_id)}/logs", params=params).content
        return list(demultiplex(body, tty))

    def usage(self, container_ids: list[str], deadline: float = math.inf) -> Usage | None:
        """The summed CPU time and memory of these containers; None where the engine has no one-shot stats, or
        when they are not all read by `deadline` (time.monotonic()): a part of the containers is no host's use.

        One-shot stats (API 1.41) answer at once with cumulative counters; without them each container costs the
        daemon a second of sampling, too slow for a collection cycle, so older engines (VIC) give no sample.
        """
        if version_tuple(self.api_version or API_VERSION) < (1, 41):
            return None
        usage = Usage()
        for container_id in container_ids:
            if time.monotonic() > deadline:
                return None
            try:
                with self._calling(f"/containers/{quote(container_id)}/stats"):
                    sample = self.api.stats(container_id, stream=False, one_shot=True)
            except DockerError:
                continue  # gone since the listing: it uses nothing any more
            cpu = sample.get("cpu_stats") or {}
            usage.container_cpu_ns += int((cpu.get("cpu_usage") or {}).get("total_usage") or 0)
            usage.system_cpu_ns = max(usage.system_cpu_ns, int(cpu.get("system_cpu_usage") or 0))
            usage.online_cpus = max(usage.online_cpus, int(cpu.get("online_cpus") or 0))
            usage.memory_used_bytes += memory_usage(sample)[0]
        return usage

    def stats(self, container_id: str) -> dict[str, Any]:
        """One stats sample (with the previous CPU sample, as `docker stats` uses); the daemon takes a moment."""
        with self._calling(f"/containers/{quote(container_id)}/stats", timeout=30):
            return self.api.stats(container_id, stream=False)


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

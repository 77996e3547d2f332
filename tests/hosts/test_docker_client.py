"""The Docker client's pure helpers, fed with answers shaped like dockerd 20.10's (API 1.41)."""

from __future__ import annotations

import struct

import pytest
import requests

from hosts.docker import (
    DockerClient,
    DockerError,
    _tls_alert,
    cpu_percent,
    demultiplex,
    memory_usage,
    network_io,
    normalize_url,
    version_tuple,
)
from portal.core.errors import Invalid

# A `GET /containers/{id}/stats?stream=false` answer of a busybox container on cgroup v2 (trimmed to what we read).
SAMPLE_V2 = {
    "read": "2026-11-26T23:30:02.512811375Z",
    "preread": "2026-11-26T23:30:01.509906122Z",
    "cpu_stats": {
        "cpu_usage": {"total_usage": 312_000_000, "usage_in_kernelmode": 52_000_000, "usage_in_usermode": 260_000_000},
        "system_cpu_usage": 1_002_000_000_000,
        "online_cpus": 2,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    },
    "precpu_stats": {
        "cpu_usage": {"total_usage": 212_000_000, "usage_in_kernelmode": 40_000_000, "usage_in_usermode": 172_000_000},
        "system_cpu_usage": 1_000_000_000_000,
        "online_cpus": 2,
    },
    "memory_stats": {
        "usage": 10_485_760,
        "stats": {"anon": 6_291_456, "file": 4_194_304, "inactive_file": 2_097_152, "active_file": 2_097_152},
        "limit": 2_083_000_320,
    },
    "networks": {
        "eth0": {"rx_bytes": 1_500, "rx_packets": 12, "tx_bytes": 700, "tx_packets": 8},
        "eth1": {"rx_bytes": 500, "rx_packets": 3, "tx_bytes": 300, "tx_packets": 2},
    },
}

# The same from a cgroup v1 host: no online_cpus on old engines (the per-CPU list counts them), total_* stats.
SAMPLE_V1 = {
    "cpu_stats": {
        "cpu_usage": {"total_usage": 4_000_000_000, "percpu_usage": [1_000_000_000] * 4},
        "system_cpu_usage": 80_000_000_000,
    },
    "precpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000}, "system_cpu_usage": 70_000_000_000},
    "memory_stats": {
        "usage": 52_428_800,
        "max_usage": 60_000_000,
        "stats": {"cache": 20_971_520, "total_inactive_file": 10_485_760, "rss": 31_457_280},
        "limit": 8_589_934_592,
    },
}


def test_cpu_percent_is_computed_as_docker_stats_does() -> None:
    # 100 ms of container CPU in 2 s of system time on 2 CPUs: 0.05 * 2 * 100.
    assert cpu_percent(SAMPLE_V2) == pytest.approx(10.0)
    # Old engines: CPUs counted from the per-CPU list (4), 1 s in 10 s: 0.1 * 4 * 100.
    assert cpu_percent(SAMPLE_V1) == pytest.approx(40.0)


def test_cpu_percent_of_a_first_sample_or_a_stopped_container_is_zero() -> None:
    # The first sample of a stream has an empty precpu_stats; a stopped container has no CPU stats at all.
    first = {**SAMPLE_V2, "precpu_stats": {"cpu_usage": {"total_usage": 312_000_000}}}
    assert cpu_percent(first) == 0.0
    assert cpu_percent({"cpu_stats": {}, "precpu_stats": {}}) == 0.0
    assert cpu_percent({}) == 0.0


def test_memory_usage_leaves_out_the_page_cache() -> None:
    assert memory_usage(SAMPLE_V2) == (10_485_760 - 2_097_152, 2_083_000_320)
    assert memory_usage(SAMPLE_V1) == (52_428_800 - 10_485_760, 8_589_934_592)
    assert memory_usage({"memory_stats": {}}) == (0, 0)


def test_network_io_adds_up_every_interface() -> None:
    assert network_io(SAMPLE_V2) == (2_000, 1_000)
    # --network none: no networks key at all.
    assert network_io(SAMPLE_V1) == (0, 0)


def frame(stream: int, text: str) -> bytes:
    """One frame of Docker's multiplexed log stream: stream byte, 3 zero bytes, big-endian length, payload."""
    payload = text.encode()
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_demultiplex_splits_streams_and_joins_lines_cut_across_frames() -> None:
    body = (
        frame(1, "2026-11-26T23:30:00.1Z hello\n2026-11-26T23:30:00.2Z wor")
        + frame(2, "2026-11-26T23:30:00.3Z oops\n")
        + frame(1, "ld\n2026-11-26T23:30:00.4Z no newline at the end")
    )
    assert list(demultiplex(body)) == [
        ("stdout", "2026-11-26T23:30:00.1Z hello"),
        ("stderr", "2026-11-26T23:30:00.3Z oops"),
        ("stdout", "2026-11-26T23:30:00.2Z world"),
        ("stdout", "2026-11-26T23:30:00.4Z no newline at the end"),
    ]


def test_demultiplex_ignores_a_truncated_frame_and_reads_tty_output_as_is() -> None:
    truncated = frame(1, "complete\n") + frame(1, "cut short")[:6]
    assert list(demultiplex(truncated)) == [("stdout", "complete")]
    assert list(demultiplex(b"line one\r\nline two\n", tty=True)) == [("stdout", "line one"), ("stdout", "line two")]


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://Docker.Example:2376/", "https://docker.example:2376"),
        ("  http://127.0.0.1  ", "http://127.0.0.1:2375"),
        ("https://127.0.0.1", "https://127.0.0.1:2376"),
        ("https://[::1]", "https://[::1]:2376"),
        ("http://10.0.0.5:4243/v1.41/info", "http://10.0.0.5:4243"),
    ],
)
def test_normalize_url_keeps_scheme_host_and_port(url: str, normalized: str) -> None:
    assert normalize_url(url) == normalized


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("docker.example:2376", "'docker.example:2376' has no scheme: use https://host:2376 (TLS) or http://host:2375"),
        ("tcp://docker.example:2376", "'tcp://' is not supported: use https:// (TLS) or http:// (no TLS)"),
        ("unix:///var/run/docker.sock", "'unix://' is not supported"),
        ("https://docker.example:port", "'https://docker.example:port' has an invalid port."),
        ("http://[::1:2375", "'http://[::1:2375' is not a valid URL"),
    ],
)
def test_normalize_url_refuses_what_the_portal_cannot_reach(url: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        normalize_url(url)
    assert caught.value.message.startswith(message)
    assert "url" in caught.value.errors


def test_version_tuple_reads_api_versions() -> None:
    assert version_tuple("1.41") == (1, 41)
    assert version_tuple("1.25") < version_tuple("1.41")
    assert version_tuple("garbage") == (0, 0)


def test_tls_alerts_tell_a_missing_certificate_from_a_rejected_one() -> None:
    # What OpenSSL reports when Go's TLS server refuses the handshake over the client certificate.
    alert = "SSLError(1, '[SSL: TLSV1_ALERT_BAD_CERTIFICATE] tlsv1 alert bad certificate (_ssl.c:2580)')"
    assert _tls_alert(alert, sent_certificate=False).startswith("the host requires a client certificate")
    assert _tls_alert(alert, sent_certificate=True).startswith("the host rejected the client certificate")
    assert _tls_alert("[SSL: WRONG_VERSION_NUMBER] wrong version number", False).startswith(
        "the host does not speak TLS on this port"
    )
    assert _tls_alert("Connection refused", False) == ""


def test_daemon_errors_keep_client_statuses_and_turn_server_faults_into_bad_gateway() -> None:
    assert DockerError(404, "No such container: web").status == 404
    assert DockerError(409, "conflict").status == 409
    error = DockerError(500, "driver failed")
    assert (error.status, error.http_status) == (502, 500)


def test_no_request_of_the_sdk_goes_out_without_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK sends a streamed pull with timeout=None; a host that dies mid-pull must not hold the job forever.
    sent: list[dict[str, object]] = []
    monkeypatch.setattr(requests.Session, "request", lambda session, method, url, **kwargs: sent.append(kwargs))
    client = DockerClient("http://127.0.0.1:2375", api_version="1.41", timeout=7)
    client.api.post("http://127.0.0.1:2375/v1.41/images/create", timeout=None)
    client.api.get("http://127.0.0.1:2375/v1.41/info", timeout=3)
    assert [kwargs["timeout"] for kwargs in sent] == [7, 3]

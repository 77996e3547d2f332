"""Is notary up: notary-server's health page, and notary-signer's gRPC health service over mutual TLS.

docker-compose.yml's healthchecks of the notary services run these (`docker/healthcheck.py notary-server|-signer`).
The server's `/_notary_server/health` answers 200 only while its database and its signer answer too. The signer
speaks gRPC alone (no HTTP port) and registers the standard `grpc.health.v1.Health` service, SERVING for its two
services once it listens; no gRPC library is installed, so `signer_health` asks it with the few HTTP/2 frames a
unary call needs (RFC 9113, HPACK literals of RFC 7541, gRPC's length-prefixed messages).
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

# The names notary-signer 0.7 gives its services in the health service (notary's HealthCheckKeyManagement, -Signer).
SIGNER_SERVICES = ("grpc.health.v1.Health.KeyManagement", "grpc.health.v1.Health.Signer")
HEALTH_PATH = "/grpc.health.v1.Health/Check"
SERVING = 1

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4


def loopback(address: str) -> tuple[str, int]:
    """Where to reach a process listening on address (host:port) from its own machine or container."""
    host, port = address.rsplit(":", 1)
    return ("127.0.0.1" if host in ("", "0.0.0.0", "::", "[::]") else host.strip("[]")), int(port)


def server_health(listen: str, ca_file: str, timeout: float = 5.0) -> str | None:
    """None when notary-server at listen answers its health page over TLS the portal CA verifies; else why not."""
    host, port = loopback(listen)
    url = f"https://{host}:{port}/_notary_server/health"
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        # 503 with the failing checks as JSON, e.g. {"Trust operational": "..."}.
        return f"{url}: HTTP {exc.code} {exc.read(500).decode(errors='replace')}"
    except OSError as exc:
        return f"{url}: {exc}"


@dataclass(frozen=True)
class SignerClient:
    """How to reach notary-signer: its address, the CA that issued its certificate, and the client certificate and
    key it takes (the notary certificate: the signer takes only clients the portal CA issued)."""

    address: str
    ca_file: str
    cert_file: str
    key_file: str


def signer_health(signer: SignerClient, timeout: float = 5.0) -> str | None:
    """None when notary-signer reports both its services SERVING, else why not."""
    host, port = loopback(signer.address)
    context = ssl.create_default_context(cafile=signer.ca_file)
    context.load_cert_chain(signer.cert_file, signer.key_file)
    context.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            if tls.selected_alpn_protocol() != "h2":
                return f"{host}:{port} does not speak HTTP/2 (gRPC)"
            statuses = _check(tls, f"{host}:{port}", SIGNER_SERVICES)
    except (OSError, ValueError) as exc:
        return f"{host}:{port}: {exc}"
    failing = {service: status for service, status in statuses.items() if status != SERVING}
    return f"{host}:{port}: not serving {failing} (1 is SERVING)" if failing else None


def wait_for_signer(signer: SignerClient, timeout: float) -> str | None:
    """Wait up to timeout seconds for notary-signer to serve; None once it does, else the last reason it did not.

    notary-server dials its signer once as it starts and, when that fails, waits out gRPC's reconnect backoff,
    answering 500 to every signing request meanwhile: starting it after the signer serves avoids that.
    """
    deadline = time.monotonic() + timeout
    while (problem := signer_health(signer, timeout=2.0)) and time.monotonic() < deadline:
        time.sleep(0.3)
    return problem


def start_server_after_signer(signer: SignerClient, timeout: float, argv: list[str]) -> None:
    """Wait for the signer (see wait_for_signer), then become notary-server (argv) in this same process."""
    problem = wait_for_signer(signer, timeout)
    if problem:
        # notary-server retries on its own; signing fails until the signer answers.
        print(f"notary: the signer does not serve yet ({problem}); starting the server anyway", file=sys.stderr)
    os.execv(argv[0], argv)


def main(argv: list[str]) -> None:
    """`python -m registries.notary_health SIGNER_ADDRESS CA CERT KEY TIMEOUT -- notary-server ...`: the
    launcher's notary-server child, which needs no Django settings (it is given everything it needs)."""
    if len(argv) < 8 or argv[6] != "--":
        raise SystemExit(f"usage: {argv[0]} SIGNER_ADDRESS CA CERT KEY TIMEOUT -- COMMAND...")
    start_server_after_signer(SignerClient(*argv[1:5]), float(argv[5]), argv[7:])


def _check(tls: ssl.SSLSocket, authority: str, services: tuple[str, ...]) -> dict[str, int | None]:
    """Send one Health/Check call per service, each on a stream of its own; return each service's status."""
    streams = {1 + 2 * index: service for index, service in enumerate(services)}
    out = PREFACE + _frame(SETTINGS, 0, 0)
    for stream, service in streams.items():
        headers = _headers(authority)
        request = service.encode()
        message = b"\x0a" + _varint(len(request)) + request  # HealthCheckRequest{service = 1}
        out += _frame(HEADERS, END_HEADERS, stream, headers)
        out += _frame(DATA, END_STREAM, stream, b"\x00" + struct.pack(">I", len(message)) + message)
    tls.sendall(out)
    bodies: dict[int, bytes] = dict.fromkeys(streams, b"")
    open_streams = set(streams)
    reader = _FrameReader(tls)
    while open_streams:
        kind, flags, stream, payload = reader.next()
        if kind == SETTINGS and not flags & ACK:
            tls.sendall(_frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            tls.sendall(_frame(PING, ACK, 0, payload))
        elif kind == GOAWAY:
            raise ValueError(f"the server closed the connection (GOAWAY {payload[4:8].hex()})")
        elif kind == RST_STREAM and stream in open_streams:
            raise ValueError(f"the server reset the call (error {payload.hex()})")
        elif kind == DATA and stream in open_streams:
            bodies[stream] += payload
        if kind in (DATA, HEADERS) and flags & END_STREAM:
            open_streams.discard(stream)
    return {service: _status(bodies[stream]) for stream, service in streams.items()}


def _status(body: bytes) -> int | None:
    """HealthCheckResponse.status (field 1, varint) of a length-prefixed gRPC message; None without an answer."""
    if len(body) < 5:
        return None  # a trailers-only answer: the call failed (e.g. the service is unknown)
    message = body[5 : 5 + struct.unpack(">I", body[1:5])[0]]
    if message[:1] == b"\x08":
        return _read_varint(message, 1)
    return 0  # proto3 leaves out a zero: UNKNOWN


def _headers(authority: str) -> bytes:
    """The request headers of a gRPC call as HPACK literals without indexing (no Huffman, no dynamic table)."""
    fields = (
        (":method", "POST"),
        (":scheme", "https"),
        (":path", HEALTH_PATH),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    )
    block = b""
    for name, value in fields:
        block += b"\x00" + _string(name) + _string(value)
    return block


def _string(text: str) -> bytes:
    raw = text.encode()
    return _integer(len(raw), 7) + raw


def _integer(value: int, prefix: int) -> bytes:
    """An HPACK integer with an N-bit prefix (the high bits of its first byte stay 0: no Huffman coding)."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([value])
    out, value = bytearray([limit]), value - limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, offset: int) -> int:
    value, shift = 0, 0
    for byte in data[offset:]:
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7
    raise ValueError("truncated varint in the health answer")


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


class _FrameReader:
    """HTTP/2 frames off a socket, one at a time."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""

    def _take(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ValueError("the server closed the connection before it answered")
            self.buffer += chunk
        taken, self.buffer = self.buffer[:size], self.buffer[size:]
        return taken

    def next(self) -> tuple[int, int, int, bytes]:
        """(type, flags, stream, payload) of the next frame."""
        head = self._take(9)
        length = int.from_bytes(head[:3], "big")
        stream = struct.unpack(">I", head[5:9])[0] & 0x7FFFFFFF
        return head[3], head[4], stream, self._take(length)


if __name__ == "__main__":
    main(sys.argv)

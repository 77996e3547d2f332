"""Upload bodies read straight off a socket (registries/bodies.py): framing, pieces, what is given back, bad input."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator

import pytest

from registries.bodies import MAX_FRAMING, BodyError, ChunkedSocketBody, LengthSocketBody, SocketBody


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    server, client = socket.socketpair()
    server.settimeout(5)
    yield server, client
    server.close()
    client.close()


def send_in_thread(sock: socket.socket, pieces: list[bytes], close: bool = False) -> threading.Thread:
    """Send each piece separately, as a client's separate writes (and TLS records) arrive."""

    def run() -> None:
        for piece in pieces:
            sock.sendall(piece)
        if close:
            sock.shutdown(socket.SHUT_WR)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def collect(body: SocketBody) -> tuple[bytes, list[int]]:
    """The whole body and the size of each piece handed on (copied at once: the buffer is reused)."""
    data, sizes = bytearray(), []
    for piece in body:
        data += piece
        sizes.append(len(piece))
    return bytes(data), sizes


def chunked(data: bytes, size: int, extension: bytes = b"", trailer: bytes = b"") -> bytes:
    """`data` framed as a chunked body with chunks of `size` bytes."""
    out = bytearray()
    for start in range(0, len(data), size):
        chunk = data[start : start + size]
        out += b"%x%s\r\n%s\r\n" % (len(chunk), extension, chunk)
    return bytes(out + b"0\r\n" + trailer + b"\r\n")


def test_chunked_body_is_reassembled_in_full_pieces(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    data = os.urandom(100_000)
    wire = chunked(data, 32 * 1024)
    # The server already read the headers and the start of the body; the rest arrives in odd splits.
    buffered, rest = wire[:5000], wire[5000:]
    send_in_thread(client, [rest[i : i + 7001] for i in range(0, len(rest), 7001)])
    received, sizes = collect(ChunkedSocketBody(server, buffered, piece=16 * 1024))
    assert received == data
    assert sizes == [16 * 1024] * 6 + [100_000 - 6 * 16 * 1024]


def test_framing_split_byte_by_byte_extensions_and_uppercase_hex(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    data = b"x" * 300 + b"y" * 4000
    wire = b"12C ; name=value\r\n" + data[:300] + b"\r\nFA0\r\n" + data[300:] + b"\r\n0\r\n\r\n"
    send_in_thread(client, [bytes([b]) for b in wire[:40]] + [wire[40:]])
    received, _ = collect(ChunkedSocketBody(server))
    assert received == data


def test_trailers_are_skipped_and_the_next_request_is_given_back(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    following = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"
    wire = chunked(b"payload", 4, trailer=b"Digest: sha-256=abc\r\nX-Other: 1\r\n") + following
    send_in_thread(client, [wire])
    given_back: list[bytes] = []
    received, _ = collect(ChunkedSocketBody(server, give_back=given_back.append))
    assert received == b"payload"
    assert given_back == [following]


def test_empty_chunked_body(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    received, sizes = collect(ChunkedSocketBody(server, b"0\r\n\r\n"))
    assert (received, sizes) == (b"", [])


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"zz\r\nab\r\n0\r\n\r\n", "invalid chunk size b'zz'"),
        (b"-1\r\n", "invalid chunk size b'-1'"),
        (b"\r\n", "invalid chunk size b''"),
        (b"1234567890abcdef0\r\n", "invalid chunk size"),
        (b"2\r\nabXY0\r\n\r\n", "chunk data is not followed by CRLF (found b'XY0')"),
    ],
)
def test_malformed_framing_is_refused(pair: tuple[socket.socket, socket.socket], wire: bytes, message: str) -> None:
    server, client = pair
    send_in_thread(client, [wire], close=True)
    failures: list[bool] = []
    with pytest.raises(BodyError, match=message.replace("(", r"\(").replace(")", r"\)")):
        collect(ChunkedSocketBody(server, stopped=lambda left, data: failures.append(True)))
    # The server is told, so it closes the connection rather than look for a next request in the rest.
    assert failures == [True]


def test_a_client_that_goes_away_mid_chunk_is_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    send_in_thread(client, [b"10\r\n0123"], close=True)
    with pytest.raises(BodyError, match="closed the connection with 12 bytes of its body unsent"):
        collect(ChunkedSocketBody(server))


def test_a_client_that_goes_away_in_the_framing_is_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    send_in_thread(client, [b"4\r\nabcd\r\n1"], close=True)
    with pytest.raises(BodyError, match="before the end of the chunk-size line"):
        collect(ChunkedSocketBody(server))


def test_an_endless_framing_line_is_refused(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    send_in_thread(client, [b"1;" + b"e" * (MAX_FRAMING + 10000)])
    with pytest.raises(BodyError, match=f"longer than {MAX_FRAMING} bytes"):
        collect(ChunkedSocketBody(server))


def test_length_body_reads_exactly_its_length(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    data = os.urandom(70_000)
    following = b"HEAD /v2/ HTTP/1.1\r\n\r\n"
    send_in_thread(client, [data[1000:40_000], data[40_000:] + following])
    given_back: list[bytes] = []
    body = LengthSocketBody(server, len(data), buffered=data[:1000], piece=32 * 1024, give_back=given_back.append)
    received, sizes = collect(body)
    assert received == data
    assert sizes == [32 * 1024, 32 * 1024, 70_000 - 64 * 1024]
    # The body ended exactly where the next request starts: nothing of it was taken.
    assert given_back == []
    assert server.recv(100) == following


def test_length_body_gives_back_what_the_server_read_past_it(pair: tuple[socket.socket, socket.socket]) -> None:
    server, _ = pair
    given_back: list[bytes] = []
    received, _ = collect(LengthSocketBody(server, 5, buffered=b"helloGET / HTTP/1.1", give_back=given_back.append))
    assert received == b"hello"
    assert given_back == [b"GET / HTTP/1.1"]


def test_length_body_cut_short_is_an_error(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    send_in_thread(client, [b"abc"], close=True)
    with pytest.raises(BodyError, match="closed the connection with 7 bytes of its body unsent"):
        collect(LengthSocketBody(server, 10))


def test_a_length_body_left_half_read_tells_what_is_left(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    data = os.urandom(100_000)
    send_in_thread(client, [data[5000:]])
    told: list[tuple[int, bytes]] = []
    body = LengthSocketBody(
        server, len(data), buffered=data[:5000], piece=32 * 1024, stopped=lambda *told_: told.append(told_)
    )
    pieces = iter(body)
    assert bytes(next(pieces)) == data[: 32 * 1024]
    body.close()  # the registry answered early: the sender stops
    # Nothing of the rest was handed on; what was already received comes back so the server can skip it all.
    assert len(told) == 1
    left, received = told[0]
    assert left == len(data) - 32 * 1024
    assert data[32 * 1024 :].startswith(received)


def test_a_chunked_body_left_half_read_is_reported(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    send_in_thread(client, [chunked(os.urandom(100_000), 32 * 1024)])
    told: list[int] = []
    pieces = iter(ChunkedSocketBody(server, piece=16 * 1024, stopped=lambda left, data: told.append(left)))
    next(pieces)
    pieces.close()
    assert told == [32 * 1024 - 16 * 1024]


def test_a_body_read_to_its_end_reports_nothing_on_close(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    send_in_thread(client, [b"0123456789"])
    told: list[int] = []
    body = LengthSocketBody(server, 10, piece=4, stopped=lambda left, data: told.append(left))
    assert collect(body)[0] == b"0123456789"
    body.close()
    assert told == []


def test_a_length_body_never_read_is_all_left(pair: tuple[socket.socket, socket.socket]) -> None:
    # The registry did not answer: nothing was sent on, so the whole body is left for the server to skip.
    server, _ = pair
    told: list[tuple[int, bytes]] = []
    body = LengthSocketBody(server, 5000, buffered=b"x" * 300, stopped=lambda *told_: told.append(told_))
    body.close()
    assert told == [(5000, b"x" * 300)]

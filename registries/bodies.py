"""Reading a /v2/ upload's request body straight off the client's socket.

docker and skopeo upload layers with `Transfer-Encoding: chunked`, in chunks of about 32 KiB. gunicorn's own
readers hand a body on in pieces of at most 8 KiB (its Body.read even 1 KiB at a time), each copied through
several BytesIO buffers. For a 256 MiB layer that Python work was a large part of the web process's CPU during
a push, on a machine where a push is CPU-bound. These readers receive the data directly into the buffer they
hand on (`recv_into`), parse only the few bytes of chunk framing, and yield 256 KiB at a time.

Chunked bodies follow RFC 9112 section 7.1: hex chunk sizes, chunk extensions (ignored), a last chunk of size 0
and an optional trailer section (read and dropped: the registry has no use for it).
"""

from __future__ import annotations

import inspect
import io
from collections.abc import Callable, Iterator
from typing import Any

# The longest framing line (a chunk size with its extensions, or one trailer field) accepted.
MAX_FRAMING = 16 * 1024
_HEX = frozenset(b"0123456789abcdefABCDEF")


class BodyError(ValueError):
    """The client's chunked framing is malformed, or the client went away or stalled before the end of its body."""


class SocketBody:
    """Iterates a request body as memoryviews of up to `piece` bytes, received from `sock`.

    Each memoryview is valid until the next one is asked for (the buffer is reused): the consumer sends or copies
    it first, as an HTTP client sending the body on does. `buffered` holds bytes of the body the server had already
    read from the socket. What the server is told:

    - `give_back(data)`: the body was read to its end; `data` was read past it (the next request's start).
    - `stopped(left, data)`: the body was not read to its end - it is malformed or cut short (a BodyError
      follows), or the consumer stopped early (the registry answered first, or never answered). `left` bytes of
      the current run were never handed on, `data` of them were already received.
    """

    def __init__(
        self,
        sock: Any,
        buffered: bytes = b"",
        piece: int = 256 * 1024,
        give_back: Callable[[bytes], None] | None = None,
        stopped: Callable[[int, bytes], None] | None = None,
    ) -> None:
        self._sock = sock
        self._pending = bytearray(buffered)
        self._buffer = bytearray(piece)
        self._give_back = give_back
        self._stopped = stopped
        self._done = False
        # What is left of the current run when the consumer stops at a piece (or before the first one).
        self._left = 0

    def _sizes(self) -> Iterator[int]:
        """The sizes of the body's successive runs of data."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[memoryview]:
        try:
            yield from self._pieces()
        finally:
            self.close()

    def close(self) -> None:
        """The consumer is done with the body: if it was not read to its end, tell the server what is left."""
        if not self._done:
            self._done = True
            if self._stopped is not None:
                self._stopped(self._left, bytes(self._pending))

    def _pieces(self) -> Iterator[memoryview]:
        view = memoryview(self._buffer)
        capacity = len(self._buffer)
        filled = 0
        for run in self._sizes():
            while run:
                wanted = min(run, capacity - filled)
                if self._pending:
                    got = min(wanted, len(self._pending))
                    view[filled : filled + got] = self._pending[:got]
                    del self._pending[:got]
                else:
                    # Never past this run, so whatever follows it (framing) is read as framing.
                    try:
                        got = self._sock.recv_into(view[filled : filled + wanted])
                    except TimeoutError as exc:
                        raise _too_slow(exc) from exc
                    if not got:
                        raise BodyError(f"the client closed the connection with {run} bytes of its body unsent")
                filled += got
                run -= got
                if filled == capacity:
                    self._left = run
                    yield view
                    filled = 0
        # Read to its end: give back what was read past it.
        self._done = True
        if self._pending and self._give_back is not None:
            self._give_back(bytes(self._pending))
        self._pending.clear()
        if filled:
            yield view[:filled]


class LengthSocketBody(SocketBody):
    """A body of `length` bytes (Content-Length)."""

    def __init__(self, sock: Any, length: int, **kwargs: Any) -> None:
        super().__init__(sock, **kwargs)
        self._length = self._left = length

    def _sizes(self) -> Iterator[int]:
        yield self._length


class ChunkedSocketBody(SocketBody):
    """A body sent with `Transfer-Encoding: chunked`."""

    def _sizes(self) -> Iterator[int]:
        size = self._chunk_size()
        while size:
            yield size
            terminator = self._line("chunk terminator")
            if terminator:
                raise BodyError(f"chunk data is not followed by CRLF (found {terminator[:16]!r})")
            size = self._chunk_size()
        while self._line("trailer section"):
            pass

    def _line(self, what: str) -> bytes:
        """The next CRLF-terminated line of framing, without its CRLF."""
        while (end := self._pending.find(b"\r\n")) < 0:
            if len(self._pending) > MAX_FRAMING:
                raise BodyError(f"a line of the {what} is longer than {MAX_FRAMING} bytes")
            try:
                data = self._sock.recv(8192)
            except TimeoutError as exc:
                raise _too_slow(exc) from exc
            if not data:
                raise BodyError(f"the client closed the connection before the end of the {what}")
            self._pending += data
        line = bytes(self._pending[:end])
        del self._pending[: end + 2]
        return line

    def _chunk_size(self) -> int:
        line = self._line("chunk-size line")
        digits = line.split(b";", 1)[0].rstrip(b" \t")
        if not digits or len(digits) > 15 or not _HEX.issuperset(digits):
            raise BodyError(f"invalid chunk size {line[:32]!r}")
        return int(digits, 16)


def _too_slow(exc: TimeoutError) -> BodyError:
    """The server gave up waiting for the client (its socket timed out, or it sends under the minimum rate)."""
    return BodyError(f"the client sent its body too slowly: {exc}")


def gunicorn_socket_body(stream: Any, length: int | None, piece: int) -> SocketBody | None:
    """Under gunicorn, a reader of the body of `stream` (its wsgi.input) straight off the client's socket.

    `length` is the request's Content-Length, None for a chunked body. Only while nothing has read the body yet;
    None otherwise, or under another server. gunicorn's own reader is told the body is over, so that after the
    response it looks for the next request where this reader stopped, with anything read too far given back to it.
    """
    reader = getattr(stream, "reader", None)
    unreader = getattr(reader, "unreader", None) or getattr(getattr(reader, "req", None), "unreader", None)
    if not (
        type(stream).__module__ == "gunicorn.http.body"
        and type(unreader).__name__ == "SocketUnreader"
        and stream.buf.tell() == 0
    ):
        return None
    kind = type(reader).__name__
    if kind == "ChunkedReader":
        if not (
            length is None
            and reader.buf.tell() == 0
            and inspect.isgenerator(reader.parser)
            and inspect.getgeneratorstate(reader.parser) == inspect.GEN_CREATED
        ):
            return None
        # Malformed, cut short or left half read: where the next request starts is unknown, so gunicorn closes
        # the connection after the answer.
        close = reader.req.force_close
        body: SocketBody = ChunkedSocketBody(
            unreader.sock, _take(unreader), piece, give_back=unreader.unread, stopped=lambda left, data: close()
        )
        reader.parser = None
    elif kind == "LengthReader" and length is not None and reader.length == length:

        def skip_the_rest(left: int, data: bytes) -> None:
            # gunicorn's reader reads (and drops) what is left before it looks for the next request.
            unreader.unread(data)
            reader.length = left

        body = LengthSocketBody(
            unreader.sock,
            reader.length,
            buffered=_take(unreader),
            piece=piece,
            give_back=unreader.unread,
            stopped=skip_the_rest,
        )
        reader.length = 0
    else:
        return None
    return body


def _take(unreader: Any) -> bytes:
    """What gunicorn read from the socket past the request's headers."""
    data = unreader.buf.getvalue()
    unreader.buf = io.BytesIO()
    return data

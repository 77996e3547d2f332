"""The portal's gunicorn worker: gthread, except that no thread ever waits for a client to send a request.

Stock gthread hands a connection to a thread as soon as its first byte arrives; the thread then completes the TLS
handshake, reads the request head and the body with blocking reads and no deadline. Eight clients sending a head and
two bytes of a declared 100 KB body held all eight threads of `make run` for as long as they cared to wait, and
health checks timed out.

This worker keeps gthread's threads for running the application, and moves every wait on a client into the event
loop, where a waiting connection costs no thread:

- The loop completes the TLS handshake and receives the request head, and a body of up to
  WHARF_WEB_BUFFERED_BODY_BYTES, without blocking; only a complete request is handed to a thread. A longer body
  (a /v2/ layer upload) is streamed by the thread, off the client's socket as before (registries/bodies.py).
- Deadlines: a client gets WHARF_WEB_CLIENT_TIMEOUT_SECONDS for the handshake and head, plus one second for every
  WHARF_WEB_MIN_BODY_RATE bytes it sends; in a thread, time spent waiting for the client counts the same way (time
  spent sending on to the registry does not). Past its deadline the connection is closed. A thread also gives up
  on a client that sends or reads nothing for WHARF_WEB_CLIENT_TIMEOUT_SECONDS.
- What the application left unread of a body (an upload the registry refused early) is skipped by the loop too,
  under the same deadline, before the next request on the connection.
"""

from __future__ import annotations

import contextlib
import errno
import io
import selectors
import ssl
import time
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn import sock as gunicorn_sock
from gunicorn.http.body import ChunkedReader, LengthReader
from gunicorn.workers.gthread import TConn, ThreadWorker

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
# What the loop receives from one client before it serves the others.
RECEIVE_SIZE = 64 * 1024
RECEIVES_PER_TURN = 16


class ClientTooSlow(TimeoutError):
    """The client sent its request slower than the minimum rate."""


class PacedSocket:
    """The client's socket as a request's readers see it, cut off when the client sends too slowly.

    Only the time spent waiting in recv counts: a client gets `grace` seconds, plus a second for every `min_rate`
    bytes it has sent. The socket itself has a timeout, so one stalled recv ends too.
    """

    def __init__(self, sock: Any, grace: float, min_rate: int) -> None:
        self._sock = sock
        self._grace = grace
        self._min_rate = min_rate
        self._waited = 0.0
        self._received = 0

    def recv(self, size: int) -> bytes:
        started = time.monotonic()
        data = self._sock.recv(size)
        self._count(len(data), started)
        return data

    def recv_into(self, buffer: Any, size: int = 0) -> int:
        started = time.monotonic()
        got = self._sock.recv_into(buffer, size)
        self._count(got, started)
        return got

    def _count(self, got: int, started: float) -> None:
        self._waited += time.monotonic() - started
        self._received += got
        if self._waited > self._grace + self._received / self._min_rate:
            raise ClientTooSlow(
                f"the client sent {self._received} bytes in {self._waited:.0f} s of waiting, "
                f"slower than {self._min_rate} bytes/s"
            )

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class WaitingConnection(TConn):
    """A client connection, with what the loop has received of its next request."""

    def __init__(self, cfg: Any, sock: Any, client: Any, server: Any) -> None:
        super().__init__(cfg, sock, client, server)
        self.handshaken = not cfg.is_ssl
        self.pending = bytearray()
        # Bytes of the previous request's body the application did not read, to drop.
        self.skip = 0
        # Where the current request ends in `pending`, once its head is there.
        self.need: int | None = None
        self.started: float | None = None
        self.idle_until = 0.0
        self.received = 0
        self.served = 0

    def wait(self, now: float, idle: float, active: bool) -> None:
        """Start waiting for the next request: `active` when its first bytes are already here (or for a new client)."""
        self.need = None
        self.received = 0
        self.started = now if active else None
        self.idle_until = now + idle

    def deadline(self, grace: float, min_rate: int) -> float:
        if self.started is None:
            return self.idle_until
        return self.started + grace + self.received / min_rate


class GuardedThreadWorker(ThreadWorker):
    """gthread whose threads only run complete requests; see the module's docstring."""

    def run(self) -> None:
        from django.conf import settings

        # Read here, not at import: the master imports this class before Django is set up.
        self.grace = float(settings.WEB_CLIENT_TIMEOUT_SECONDS)
        self.min_rate = settings.WEB_MIN_BODY_RATE
        self.buffered_body = settings.WEB_BUFFERED_BODY_BYTES
        self.waiting: dict[WaitingConnection, None] = {}
        line = self.cfg.limit_request_line or 8190
        fields = (self.cfg.limit_request_fields or 32768) * ((self.cfg.limit_request_field_size or 8190) + 2)
        # A head this long without its end is answered (refused) by gunicorn's parser in a thread.
        self.max_head = line + fields + 4
        super().run()

    # The loop: accepting, receiving, deadlines.

    def accept(self, server: Any, listener: Any) -> None:
        try:
            sock, client = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        conn = WaitingConnection(self.cfg, sock, client, server)
        if self.cfg.is_ssl:
            conn.sock = gunicorn_sock.ssl_context(self.cfg).wrap_socket(
                sock,
                server_side=True,
                do_handshake_on_connect=False,
                suppress_ragged_eofs=self.cfg.suppress_ragged_eofs,
            )
        self.nr_conns += 1
        conn.wait(time.monotonic(), self.grace, active=True)
        self._watch(conn, selectors.EVENT_READ)

    def _watch(self, conn: WaitingConnection, events: int) -> None:
        with self._lock:
            self.waiting[conn] = None
            self.poller.register(conn.sock, events, partial(self._on_ready, conn))

    def _on_ready(self, conn: WaitingConnection, fileobj: Any) -> None:
        with self._lock:
            self.poller.unregister(fileobj)
            if self.waiting.pop(conn, False) is False:
                return
        try:
            events = self._receive(conn)
        except (OSError, ValueError) as exc:
            # ssl.SSLError is an OSError: a failed handshake, a reset, garbage instead of TLS.
            self.log.debug("Closing connection from %s: %s", conn.client, exc)
            events = None
        if events is None:
            self._close(conn)
        elif events:
            self._watch(conn, events)
        else:
            self.enqueue_req(conn)

    def _receive(self, conn: WaitingConnection) -> int | None:
        """Receive what the client has sent: 0 when a request is complete, the events to wait for, None to close."""
        if not conn.handshaken:
            try:
                conn.sock.do_handshake()
            except ssl.SSLWantReadError:
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            conn.handshaken = True
        for _ in range(RECEIVES_PER_TURN):
            if conn.skip and conn.pending:
                dropped = min(conn.skip, len(conn.pending))
                del conn.pending[:dropped]
                conn.skip -= dropped
            if not conn.skip and conn.pending and self._request_ready(conn):
                return 0
            try:
                data = conn.sock.recv(RECEIVE_SIZE)
            except (ssl.SSLWantReadError, BlockingIOError):
                return selectors.EVENT_READ
            except ssl.SSLWantWriteError:
                return selectors.EVENT_WRITE
            if not data:
                return None
            if conn.started is None:
                conn.started = time.monotonic()
            conn.received += len(data)
            conn.pending += data
        # More may be waiting (inside TLS, where select does not see it): writable fires at once.
        return selectors.EVENT_WRITE

    def _request_ready(self, conn: WaitingConnection) -> bool:
        """Whether `pending` holds a whole request head, and its body when that is to be received here."""
        if conn.need is None:
            end = conn.pending.find(b"\r\n\r\n")
            if end < 0:
                return len(conn.pending) > self.max_head
            conn.need = self._request_end(conn, end + 4)
        return len(conn.pending) >= conn.need

    def _request_end(self, conn: WaitingConnection, head_end: int) -> int:
        """Where the request starting `pending` ends, if the loop is to receive its body; else where its head ends."""
        lines = bytes(conn.pending[:head_end]).split(b"\r\n")
        fields = [line.partition(b":") for line in lines[1:] if line]
        named = {name.strip().lower(): value.strip() for name, _, value in fields}
        lengths = [value.strip() for name, _, value in fields if name.strip().lower() == b"content-length"]
        if b"transfer-encoding" in named or len(lengths) != 1 or not lengths[0].isdigit():
            # Chunked (streamed by the thread), or malformed (gunicorn's parser answers it).
            return head_end
        length = int(lengths[0])
        if not 0 < length <= self.buffered_body:
            return head_end
        if named.get(b"expect", b"").lower() == b"100-continue":
            try:
                sent = conn.sock.send(CONTINUE)
            except (ssl.SSLWantWriteError, BlockingIOError):
                sent = 0
            if sent != len(CONTINUE):
                # Let gunicorn answer the expectation from the thread (a partial interim answer cannot happen on a
                # fresh connection's empty send buffer, but then nothing was sent at all).
                return head_end
            # Answered here: gunicorn must not send a second interim answer after the body.
            start = conn.pending.lower().find(b"\r\nexpect:")
            stop = conn.pending.find(b"\r\n", start + 2)
            del conn.pending[start:stop]
            head_end -= stop - start
        return head_end + length

    def murder_keepalived(self) -> None:
        """Close connections past their deadline (called by gthread's loop once a second or more often)."""
        now = time.monotonic()
        with self._lock:
            expired = [conn for conn in self.waiting if conn.deadline(self.grace, self.min_rate) < now]
            for conn in expired:
                del self.waiting[conn]
                with contextlib.suppress(KeyError, ValueError, OSError):
                    self.poller.unregister(conn.sock)
        for conn in expired:
            if conn.started is not None:
                self.log.debug("Closing connection from %s: its request is too slow", conn.client)
            self._close(conn)

    def _close(self, conn: WaitingConnection) -> None:
        self.nr_conns -= 1
        conn.close()

    # Handing requests to threads, and connections back to the loop.

    def enqueue_req(self, conn: WaitingConnection) -> None:
        conn.initialized = True
        conn.sock.settimeout(self.grace)
        conn.parser = http.RequestParser(self.cfg, PacedSocket(conn.sock, self.grace, self.min_rate), conn.client)
        conn.parser.unreader.unread(bytes(conn.pending))
        conn.parser.req_count = conn.served
        conn.pending = bytearray()
        conn.served += 1
        fs = self.tpool.submit(self.handle, conn)
        self._wrap_future(fs, conn)

    def handle(self, conn: WaitingConnection) -> tuple[bool, WaitingConnection]:
        keepalive, conn = super().handle(conn)
        return (keepalive and self._leftover(conn)), conn

    def _leftover(self, conn: WaitingConnection) -> bool:
        """After a request: keep what was received past it, and note its unread body to skip; False to close."""
        request = conn.parser.mesg
        if request is None or request.should_close():
            return False
        reader = request.body.reader
        if isinstance(reader, LengthReader):
            skip = reader.length
        elif isinstance(reader, ChunkedReader) and reader.parser is None:
            skip = 0
        else:
            # A chunked body left half read: where the next request starts is unknown.
            return False
        unreader = conn.parser.unreader
        leftover = unreader.buf.getvalue()
        unreader.buf = io.BytesIO()
        dropped = min(skip, len(leftover))
        conn.skip = skip - dropped
        conn.pending = bytearray(leftover[dropped:])
        return True

    def finish_request(self, fs: Any) -> None:
        conn = fs.conn
        try:
            keepalive = not fs.cancelled() and fs.result()[0]
        except Exception:
            keepalive = False
        if not (keepalive and self.alive):
            self._close(conn)
            return
        conn.sock.setblocking(False)
        buffered = bool(conn.pending) or bool(conn.skip) or (self.cfg.is_ssl and conn.sock.pending() > 0)
        conn.wait(time.monotonic(), self.cfg.keepalive, active=buffered)
        # Bytes already here (a pipelined request) or inside TLS: writable fires at once, so they are looked at.
        self._watch(conn, selectors.EVENT_WRITE if buffered else selectors.EVENT_READ)

"""A TCP port on 127.0.0.1 that accepts connections and then misbehaves: hangs, trickles, or speaks plain HTTP."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class LoopbackServer:
    """Accepts every connection on a free loopback port and hands it to `handle` in a thread of its own.

    As it is, a connection is held open and never answered: a remote that hangs. Subclasses
    override `handle` to answer otherwise.
    """

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted: list[socket.socket] = []
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.accepted.append(connection)
            threading.Thread(target=self.handle, args=(connection,), daemon=True).start()

    def handle(self, connection: socket.socket) -> None:
        """Hold the connection open without a word (it is closed with the server)."""

    def close(self) -> None:
        """Stop accepting and close every connection accepted."""
        self.stopping.set()
        # A plain close would leave accept() blocking on the port in the accepting thread.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for connection in self.accepted:
            connection.close()


class PlainHttpPort(LoopbackServer):
    """A port that answers every connection in plain HTTP (400) and closes it, whatever it is sent (TLS too)."""

    def handle(self, connection: socket.socket) -> None:
        with connection:
            connection.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


class HttpsServer:
    """A threaded HTTP server on a free loopback port speaking TLS with the given certificate: the stand-ins of the
    portal's own HTTPS peers (notary, a token realm), which trust the portal CA."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], certificate: Path, key: Path) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certificate, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.url = f"https://{self.host}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""A TCP relay on a loopback port in front of a real service: it can be absent (connections refused) or slow.

The job tests need a remote system that refuses connections for a while and then answers, and one
slow enough that a job is still running when it is stopped or its worker killed. The relay is
that, with the real registry behind it: every byte it carries is the registry's own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class TcpRelay:
    """Accepts connections on 127.0.0.1:`port` and relays them to 127.0.0.1:`target_port`.

    `delay` seconds pass before each piece a client sends is passed on (each HTTP request, in practice).
    """

    def __init__(self, port: int, target_port: int, delay: float = 0.0) -> None:
        self.port = port
        self.target_port = target_port
        self.delay = delay
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(16)
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, self.delay), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, 0.0), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, delay: float) -> None:
        try:
            while data := source.recv(65536):
                if delay:
                    time.sleep(delay)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop listening and cut every relayed connection."""
        self._closed = True
        # A plain close would leave the port listening while accept() still blocks on it.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                # close() alone leaves a socket open while a pipe thread is blocked reading it: the client then
                # waits for its read timeout (60 s) instead of seeing the connection cut. shutdown() cuts it now.
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

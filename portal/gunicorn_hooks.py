"""gunicorn server hooks, for every way the portal is served: `-c python:portal.gunicorn_hooks` (`make run`,
the tests, the benchmarks) or imported by docker/gunicorn.conf.py (the web container).

Module-level names that match gunicorn settings are read as settings, so only hooks belong here.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()
_context: tuple[tuple[int, ...], ssl.SSLContext] | None = None


def ssl_context(conf: Any, default_ssl_context_factory: Callable[[], ssl.SSLContext]) -> ssl.SSLContext:
    """One TLS context for all connections, built again only when the certificate, key or CA file changes.

    gunicorn calls this for every accepted connection, and by default builds a new context each time, reading
    and parsing the certificate and key. skopeo opens a new connection for each request it makes, so that was
    about a third of the portal's CPU for a small push. One context also lets clients resume TLS sessions.
    """
    global _context
    files = [path for path in (conf.certfile, conf.keyfile, conf.ca_certs) if path]
    stamp = tuple(os.stat(path).st_mtime_ns for path in files)
    current = _context
    if current is None or current[0] != stamp:
        with _lock:
            current = _context
            if current is None or current[0] != stamp:
                current = _context = (stamp, default_ssl_context_factory())
    return current[1]

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


# Python's collector counts container allocations: a full collection walks every object the process holds, and
# a Django worker holds a few hundred thousand after its first requests (modules, URL patterns, DRF fields,
# templates). Serialising one page of 100 users allocates enough to set off a full collection every few requests,
# about 70 ms each: the p95 of /api/v1/users was 3x its p50. Young collections still find the cycles requests
# leave behind; full ones, which find little, run rarely and walk only what was made after start-up.
GC_THRESHOLDS = (20_000, 50, 100)


def post_worker_init(worker: Any) -> None:
    """Load what the first requests would load, move everything alive into the collector's permanent generation
    (gc.freeze: never walked again) and space out the collections, so a worker's tail latency is its work."""
    import gc

    from django.urls import get_resolver

    get_resolver().url_patterns  # noqa: B018 - imports every app's views, serializers and filters
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)

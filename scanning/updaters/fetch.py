"""Downloading a feed only when it changed: conditional GETs (ETag, Last-Modified) through the trust flow."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import IO

import requests
from django.conf import settings

from portal.core import trust
from portal.core.addresses import parse_url
from portal.core.errors import RemoteUnreachable

CHUNK = 1024 * 1024


@dataclass
class Download:
    """The answer to a conditional GET: `body` is None when the feed did not change (304)."""

    body: IO[bytes] | None
    etag: str = ""
    last_modified: str = ""


def download(url: str, etag: str = "", last_modified: str = "") -> Download:
    """The feed at the URL, streamed to a temporary file, unless the validators show it unchanged.

    https verifies with the system CAs and the certificates pinned for the feed's address, as every
    outbound connection does; a failure is RemoteUnreachable (or UntrustedCertificate) saying why.
    """
    timeout = settings.VULNDB_TIMEOUT_SECONDS
    headers = {"Accept-Encoding": "gzip"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    http = trust.session(parse_url(url).address)
    try:
        with http, http.get(url, headers=headers, stream=True, timeout=timeout) as response:
            if response.status_code == 304:
                return Download(None, etag, last_modified)
            if response.status_code != 200:
                transient = response.status_code >= 500 or response.status_code == 429
                raise RemoteUnreachable(f"{url} answered {response.status_code}", transient=transient)
            # The caller closes it once parsed; a feed may be larger than is wise to hold in memory.
            body = tempfile.TemporaryFile()  # noqa: SIM115
            try:
                for chunk in response.iter_content(CHUNK):
                    body.write(chunk)
            except BaseException:
                body.close()
                raise
            body.seek(0)
            return Download(body, response.headers.get("ETag", ""), response.headers.get("Last-Modified", ""))
    except requests.RequestException as exc:
        raise trust.translate_request_error(exc, url, timeout) from exc

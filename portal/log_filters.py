"""Logging filters the LOGGING setting installs."""

from __future__ import annotations

import logging

# Answers that are the registry protocol working as meant: docker asks /v2/ to get its challenge (401), checks
# whether each blob exists before uploading it (404), and asks the token service for scopes it may not have.
_PROTOCOL_PATHS = ("/v2/", "/service/token")


class RegistryProtocolNoise(logging.Filter):
    """Drops django.request's warnings for 4xx answers under /v2/ and /service/token.

    Django logs every 4xx answer as a warning ("Not Found: /v2/..."); a single `docker push` produces several,
    none a fault. Server errors (5xx) there, and 4xx answers elsewhere, are still logged. The audit log records
    every push, pull and delete, and refused logins, on its own.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        if status is None or request is None or status >= 500:
            return True
        return not getattr(request, "path", "").startswith(_PROTOCOL_PATHS)

"""The distribution registry's configuration, generated from Wharf's settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def render(
    listen: str,
    storage_dir: Path,
    token_cert: Path,
    realm: str,
    notify_url: str,
    notify_secret: str,
    http_secret: str,
    service: str,
    issuer: str,
) -> dict[str, Any]:
    """A registry config: token auth pointing at the portal, notifications to it, deletes on, loopback only.

    No blob descriptor cache: garbage collection runs beside the live registry, and a cached
    descriptor of a collected blob would let a client skip re-uploading it.
    """
    return {
        "version": 0.1,
        # warn, not info: at info the registry logs each notification endpoint with its headers, the shared
        # secret of /service/notifications among them.
        "log": {"level": "warn", "formatter": "text", "fields": {"service": "registry"}},
        "storage": {
            "filesystem": {"rootdirectory": str(storage_dir)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": True, "age": "168h", "interval": "24h", "dryrun": False}},
        },
        "http": {"addr": listen, "secret": http_secret, "headers": {"X-Content-Type-Options": ["nosniff"]}},
        "auth": {"token": {"realm": realm, "service": service, "issuer": issuer, "rootcertbundle": str(token_cert)}},
        "notifications": {
            "endpoints": [
                {
                    "name": "wharf",
                    "url": notify_url,
                    "headers": {"Authorization": [f"Bearer {notify_secret}"]},
                    "timeout": "5s",
                    "threshold": 5,
                    "backoff": "2s",
                }
            ]
        },
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write the config as YAML (owner-only: it holds the notification secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path

"""Encryption at rest of stored secrets (credential passwords and private keys) with a Fernet key.

The key comes from WHARF_CREDENTIALS_KEY (or its _FILE), else from a key generated once in the data
directory. Only this module sees the key; callers get text in and text out.
"""

from __future__ import annotations

import functools
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from rest_framework import status

from portal.core.errors import DomainError

KEY_FILE = "credentials_key"


class SecretUnreadable(DomainError):
    """A stored secret cannot be decrypted: the key is not the one it was encrypted with."""

    status = status.HTTP_500_INTERNAL_SERVER_ERROR


def _key_path() -> Path:
    return Path(settings.DATA_DIR) / KEY_FILE


def _key() -> str:
    """The configured key, or the one generated once in the data directory."""
    if settings.CREDENTIALS_KEY:
        return settings.CREDENTIALS_KEY
    path = _key_path()
    if not path.exists():
        path.write_bytes(Fernet.generate_key())
        path.chmod(0o600)
    return path.read_text().strip()


@functools.lru_cache(maxsize=4)
def _fernet(key: str) -> Fernet:
    return Fernet(key.encode())


def encrypt(text: str) -> str:
    """The text encrypted with the credentials key, as an ASCII token."""
    return _fernet(_key()).encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The text a token from encrypt() holds; SecretUnreadable when the key does not fit."""
    try:
        return _fernet(_key()).decrypt(token.encode()).decode()
    except (InvalidToken, ValueError) as exc:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted: the credentials key (WHARF_CREDENTIALS_KEY, or "
            f"{KEY_FILE} in the data directory) is not the key it was encrypted with."
        ) from exc

"""Secrets at rest (provider credentials): Fernet (AES-128-CBC + HMAC-SHA256) under
the keys of ENCRYPTION_KEYS, the first of which encrypts; the others still decrypt,
so a key is rotated by putting a new one first (docs/configuration.md). Without
ENCRYPTION_KEYS the key is derived from SECRET_KEY."""

from __future__ import annotations

import base64
import json
from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretsUnreadable(ValueError):
    """Stored secrets none of the configured keys can decrypt (a lost or rotated-out
    key)."""


def _derived(secret_key: str) -> bytes:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"engagement secrets at rest"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(key)


@cache
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys] or [Fernet(_derived(secret_key))])


def fernet() -> MultiFernet:
    from django.conf import settings

    return _fernet(tuple(settings.ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt_json(data: dict) -> str:
    """A token holding `data` ("" for nothing to keep)."""
    if not data:
        return ""
    return fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise SecretsUnreadable(
            "stored secrets cannot be decrypted with the configured ENCRYPTION_KEYS"
        ) from None

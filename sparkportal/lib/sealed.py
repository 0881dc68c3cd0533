"""Secrets the portal must read back (a node's Hugging Face token), encrypted at rest with Fernet.

The key comes from PORTAL_SECRETS_KEY when set, else from SECRET_KEY; either way it is stretched with
HKDF into a Fernet key, so any passphrase works. Every host that reads a sealed value (the web host
and each node's worker) needs the same key. Rotating SECRET_KEY without setting PORTAL_SECRETS_KEY
makes sealed values unreadable: they must then be entered again, and `unseal` says so.
"""
from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

PREFIX = "fernet:"  # marks sealed values, so a migration can tell them from plain text


class Unreadable(Exception):
    """The value was sealed with another key."""


def _fernet() -> Fernet:
    secret = getattr(settings, "PORTAL_SECRETS_KEY", "") or settings.SECRET_KEY
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"sparkportal.sealed.v1").derive(
        secret.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def seal(text: str) -> str:
    return PREFIX + _fernet().encrypt(text.encode()).decode()


def unseal(value: str) -> str:
    if not value.startswith(PREFIX):
        raise Unreadable("not a sealed value")
    try:
        return _fernet().decrypt(value[len(PREFIX):].encode()).decode()
    except InvalidToken as exc:
        raise Unreadable("sealed with another key") from exc


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)

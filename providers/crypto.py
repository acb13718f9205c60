"""Encryption at rest for provider credentials and gift-card codes (Fernet, with key rotation)."""

import base64
import hashlib
import json

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted with any configured key."""


def _fernet() -> MultiFernet:
    keys = list(settings.GIFTDESK_CREDENTIALS_KEYS)
    if not keys:
        # Demo fallback: derive a key from SECRET_KEY so a fresh checkout works unconfigured.
        digest = hashlib.sha256(("giftdesk-credentials:" + settings.SECRET_KEY).encode()).digest()
        keys = [base64.urlsafe_b64encode(digest).decode()]
    return MultiFernet([Fernet(key.encode() if isinstance(key, str) else key) for key in keys])


def encrypt_json(data: dict) -> str:
    return _fernet().encrypt(json.dumps(data, sort_keys=True).encode()).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "The stored credentials cannot be decrypted: GIFTDESK_CREDENTIALS_KEY has changed. "
            "Restore the old key (list it after the new one) or enter the credentials again."
        ) from exc


def encrypt_text(text: str) -> str:
    """One secret string (a gift card's code), with the credentials' keys."""
    return _fernet().encrypt(text.encode()).decode()


def decrypt_text(token: str) -> str:
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise CredentialsUnreadable(
            "A stored gift card code cannot be decrypted: GIFTDESK_CREDENTIALS_KEY has changed. "
            "Restore the old key (list it after the new one)."
        ) from exc

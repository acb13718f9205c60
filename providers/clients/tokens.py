"""OAuth access tokens, cached until shortly before they expire.

The cache is Django's: per process by default, shared by every worker with Redis.
"""

import hashlib

from django.core.cache import cache

# Renew this many seconds before the provider's expiry, so no request carries a token
# that expires in flight.
EXPIRY_MARGIN_SECONDS = 60


def token_cache_key(account_id: int, token_url: str, client_id: str, client_secret: str) -> str:
    # The secret is part of the key so new credentials never reuse an old token; hashed so
    # it never lands in the cache in clear.
    digest = hashlib.sha256(f"{token_url}\0{client_id}\0{client_secret}".encode()).hexdigest()
    return f"giftdesk:token:{account_id}:{digest[:32]}"


def cached_token(key: str) -> str | None:
    return cache.get(key)


def store_token(key: str, token: str, expires_in: float) -> None:
    lifetime = float(expires_in) - EXPIRY_MARGIN_SECONDS
    if lifetime <= 0:
        lifetime = max(float(expires_in) / 2, 1.0)
    cache.set(key, token, timeout=lifetime)


def forget_token(key: str) -> None:
    cache.delete(key)


def send_with_bearer(http, method: str, url: str, *, token, token_key: str, headers: dict[str, str], **kwargs):
    """Send with `Authorization: Bearer`, and on a 401 renew the token once and send again:
    a token can expire or be revoked before the cache says so. `token(renew)` gives one."""
    headers = dict(headers)
    for renew in (False, True):
        headers["Authorization"] = f"Bearer {token(renew=renew)}"
        reply = http.request(method, url, headers=headers, **kwargs)
        if reply.status != 401:
            return reply
        forget_token(token_key)
    return reply

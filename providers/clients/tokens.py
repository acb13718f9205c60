"""OAuth 2 client credentials (RFC 6749, section 4.4), shared by the providers that use
them (GoGift, Giftronaut): the token exchange, its errors, and the token cache.

Tokens are cached in Django's cache (per process by default, shared by every worker with
Redis) until shortly before they expire, and renewed once when the API answers 401.
"""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar

from django.core.cache import cache

from providers.clients.base import (
    AccountConfig,
    AccountError,
    Call,
    HttpProviderClient,
    ProviderError,
    Reply,
    TransientError,
)

# What a token exchange may record (RFC 6749 names): never the client secret or the token.
TOKEN_EXCHANGE_FIELDS = frozenset({"grant_type", "scope", "token_type", "expires_in", "error", "error_description"})

# Renew this many seconds before the provider's expiry, so no request carries a token
# that expires in flight.
EXPIRY_MARGIN_SECONDS = 60


def token_cache_key(account_id: int, token_url: str, client_id: str, client_secret: str) -> str:
    # The secret is part of the key so new credentials never reuse an old token; hashed so
    # it never lands in the cache in clear.
    digest = hashlib.sha256(f"{token_url}\0{client_id}\0{client_secret}".encode()).hexdigest()
    return f"giftdesk:token:{account_id}:{digest[:32]}"


def store_token(key: str, token: str, expires_in: float) -> None:
    lifetime = float(expires_in) - EXPIRY_MARGIN_SECONDS
    if lifetime <= 0:
        lifetime = max(float(expires_in) / 2, 1.0)
    cache.set(key, token, timeout=lifetime)


class OAuthClient(HttpProviderClient):
    """A provider client whose API takes a bearer token from a client-credentials grant.

    A provider module says where its token URL is (`token_url_for`), which scopes it asks
    for, and what a refusal of the grant means in its own words (`token_refused`).
    """

    token_scope: ClassVar[str] = ""  # space-separated; "" sends no scope
    # Seconds a token lives when the answer has no expires_in.
    default_token_lifetime: ClassVar[int] = 300

    def __init__(self, account: AccountConfig, **kwargs: Any) -> None:
        super().__init__(account, **kwargs)
        self.token_url = account.auth_url or self.token_url_for(account.environment)
        self.client_id = account.credentials.get("client_id", "")
        self.client_secret = account.credentials.get("client_secret", "")
        self.token_key = token_cache_key(account.id, self.token_url, self.client_id, self.client_secret)

    def token_url_for(self, environment: str) -> str:
        """The documented token URL of an environment (used when the account sets none)."""
        return self.documented_urls[environment][1]

    def token_refused(self, reply: Reply, error: str, detail: str) -> AccountError:
        """The provider's words for a refused grant (`error` is RFC 6749's code)."""
        return AccountError(
            f"{self.display_name}'s token exchange failed (HTTP {reply.status}, {error or 'no reason'}"
            f"{': ' + detail if detail else ''}). Check the token URL ({self.token_url}) and the "
            "account's credentials.",
            status_code=reply.status, response_body=reply.text,
        )

    # --- HttpProviderClient hooks ------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token()}"}

    def renew_auth(self) -> bool:
        cache.delete(self.token_key)
        return True

    def refine_error(self, error: ProviderError, reply: Reply, reason: str, call: Call) -> ProviderError:
        if reply.status == 401:  # after a renewal: the credentials themselves are refused
            return error.reworded(
                f"{self.display_name} refused the access token twice, even a fresh one. Check the "
                "account's client ID and secret, and that they are allowed to use the API."
            )
        return error

    # --- The grant ---------------------------------------------------------------------------

    def access_token(self, *, renew: bool = False) -> str:
        """A valid token: the cached one, or a new one from the token URL."""
        if not renew:
            token = cache.get(self.token_key)
            if token:
                return token
        if not (self.client_id and self.client_secret):
            raise AccountError(
                f"The {self.display_name} account has no client ID or client secret. Enter both."
            )
        form = {"grant_type": "client_credentials", "client_id": self.client_id,
                "client_secret": self.client_secret}
        if self.token_scope:
            form["scope"] = self.token_scope
        reply = self.send("POST", self.token_url, form=form)
        data: dict[str, Any] = reply.fields
        if reply.status == 200 and data.get("access_token"):
            store_token(self.token_key, data["access_token"], data.get("expires_in", self.default_token_lifetime))
            return data["access_token"]
        if reply.status >= 500 or reply.status == 429:
            raise TransientError(
                f"{self.display_name}'s token service failed (HTTP {reply.status}). It will be retried.",
                status_code=reply.status, response_body=reply.text, retry_after=reply.retry_after,
            )
        raise self.token_refused(
            reply, str(data.get("error") or ""), str(data.get("error_description") or data.get("message") or "")
        )

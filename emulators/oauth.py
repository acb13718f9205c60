"""OAuth 2.0 client credentials (RFC 6749, 4.4), as the GoGift and Giftronaut token
endpoints serve them: who may ask, the tokens handed out, and when they expire."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from emulators.clock import Clock
from emulators.loopback import EmulatorRequest

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749, 5.1

# The client the local demo's accounts log in with (seed_demo), at either OAuth emulator.
DEMO_CLIENT_ID = "giftdesk-demo"
DEMO_CLIENT_SECRET = "giftdesk-demo-secret"
DEMO_CLIENTS = {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}
DEMO_CREDENTIALS = {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET}


@dataclass(frozen=True)
class IssuedToken:
    client_id: str
    scopes: frozenset[str]
    expires_at: float  # on the clock's monotonic time


class TokenStore:
    """The access tokens a token endpoint handed out, valid until they expire."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, client_id: str, lifetime: float, scopes: frozenset[str] = frozenset()) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[token] = IssuedToken(client_id, scopes, self._clock.monotonic() + lifetime)
        return token

    def bearer(self, request: EmulatorRequest) -> IssuedToken | None:
        """The unexpired token the request carries as `Authorization: Bearer`, or None."""
        issued = self._tokens.get(bearer_token(request) or "")
        if issued is None or issued.expires_at <= self._clock.monotonic():
            return None
        return issued

    def clear(self) -> None:
        self._tokens.clear()


def bearer_token(request: EmulatorRequest) -> str | None:
    """The token of an `Authorization: Bearer ...` header (RFC 6750), or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def token_request_form(request: EmulatorRequest) -> dict[str, str] | None:
    """The form of a token request; None unless it is a form-encoded POST."""
    content_type = request.headers.get("Content-Type", "").lower()
    if request.method != "POST" or not content_type.startswith("application/x-www-form-urlencoded"):
        return None
    return request.form()


def client_secret_matches(clients: dict[str, str], client_id: str, secret: str) -> bool:
    """True when `client_id` is a known client and `secret` is its secret (constant time)."""
    return bool(client_id) and secrets.compare_digest(clients.get(client_id, "\0").encode(), secret.encode())

"""The one interface every provider client implements, its value types and its errors.

Only these neutral types cross the boundary: the delivery engine never sees a provider's
own vocabulary, and a client never sees the ORM.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, ClassVar

# --- Errors --------------------------------------------------------------------------------


class ProviderError(Exception):
    """A provider call did not succeed. `message` is written for a staff member."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        response_body: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.response_body = response_body
        self.retry_after = retry_after


class PermanentError(ProviderError):
    """Refused for good (validation): retrying the same request cannot succeed."""


class TransientError(ProviderError):
    """Nothing was committed, or a retry with the same key is safe: try again later."""


class RateLimited(TransientError):
    """GiftDesk held the request back to keep the account's rate limit: nothing was sent."""


class OutcomeUnknown(ProviderError):
    """The request may have been committed (timeout, dropped connection): reconcile it with
    the same idempotency key or a lookup, never with a fresh key."""


class AccountError(ProviderError):
    """The provider refuses the whole account (credentials, funds, IP allow list)."""


class WebhookRejected(Exception):
    """An inbound webhook that must change nothing: bad or missing signature, stale, malformed."""

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


# --- Value types ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountConfig:
    """What a client needs to know of a ProviderAccount."""

    id: int
    name: str
    kind: str
    environment: str
    api_base_url: str
    auth_url: str
    credentials: dict[str, str]
    settings: dict[str, Any]


class PricingKind(enum.StrEnum):
    FIXED = "fixed"
    RANGE = "range"


@dataclass(frozen=True)
class ProductInfo:
    provider_product_id: str
    sku: str
    title: str
    currency: str
    pricing: PricingKind
    denominations: tuple[Decimal, ...] = ()
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    step: Decimal | None = None
    delivery_methods: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class CardRequest:
    """One card to buy. `order_reference` is our unique reference of the order."""

    order_reference: str
    recipient_name: str
    recipient_email: str
    amount: Decimal
    currency: str
    product_id: str
    sku: str
    recipient_phone: str = ""
    message: str = ""
    send_on: date | None = None


@dataclass
class SubmitRequest:
    """One provider order for one or more cards, under one idempotency key.

    `provider_reference` is what an earlier attempt already stored (a GoGift basket id);
    `remember_reference` must persist a new one before the client sends anything that
    depends on it, so a retry continues the same provider order.
    """

    idempotency_key: str
    reference: str
    cards: list[CardRequest]
    provider_reference: str = ""
    remember_reference: Callable[[str], None] = lambda reference: None
    sender_name: str = ""
    # When the provider should deliver (the batch's scheduled time); None: now.
    send_at: datetime | None = None


class CardStatus(enum.StrEnum):
    PROCESSING = "processing"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class CardResult:
    """What became of one card. PROCESSING means: ask again with `fetch_status`."""

    order_reference: str
    status: CardStatus
    provider_order_id: str = ""
    cost: Decimal | None = None
    cost_currency: str = ""
    error: str = ""
    # The provider's own card (e.g. a Gifty gift card code), and what finance may see of it.
    provider_card_id: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SubmitResult:
    """`provider_reference` is what `fetch_status` needs to look the order up again."""

    provider_reference: str
    cards: list[CardResult]


@dataclass(frozen=True)
class StatusRequest:
    """Look up a provider order placed earlier; `cards` are its cards still in flight."""

    provider_reference: str
    cards: list[CardRequest]
    idempotency_key: str = ""


@dataclass(frozen=True)
class Quote:
    """What the provider will charge for some cards, fees included, before ordering."""

    currency: str
    subtotal: Decimal
    fees: Decimal
    total: Decimal
    lines: tuple[str, ...] = ()  # readable fee lines, e.g. "Service fee: 1.50 EUR"


@dataclass(frozen=True)
class Balance:
    amount: Decimal
    currency: str


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    message: str


@dataclass(frozen=True)
class CallRecord:
    """One HTTP exchange, secrets already redacted, for the order's event log."""

    method: str
    url: str
    status: int | None
    request_body: str
    response_body: str
    duration_ms: int
    error: str = ""


Recorder = Callable[[CallRecord], None]


# --- The interface ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookRequest:
    """An inbound webhook as received: the raw body, exactly as signed."""

    method: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    received_at: datetime

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


@dataclass(frozen=True)
class CardUpdate:
    """What a webhook says of one card, found by our reference or the provider's order id."""

    status: CardStatus
    order_reference: str = ""
    provider_order_id: str = ""
    error: str = ""
    details: dict[str, Any] = field(default_factory=dict, compare=False)
    provider_card_id: str = ""


@dataclass(frozen=True)
class ParsedWebhook:
    """A verified webhook. `event_id` is unique per account: a replay changes nothing."""

    event_id: str
    event_type: str
    updates: list[CardUpdate]
    payload: dict[str, Any] = field(default_factory=dict, compare=False)


def hmac_sha256_hex(secret: str | bytes, message: bytes) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_matches(expected: str, given: str) -> bool:
    """Constant-time comparison, so timing reveals nothing of the expected signature."""
    return hmac.compare_digest(expected.strip().lower().encode(), given.strip().lower().encode())


Throttle = Callable[[], None]


class ProviderClient:
    """Base of every provider client; subclasses build requests and parse responses.

    Class attributes tell the engine and the admin what the provider needs; the optional
    methods at the end return None (or raise NotImplementedError) where a provider has no
    such thing.
    """

    kind: ClassVar[str]
    display_name: ClassVar[str]
    # Credentials `configure_account --set` accepts for this kind (stored encrypted).
    credential_keys: ClassVar[tuple[str, ...]] = ()
    # Environment -> (API base URL, token URL or ""), as the provider documents them.
    documented_urls: ClassVar[dict[str, tuple[str, str]]] = {}
    # Settings the pre-launch checklist requires, with a label for each.
    required_settings: ClassVar[dict[str, str]] = {}
    # Most cards one provider request may carry (None: the account's setting decides).
    max_cards_per_submission: ClassVar[int | None] = None
    # Card fields that must be the same for every card of one request ("currency", "product").
    submission_group: ClassVar[tuple[str, ...]] = ("currency",)
    # Whether `fetch_status` can look up orders the provider is still fulfilling.
    supports_status: ClassVar[bool] = False
    # The provider's documented request limit per minute, if it has one.
    max_requests_per_minute: ClassVar[int | None] = None

    def __init__(
        self,
        account: AccountConfig,
        *,
        recorder: Recorder | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.account = account
        self.recorder = recorder
        self.throttle = throttle

    def verify(self) -> VerifyResult:
        """Check the credentials and the account's health with one cheap call."""
        raise NotImplementedError

    def list_products(self) -> list[ProductInfo]:
        """The whole catalog, normalized."""
        raise NotImplementedError

    def submit(self, request: SubmitRequest) -> SubmitResult:
        """Place one provider order for the request's cards."""
        raise NotImplementedError

    def fetch_status(self, request: StatusRequest) -> SubmitResult:
        """The current state of a provider order placed by `submit`."""
        raise NotImplementedError(f"{self.display_name} has no status lookup.")

    def quote(self, cards: list[CardRequest]) -> Quote | None:
        """Price with fees before ordering, where the provider offers one."""
        return None

    def balance(self) -> Balance | None:
        """The account's prepaid balance, where the provider keeps one."""
        return None

    def card_details(self, provider_card_id: str) -> dict[str, Any] | None:
        """What finance may see of an issued card (balance, redeemable, expiry)."""
        return None

    # --- Webhooks ------------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest, secrets: list[str]) -> ParsedWebhook:
        """Verify an inbound webhook against the account's secrets (newest first, so a
        secret can be rotated) and say what it changes. Raises WebhookRejected."""
        raise WebhookRejected(f"{self.display_name} sends no webhooks GiftDesk understands.", status=404)

    def register_webhook(self, url: str, secret: str) -> tuple[str, str]:
        """Subscribe `url` to order events at the provider. Returns (the provider's
        webhook id, the secret to verify deliveries with: `secret`, or the provider's own)."""
        raise NotImplementedError(f"{self.display_name} webhooks are not registered through its API.")

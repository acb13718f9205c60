"""Gifty emulator, following seed 003 (Gifty API).

Serves under one base URL what GiftDesk uses of Gifty: the External Orders API
(`GET /v1/external-orders/configuration`, `POST /v1/external-orders/preview`,
`POST /v1/external-orders`), the external order lookup GiftDesk assumes
(`GET /v1/external-orders/{id}`, see the comment block in providers/clients/gifty.py), and
`GET /v1/giftcards/{code}`, and the Webhooks API (`GET`/`POST /v1/webhooks`,
`GET`/`PUT`/`DELETE /v1/webhooks/{id}`: our secret is given on create, never shown, and
immutable). Bearer tokens, seed 003's error body, validation messages in
English or Dutch (`Accept-Language`), the 120 requests/minute limit (a sliding 60 s window
per token), and idempotency by `X-Gifty-Idempotency-Key` (and `Idempotency-Key` on order
creation) for 24 hours. Test-only endpoints live under `/_emulator/`.

Orders are asynchronous: an order answers `pending`, becomes `processing` after
`processing_after` seconds and `completed` after `complete_after` seconds on the
emulator's clock (None: only when a test says so). Only digital fulfillment is served (the
only mode GiftDesk uses): a physical order is refused as not available, so there is no
shipping and no gift wrapping. Where the seed is silent, the assumption is marked
"Assumption:".

Webhook events are not sent on their own: `deliver_order_event(order_id)` (or
`POST /_emulator/orders/{id}/notify`) posts the order's current event to every active
webhook subscribed to it, signed as the client expects (`signed_webhook`).
"""

from __future__ import annotations

import itertools
import math
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from emulators.base import Call, EmulatorBase, Handler, LedgerEntry, RateWindows, StoredAnswer, route
from emulators.clock import Clock
from emulators import faults as F
from emulators.faults import Fault
from emulators.loopback import EmulatorRequest, EmulatorResponse, json_response
from emulators.oauth import bearer_token
from emulators.values import EMAIL_RE
from emulators.webhooks import post_event, signed_json

DEMO_API_TOKEN = "giftdesk-demo-gifty-token"

ORDERS_PATH = "/v1/external-orders"
CONFIGURATION_PATH = "/v1/external-orders/configuration"
PREVIEW_PATH = "/v1/external-orders/preview"
WEBHOOKS_PATH = "/v1/webhooks"

LANGUAGES = ("en", "nl")  # seed 003, Localization
CURRENCIES = ("EUR",)  # seed 003, Currencies
FULFILLMENT_MODES = ("physical", "digital")  # seed 003, Fulfillment Modes
# GiftDesk sends only digital orders, so the emulator ships nothing: a physical order is
# refused as not available (no shipping methods, no gift wrapping).
OFFERED_MODES = ("digital",)
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # seed 003, Idempotency
GIFT_CARD_CODE = re.compile(r"^[A-Za-z0-9]{16}$")
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DEFAULT_RATE_LIMIT = 120  # seed 003, Rate Limiting: 120 requests per minute
RATE_WINDOW_SECONDS = 60.0
IDEMPOTENCY_TTL_SECONDS = 24 * 3600  # "in the past 24 hours"
CARD_VALIDITY = timedelta(days=5 * 365)  # Assumption: seed 003's example card is valid 5 years

# --- Webhooks (seed 003, Webhooks; the assumptions are the client's, 11 to 13) ---------------

# Assumption: the secret "requirements" seed 003 links to (the link is missing): 16 to 128
# letters, digits, dashes and underscores.
WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
WEBHOOK_STATUSES = ("active", "inactive")
WEBHOOK_PAGE_DEFAULT, WEBHOOK_PAGE_MAX = 10, 100  # "Defaults to 10 and should be between 1 and 100"
SIGNATURE_HEADER = "X-Gifty-Signature"  # DESIGN.md; hex HMAC-SHA256 of the raw body
WEBHOOK_DELIVERY_TIMEOUT = 5.0
# The events seed 003's examples name, and the external order events GiftDesk assumes.
ORDER_EVENTS = {"processing": "external_order.processing", "completed": "external_order.completed",
                "cancelled": "external_order.cancelled"}
WEBHOOK_EVENTS = frozenset({
    "giftcard.issue", "giftcard.issued", "giftcard.redeem", "giftcard.redeemed", "giftcard.expired",
    "giftcard.extended", "giftcard.topped_up", "transaction.created", "transaction.captured",
    "transaction.released", "location.created", "location.updated", "location.deleted",
    *ORDER_EVENTS.values(),
})

# --- Configuration (seed 003, GET Configuration) ---------------------------------------------

CONSENT = {
    "consumer_terms": {"url": "https://gifty.nl/buyer-terms-and-conditions-en.pdf", "version": "2024-11-23",
                       "required": True},
    "privacy_policy": {"url": "https://gifty.nl/privacy-statement-en.pdf", "version": "2025-03-20",
                       "required": True},
}
ORDER_MINIMUM, ORDER_MAXIMUM, MAX_LINE_ITEMS = 500, 250000, 100  # seed 003, constraints
MESSAGE_MAX_LENGTH = 300
MESSAGE_PRICE = {"excluding_tax": 79, "including_tax": 96, "tax": 17, "tax_lines": []}  # seed 003


@dataclass(frozen=True)
class CatalogProduct:
    """Fixed (`price`, cents) or variable (`minimum`..`maximum`, cents) pricing, in EUR."""

    id: str
    type: str
    title: str
    description: str
    modes: tuple[str, ...]
    price: int | None = None
    minimum: int | None = None
    maximum: int | None = None
    suggested: tuple[int, ...] = ()
    package_id: str | None = None

    def image(self) -> list[dict[str, str]]:
        return [{"type": "FRONT_SMALL", "url": f"https://cdn.gifty.nl/preview/{self.id}/small.png"}]


CATALOG: tuple[CatalogProduct, ...] = (
    CatalogProduct("gc_co_giftdesk_standard", "gift_card", "Gift card", "The GiftDesk Demo gift card",
                   ("physical", "digital"), minimum=500, maximum=50000,
                   suggested=(1500, 2500, 5000, 7500, 10000)),
    CatalogProduct("gc_pk_dinner_for_two", "gift_card_package", "Dinner for two",
                   "A three-course dinner for two at the restaurant.", ("digital",), price=7500,
                   package_id="gp_rB4kAgGwOzdaQ5dMxN09q62y"),
    CatalogProduct("gc_pk_high_tea", "gift_card_package", "High tea for two",
                   "High tea with sweet and savoury treats for two.", ("physical", "digital"), price=3950,
                   package_id="gp_Lw3kPq9ZnX2mV7bR4tY8cD1e"),
    CatalogProduct("gc_co_gift_box", "gift_card", "Gift box", "A gift card in a wooden box, sent by post.",
                   ("physical",), minimum=2500, maximum=15000, suggested=(2500, 5000)),
)

# --- Messages (seed 003: validation errors in English and Dutch) -----------------------------

MESSAGES: dict[str, dict[str, str]] = {
    "body": {"en": "The request body must be a JSON object.",
             "nl": "De inhoud van het verzoek moet een JSON-object zijn."},
    "required": {"en": "The {field} field is required.", "nl": "Het veld {field} is verplicht."},
    "object": {"en": "The {field} field must be an object.", "nl": "Het veld {field} moet een object zijn."},
    "currency": {"en": "The currency {value} is not supported; use one of {choices}.",
                 "nl": "De valuta {value} wordt niet ondersteund; gebruik een van {choices}."},
    "mode": {"en": "The fulfillment.mode must be one of: {choices}.",
             "nl": "Het veld fulfillment.mode moet een van de volgende zijn: {choices}."},
    "mode_unavailable": {"en": "The fulfillment.mode {value} is not available; use one of: {choices}.",
                         "nl": "De fulfillment.mode {value} is niet beschikbaar; gebruik een van: {choices}."},
    "line_items": {"en": "The line_items field must contain at least 1 item.",
                   "nl": "Het veld line_items moet minimaal 1 item bevatten."},
    "line_items_max": {"en": "An order may contain at most {max} items.",
                       "nl": "Een bestelling mag maximaal {max} items bevatten."},
    "product": {"en": "The product {value} in {field} does not exist.",
                "nl": "Het product {value} in {field} bestaat niet."},
    "product_mode": {"en": "The product {value} is not available for {mode} fulfillment.",
                     "nl": "Het product {value} is niet beschikbaar voor {mode} levering."},
    "quantity": {"en": "The {field} must be a whole number of at least 1.",
                 "nl": "Het veld {field} moet een geheel getal van minimaal 1 zijn."},
    "amount_cents": {"en": "The {field} must be a whole number of cents.",
                     "nl": "Het veld {field} moet een geheel aantal centen zijn."},
    "amount_range": {"en": "The {field} must be between {minimum} and {maximum}.",
                     "nl": "Het veld {field} moet tussen {minimum} en {maximum} liggen."},
    "amount_fixed": {"en": "The {field} must be {price} for the product {value}.",
                     "nl": "Het veld {field} moet {price} zijn voor het product {value}."},
    "customisation": {"en": "The customisation {value} is not available for the product {product}.",
                      "nl": "De personalisatie {value} is niet beschikbaar voor het product {product}."},
    "message_text": {"en": "The personalised message must be a text of at least 1 character.",
                     "nl": "Het persoonlijke bericht moet een tekst van minimaal 1 teken zijn."},
    "message_length": {"en": "The personalised message may not be greater than {max} characters.",
                       "nl": "Het persoonlijke bericht mag niet meer dan {max} tekens bevatten."},
    "email": {"en": "The customer.email must be a valid email address.",
              "nl": "Het veld customer.email moet een geldig e-mailadres zijn."},
    "locale": {"en": "The customer.locale {value} is not supported; use one of {choices}.",
               "nl": "De taal customer.locale {value} wordt niet ondersteund; gebruik een van {choices}."},
    "order_minimum": {"en": "The order total must be at least {amount}.",
                      "nl": "Het totaalbedrag van de bestelling moet minimaal {amount} zijn."},
    "order_maximum": {"en": "The order total may not be greater than {amount}.",
                      "nl": "Het totaalbedrag van de bestelling mag niet hoger zijn dan {amount}."},
    "consent": {"en": "The consent.{name} must be accepted.", "nl": "De consent.{name} moet geaccepteerd zijn."},
    "consent_version": {"en": "The consent.{name}.version {value} is outdated; accept version {version}.",
                        "nl": "De consent.{name}.version {value} is verouderd; accepteer versie {version}."},
    "idempotency_key": {"en": "The idempotency key must have at most 128 characters: letters, digits, "
                              "dashes and underscores.",
                        "nl": "De idempotency key mag maximaal 128 tekens bevatten: letters, cijfers, "
                              "streepjes en underscores."},
    "idempotency_conflict": {"en": "The Idempotency-Key and X-Gifty-Idempotency-Key headers must be equal.",
                             "nl": "De headers Idempotency-Key en X-Gifty-Idempotency-Key moeten gelijk zijn."},
    "code": {"en": "The gift card code must be 16 letters and digits, without hyphens or spaces.",
             "nl": "De code van de cadeaukaart moet 16 letters en cijfers zijn, zonder streepjes of spaties."},
    "webhook_not_found": {"en": "The webhook {value} does not exist.", "nl": "De webhook {value} bestaat niet."},
    "webhook_string": {"en": "The {field} field must be a text.", "nl": "Het veld {field} moet een tekst zijn."},
    "webhook_https": {"en": "The endpoint must be a valid HTTPS URL.",
                      "nl": "Het endpoint moet een geldige HTTPS-URL zijn."},
    "webhook_secret": {"en": "The secret must have 16 to 128 characters: letters, digits, dashes and underscores.",
                       "nl": "Het secret moet 16 tot 128 tekens bevatten: letters, cijfers, streepjes en "
                             "underscores."},
    "webhook_secret_immutable": {"en": "The secret cannot be updated.",
                                 "nl": "Het secret kan niet worden gewijzigd."},
    "webhook_events": {"en": "The events field must contain at least 1 event.",
                       "nl": "Het veld events moet minimaal 1 event bevatten."},
    "webhook_events_list": {"en": "The events field must be a list of event names.",
                            "nl": "Het veld events moet een lijst met eventnamen zijn."},
    "webhook_event": {"en": "The event {value} does not exist.", "nl": "Het event {value} bestaat niet."},
    "webhook_status": {"en": "The status must be one of: active, inactive.",
                       "nl": "De status moet een van de volgende zijn: active, inactive."},
    "webhook_boolean": {"en": "The {field} field must be true or false.",
                        "nl": "Het veld {field} moet true of false zijn."},
    "limit": {"en": "The limit must be a whole number between 1 and {max}.",
              "nl": "De limit moet een geheel getal tussen 1 en {max} zijn."},
    "cursor": {"en": "The cursor_before {value} is not valid.", "nl": "De cursor_before {value} is ongeldig."},
    "unauthenticated": {"en": "Unauthenticated.", "nl": "Niet geauthenticeerd."},
    "forbidden": {"en": "This action is unauthorized.", "nl": "Deze actie is niet toegestaan."},
    "order_not_found": {"en": "The external order {value} does not exist.",
                        "nl": "De externe bestelling {value} bestaat niet."},
    "card_not_found": {"en": "The gift card {value} does not exist.", "nl": "De cadeaukaart {value} bestaat niet."},
    "route": {"en": "The route {path} could not be found.", "nl": "De route {path} kon niet worden gevonden."},
    "method": {"en": "The {method} method is not supported for route {path}. Supported methods: {allowed}.",
               "nl": "De methode {method} wordt niet ondersteund voor route {path}. Ondersteund: {allowed}."},
    "rate_limited": {"en": "Too Many Attempts.", "nl": "Te veel pogingen."},
    "rate_limited_detail": {"en": "The API is limited to {limit} requests per minute. Retry after {seconds} "
                                  "seconds.",
                            "nl": "De API is beperkt tot {limit} verzoeken per minuut. Probeer het over "
                                  "{seconds} seconden opnieuw."},
    "insufficient": {"en": "The account balance of {available} is insufficient for this order of {required}.",
                     "nl": "Het saldo van {available} is onvoldoende voor deze bestelling van {required}."},
    "server_error": {"en": "Server Error", "nl": "Serverfout"},
    "unavailable": {"en": "Service Unavailable", "nl": "Dienst niet beschikbaar"},
}
# Faults answer in seed 003's error body: (message key, error type) by status.
SERVER_ERRORS = {500: ("server_error", "server_error"), 503: ("unavailable", "service_unavailable")}
TITLES = {
    "validation_error": "Validation error", "authentication_error": "Unauthenticated", "forbidden": "Forbidden",
    "not_found": "Not found", "method_not_allowed": "Method not allowed",
    "rate_limit_exceeded": "Too many requests", "insufficient_balance": "Insufficient balance",
    "server_error": "Server error", "service_unavailable": "Service unavailable",
    "bad_request": "Bad request",
}

def _language(header: str | None) -> str:
    """The first language of Accept-Language that Gifty speaks; English otherwise."""
    for part in (header or "").split(","):
        tag = part.split(";")[0].strip().lower().split("-")[0]
        if tag in LANGUAGES:
            return tag
    return "en"


def _euro(cents: int) -> str:
    """As seed 003 writes amounts: € 12,50."""
    return f"€ {cents // 100},{cents % 100:02d}"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")  # seed 003: "2025-08-29T13:48:56+00:00"


def _new_id(prefix: str) -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(24))


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- Errors -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One entry of seed 003's `errors` list, before it is serialized."""

    detail: str
    type: str = "validation_error"


class Refusal(Exception):
    """A handler refuses the request; turned into seed 003's error body."""

    def __init__(self, status: int, problems: list[Problem], headers: dict[str, str] | None = None,
                 message: str | None = None) -> None:
        super().__init__(problems[0].detail)
        self.status, self.problems, self.headers, self.message = status, problems, headers or {}, message


def error_response(status: int, problems: list[Problem], language: str = "en", *,
                   message: str | None = None, headers: dict[str, str] | None = None) -> EmulatorResponse:
    """Seed 003: {"message", "errors": [{"id", "status", "type", "title", "detail"}]}.
    Assumption: several errors read as Laravel writes them, "first (and N more errors)"."""
    if message is None:
        message = problems[0].detail
        more = len(problems) - 1
        if more:
            message += (f" (and {more} more error{'s' if more > 1 else ''})" if language == "en"
                        else f" (en {more} andere fout{'en' if more > 1 else ''})")
    return json_response(status, {
        "message": message,
        "errors": [
            {"id": uuid.uuid4().hex, "status": str(status), "type": problem.type,
             "title": TITLES.get(problem.type, problem.type), "detail": problem.detail}
            for problem in problems
        ],
    }, headers)


# --- State --------------------------------------------------------------------------------------


@dataclass
class _Card:
    id: str
    code: str
    balance: int
    currency: str
    order_id: str
    token: str
    package_id: str | None
    created_at: datetime
    expires_at: datetime


@dataclass
class _Order:
    id: str
    token: str
    created_at: datetime
    started: float  # the emulator's clock.monotonic()
    currency: str
    mode: str
    customer: dict[str, Any]
    line_items: list[dict[str, Any]]
    amounts: dict[str, int]
    metadata: dict[str, Any]
    cards: list[_Card] = field(default_factory=list)
    forced_status: str | None = None


@dataclass
class Webhook:
    """One webhook subscription; `secret` is ours and never leaves the emulator's API."""

    id: str
    token: str
    seq: int
    name: str
    endpoint: str
    secret: str
    events: list[str]
    is_active: bool
    notifications_enabled: bool
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        # Seed 003 prints `events` as {"a", "b"}, which is not JSON: a list, as create takes it.
        return {"id": self.id, "name": self.name, "endpoint": self.endpoint, "is_active": self.is_active,
                "notifications_enabled": self.notifications_enabled, "events": list(self.events),
                "created_at": _timestamp(self.created_at)}


@dataclass(frozen=True, kw_only=True)
class _Call(Call):
    language: str  # of the answer's messages: Accept-Language, English by default


# --- The emulator -------------------------------------------------------------------------------


class GiftyEmulator(EmulatorBase):
    """In-memory Gifty: configuration, preview, orders (asynchronous), gift cards, a ledger."""

    funds_routes = frozenset({("POST", ORDERS_PATH)})

    def __init__(
        self,
        tokens: Iterable[str] = (),
        *,
        restricted_tokens: Iterable[str] = (),
        processing_after: float | None = 1.0,
        complete_after: float | None = 3.0,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.tokens: set[str] = set(tokens)
        # Assumption: seed 003 does not describe token permissions; a valid token without
        # access to External Orders gets 403 there (Laravel's "This action is unauthorized.").
        self.restricted_tokens: set[str] = set(restricted_tokens)
        self.processing_after = processing_after
        self.complete_after = complete_after
        self.rate_limit = DEFAULT_RATE_LIMIT
        self.rate_window = RATE_WINDOW_SECONDS
        self.rate_limit_refusals = 0  # proof for tests: a client that holds the limit never trips it
        self.idempotency_ttl = IDEMPOTENCY_TTL_SECONDS
        # Assumption: seed 003 shows no service fee; a non-zero one (cents per order) appears
        # in `amounts` as "service_fee", so fee handling can be tested beyond customisations.
        self.service_fee = 0
        self.consent = {name: dict(item) for name, item in CONSENT.items()}
        self._orders: dict[str, _Order] = {}
        self._cards: dict[str, _Card] = {}  # by code
        self._rate = RateWindows(self.clock)  # per token
        self._webhooks: dict[str, Webhook] = {}
        self._webhook_seq = itertools.count(1)
        # (order id, event type) -> (event id, created at): one event, the same on every delivery.
        self._events: dict[tuple[str, str], tuple[str, datetime]] = {}
        # Gifty only posts to HTTPS; tests delivering to a loopback receiver turn this off.
        self.webhook_https_only = True
        # Seed 003: idempotency keys work on every POST, PUT and PATCH (see _idempotent).
        self._routes = [
            route("GET", r"/v1/external-orders/configuration", self._configuration),
            route("POST", r"/v1/external-orders/preview", self._idempotent(self._preview)),
            route("POST", r"/v1/external-orders", self._idempotent(self._create_order)),
            # Assumption: seed 003 documents no lookup of an external order; see the client.
            route("GET", r"/v1/external-orders/(?P<order_id>[^/]+)", self._get_order),
            route("GET", r"/v1/giftcards/(?P<code>[^/]+)", self._get_gift_card),
            route("GET", r"/v1/webhooks", self._list_webhooks),
            route("POST", r"/v1/webhooks", self._idempotent(self._create_webhook)),
            route("GET", r"/v1/webhooks/(?P<webhook_id>[^/]+)", self._get_webhook),
            route("PUT", r"/v1/webhooks/(?P<webhook_id>[^/]+)", self._idempotent(self._update_webhook)),
            route("DELETE", r"/v1/webhooks/(?P<webhook_id>[^/]+)", self._delete_webhook),
        ]

    # --- Test helpers ------------------------------------------------------------------------

    def _forget(self) -> None:
        """Orders, cards, rate windows, webhooks and their events; consent as configured."""
        self._orders.clear()
        self._cards.clear()
        self._rate.clear()
        self._webhooks.clear()
        self._events.clear()
        self.consent = {name: dict(item) for name, item in CONSENT.items()}

    def set_order_status(self, order_id: str, status: str) -> None:
        """Force an order's status (e.g. "cancelled"), whatever the clock says."""
        if status not in ("pending", "processing", "completed", "cancelled"):
            raise ValueError(f"Unknown order status {status!r}")
        with self._lock:
            self._orders[order_id].forced_status = status

    def order_ids(self) -> list[str]:
        with self._lock:
            return list(self._orders)

    def webhooks(self) -> list[Webhook]:
        """Every subscription, oldest first, secrets included (for tests)."""
        with self._lock:
            return [Webhook(**{**asdict(webhook), "events": list(webhook.events)})
                    for webhook in sorted(self._webhooks.values(), key=lambda webhook: webhook.seq)]

    def deliver_order_event(self, order_id: str) -> list[tuple[str, int | None]]:
        """POST the order's current event to every active webhook of its token subscribed to
        it, each signed with its own secret. Returns (endpoint, HTTP status or None)."""
        with self._lock:
            order = self._orders[order_id]
            event = self._order_event(order)
            targets = [] if event is None else [
                (webhook.endpoint, webhook.secret) for webhook in sorted(self._webhooks.values(), key=lambda w: w.seq)
                if webhook.token == order.token and webhook.is_active and event["type"] in webhook.events
            ]
        results: list[tuple[str, int | None]] = []
        for endpoint, secret in targets:
            headers, body = signed_json(secret, event, header=SIGNATURE_HEADER)
            status, _ = post_event(endpoint, headers, body, timeout=WEBHOOK_DELIVERY_TIMEOUT)
            results.append((endpoint, status))
        return results

    def _order_event(self, order: _Order) -> dict[str, Any] | None:
        """The event for the order's current status (None while it is pending)."""
        data = self._order_json(order)
        event_type = ORDER_EVENTS.get(data["status"])
        if event_type is None:
            return None
        event_id, created_at = self._events.setdefault((order.id, event_type),
                                                       (_new_id("evt_"), self.clock.now()))
        return {"id": event_id, "type": event_type, "created_at": _timestamp(created_at), "data": data}

    def card_code(self, order_id: str) -> str:
        """The full code of an order's first card (Gifty masks it while the order runs)."""
        with self._lock:
            return self._orders[order_id].cards[0].code

    # --- Entry point and Gifty's error answers -----------------------------------------------

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        language = _language(request.headers.get("Accept-Language"))
        token = bearer_token(request)
        if token not in self.tokens | self.restricted_tokens:
            return error_response(401, [Problem(MESSAGES["unauthenticated"][language], "authentication_error")],
                                  language)
        wait = self._rate.wait(token, limit=self.rate_limit, window=self.rate_window)
        if wait is not None:
            self.rate_limit_refusals += 1
            return self._rate_limited(max(1, math.ceil(wait)), language)
        if token in self.restricted_tokens and request.path.startswith(ORDERS_PATH):
            return error_response(403, [Problem(MESSAGES["forbidden"][language], "forbidden")], language)
        try:
            return self._route(request, _Call(caller=token, language=language, credit_fault=credit_fault))
        except Refusal as refusal:
            return error_response(refusal.status, refusal.problems, language,
                                  message=refusal.message, headers=refusal.headers)

    def _too_many_requests(self, request: EmulatorRequest, retry_after: int) -> EmulatorResponse:
        return self._rate_limited(retry_after, _language(request.headers.get("Accept-Language")))

    def _rate_limited(self, seconds: int, language: str) -> EmulatorResponse:
        # Assumption: seed 003 says only that access is "temporarily disabled"; Gifty
        # answers 429 with Retry-After (seconds), as HTTP has it.
        return error_response(
            429, [Problem(_t(language, "rate_limited_detail", limit=self.rate_limit, seconds=seconds),
                          "rate_limit_exceeded")],
            language, message=MESSAGES["rate_limited"][language], headers={"Retry-After": str(seconds)},
        )

    def _server_error(self, request: EmulatorRequest, status: int) -> EmulatorResponse:
        language = _language(request.headers.get("Accept-Language"))
        key, kind = SERVER_ERRORS[status]
        return error_response(status, [Problem(MESSAGES[key][language], kind)], language)

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        # As `_dispatch` answers an unknown token (401) and one that may not do this (403).
        language = _language(request.headers.get("Accept-Language"))
        if fault.kind == F.UNAUTHORIZED:
            return error_response(401, [Problem(MESSAGES["unauthenticated"][language], "authentication_error")],
                                  language)
        if fault.kind == F.FORBIDDEN:
            return error_response(403, [Problem(MESSAGES["forbidden"][language], "forbidden")], language)
        return super()._fault_response(request, fault)

    def _method_not_allowed(self, request: EmulatorRequest, allowed: list[str]) -> EmulatorResponse:
        language = _language(request.headers.get("Accept-Language"))
        text = _t(language, "method", method=request.method, path=request.path, allowed=", ".join(allowed))
        return error_response(405, [Problem(text, "method_not_allowed")], language,
                              headers={"Allow": ", ".join(allowed)})

    def _not_found(self, request: EmulatorRequest) -> EmulatorResponse:
        language = _language(request.headers.get("Accept-Language"))
        return error_response(404, [Problem(_t(language, "route", path=request.path.lstrip("/")), "not_found")],
                              language)

    # --- Idempotency (seed 003) --------------------------------------------------------------

    def _idempotent(self, handler: Handler) -> Handler:
        """Seed 003: a key seen in the past 24 hours returns the original response, without
        performing the operation again. `X-Gifty-Idempotency-Key` works on every POST, PUT
        and PATCH; `Idempotency-Key` is the header the Create Order section names.
        Assumptions: keys are per API token; the original response is replayed whatever
        the new request's path or body (seed 003 names no mismatch error); only
        successful answers are kept, so a refused request may be corrected and sent again;
        both headers with different values are refused."""

        def wrapped(request: EmulatorRequest, call: _Call) -> EmulatorResponse:
            general = request.headers.get("X-Gifty-Idempotency-Key")
            specific = request.headers.get("Idempotency-Key") if request.path == ORDERS_PATH else None
            keys = {key.strip() for key in (general, specific) if key is not None}
            if not keys:
                return handler(request, call)
            if len(keys) > 1:
                raise Refusal(422, [Problem(MESSAGES["idempotency_conflict"][call.language])])
            key = keys.pop()
            if not IDEMPOTENCY_KEY.match(key):
                raise Refusal(422, [Problem(MESSAGES["idempotency_key"][call.language])])
            now = self.clock.monotonic()
            stored = self._idempotency.get((call.caller, key))
            if stored is not None and now - stored.stored_at < self.idempotency_ttl:
                return stored.replay()
            response = handler(request, call)
            if 200 <= response.status < 300:
                self._idempotency[(call.caller, key)] = StoredAnswer.of(response, stored_at=now)
            return response

        return wrapped

    # --- Configuration -----------------------------------------------------------------------

    def _configuration(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        return json_response(200, {"data": {
            "supported_currencies": list(CURRENCIES),
            "supported_locales": list(LANGUAGES),
            "products": [_product_json(product) for product in CATALOG],
            "constraints": {"order": {
                "minimum_amount": {"currency": "EUR", "amount": ORDER_MINIMUM},
                "maximum_amount": {"currency": "EUR", "amount": ORDER_MAXIMUM},
                "maximum_line_items": {"quantity": MAX_LINE_ITEMS},
            }},
            "consent": {name: dict(item) for name, item in self.consent.items()},
        }})

    # --- Preview and create ------------------------------------------------------------------

    def _preview(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        order = self._checked_order(request, call, for_create=False)
        # Digital orders ship nothing: no shipping details.
        return json_response(200, {"data": {"amounts": order["amounts"], "shipping": None}})

    def _create_order(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        checked = self._checked_order(request, call, for_create=True)
        if call.credit_fault is not None:
            total = checked["amounts"]["total"]
            # Assumption: seed 003 documents no funds check; 402 with the usual body.
            available = max(total - 1000, 0)
            text = _t(call.language, "insufficient", available=_euro(available), required=_euro(total))
            raise Refusal(402, [Problem(text, "insufficient_balance")])
        now = self.clock.now()
        order = _Order(
            id=_new_id("or_"), token=call.caller, created_at=now, started=self.clock.monotonic(),
            currency=checked["currency"], mode=checked["mode"], customer=checked["customer"],
            line_items=checked["line_items"], amounts=checked["amounts"], metadata=checked["metadata"],
        )
        for line in checked["line_items"]:
            product: CatalogProduct = line.pop("_product")
            for _ in range(line["quantity"]):
                card = _Card(
                    id=_new_id("gc_"), code=self._new_code(), balance=line["amount"], currency=order.currency,
                    order_id=order.id, token=call.caller, package_id=product.package_id,
                    created_at=now, expires_at=now + CARD_VALIDITY,
                )
                order.cards.append(card)
                self._cards[card.code] = card
                self.ledger.append(LedgerEntry(
                    card_id=card.id, order_id=order.id, reference=order.metadata.get("external_reference"),
                    product_id=product.id, amount=Decimal(card.balance).scaleb(-2), currency=card.currency,
                    recipient_name=order.customer.get("name"), recipient_email=order.customer.get("email"),
                    created_at=now, extra={"code": card.code},
                ))
        self._orders[order.id] = order
        return json_response(201, {"data": self._order_json(order)})

    def _checked_order(self, request: EmulatorRequest, call: _Call, *, for_create: bool) -> dict[str, Any]:
        """The order the body describes, priced; or a Refusal listing every problem."""
        body = request.json()
        lang = call.language
        if not isinstance(body, dict):
            raise Refusal(400, [Problem(MESSAGES["body"][lang], "bad_request")])
        problems: list[Problem] = []

        def problem(key: str, **values: Any) -> None:
            problems.append(Problem(_t(lang, key, **values)))

        currency = body.get("currency")
        if currency in (None, ""):
            problem("required", field="currency")
        elif currency not in CURRENCIES:
            problem("currency", value=currency, choices=", ".join(CURRENCIES))
        fulfillment = body.get("fulfillment")
        mode = fulfillment.get("mode") if isinstance(fulfillment, dict) else None
        if not isinstance(fulfillment, dict):
            problem("required", field="fulfillment")
        elif mode not in FULFILLMENT_MODES:
            problem("mode", choices=", ".join(FULFILLMENT_MODES))
        elif mode not in OFFERED_MODES:
            problem("mode_unavailable", value=mode, choices=", ".join(OFFERED_MODES))
        customer = body.get("customer")
        if not isinstance(customer, dict):
            problem("required", field="customer")
            customer = {}
        else:
            if not str(customer.get("name") or "").strip():
                problem("required", field="customer.name")
            if not str(customer.get("email") or "").strip():
                problem("required", field="customer.email")
            elif not EMAIL_RE.match(str(customer["email"]).strip()):
                problem("email")
            locale = customer.get("locale")
            if locale is not None and locale not in LANGUAGES:
                problem("locale", value=locale, choices=", ".join(LANGUAGES))
        lines, amounts = self._checked_lines(body.get("line_items"), mode, problems, lang)
        metadata = body.get("metadata") or {}
        if for_create:
            self._check_consent(body.get("consent"), problems, lang)
            if not isinstance(metadata, dict):
                problem("object", field="metadata")
                metadata = {}
        if not problems and amounts["line_items"] < ORDER_MINIMUM:
            problem("order_minimum", amount=_euro(ORDER_MINIMUM))
        if not problems and amounts["line_items"] > ORDER_MAXIMUM:
            problem("order_maximum", amount=_euro(ORDER_MAXIMUM))
        if problems:
            raise Refusal(422, problems)
        if self.service_fee:
            amounts["service_fee"] = self.service_fee
        subtotal = amounts["line_items"] + amounts["customisations"] + amounts["shipping"] + self.service_fee
        priced = {"line_items": amounts["line_items"], "customisations": amounts["customisations"],
                  "shipping": amounts["shipping"]}
        if self.service_fee:
            priced["service_fee"] = self.service_fee
        priced.update(subtotal=subtotal, tax=amounts["tax"], total=subtotal + amounts["tax"])
        return {
            "currency": currency, "mode": mode, "line_items": lines, "amounts": priced,
            "customer": {key: customer.get(key) for key in ("name", "email", "phone", "locale")},
            "metadata": dict(metadata),
        }

    def _checked_lines(self, items: Any, mode: Any, problems: list[Problem],
                       lang: str) -> tuple[list[dict[str, Any]], dict[str, int]]:
        amounts = {"line_items": 0, "customisations": 0, "shipping": 0, "tax": 0}
        lines: list[dict[str, Any]] = []
        if not isinstance(items, list) or not items:
            problems.append(Problem(MESSAGES["line_items"][lang]))
            return lines, amounts
        catalog = {product.id: product for product in CATALOG}
        message_ordered = False
        quantities = 0
        for index, item in enumerate(items):
            where = f"line_items.{index}"
            if not isinstance(item, dict):
                problems.append(Problem(_t(lang, "object", field=where)))
                continue
            product = catalog.get(item.get("product_id"))
            if product is None:
                problems.append(Problem(_t(lang, "product", value=item.get("product_id"),
                                           field=f"{where}.product_id")))
                continue
            if mode in OFFERED_MODES and mode not in product.modes:
                problems.append(Problem(_t(lang, "product_mode", value=product.id, mode=mode)))
            quantity = item.get("quantity")
            if not _whole(quantity) or quantity < 1:
                problems.append(Problem(_t(lang, "quantity", field=f"{where}.quantity")))
                quantity = 1
            quantities += quantity
            configuration = item.get("configuration") if isinstance(item.get("configuration"), dict) else {}
            amount = configuration.get("amount")
            field_name = f"{where}.configuration.amount"
            if product.price is not None:
                # Assumption: a fixed product needs no amount; one that is sent must match.
                if amount is not None and amount != product.price:
                    problems.append(Problem(_t(lang, "amount_fixed", field=field_name, price=_euro(product.price),
                                               value=product.id)))
                amount = product.price
            elif amount is None:
                problems.append(Problem(_t(lang, "required", field=field_name)))
                amount = 0
            elif not _whole(amount):
                problems.append(Problem(_t(lang, "amount_cents", field=field_name)))
                amount = 0
            elif not (product.minimum or 0) <= amount <= (product.maximum or 0):
                problems.append(Problem(_t(lang, "amount_range", field=field_name,
                                           minimum=_euro(product.minimum or 0), maximum=_euro(product.maximum or 0))))
            customisations = item.get("customisations") or []
            if not isinstance(customisations, list):
                problems.append(Problem(_t(lang, "object", field=f"{where}.customisations")))
                customisations = []
            for customisation in customisations:
                kind = customisation.get("type") if isinstance(customisation, dict) else None
                value = customisation.get("value") if isinstance(customisation, dict) else None
                if kind == "personalised_message":
                    if not isinstance(value, str) or not value.strip():
                        problems.append(Problem(MESSAGES["message_text"][lang]))
                    elif len(value) > MESSAGE_MAX_LENGTH:
                        problems.append(Problem(_t(lang, "message_length", max=MESSAGE_MAX_LENGTH)))
                    message_ordered = True
                else:
                    problems.append(Problem(_t(lang, "customisation", value=kind, product=product.id)))
            amounts["line_items"] += amount * quantity
            lines.append({
                "product_id": product.id, "type": product.type, "title": product.title,
                "configuration": {"amount": amount}, "quantity": quantity,
                "customisations": customisations, "amount": amount, "total": amount * quantity,
                "_product": product,
            })
        if quantities > MAX_LINE_ITEMS:
            problems.append(Problem(_t(lang, "line_items_max", max=MAX_LINE_ITEMS)))
        if message_ordered:  # "application": "per_order"
            amounts["customisations"] += MESSAGE_PRICE["excluding_tax"]
            amounts["tax"] += MESSAGE_PRICE["tax"]
        return lines, amounts

    def _check_consent(self, consent: Any, problems: list[Problem], lang: str) -> None:
        if not isinstance(consent, dict):
            problems.append(Problem(_t(lang, "required", field="consent")))
            return
        for name, item in self.consent.items():
            given = consent.get(name)
            if not item.get("required"):
                continue
            if not isinstance(given, dict) or given.get("accepted") is not True:
                problems.append(Problem(_t(lang, "consent", name=name)))
            elif given.get("version") != item["version"]:
                problems.append(Problem(_t(lang, "consent_version", name=name, value=given.get("version"),
                                           version=item["version"])))

    # --- Orders and gift cards ---------------------------------------------------------------

    def _get_order(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        order = self._orders.get(call.params["order_id"])
        if order is None or order.token != call.caller:
            raise Refusal(404, [Problem(_t(call.language, "order_not_found", value=call.params["order_id"]),
                                        "not_found")])
        return json_response(200, {"data": self._order_json(order)})

    def _get_gift_card(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        code = call.params["code"]
        if not GIFT_CARD_CODE.match(code):
            raise Refusal(422, [Problem(MESSAGES["code"][call.language])])
        card = self._cards.get(code)
        if card is None or card.token != call.caller:
            raise Refusal(404, [Problem(_t(call.language, "card_not_found", value=code), "not_found")])
        status = self._status(self._orders[card.order_id])
        active = status == "completed"
        expired = card.expires_at <= self.clock.now()
        card_json = {
            "id": card.id, "balance": card.balance, "currency": card.currency, "promotional": False,
            "is_redeemable": active and card.balance > 0 and not expired,
            "is_issuable": False, "is_extendable": False,
            "expires_at": _timestamp(card.expires_at), "created_at": _timestamp(card.created_at),
            "package": card.package_id,
        }
        issue = {
            "id": "tr_" + card.id[3:], "amount": card.balance, "currency": card.currency, "status": "success",
            "type": "issue", "description": f"Issue amount of '{_euro(card.balance)}'", "is_capturable": False,
            "captured_at": _timestamp(card.created_at), "created_at": _timestamp(card.created_at),
        }
        card_json["transactions"] = [issue] if active else []
        card_json["images"] = [{"type": "FRONT_SMALL",
                                "url": f"https://dashboard.gifty.nl/storage/images/preview/{card.id}/small.png"}]
        return json_response(200, {"data": card_json})

    def _status(self, order: _Order) -> str:
        if order.forced_status is not None:
            return order.forced_status
        elapsed = self.clock.monotonic() - order.started
        if self.complete_after is not None and elapsed >= self.complete_after:
            return "completed"
        if self.processing_after is not None and elapsed >= self.processing_after:
            return "processing"
        return "pending"

    def _order_json(self, order: _Order) -> dict[str, Any]:
        status = self._status(order)
        return {
            "id": order.id,
            "created_at": _timestamp(order.created_at),
            "status": status,
            "currency": order.currency,
            "fulfillment": {"mode": order.mode, "status": status},
            "customer": dict(order.customer),
            "line_items": [{key: value for key, value in line.items() if key != "_product"}
                           for line in order.line_items],
            "amounts": dict(order.amounts),
            # Seed 003 shows the code masked in a pending order's answer. Assumption: the
            # code shows in full once the order is completed and its cards activated.
            "gift_cards": [
                {"id": card.id, "code": card.code if status == "completed" else "*" * 12 + card.code[-4:],
                 "balance": card.balance, "currency": card.currency}
                for card in order.cards
            ],
            "metadata": dict(order.metadata),
        }

    def _new_code(self) -> str:
        while True:
            code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(16))
            if code not in self._cards:
                return code

    # --- Webhooks (seed 003) ------------------------------------------------------------------

    def _list_webhooks(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        """Newest first; `cursor_before` (a webhook id) continues after that webhook."""
        raw_limit = request.query.get("limit")
        limit = WEBHOOK_PAGE_DEFAULT
        if raw_limit is not None:
            if not re.fullmatch(r"\d{1,3}", raw_limit) or not 1 <= int(raw_limit) <= WEBHOOK_PAGE_MAX:
                raise Refusal(422, [Problem(_t(call.language, "limit", max=WEBHOOK_PAGE_MAX))])
            limit = int(raw_limit)
        mine = sorted((webhook for webhook in self._webhooks.values() if webhook.token == call.caller),
                      key=lambda webhook: webhook.seq, reverse=True)
        cursor = request.query.get("cursor_before")
        if cursor:
            # Assumption: a cursor that names no webhook of the token is refused (422).
            before = self._webhooks.get(cursor)
            if before is None or before.token != call.caller:
                raise Refusal(422, [Problem(_t(call.language, "cursor", value=cursor))])
            mine = [webhook for webhook in mine if webhook.seq < before.seq]
        return json_response(200, {"data": [webhook.to_json() for webhook in mine[:limit]]})

    def _create_webhook(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        body = self._webhook_body(request, call, creating=True)
        webhook = Webhook(
            id=_new_id("wh_"), token=call.caller, seq=next(self._webhook_seq), name=body["name"],
            endpoint=body["endpoint"], secret=body["secret"], events=body["events"],
            is_active=body["status"] == "active",
            # Assumption: optional on create; absent means no health notifications.
            notifications_enabled=bool(body.get("notifications_enabled", False)),
            created_at=self.clock.now(),
        )
        self._webhooks[webhook.id] = webhook
        # Assumption: 201 Created, as for an external order; the secret is never echoed.
        return json_response(201, {"data": webhook.to_json()})

    def _get_webhook(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        return json_response(200, {"data": self._webhook(call).to_json()})

    def _update_webhook(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        webhook = self._webhook(call)
        body = self._webhook_body(request, call, creating=False)
        webhook.name, webhook.endpoint, webhook.events = body["name"], body["endpoint"], body["events"]
        webhook.is_active = body["status"] == "active"
        webhook.notifications_enabled = body["notifications_enabled"]
        return json_response(200, {"data": webhook.to_json()})

    def _delete_webhook(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        webhook = self._webhook(call)
        del self._webhooks[webhook.id]
        return EmulatorResponse(204)  # Assumption: seed 003 shows no answer body.

    def _webhook(self, call: _Call) -> Webhook:
        webhook = self._webhooks.get(call.params["webhook_id"])
        if webhook is None or webhook.token != call.caller:
            raise Refusal(404, [Problem(_t(call.language, "webhook_not_found", value=call.params["webhook_id"]),
                                        "not_found")])
        return webhook

    def _webhook_body(self, request: EmulatorRequest, call: _Call, *, creating: bool) -> dict[str, Any]:
        """Create: name, endpoint, secret, events, status required; notifications_enabled
        optional. Update: the same without secret (immutable: refused if sent), and
        notifications_enabled required."""
        lang = call.language
        body = request.json()
        if not isinstance(body, dict):
            raise Refusal(400, [Problem(MESSAGES["body"][lang], "bad_request")])
        problems: list[Problem] = []
        for name in ("name", "endpoint"):
            if body.get(name) in (None, ""):
                problems.append(Problem(_t(lang, "required", field=name)))
            elif not isinstance(body[name], str):
                problems.append(Problem(_t(lang, "webhook_string", field=name)))
        endpoint = body.get("endpoint")
        if isinstance(endpoint, str) and endpoint:
            parts = urlsplit(endpoint)
            schemes = ("https",) if self.webhook_https_only else ("https", "http")
            if parts.scheme.lower() not in schemes or not parts.hostname:
                problems.append(Problem(MESSAGES["webhook_https"][lang]))
        secret = body.get("secret")
        if creating:
            if secret in (None, ""):
                problems.append(Problem(_t(lang, "required", field="secret")))
            elif not isinstance(secret, str) or not WEBHOOK_SECRET.match(secret):
                problems.append(Problem(MESSAGES["webhook_secret"][lang]))
        elif "secret" in body:
            # Assumption: seed 003 says the secret "cannot be updated"; sending one is refused.
            problems.append(Problem(MESSAGES["webhook_secret_immutable"][lang]))
        events = body.get("events")
        if events in (None, "", [], {}):
            problems.append(Problem(MESSAGES["webhook_events"][lang] if events in ([], {})
                                    else _t(lang, "required", field="events")))
        elif not isinstance(events, list) or not all(isinstance(event, str) for event in events):
            problems.append(Problem(MESSAGES["webhook_events_list"][lang]))
        else:
            for event in events:
                if event not in WEBHOOK_EVENTS:
                    problems.append(Problem(_t(lang, "webhook_event", value=event)))
        status = body.get("status")
        if status in (None, ""):
            problems.append(Problem(_t(lang, "required", field="status")))
        elif status not in WEBHOOK_STATUSES:
            problems.append(Problem(MESSAGES["webhook_status"][lang]))
        notifications = body.get("notifications_enabled")
        if notifications is None and not creating:
            problems.append(Problem(_t(lang, "required", field="notifications_enabled")))
        elif notifications is not None and not isinstance(notifications, bool):
            problems.append(Problem(_t(lang, "webhook_boolean", field="notifications_enabled")))
        if problems:
            raise Refusal(422, problems)
        return {**body, "events": list(dict.fromkeys(events))}

    # --- Test-only endpoints (not part of Gifty's API) ---------------------------------------

    def _extra_control(self, request: EmulatorRequest, action: str) -> EmulatorResponse | None:
        match = re.fullmatch(r"orders/(?P<order_id>[^/]+)/notify", action)
        if request.method == "POST" and match:
            if match["order_id"] not in self.order_ids():
                return json_response(404, {"error": f"No order {match['order_id']}"})
            results = self.deliver_order_event(match["order_id"])
            return json_response(200, {"delivered": [{"endpoint": endpoint, "status": status}
                                                     for endpoint, status in results]})
        match = re.fullmatch(r"orders/(?P<order_id>[^/]+)/(?P<status>cancel|complete)", action)
        if request.method == "POST" and match:
            status = {"cancel": "cancelled", "complete": "completed"}[match["status"]]
            try:
                self.set_order_status(match["order_id"], status)
            except KeyError:
                return json_response(404, {"error": f"No order {match['order_id']}"})
            return json_response(200, {"id": match["order_id"], "status": status})
        return None

def _t(language: str, key: str, **values: Any) -> str:
    texts = MESSAGES[key]
    return (texts.get(language) or texts["en"]).format(**values)


def _product_json(product: CatalogProduct) -> dict[str, Any]:
    if product.price is not None:
        pricing = {"model": "fixed", "application": "per_item", "currency": "EUR",
                   "price": {"excluding_tax": product.price, "including_tax": product.price, "tax": 0,
                             "tax_lines": []}}
    else:
        pricing = {"model": "variable", "application": "per_item", "currency": "EUR",
                   "range": {"minimum": product.minimum, "maximum": product.maximum,
                             "suggested_amounts": list(product.suggested)}}
    options = [{
        "type": "personalised_message", "title": "Personalised message",
        "description": "Add a personal message to the gift card",
        "constraints": {"required": False, "max_length": MESSAGE_MAX_LENGTH},
        "pricing": {"model": "fixed", "application": "per_order", "currency": "EUR", "price": dict(MESSAGE_PRICE)},
        "available_for": ["physical", "digital"],
    }]
    return {
        "id": product.id, "type": product.type, "title": product.title, "description": product.description,
        "images": product.image(), "pricing": pricing, "fulfillment_modes": list(product.modes),
        "customisation_options": options,
    }


# --- Webhook deliveries (assumptions 11 and 12 of providers/clients/gifty.py) ----------------


def signed_webhook(
    *, secret: str, event_type: str, order: dict[str, Any], event_id: str | None = None,
    header: str = SIGNATURE_HEADER,
) -> tuple[dict[str, str], bytes]:
    """An external order event ({"id", "type", "created_at", "data": <the order>}), signed as
    Gifty signs it (in `header`), for tests that post events themselves."""
    event = {"id": event_id or _new_id("evt_"), "type": event_type,
             "created_at": _timestamp(Clock().now()), "data": order}
    return signed_json(secret, event, header=header)


# --- The local demo (see emulators/registry.py) -----------------------------------

DEMO_ACCOUNT = {
    "auth_path": "",  # bearer token: no token URL
    "credentials": {"api_token": DEMO_API_TOKEN},
    "settings": {"language": "en", "max_cards_per_request": "1", "rate_limit_per_minute": "120"},
}


def make_demo_emulator() -> GiftyEmulator:
    return GiftyEmulator(tokens=[DEMO_API_TOKEN], processing_after=1.0, complete_after=3.0)

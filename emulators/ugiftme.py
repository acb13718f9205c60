"""UGiftMe business API emulator, following seed 004 and DESIGN.md's assumptions.

Paths are relative to the business API base (`https://api.ugift.me/api/v1/business`):
`GET /auth`, `GET /products`, `GET /wallet`, `POST /orders`, `POST /orders/bulk`,
`GET /orders/order-requests/{id}`, `GET /orders/{id}`, and the webhook subscriptions of
seed 004 ("Webhooks (B2B)"): `POST /webhooks`, `GET /webhooks`, `PATCH /webhooks/{id}`,
`DELETE /webhooks/{id}`. A request whose path still carries `/api/v1/business` is served
too. Test-only endpoints live under `/_emulator/`.

Where seed 004 is silent, the emulator follows the assumptions listed at the top of
providers/clients/ugiftme.py; the emulator's own choices are marked "Assumption:".
- Async mode (the default; `async_orders`): POST answers 202 {"orderRequestId", "status":
  "queued"} and each GET of the order request moves it on: the first poll creates the
  orders ("processing"), the `polls_to_finish`-th finishes it ("succeeded"/"failed").
  Sync mode answers 201 with the created order(s), status `sync_order_status`.
- Assumption: the body's shape (fields, email, currency) is checked at once (400); the
  product rules (product exists, currency, denomination or range) are checked when the
  orders are created: at once in sync mode (400, nothing created), while processing in
  async mode (that order fails, listed in `errors` with its reference; the others go on).
- Assumption: the wallet pays in one currency (EUR); DKK is converted at a fixed rate. The
  whole request is paid (reserved) when it is accepted, so 402 comes from the POST;
  orders that fail later are refunded.
- Assumption: a bulk request takes at most 100 orders.
- Idempotency (seed 004): the same key (per API key) with the same body replays the first
  answer; with another body: 400. Only successful answers are kept.
- Webhooks: subscriptions belong to the API key that created them; the secret
  ("whsec_" + 48 hex digits) is in the 201 answer's `webhook` only, never listed again.
  Assumption: the URL must be https, or http on a loopback host (localhost, 127.0.0.1,
  ::1, testserver) for local testing. Events are queued as orders move (order.queued on a
  202, order.processing when an order is created, order.succeeded when it completes,
  order.failed when it is refused while processing, wallet.updated when the wallet
  changes), signed with `signed_webhook` for each active subscription of the type, kept in
  `webhook_deliveries` and sent by `deliver_webhooks()` (requests.post, once, no retries);
  with `auto_deliver_webhooks` (the demo) each request's events are sent from a background
  thread after it. reset() keeps the subscriptions and forgets the deliveries.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import urlsplit

from emulators.base import Call, EmulatorBase, LedgerEntry, RateWindows, route
from emulators.clock import Clock
from emulators import faults as F
from emulators.faults import Fault
from emulators.loopback import EmulatorRequest, EmulatorResponse, json_response
from emulators.values import CENT, EMAIL_RE, Pricing, decimal_text, is_blank, json_number
from emulators.webhooks import post_event, signed_json
from providers.clients.base import parse_decimal

DEMO_API_KEY = "ugm_demo_7f3c9a1e5b2d4f6a8c0e1b3d5f7a9c2e"
API_PREFIX = "/api/v1/business"
ORDER_PATHS = ("/orders", "/orders/bulk")
MAX_BULK_ORDERS = 100
# Assumption: the wallet's currency and the fixed rates into it.
WALLET_CURRENCY = "EUR"
RATES_TO_EUR: dict[str, Decimal] = {"EUR": Decimal("1"), "DKK": Decimal("1") / Decimal("7.46")}
CALLER_IP = "127.0.0.1"  # the loopback caller, unless X-Forwarded-For says otherwise
# Seed 004, "Allowed events".
ORDER_EVENTS = ("order.queued", "order.processing", "order.succeeded", "order.failed")
WEBHOOK_EVENTS = ORDER_EVENTS + ("product.updated", "wallet.updated")
WEBHOOK_SIGNATURE_HEADER = "X-Webhook-Signature"
# Assumption: plain http is accepted only for these hosts (local testing).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "testserver"})
WEBHOOK_DELIVERY_TIMEOUT = 5.0
RATE_WINDOW_SECONDS = 60.0
# Faults answer in seed 004's error body: (error, message) by status.
SERVER_ERRORS = {
    500: ("Internal server error", "Something went wrong while processing the request."),
    503: ("Service unavailable", "The service is temporarily unavailable."),
}


# --- Catalog -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogProduct:
    id: str
    name: str
    currency: str
    pricing: Pricing

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "currency": self.currency, **self.pricing.json_fields()}

    def amount_problem(self, amount: Decimal) -> str | None:
        if self.pricing.accepts(amount):
            return None
        sold_in = self.pricing.describe(self.currency)
        return f"choose one of {sold_in}" if self.pricing.fixed else f"it takes {sold_in}"


UNIVERSAL_CARD = "66a1f0c2b5e4d3a2f1e0d9c1"
BOL_CARD = "66a1f0c2b5e4d3a2f1e0d9c2"
MAGASIN_CARD = "66a1f0c2b5e4d3a2f1e0d9c3"
EXPERIENCE_CARD = "66a1f0c2b5e4d3a2f1e0d9c4"

CATALOG: tuple[CatalogProduct, ...] = (
    CatalogProduct(UNIVERSAL_CARD, "UGiftMe Universal Gift Card", "EUR", Pricing.between(10, 500)),
    CatalogProduct(BOL_CARD, "Bol.com Gift Card", "EUR", Pricing.fixed_at(25, 50, 100)),
    CatalogProduct(MAGASIN_CARD, "Magasin Gift Card", "DKK", Pricing.fixed_at(200, 500)),
    CatalogProduct(EXPERIENCE_CARD, "Nordic Experience Card", "DKK", Pricing.between(100, 2500)),
)


# --- Small helpers -----------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENT):.2f}"


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _in_wallet_currency(amount: Decimal, currency: str) -> Decimal:
    return (amount * RATES_TO_EUR[currency]).quantize(CENT, ROUND_HALF_UP)


def _error(status: int, error: str, message: str = "", headers: dict[str, str] | None = None,
           **extra: Any) -> EmulatorResponse:
    """Seed 004: failures are JSON with at least an `error` string, no envelope."""
    body: dict[str, Any] = {"error": error}
    if message:
        body["message"] = message
    body.update(extra)
    return json_response(status, body, headers)


# --- State -------------------------------------------------------------------------------------


@dataclass
class ApiKey:
    """One integration API key of the business, and what the dashboard set on it."""

    key: str
    name: str = "GiftDesk"
    ip_allow_list: tuple[str, ...] = ()  # empty: any address
    revoked: bool = False


@dataclass
class _OrderInput:
    """One order of a request body, shape-checked."""

    product_id: str
    amount: Decimal
    currency: str
    recipient_name: str
    recipient_email: str
    message: str
    reference: str | None


@dataclass
class _Order:
    id: str
    api_key: str
    order_request_id: str | None
    status: str
    input: _OrderInput
    product_name: str
    charged: Decimal
    created_at: str
    polls: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "reference": self.input.reference,
            "productId": self.input.product_id,
            "productName": self.product_name,
            "amount": json_number(self.input.amount),
            "currency": self.input.currency,
            "recipient": {"name": self.input.recipient_name, "email": self.input.recipient_email},
            "message": self.input.message,
            "charged": {"amount": json_number(self.charged), "currency": WALLET_CURRENCY},
            "orderRequestId": self.order_request_id,
            "createdAt": self.created_at,
        }


@dataclass
class _OrderRequest:
    id: str
    api_key: str
    bulk: bool
    inputs: list[_OrderInput]
    reserved: list[Decimal]  # what each order took from the wallet
    created_at: str
    updated_at: str
    status: str = "queued"
    polls: int = 0
    orders: list[_Order] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        result = None
        if self.status in ("succeeded", "failed") and (self.orders or self.bulk):
            result = ({"orders": [order.to_json() for order in self.orders]} if self.bulk
                      else {"order": self.orders[0].to_json()})
        return {
            "orderRequestId": self.id,
            "status": self.status,
            "result": result,
            "errors": list(self.errors),
            "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }


@dataclass
class _Webhook:
    """One webhook subscription (seed 004)."""

    id: str
    api_key: str
    url: str
    events: list[str]
    description: str
    secret: str
    is_active: bool
    created_at: str
    updated_at: str

    def to_json(self) -> dict[str, Any]:
        """As GET /webhooks and PATCH show it: never the secret."""
        return {"_id": self.id, "url": self.url, "events": list(self.events),
                "description": self.description, "isActive": self.is_active,
                "createdAt": self.created_at, "updatedAt": self.updated_at}


@dataclass
class WebhookDelivery:
    """One event for one subscription: what was (or will be) POSTed, and how it went."""

    webhook_id: str
    url: str
    event: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # the receiver's answer; None: not sent (yet), or no answer
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"webhookId": self.webhook_id, "url": self.url, "event": self.event,
                "status": self.status, "error": self.error}


# --- The emulator ------------------------------------------------------------------------------


class UGiftMeEmulator(EmulatorBase):
    """In-memory UGiftMe business API: key auth, catalog, wallet, orders and a card ledger."""

    funds_routes = frozenset(("POST", path) for path in ORDER_PATHS)

    def __init__(
        self,
        api_keys: Iterable[str | ApiKey] = (),
        *,
        business_name: str = "GiftDesk Test BV",
        wallet_balance: Decimal | str = Decimal("10000.00"),
        auto_deliver_webhooks: bool = False,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(clock=clock)
        self.keys: dict[str, ApiKey] = {}
        for item in api_keys:
            key = item if isinstance(item, ApiKey) else ApiKey(item)
            self.keys[key.key] = key
        self.business_name = business_name
        self.business_complete = True  # seed 004: 403 on /auth when incomplete
        self.async_orders = True
        self.polls_to_finish = 2
        # Sync mode: "completed", or "pending" to finish on the Nth GET /orders/{id}.
        self.sync_order_status = "completed"
        self.initial_balance = Decimal(str(wallet_balance)).quantize(CENT)
        self.wallet_balance = self.initial_balance
        self.rate_limit_per_minute: int | None = None  # None: no limit
        # How a 429 says when to come back: "retry-after" (Retry-After, RateLimit-Reset and
        # X-RateLimit-Reset as a Unix time), "reset-epoch" (X-RateLimit-Reset as a Unix time
        # only) or "reset-seconds" (X-RateLimit-Reset as seconds only).
        self.rate_limit_headers = "retry-after"
        self._orders: dict[str, _Order] = {}
        self._order_requests: dict[str, _OrderRequest] = {}
        self._rate = RateWindows(self.clock)  # per API key
        self._webhooks: dict[str, _Webhook] = {}
        self.webhook_deliveries: list[WebhookDelivery] = []  # every event queued, in order
        self._outbox: list[WebhookDelivery] = []
        self.auto_deliver_webhooks = auto_deliver_webhooks
        self._event_ids = itertools.count(1)
        # Ids keep counting across reset() so ids handed out earlier never come back.
        self._ids = itertools.count(int("66b200000000000000000000", 16))
        # Seed 004: the same Idempotency-Key (per API key) with the same body replays the
        # first answer; with another body: 400.
        mismatch = _idempotency_mismatch
        self._routes = [
            route("GET", r"/auth", self._auth),
            route("GET", r"/products", self._products),
            route("GET", r"/wallet", self._wallet),
            route("POST", r"/orders", self._replaying(self._create_order, mismatch)),
            route("POST", r"/orders/bulk", self._replaying(self._create_bulk, mismatch)),
            route("GET", r"/orders/order-requests/(?P<id>[^/]+)", self._get_order_request),
            route("GET", r"/orders/(?P<id>[^/]+)", self._get_order),
            route("POST", r"/webhooks", self._create_webhook),
            route("GET", r"/webhooks", self._list_webhooks),
            route("PATCH", r"/webhooks/(?P<id>[^/]+)", self._update_webhook),
            route("DELETE", r"/webhooks/(?P<id>[^/]+)", self._delete_webhook),
        ]

    # --- Test helpers ------------------------------------------------------------------------

    def _forget(self) -> None:
        """Orders, order requests, rate windows and deliveries; the wallet is refilled.
        Webhook subscriptions stay."""
        self._orders.clear()
        self._order_requests.clear()
        self._rate.clear()
        self.webhook_deliveries.clear()
        self._outbox.clear()
        self.wallet_balance = self.initial_balance

    def cards_for(self, reference: str) -> int:
        return sum(1 for entry in self.ledger if entry.reference == reference)

    def subscriptions(self, api_key: str | None = None) -> list[dict[str, Any]]:
        """Every webhook subscription (of one API key), as GET /webhooks shows it."""
        with self._lock:
            return [hook.to_json() for hook in self._webhooks.values()
                    if api_key is None or hook.api_key == api_key]

    def deliver_webhooks(self) -> list[WebhookDelivery]:
        """POST every queued delivery to its URL now (once; the answer is recorded)."""
        with self._lock:
            pending, self._outbox = self._outbox, []
        for delivery in pending:
            delivery.status, delivery.error = post_event(delivery.url, delivery.headers, delivery.body,
                                                         timeout=WEBHOOK_DELIVERY_TIMEOUT)
        return pending

    # --- Entry point and UGiftMe's error answers ---------------------------------------------

    def _normalize(self, request: EmulatorRequest) -> EmulatorRequest:
        """Accept paths with or without the documented `/api/v1/business` prefix."""
        if request.path.startswith(API_PREFIX + "/"):
            return EmulatorRequest(request.method, request.path[len(API_PREFIX):], dict(request.query),
                                   request.headers, request.body)
        return request

    def _after_dispatch(self) -> None:
        with self._lock:
            send_now = self.auto_deliver_webhooks and bool(self._outbox)
        if send_now:  # outside the lock: a receiver may call this emulator back
            threading.Thread(target=self.deliver_webhooks, daemon=True).start()

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        supplied = request.headers.get("X-API-Key", "").strip()
        if not supplied:
            return _error(401, "Missing API key")
        key = self.keys.get(supplied)
        if key is None:
            return _error(401, "Invalid API key", reason="No API key matches this value.")
        if key.revoked:
            return _error(401, "Invalid API key", reason="This API key has been revoked.")
        caller = request.headers.get("X-Forwarded-For", CALLER_IP).split(",")[0].strip()
        if key.ip_allow_list and caller not in key.ip_allow_list:
            return _error(403, f"IP address {caller} is not allowed for this API key",
                          "Add the address to the key's IP whitelist in the dashboard.")
        if self.rate_limit_per_minute:
            wait = self._rate.wait(supplied, limit=self.rate_limit_per_minute, window=RATE_WINDOW_SECONDS)
            if wait is not None:
                return self._too_many_requests(request, max(1, int(wait) + 1))
        return self._route(request, Call(caller=supplied, credit_fault=credit_fault))

    def _too_many_requests(self, request: EmulatorRequest, retry_after: int) -> EmulatorResponse:
        reset_at = str(int(self.clock.now().timestamp()) + retry_after)
        if self.rate_limit_headers == "reset-epoch":
            headers = {"X-RateLimit-Reset": reset_at}
        elif self.rate_limit_headers == "reset-seconds":
            headers = {"X-RateLimit-Reset": str(retry_after)}
        else:
            headers = {"Retry-After": str(retry_after), "RateLimit-Reset": str(retry_after),
                       "X-RateLimit-Reset": reset_at}
        limit = str(self.rate_limit_per_minute or 60)
        headers.update({"X-RateLimit-Limit": limit, "X-RateLimit-Remaining": "0",
                        "RateLimit-Limit": limit, "RateLimit-Remaining": "0"})
        return _error(429, "Too many requests, please try again later.", headers=headers)

    def _server_error(self, request: EmulatorRequest, status: int) -> EmulatorResponse:
        return _error(status, *SERVER_ERRORS[status])

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        # Seed 004's error table, as `_dispatch` answers a revoked key and an address off the
        # key's IP allow list.
        if fault.kind == F.UNAUTHORIZED:
            return _error(401, "Invalid API key", reason="This API key has been revoked.")
        if fault.kind == F.FORBIDDEN:
            caller = request.headers.get("X-Forwarded-For", CALLER_IP).split(",")[0].strip()
            return _error(403, f"IP address {caller} is not allowed for this API key",
                          "Add the address to the key's IP whitelist in the dashboard.")
        return super()._fault_response(request, fault)

    def _method_not_allowed(self, request: EmulatorRequest, allowed: list[str]) -> EmulatorResponse:
        return _error(405, "Method not allowed", f"{request.method} is not allowed on {request.path}; "
                                                  f"use {', '.join(allowed)}.", {"Allow": ", ".join(allowed)})

    def _not_found(self, request: EmulatorRequest) -> EmulatorResponse:
        return _error(404, "Not found", f"No business API endpoint {request.method} {request.path}.")

    # --- Read endpoints ----------------------------------------------------------------------

    def _auth(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        if not self.business_complete:
            return _error(403, "Business profile incomplete",
                          "Complete the business profile in the dashboard before using the API.")
        key = self.keys[call.caller]
        return json_response(200, {
            "business": {"id": "66a0c0ffee0000000000b001", "name": self.business_name},
            "integration": {"name": key.name, "keyPrefix": key.key[:8],
                            "ipWhitelist": list(key.ip_allow_list)},
        })

    def _products(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        return json_response(200, {"products": [product.to_json() for product in CATALOG]})

    def _wallet(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        return json_response(200, {"balance": json_number(self.wallet_balance), "currency": WALLET_CURRENCY})

    def _get_order_request(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        order_request = self._order_requests.get(call.params["id"])
        if order_request is None or order_request.api_key != call.caller:
            return _error(404, "Order request not found")
        self._advance(order_request)
        return json_response(200, order_request.to_json())

    def _get_order(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        order = self._orders.get(call.params["id"])
        if order is None or order.api_key != call.caller:
            return _error(404, "Order not found")
        if order.status == "pending" and order.order_request_id is None:
            order.polls += 1
            if order.polls >= self.polls_to_finish:
                order.status = "completed"
                self._order_event("order.succeeded", order)
        return json_response(200, {"order": order.to_json()})

    # --- Orders ------------------------------------------------------------------------------

    def _create_order(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "Invalid request body", "Send one order as a JSON object.")
        parsed, problem = self._parse_order(body, "")
        if problem:
            return _error(400, "Validation failed", problem)
        return self._accept([parsed], bulk=False, call=call)

    def _create_bulk(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        body = request.json()
        orders = body.get("orders") if isinstance(body, dict) else None
        if not isinstance(orders, list) or not orders:
            return _error(400, "Validation failed", "orders must be a non-empty array of orders.")
        if len(orders) > MAX_BULK_ORDERS:
            return _error(400, "Validation failed", f"A bulk request takes at most {MAX_BULK_ORDERS} "
                                                    f"orders; this one has {len(orders)}.")
        inputs = []
        for index, item in enumerate(orders):
            parsed, problem = self._parse_order(item, f"orders[{index}].")
            if problem:
                return _error(400, "Validation failed", problem)
            inputs.append(parsed)
        return self._accept(inputs, bulk=True, call=call)

    @staticmethod
    def _parse_order(item: Any, prefix: str) -> tuple[_OrderInput | None, str]:
        if not isinstance(item, dict):
            return None, f"{prefix or 'order'} must be an object."
        recipient = item.get("recipient")
        recipient = recipient if isinstance(recipient, dict) else {}
        amount = parse_decimal(item.get("amount"))
        currency = item.get("currency")
        problems = []
        if is_blank(item.get("productId")):
            problems.append(f"{prefix}productId is required.")
        if amount is None or amount <= 0 or amount != amount.quantize(CENT):
            problems.append(f"{prefix}amount must be a positive number with at most 2 decimals "
                            f"(got {item.get('amount')!r}).")
        if not isinstance(currency, str) or currency.upper() not in RATES_TO_EUR:
            problems.append(f"{prefix}currency {currency!r} is not supported; use one of "
                            f"{', '.join(RATES_TO_EUR)}.")
        if is_blank(recipient.get("name")):
            problems.append(f"{prefix}recipient.name is required.")
        email = recipient.get("email")
        if not isinstance(email, str) or not EMAIL_RE.match(email.strip()):
            problems.append(f"{prefix}recipient.email {email!r} is not a valid email address.")
        message = item.get("message")
        if message is not None and not isinstance(message, str):
            problems.append(f"{prefix}message must be a string.")
        reference = item.get("reference")
        if reference is not None and not isinstance(reference, str):
            problems.append(f"{prefix}reference must be a string.")
        if problems:
            return None, " ".join(problems)
        assert amount is not None and isinstance(currency, str) and isinstance(email, str)
        return _OrderInput(str(item["productId"]), amount, currency.upper(), str(recipient["name"]).strip(),
                           email.strip(), message or "", reference), ""

    @staticmethod
    def _product_problem(order: _OrderInput) -> tuple[CatalogProduct | None, str]:
        product = next((p for p in CATALOG if p.id == order.product_id), None)
        if product is None:
            return None, f"Product {order.product_id} does not exist or is not available to this business."
        if order.currency != product.currency:
            return product, f"{product.name} is sold in {product.currency}, not {order.currency}."
        problem = product.amount_problem(order.amount)
        if problem:
            amount = f"{decimal_text(order.amount)} {order.currency}"
            return product, f"{amount} is not available for {product.name}: {problem}."
        return product, ""

    def _accept(self, inputs: list[_OrderInput], *, bulk: bool, call: Call) -> EmulatorResponse:
        if not self.async_orders:
            for index, order in enumerate(inputs):
                _, problem = self._product_problem(order)
                if problem:
                    where = f"orders[{index}] (reference {order.reference}): " if bulk else ""
                    return _error(400, "Invalid order", where + problem)
        costs = [_in_wallet_currency(order.amount, order.currency) for order in inputs]
        required = sum(costs, Decimal("0"))
        if call.credit_fault is not None or required > self.wallet_balance:
            available = self.wallet_balance
            if available >= required:  # a fault: show a balance that does not cover it
                available = max(Decimal("0"), required - Decimal("1")).quantize(CENT)
            return _error(402, "Insufficient funds", required=json_number(required.quantize(CENT)),
                          available=json_number(available.quantize(CENT)), currency=WALLET_CURRENCY)
        self.wallet_balance -= required
        self._wallet_event(call.caller)
        async_header = {"X-Business-Orders-Async": "true" if self.async_orders else "false"}
        if self.async_orders:
            stamp = self._stamp()
            order_request = _OrderRequest(self._new_id(), call.caller, bulk, inputs, costs, stamp, stamp)
            self._order_requests[order_request.id] = order_request
            for order in inputs:
                self._emit(call.caller, "order.queued",
                           {"order": _unborn_order(order, order_request.id, "queued")})
            return json_response(202, {"orderRequestId": order_request.id, "status": "queued"}, async_header)
        orders = [self._create(order, cost, call.caller, None, self.sync_order_status)
                  for order, cost in zip(inputs, costs)]
        for created in orders:
            self._order_event("order.succeeded" if created.status == "completed" else "order.processing",
                              created)
        body = {"orders": [o.to_json() for o in orders]} if bulk else {"order": orders[0].to_json()}
        return json_response(201, body, async_header)

    def _create(self, order: _OrderInput, cost: Decimal, api_key: str, order_request_id: str | None,
                status: str) -> _Order:
        product = next(p for p in CATALOG if p.id == order.product_id)
        now = self.clock.now()
        created = _Order(self._new_id(), api_key, order_request_id, status, order, product.name, cost,
                         _timestamp(now))
        self._orders[created.id] = created
        # One UGiftMe order is one card: its id is both.
        self.ledger.append(LedgerEntry(
            card_id=created.id, order_id=created.id, reference=order.reference, product_id=order.product_id,
            amount=order.amount, currency=order.currency, recipient_name=order.recipient_name,
            recipient_email=order.recipient_email, created_at=now, extra={"order_request_id": order_request_id},
        ))
        return created

    def _advance(self, order_request: _OrderRequest) -> None:
        """One poll moves the request on: queued -> processing (orders created) -> finished."""
        if order_request.status in ("succeeded", "failed"):
            return
        order_request.polls += 1
        if order_request.status == "queued":
            order_request.status = "processing"
            refunded = False
            for order, cost in zip(order_request.inputs, order_request.reserved):
                _, problem = self._product_problem(order)
                if problem:
                    self.wallet_balance += cost  # refunded: nothing was bought
                    refunded = True
                    order_request.errors.append({"reference": order.reference, "error": "Invalid order",
                                                 "message": problem})
                    self._emit(order_request.api_key, "order.failed", {"order": {
                        **_unborn_order(order, order_request.id, "failed"),
                        "error": "Invalid order", "failureReason": problem}})
                else:
                    created = self._create(order, cost, order_request.api_key, order_request.id, "processing")
                    order_request.orders.append(created)
                    self._order_event("order.processing", created)
            if refunded:
                self._wallet_event(order_request.api_key)
        if order_request.polls >= self.polls_to_finish:
            for order in order_request.orders:
                order.status = "completed"
                self._order_event("order.succeeded", order)
            # A bulk request fails only when it could create nothing; a single one with its order.
            order_request.status = "succeeded" if order_request.orders else "failed"
        order_request.updated_at = self._stamp()

    def _new_id(self) -> str:
        return f"{next(self._ids):024x}"

    # --- Webhook subscriptions (seed 004, "Webhooks (B2B)") -----------------------------------

    def _create_webhook(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "Invalid request body", "Send {\"url\", \"events\"} as a JSON object.")
        problem = _webhook_url_problem(body.get("url"))
        if problem:
            return _error(400, "Invalid webhook URL", problem)
        events, invalid = _webhook_events(body.get("events"))
        if invalid:
            return invalid
        description = body.get("description", "")
        if not isinstance(description, str):
            return _error(400, "Validation failed", "description must be a string.")
        is_active = body.get("isActive", True)
        if not isinstance(is_active, bool):
            return _error(400, "Validation failed", "isActive must be true or false.")
        stamp = self._stamp()
        hook = _Webhook(self._new_id(), call.caller, body["url"].strip(), events, description,
                        secret="whsec_" + secrets.token_hex(24), is_active=is_active, created_at=stamp,
                        updated_at=stamp)
        self._webhooks[hook.id] = hook
        # The only time the secret is shown.
        return json_response(201, {"message": "Webhook created successfully",
                                   "webhook": {**hook.to_json(), "secret": hook.secret}})

    def _list_webhooks(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        return json_response(200, {"webhooks": [hook.to_json() for hook in self._webhooks.values()
                                                if hook.api_key == call.caller]})

    def _webhook(self, call: Call) -> _Webhook | None:
        hook = self._webhooks.get(call.params["id"])
        return hook if hook is not None and hook.api_key == call.caller else None

    def _update_webhook(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        hook = self._webhook(call)
        if hook is None:
            return _error(404, "Webhook not found")
        body = request.json()
        if not isinstance(body, dict):
            return _error(400, "Invalid request body", "Send the fields to change as a JSON object.")
        if not any(name in body for name in ("url", "events", "description", "isActive")):
            return _error(400, "No fields to update",
                          "Send at least one of url, events, description and isActive.")
        changes: dict[str, Any] = {}
        if "url" in body:
            problem = _webhook_url_problem(body["url"])
            if problem:
                return _error(400, "Invalid webhook URL", problem)
            changes["url"] = body["url"].strip()
        if "events" in body:
            events, invalid = _webhook_events(body["events"])
            if invalid:
                return invalid
            changes["events"] = events
        if "description" in body:
            if not isinstance(body["description"], str):
                return _error(400, "Validation failed", "description must be a string.")
            changes["description"] = body["description"]
        if "isActive" in body:
            if not isinstance(body["isActive"], bool):
                return _error(400, "Validation failed", "isActive must be true or false.")
            changes["is_active"] = body["isActive"]
        for name, value in changes.items():
            setattr(hook, name, value)
        hook.updated_at = self._stamp()
        return json_response(200, {"message": "Webhook updated successfully", "webhook": hook.to_json()})

    def _delete_webhook(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        hook = self._webhook(call)
        if hook is None:
            return _error(404, "Webhook not found")
        del self._webhooks[hook.id]
        return json_response(200, {"message": "Webhook deleted successfully"})

    # --- Webhook events (called under the lock) -----------------------------------------------

    def _emit(self, api_key: str, event_type: str, data: dict[str, Any]) -> None:
        """Queue one event for every active subscription of the API key that wants it."""
        hooks = [hook for hook in self._webhooks.values()
                 if hook.api_key == api_key and hook.is_active and event_type in hook.events]
        if not hooks:
            return
        event_id = f"evt_{next(self._event_ids):012d}{secrets.token_hex(6)}"
        created_at = self._stamp()
        for hook in hooks:
            headers, body = signed_webhook(secret=hook.secret, event_type=event_type, data=data,
                                           event_id=event_id, created_at=created_at)
            delivery = WebhookDelivery(hook.id, hook.url, json.loads(body), headers, body)
            self.webhook_deliveries.append(delivery)
            self._outbox.append(delivery)

    def _order_event(self, event_type: str, order: _Order) -> None:
        self._emit(order.api_key, event_type, {"order": order.to_json()})

    def _wallet_event(self, api_key: str) -> None:
        self._emit(api_key, "wallet.updated",
                   {"wallet": {"balance": json_number(self.wallet_balance), "currency": WALLET_CURRENCY}})

    def _stamp(self) -> str:
        return _timestamp(self.clock.now())

    # --- Test-only endpoints (not part of UGiftMe's API) -------------------------------------

    def _extra_control(self, request: EmulatorRequest, action: str) -> EmulatorResponse | None:
        if request.method == "GET" and action == "webhooks":
            with self._lock:
                return json_response(200, {
                    "webhooks": [{**hook.to_json(), "apiKeyPrefix": hook.api_key[:8]}
                                 for hook in self._webhooks.values()],
                    "deliveries": [delivery.to_json() for delivery in self.webhook_deliveries],
                })
        if request.method == "POST" and action == "webhooks/deliver":
            return json_response(200, {"delivered": [d.to_json() for d in self.deliver_webhooks()]})
        if request.method == "POST" and action == "settings":
            return self._admin_settings(request)
        return None

    def _admin_settings(self, request: EmulatorRequest) -> EmulatorResponse:
        """{"async": bool, "wallet_balance": "12.00", "polls_to_finish": n}: switch modes."""
        body = request.json()
        if not isinstance(body, dict):
            return json_response(400, {"error": "Send a JSON object."})
        with self._lock:
            if "async" in body:
                self.async_orders = bool(body["async"])
            if "wallet_balance" in body:
                balance = parse_decimal(body["wallet_balance"])
                if balance is None:
                    return json_response(400, {"error": "wallet_balance must be a number."})
                self.wallet_balance = balance.quantize(CENT)
            if "polls_to_finish" in body:
                self.polls_to_finish = max(1, int(body["polls_to_finish"]))
            return json_response(200, {"async": self.async_orders, "wallet_balance": _money(self.wallet_balance),
                                       "polls_to_finish": self.polls_to_finish})


# --- Webhooks -----------------------------------------------------------------------------------


def _webhook_url_problem(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        return "url is required."
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
    except ValueError:
        return f"url {url!r} is not a valid URL."
    if not host:
        return f"url {url!r} is not a valid URL."
    if parts.scheme == "https" or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return ""
    return f"url must be an HTTPS URL (got {url!r})."


def _webhook_events(events: Any) -> tuple[list[str], EmulatorResponse | None]:
    """The requested event types, or a 400 naming the valid ones (seed 004: validEvents)."""
    valid = list(WEBHOOK_EVENTS)
    if not isinstance(events, list) or not events:
        return [], _error(400, "Invalid events", "events must be a non-empty array of event types.",
                          validEvents=valid)
    unknown = [event for event in events if not isinstance(event, str) or event not in WEBHOOK_EVENTS]
    if unknown:
        return [], _error(400, "Invalid events", f"Unknown event types: {', '.join(map(str, unknown))}.",
                          validEvents=valid)
    return list(dict.fromkeys(events)), None


def _unborn_order(order: _OrderInput, order_request_id: str, status: str) -> dict[str, Any]:
    """An order of an order request that was not created (yet): no id."""
    return {"id": None, "status": status, "reference": order.reference, "productId": order.product_id,
            "amount": json_number(order.amount), "currency": order.currency, "orderRequestId": order_request_id}


def _idempotency_mismatch(request: EmulatorRequest, key: str) -> EmulatorResponse:
    return _error(400, "Idempotency key reused with a different payload",
                  f'Idempotency-Key "{key}" was already used for another request. Send a new key for a new request.')


def signed_webhook(
    *, secret: str, event_type: str, data: dict[str, Any], event_id: str, created_at: str | None = None,
) -> tuple[dict[str, str], bytes]:
    """The headers and body UGiftMe would POST to a subscription URL: one event
    {"id", "type", "createdAt", "data"}, signed in `X-Webhook-Signature` (DESIGN.md: the hex
    HMAC-SHA256 of the raw body, keyed with the subscription secret)."""
    event = {"id": event_id, "type": event_type, "createdAt": created_at or _timestamp(Clock().now()), "data": data}
    return signed_json(secret, event, header=WEBHOOK_SIGNATURE_HEADER)


# --- The local demo (see emulators/registry.py) -----------------------------------

DEMO_ACCOUNT = {
    "auth_path": "",
    "credentials": {"api_key": DEMO_API_KEY},
    "settings": {"max_cards_per_request": "20", "rate_limit_per_minute": "60"},
}


def make_demo_emulator() -> UGiftMeEmulator:
    return UGiftMeEmulator(api_keys=[DEMO_API_KEY], business_name="GiftDesk Demo BV",
                           wallet_balance=Decimal("100000.00"), auto_deliver_webhooks=True)

"""Giftronaut emulator, following seed 002 (the quickstart).

One base URL serves the token endpoint (`POST /oauth2/token`) and the API
(`GET /api/v1/catalog/branded-cards`, `POST /api/v1/orders/branded-card`,
`GET /api/v1/orders/{orderId}`). Test-only endpoints live under `/_emulator/` and are not
part of Giftronaut's API.

Where the seed is silent, the emulator follows the assumptions listed at the top of
`providers/clients/giftronaut.py`; those that concern the emulator alone are marked
"Assumption:" next to the code.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from emulators import oauth
from emulators.base import Call, EmulatorBase, Handler, LedgerEntry, request_fingerprint, route
from emulators.clock import Clock
from emulators import faults as F
from emulators.faults import Fault
from emulators.loopback import EmulatorRequest, EmulatorResponse, json_response
from emulators.values import CENT, EMAIL_RE, Pricing, decimal_text, is_blank, json_number
from providers.clients.base import parse_decimal

TOKEN_PATH = "/oauth2/token"
CATALOG_PATH = "/api/v1/catalog/branded-cards"
ORDER_PATH = "/api/v1/orders/branded-card"
ALL_SCOPES = frozenset({"orders.read", "orders.write", "catalog.read"})  # seed 002, step 2
# Seed 002: "Sandbox tokens are valid for 24 hours; production tokens expire after 1 hour."
TOKEN_LIFETIME = {"sandbox": 86_400, "production": 3_600}
STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETE")  # seed 002, step 5
# Assumption: a recipient whose email contains the marker bounces, with this reason.
BOUNCE_MARKER = "bounce"
BOUNCE_REASON = "Mailbox does not exist"


# --- Catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    product_id: str
    brand_name: str
    currency: str
    pricing: Pricing  # Assumption: `stepAmount`, only where a ranged card has one

    def to_json(self) -> dict[str, Any]:
        return {
            "productId": self.product_id,
            "brandName": self.brand_name,
            "currencyCode": self.currency,
            "faceValueType": "FIXED" if self.pricing.fixed else "RANGE",
            **self.pricing.json_fields(),
        }

    def amount_problem(self, amount: Decimal) -> str | None:
        if self.pricing.accepts(amount):
            return None
        sold_in = self.pricing.describe(self.currency)
        if self.pricing.fixed:
            return f"{self.product_id} is sold in denominations of {sold_in}"
        takes = f"{self.product_id} takes {sold_in}"
        step = self.pricing.step
        return f"{takes} in steps of {decimal_text(step)}" if step and self.pricing.in_range(amount) else takes


CATALOG: tuple[Card, ...] = (
    Card("GC-AMAZON-USD", "Amazon", "USD", Pricing.fixed_at(10, 25, 50, 100)),  # seed 002
    Card("GC-STARBUCKS-USD", "Starbucks", "USD", Pricing.between(5, 500)),  # seed 002
    Card("GC-ZALANDO-EUR", "Zalando", "EUR", Pricing.fixed_at(20, 50, 100)),
    Card("GC-MAGASIN-DKK", "Magasin", "DKK", Pricing.between(100, 5000, step=50)),
)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> EmulatorResponse:
    """DESIGN, "Where the documents are silent": Giftronaut errors are {"error", "message"}."""
    return json_response(status, {"error": code, "message": message, **extra}, headers)


# Faults answer in that format: (error, message) by status.
SERVER_ERRORS = {
    500: ("internal_error", "An unexpected error occurred."),
    503: ("service_unavailable", "The service is temporarily unavailable."),
}


def _oauth_error(status: int, code: str, description: str) -> EmulatorResponse:
    """RFC 6749, section 5.2 (assumption: seed 002 shows only the successful answer)."""
    return json_response(status, {"error": code, "error_description": description}, oauth.NO_STORE)


# --- State -------------------------------------------------------------------------------------


@dataclass
class _Recipient:
    first_name: str
    last_name: str
    email: str
    amount: Decimal
    status: str = "PENDING"
    bounce_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "email": self.email,
            "amount": json_number(self.amount),
            "status": self.status,
            "bounceReason": self.bounce_reason,
        }


@dataclass
class _Order:
    order_id: str
    client_id: str
    idempotency_key: str
    card: Card
    recipients: list[_Recipient]
    email_setting: dict[str, str]
    send_timing: dict[str, str]
    scheduled_at: datetime | None
    created_at: datetime
    status: str = "PENDING"

    @property
    def total(self) -> Decimal:
        return sum((r.amount for r in self.recipients), Decimal("0")).quantize(CENT)

    def to_json(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "status": self.status,
            "cardType": "BRANDED_CARD",
            "cardName": self.card.brand_name,
            "productId": self.card.product_id,
            "totalCost": {"amount": float(self.total), "currency": self.card.currency},
            "recipientCount": len(self.recipients),
            "sentCount": sum(r.status == "SENT" for r in self.recipients),
            "bouncedCount": sum(r.status == "BOUNCED" for r in self.recipients),
            "createdAt": self.created_at.strftime("%Y-%m-%dT%H:%M:%S"),  # as seed 002 writes it
            "sendTiming": dict(self.send_timing),
            "recipients": [r.to_json() for r in self.recipients],
        }


@dataclass(frozen=True, kw_only=True)
class _Call(Call):
    scopes: frozenset[str]  # what the caller's token may do


# --- The emulator ------------------------------------------------------------------------------


class GiftronautEmulator(EmulatorBase):
    """In-memory Giftronaut: OAuth token endpoint, catalog, branded-card orders, a card ledger.

    - `token_lifetime`: seconds a token lives, reported in expires_in (default by environment).
    - `steps_per_poll`: how far one `GET /api/v1/orders/{id}` moves an order along
      PENDING -> IN_PROGRESS -> COMPLETE (0: only `advance()` moves it).
    - `balances`: currency -> prepaid balance, charged by every order; None: unlimited
      (seed 002: "Sandbox orders do not charge your balance").
    - `app_scopes`: client_id -> the scopes its app was given (default: all three).
    """

    funds_routes = frozenset({("POST", ORDER_PATH)})

    def __init__(
        self,
        environment: str = "sandbox",
        clients: dict[str, str] | None = None,
        *,
        token_lifetime: int | None = None,
        balances: dict[str, Decimal] | None = None,
        app_scopes: dict[str, set[str]] | None = None,
        clock: Clock | None = None,
    ) -> None:
        if environment not in TOKEN_LIFETIME:
            raise ValueError("environment must be 'sandbox' or 'production'")
        super().__init__(clock=clock, unscoped_excludes=(TOKEN_PATH,))
        self.environment = environment
        self.clients: dict[str, str] = dict(clients or {})
        self.token_lifetime = TOKEN_LIFETIME[environment] if token_lifetime is None else token_lifetime
        self.steps_per_poll = 1
        self.balances = None if balances is None else {k.upper(): Decimal(v) for k, v in balances.items()}
        self.app_scopes = {client: frozenset(scopes) for client, scopes in (app_scopes or {}).items()}
        self._tokens = oauth.TokenStore(self.clock)
        self._orders: dict[str, _Order] = {}
        # Kept in self._idempotency: (client_id, key) -> (request fingerprint, order id).
        # Ids keep counting across reset() so ids handed out earlier never come back.
        self._order_numbers = itertools.count(0xA8F2)
        self._card_numbers = itertools.count(1)
        self._routes = [
            route("GET", re.escape(CATALOG_PATH), _needs("catalog.read", self._catalog)),
            route("POST", re.escape(ORDER_PATH), _needs("orders.write", self._create_order)),
            route("GET", r"/api/v1/orders/(?P<order_id>[^/]+)", _needs("orders.read", self._get_order)),
        ]

    # --- Test helpers ------------------------------------------------------------------------

    def expire_all_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def advance(self, order_id: str, steps: int = 1) -> str:
        """Move an order `steps` along its lifecycle (regardless of polling); its new status."""
        with self._lock:
            order = self._orders[order_id]
            self._advance(order, steps)
            return order.status

    def order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return self._orders[order_id].to_json()

    def cards_for(self, email: str) -> list[LedgerEntry]:
        with self._lock:
            return [entry for entry in self.ledger if (entry.recipient_email or "").lower() == email.lower()]

    def _forget(self) -> None:
        self._orders.clear()  # tokens stay valid: a running client need not log in again

    # --- Entry point and Giftronaut's error answers ------------------------------------------

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        if request.path == TOKEN_PATH:
            return self._token_endpoint(request)
        token = self._tokens.bearer(request)
        if token is None:
            return error_response(401, "invalid_token", "The access token is missing, invalid or expired.",
                                  {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return self._route(request, _Call(caller=token.client_id, scopes=token.scopes, credit_fault=credit_fault))

    def _too_many_requests(self, request: EmulatorRequest, retry_after: int) -> EmulatorResponse:
        return error_response(429, "rate_limit_exceeded", "Too many requests. Retry after the given delay.",
                              {"Retry-After": str(retry_after)})

    def _server_error(self, request: EmulatorRequest, status: int) -> EmulatorResponse:
        return error_response(status, *SERVER_ERRORS[status])

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        # In the {"error", "message"} shape (DESIGN); the token endpoint as RFC 6749, 5.2 has it.
        if fault.kind == F.UNAUTHORIZED:
            if request.path == TOKEN_PATH:
                return _oauth_error(401, "invalid_client", "Client authentication failed.")
            return error_response(401, "invalid_token", "The access token is missing, invalid or expired.",
                                  {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if fault.kind == F.FORBIDDEN:
            if request.path == TOKEN_PATH:
                return _oauth_error(403, "unauthorized_client", "The app is suspended.")
            return error_response(403, "access_denied",
                                  "The app may not call the API from this IP address, or it is suspended.")
        return super()._fault_response(request, fault)

    def _method_not_allowed(self, request: EmulatorRequest, allowed: list[str]) -> EmulatorResponse:
        return error_response(405, "method_not_allowed",
                              f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
                              {"Allow": ", ".join(allowed)})

    def _not_found(self, request: EmulatorRequest) -> EmulatorResponse:
        return error_response(404, "not_found", f"No such endpoint: {request.method} {request.path}")

    # --- Token endpoint (seed 002, step 2) ---------------------------------------------------

    def _token_endpoint(self, request: EmulatorRequest) -> EmulatorResponse:
        form = oauth.token_request_form(request)
        if form is None:
            return _oauth_error(400, "invalid_request",
                                "POST the token request as application/x-www-form-urlencoded.")
        client_id = form.get("client_id", "")
        if not oauth.client_secret_matches(self.clients, client_id, form.get("client_secret", "")):
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
        granted = self.app_scopes.get(client_id, ALL_SCOPES)
        requested = frozenset(form.get("scope", "").split()) or granted
        missing = requested - granted
        if missing:
            return _oauth_error(400, "invalid_scope",
                                f"The app is not allowed the scope(s) {' '.join(sorted(missing))}.")
        token = self._tokens.issue(client_id, self.token_lifetime, requested)
        return json_response(
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime,
             "scope": " ".join(sorted(requested))},
            oauth.NO_STORE,
        )

    # --- Catalog (seed 002, step 3) ----------------------------------------------------------

    def _catalog(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        return json_response(200, {"data": [card.to_json() for card in CATALOG]})

    # --- Orders (seed 002, steps 4 and 5) ----------------------------------------------------

    def _create_order(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        key = request.headers.get("X-Idempotency-Key", "").strip()
        fingerprint = request_fingerprint(request)
        if key:
            stored = self._idempotency.get((call.caller, key))
            if stored is not None:
                if stored[0] != fingerprint:
                    return error_response(
                        409, "idempotency_conflict",
                        f"The idempotency key {key!r} was already used with a different request body "
                        f"(order {stored[1]}). Send the same body, or use a new key for a new order.")
                # Seed 002: "the second request returns the original order".
                # Assumption: as it is now, with 200 instead of 201.
                return json_response(200, self._orders[stored[1]].to_json())
        parsed = self._parse_order(request)
        if isinstance(parsed, EmulatorResponse):
            return parsed  # Assumption: a refused request does not use its key up.
        card, recipients, email_setting, timing, scheduled_at = parsed
        total = sum((r.amount for r in recipients), Decimal("0")).quantize(CENT)
        if call.credit_fault is not None:
            return self._insufficient_balance(card.currency, total, available=Decimal("0.00"))
        if self.balances is not None:
            available = self.balances.get(card.currency, Decimal("0")).quantize(CENT)
            if total > available:
                return self._insufficient_balance(card.currency, total, available)
            self.balances[card.currency] = available - total
        now = self.clock.now()
        order = _Order(
            order_id=f"OT-{now:%Y%m%d}-{next(self._order_numbers) & 0xFFFF:04X}",
            client_id=call.caller, idempotency_key=key, card=card, recipients=recipients,
            email_setting=email_setting, send_timing=timing, scheduled_at=scheduled_at, created_at=now,
        )
        while order.order_id in self._orders:  # after 65536 orders in a day
            order.order_id = f"OT-{now:%Y%m%d}-{next(self._order_numbers) & 0xFFFF:04X}"
        self._orders[order.order_id] = order
        for position, recipient in enumerate(recipients):
            # Seed 002: an order carries no reference of ours per card, so a card is known
            # by its order, its position in the order, its recipient and its amount.
            self.ledger.append(LedgerEntry(
                card_id=f"GT-{next(self._card_numbers):08d}", order_id=order.order_id, reference=None,
                product_id=card.product_id, amount=recipient.amount, currency=card.currency,
                recipient_name=f"{recipient.first_name} {recipient.last_name}".strip(),
                recipient_email=recipient.email, created_at=now,
                extra={"idempotency_key": key, "position": position},
            ))
        if key:
            self._idempotency[(call.caller, key)] = (fingerprint, order.order_id)
        return json_response(201, order.to_json())  # Assumption: 201 Created for a new order

    def _insufficient_balance(self, currency: str, required: Decimal, available: Decimal) -> EmulatorResponse:
        return error_response(
            402, "insufficient_balance",
            f"Your balance does not cover this order (required {required} {currency}, "
            f"available {available} {currency}).",
            required={"amount": float(required), "currency": currency},
            available={"amount": float(available), "currency": currency},
        )

    def _parse_order(self, request: EmulatorRequest):
        """(card, recipients, emailSetting, sendTiming, scheduledAt) or the error answer.

        Assumption: a malformed body (not JSON, missing or mistyped fields) answers 400
        invalid_request; a well-formed order that breaks a rule (unknown product, amount not
        sold, bad email) answers 422; the first problem found is reported.
        """
        body = request.json()
        if not isinstance(body, dict):
            return error_response(400, "invalid_request", "The request body must be a JSON object.")
        product_id = body.get("productId")
        if is_blank(product_id) or not isinstance(product_id, str):
            return error_response(400, "invalid_request", "productId is required.")
        recipients = body.get("recipients")
        if not isinstance(recipients, list) or not recipients:
            return error_response(400, "invalid_request", "recipients must be a non-empty list.")
        email_setting = body.get("emailSetting")
        if not isinstance(email_setting, dict):
            return error_response(400, "invalid_request", "emailSetting is required.")
        for name in ("senderName", "subject"):
            if is_blank(email_setting.get(name)) or not isinstance(email_setting.get(name), str):
                return error_response(400, "invalid_request", f"emailSetting.{name} is required.")
        message = email_setting.get("message")
        if message is not None and not isinstance(message, str):
            return error_response(400, "invalid_request", "emailSetting.message must be a string.")
        timing = body.get("sendTiming")
        scheduled_at = None
        if not isinstance(timing, dict) or timing.get("type") not in ("IMMEDIATE", "SCHEDULED"):
            return error_response(400, "invalid_request",
                                  "sendTiming.type must be IMMEDIATE or SCHEDULED.")
        if timing["type"] == "SCHEDULED":
            scheduled_at = _parse_instant(timing.get("scheduledAt"))
            if scheduled_at is None:
                return error_response(400, "invalid_request",
                                      "sendTiming.scheduledAt must be an ISO-8601 time with a time zone, "
                                      "e.g. 2024-03-15T09:00:00Z.")

        card = next((c for c in CATALOG if c.product_id == product_id), None)
        if card is None:
            return error_response(422, "invalid_product", f"Product {product_id} is not in your catalog.")
        parsed: list[_Recipient] = []
        for index, item in enumerate(recipients):
            where = f"recipients[{index}]"
            if not isinstance(item, dict):
                return error_response(400, "invalid_request", f"{where} must be an object.")
            first, last, email = item.get("firstName"), item.get("lastName", ""), item.get("email")
            if is_blank(first) or not isinstance(first, str):
                return error_response(400, "invalid_request", f"{where}.firstName is required.")
            if last is None:
                last = ""
            if not isinstance(last, str):
                return error_response(400, "invalid_request", f"{where}.lastName must be a string.")
            if is_blank(email) or not isinstance(email, str):
                return error_response(400, "invalid_request", f"{where}.email is required.")
            amount = parse_decimal(item.get("amount"))
            if amount is None or isinstance(item.get("amount"), str):
                return error_response(400, "invalid_request", f"{where}.amount must be a number.")
            if not EMAIL_RE.match(email.strip()):
                return error_response(422, "invalid_recipient",
                                      f"{where}.email {email!r} is not a valid email address.")
            if amount <= 0 or amount != amount.quantize(CENT):
                return error_response(422, "invalid_amount", f"{where}.amount {decimal_text(amount)} must be "
                                                             "positive with at most two decimals.")
            problem = card.amount_problem(amount)
            if problem:
                return error_response(422, "invalid_amount",
                                      f"{where}.amount {decimal_text(amount)} {card.currency} for {email} is not "
                                      f"available: {problem}.")
            parsed.append(_Recipient(first.strip(), last.strip(), email.strip(), amount))
        setting = {"senderName": email_setting["senderName"], "subject": email_setting["subject"],
                   "message": message or ""}
        clean_timing = {"type": timing["type"]}
        if scheduled_at is not None:
            clean_timing["scheduledAt"] = timing["scheduledAt"]
        return card, parsed, setting, clean_timing, scheduled_at

    def _get_order(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        order = self._orders.get(call.params["order_id"])
        if order is None or order.client_id != call.caller:
            return error_response(404, "order_not_found", f"Order {call.params['order_id']} was not found.")
        self._advance(order, self.steps_per_poll)
        return json_response(200, order.to_json())

    def _advance(self, order: _Order, steps: int) -> None:
        """PENDING -> IN_PROGRESS -> COMPLETE; a scheduled order waits for its time.

        Assumption: recipients are resolved (SENT or BOUNCED) when the order completes.
        """
        for _ in range(steps):
            if order.status == "COMPLETE":
                return
            if order.status == "PENDING" and order.scheduled_at is not None and order.scheduled_at > self.clock.now():
                return
            order.status = STATUSES[STATUSES.index(order.status) + 1]
            if order.status == "COMPLETE":
                for recipient in order.recipients:
                    if BOUNCE_MARKER in recipient.email.lower():
                        recipient.status, recipient.bounce_reason = "BOUNCED", BOUNCE_REASON
                    else:
                        recipient.status = "SENT"


def _needs(scope: str, handler: Handler) -> Handler:
    """The handler, for tokens with `scope` only. Assumption: a token without the
    endpoint's scope gets 403 insufficient_scope."""

    def scoped(request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        if scope not in call.scopes:
            return error_response(403, "insufficient_scope", f"This access token lacks the {scope} scope.",
                                  {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
        return handler(request, call)

    return scoped


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


# --- The local demo (see emulators/registry.py) -----------------------------------

DEMO_ACCOUNT = {
    "auth_path": TOKEN_PATH,
    "credentials": oauth.DEMO_CREDENTIALS,
    "settings": {"sender_name": "GiftDesk demo", "email_subject": "You have received a gift card!",
                 "max_cards_per_request": "25", "rate_limit_per_minute": "60"},
}


def make_demo_emulator() -> GiftronautEmulator:
    return GiftronautEmulator(environment="sandbox", clients=oauth.DEMO_CLIENTS)

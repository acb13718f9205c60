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
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from providers.emulators import faults as F
from providers.emulators.faults import Fault, FaultPlan
from providers.emulators.base import EmulatorBase, RecordedRequest, is_blank, parse_decimal, request_fingerprint
from providers.emulators.http import (
    DropConnection,
    EmulatorRequest,
    EmulatorResponse,
    html_response,
    json_response,
)

DEMO_CLIENT_ID = "giftdesk-demo"
DEMO_CLIENT_SECRET = "giftdesk-demo-secret"

TOKEN_PATH = "/oauth2/token"
CATALOG_PATH = "/api/v1/catalog/branded-cards"
ORDER_PATH = "/api/v1/orders/branded-card"
ALL_SCOPES = frozenset({"orders.read", "orders.write", "catalog.read"})  # seed 002, step 2
# Seed 002: "Sandbox tokens are valid for 24 hours; production tokens expire after 1 hour."
TOKEN_LIFETIME = {"sandbox": 86_400, "production": 3_600}
STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETE")  # seed 002, step 5
DEFAULT_BOUNCE_REASON = "Mailbox does not exist"
CENT = Decimal("0.01")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

GATEWAY_ERROR_PAGE = """<html>
<head><title>502 Bad Gateway</title></head>
<body>
<center><h1>502 Bad Gateway</h1></center>
<hr><center>cloudflare</center>
</body>
</html>
"""


# --- Catalog ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Card:
    product_id: str
    brand_name: str
    currency: str
    denominations: tuple[int, ...] = ()  # FIXED
    minimum: Decimal | None = None  # RANGE
    maximum: Decimal | None = None
    step: Decimal | None = None  # Assumption: `stepAmount`, only where a card has one

    @property
    def fixed(self) -> bool:
        return bool(self.denominations)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "productId": self.product_id,
            "brandName": self.brand_name,
            "currencyCode": self.currency,
            "faceValueType": "FIXED" if self.fixed else "RANGE",
        }
        if self.fixed:
            data["denominations"] = list(self.denominations)
        else:
            data["minAmount"] = _num(self.minimum)
            data["maxAmount"] = _num(self.maximum)
            if self.step is not None:
                data["stepAmount"] = _num(self.step)
        return data

    def amount_problem(self, amount: Decimal) -> str | None:
        if self.fixed:
            if amount in self.denominations:
                return None
            return f"{self.product_id} is sold in denominations of {', '.join(map(str, self.denominations))} {self.currency}"
        assert self.minimum is not None and self.maximum is not None
        if not self.minimum <= amount <= self.maximum:
            return f"{self.product_id} takes {_text(self.minimum)} to {_text(self.maximum)} {self.currency}"
        if self.step is not None and (amount - self.minimum) % self.step:
            return (f"{self.product_id} takes {_text(self.minimum)} to {_text(self.maximum)} {self.currency} "
                    f"in steps of {_text(self.step)}")
        return None


CATALOG: tuple[Card, ...] = (
    Card("GC-AMAZON-USD", "Amazon", "USD", denominations=(10, 25, 50, 100)),  # seed 002
    Card("GC-STARBUCKS-USD", "Starbucks", "USD", minimum=Decimal(5), maximum=Decimal(500)),  # seed 002
    Card("GC-ZALANDO-EUR", "Zalando", "EUR", denominations=(20, 50, 100)),
    Card("GC-MAGASIN-DKK", "Magasin", "DKK", minimum=Decimal(100), maximum=Decimal(5000), step=Decimal(50)),
)


def _num(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def _text(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _utc_now() -> datetime:
    return datetime.now(UTC)


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None,
                   **extra: Any) -> EmulatorResponse:
    """DESIGN, "Where the documents are silent": Giftronaut errors are {"error", "message"}."""
    return json_response(status, {"error": code, "message": message, **extra}, headers)


def _oauth_error(status: int, code: str, description: str) -> EmulatorResponse:
    """RFC 6749, section 5.2 (assumption: seed 002 shows only the successful answer)."""
    return json_response(status, {"error": code, "error_description": description},
                         {"Cache-Control": "no-store", "Pragma": "no-cache"})


# --- State -------------------------------------------------------------------------------------


@dataclass
class _Token:
    client_id: str
    scopes: frozenset[str]
    expires_at: float  # time.monotonic()


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
            "amount": _num(self.amount),
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


@dataclass(frozen=True)
class LedgerEntry:
    """One gift card the emulator 'issued' (one per recipient of an order).

    Giftronaut orders carry no reference of ours per card (seed 002), so a card is known by
    its order, its position in the order, its recipient's email and its amount.
    """

    card_id: str
    order_id: str
    idempotency_key: str
    position: int
    product_id: str
    amount: Decimal
    currency: str
    first_name: str
    last_name: str
    email: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["amount"] = str(self.amount)
        data["created_at"] = self.created_at.isoformat()
        return data


@dataclass(frozen=True)
class _Call:
    client_id: str
    scopes: frozenset[str]
    params: dict[str, str] = field(default_factory=dict)
    credit_fault: Fault | None = None  # an insufficient_funds fault taken for this request


Handler = Callable[[EmulatorRequest, _Call], EmulatorResponse]


# --- The emulator ------------------------------------------------------------------------------


class GiftronautEmulator(EmulatorBase):
    """In-memory Giftronaut: OAuth token endpoint, catalog, branded-card orders, a card ledger.

    - `token_lifetime`: seconds a token lives, reported in expires_in (default by environment).
    - `steps_per_poll`: how far one `GET /api/v1/orders/{id}` moves an order along
      PENDING -> IN_PROGRESS -> COMPLETE (0: only `advance()` moves it).
    - `bounce_marker`: a recipient whose email contains it bounces when the order completes.
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
        steps_per_poll: int = 1,
        bounce_marker: str = "bounce",
        bounce_reason: str = DEFAULT_BOUNCE_REASON,
        balances: dict[str, Decimal] | None = None,
        app_scopes: dict[str, set[str]] | None = None,
    ) -> None:
        if environment not in TOKEN_LIFETIME:
            raise ValueError("environment must be 'sandbox' or 'production'")
        self.environment = environment
        self.clients: dict[str, str] = dict(clients or {})
        self.token_lifetime = TOKEN_LIFETIME[environment] if token_lifetime is None else token_lifetime
        self.steps_per_poll = steps_per_poll
        self.bounce_marker = bounce_marker
        self.bounce_reason = bounce_reason
        self.balances = None if balances is None else {k.upper(): Decimal(v) for k, v in balances.items()}
        self.app_scopes = {client: frozenset(scopes) for client, scopes in (app_scopes or {}).items()}
        self.faults = FaultPlan(unscoped_excludes=(TOKEN_PATH,))
        self.ledger: list[LedgerEntry] = []
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._orders: dict[str, _Order] = {}
        # (client_id, key) -> (request fingerprint, order id)
        self._idempotency: dict[tuple[str, str], tuple[str, str]] = {}
        # Ids keep counting across reset() so ids handed out earlier never come back.
        self._order_numbers = itertools.count(0xA8F2)
        self._card_numbers = itertools.count(1)
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("GET", re.compile(re.escape(CATALOG_PATH)), "catalog.read", self._catalog),
            ("POST", re.compile(re.escape(ORDER_PATH)), "orders.write", self._create_order),
            ("GET", re.compile(r"/api/v1/orders/(?P<order_id>[^/]+)"), "orders.read", self._get_order),
        ]

    # --- Test helpers ------------------------------------------------------------------------

    def expire_all_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def reset(self) -> None:
        """Forget orders, ledger, idempotency keys, recorded requests and faults.
        Tokens stay valid so a running client does not have to log in again."""
        with self._lock:
            self._orders.clear()
            self._idempotency.clear()
            self.ledger.clear()
            self.requests.clear()
        self.faults.clear()

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
            return [entry for entry in self.ledger if entry.email.lower() == email.lower()]

    # --- Entry point -------------------------------------------------------------------------

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        if fault.kind == F.DROP_BEFORE:
            raise DropConnection()
        if fault.kind == F.HTML:
            return html_response(502, GATEWAY_ERROR_PAGE)
        if fault.kind == F.HTTP_429:
            return error_response(429, "rate_limit_exceeded", "Too many requests. Retry after the given delay.",
                                  {"Retry-After": str(fault.retry_after)})
        if fault.kind == F.HTTP_503:
            return error_response(503, "service_unavailable", "The service is temporarily unavailable.")
        return error_response(500, "internal_error", "An unexpected error occurred.")

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        if request.path == TOKEN_PATH:
            return self._token_endpoint(request)
        token = self._authenticate(request)
        if token is None:
            return error_response(401, "invalid_token", "The access token is missing, invalid or expired.",
                                  {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        allowed: list[str] = []
        for method, pattern, scope, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            if method != request.method:
                allowed.append(method)
                continue
            if scope not in token.scopes:
                # Assumption: a token without the endpoint's scope gets 403 insufficient_scope.
                return error_response(
                    403, "insufficient_scope", f"This access token lacks the {scope} scope.",
                    {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})
            return handler(request, _Call(token.client_id, token.scopes, match.groupdict(), credit_fault))
        if allowed:
            return error_response(405, "method_not_allowed",
                                  f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
                                  {"Allow": ", ".join(allowed)})
        return error_response(404, "not_found", f"No such endpoint: {request.method} {request.path}")

    # --- Token endpoint (seed 002, step 2) ---------------------------------------------------

    def _token_endpoint(self, request: EmulatorRequest) -> EmulatorResponse:
        content_type = request.headers.get("Content-Type", "").lower()
        if request.method != "POST" or not content_type.startswith("application/x-www-form-urlencoded"):
            return _oauth_error(400, "invalid_request",
                                "POST the token request as application/x-www-form-urlencoded.")
        form = request.form()
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secrets.compare_digest(
            self.clients.get(client_id, "\0").encode(), secret.encode()
        ):
            return _oauth_error(401, "invalid_client", "Client authentication failed.")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Only client_credentials is supported.")
        granted = self.app_scopes.get(client_id, ALL_SCOPES)
        requested = frozenset(form.get("scope", "").split()) or granted
        missing = requested - granted
        if missing:
            return _oauth_error(400, "invalid_scope",
                                f"The app is not allowed the scope(s) {' '.join(sorted(missing))}.")
        token = secrets.token_urlsafe(32)
        self._tokens[token] = _Token(client_id, requested, time.monotonic() + self.token_lifetime)
        return json_response(
            200,
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime,
             "scope": " ".join(sorted(requested))},
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def _authenticate(self, request: EmulatorRequest) -> _Token | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        entry = self._tokens.get(token.strip())
        if entry is None or entry.expires_at <= time.monotonic():
            return None
        return entry

    # --- Catalog (seed 002, step 3) ----------------------------------------------------------

    def _catalog(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        return json_response(200, {"data": [card.to_json() for card in CATALOG]})

    # --- Orders (seed 002, steps 4 and 5) ----------------------------------------------------

    def _create_order(self, request: EmulatorRequest, call: _Call) -> EmulatorResponse:
        key = request.headers.get("X-Idempotency-Key", "").strip()
        fingerprint = request_fingerprint(request)
        if key:
            stored = self._idempotency.get((call.client_id, key))
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
        now = _utc_now()
        order = _Order(
            order_id=f"OT-{now:%Y%m%d}-{next(self._order_numbers) & 0xFFFF:04X}",
            client_id=call.client_id, idempotency_key=key, card=card, recipients=recipients,
            email_setting=email_setting, send_timing=timing, scheduled_at=scheduled_at, created_at=now,
        )
        while order.order_id in self._orders:  # after 65536 orders in a day
            order.order_id = f"OT-{now:%Y%m%d}-{next(self._order_numbers) & 0xFFFF:04X}"
        self._orders[order.order_id] = order
        for position, recipient in enumerate(recipients):
            self.ledger.append(LedgerEntry(
                card_id=f"GT-{next(self._card_numbers):08d}", order_id=order.order_id, idempotency_key=key,
                position=position, product_id=card.product_id, amount=recipient.amount, currency=card.currency,
                first_name=recipient.first_name, last_name=recipient.last_name, email=recipient.email,
                created_at=now,
            ))
        if key:
            self._idempotency[(call.client_id, key)] = (fingerprint, order.order_id)
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
                return error_response(422, "invalid_amount",
                                      f"{where}.amount {_text(amount)} must be positive with at most two decimals.")
            problem = card.amount_problem(amount)
            if problem:
                return error_response(422, "invalid_amount",
                                      f"{where}.amount {_text(amount)} {card.currency} for {email} is not "
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
        if order is None or order.client_id != call.client_id:
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
            if order.status == "PENDING" and order.scheduled_at is not None and order.scheduled_at > _utc_now():
                return
            order.status = STATUSES[STATUSES.index(order.status) + 1]
            if order.status == "COMPLETE":
                for recipient in order.recipients:
                    if self.bounce_marker and self.bounce_marker in recipient.email.lower():
                        recipient.status, recipient.bounce_reason = "BOUNCED", self.bounce_reason
                    else:
                        recipient.status = "SENT"


def _parse_instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo is not None else None


# --- The local demo (see providers/emulators/registry.py) -----------------------------------

DEMO_ACCOUNT = {
    "auth_path": TOKEN_PATH,
    "credentials": {"client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET},
    "settings": {
        "sender_name": "GiftDesk demo",
        "email_subject": "You have received a gift card!",
        "max_cards_per_request": "25",
        "rate_limit_per_minute": "60",
    },
}


def make_demo_emulator() -> GiftronautEmulator:
    return GiftronautEmulator(environment="sandbox", clients={DEMO_CLIENT_ID: DEMO_CLIENT_SECRET})

"""GoGift emulator, following seed 000 (working recipe) and seed 001 (API reference).

One base URL serves both the token endpoint (`POST /connect/token`) and the API
(`/products/filter`, `/products/{id}`, `/baskets`, `/baskets/finalize`). Test-only
endpoints live under `/_emulator/` and are not part of GoGift's API.

Where the seeds are silent, the assumption is marked "Assumption:" next to the code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple
from urllib.parse import unquote_plus

from emulators import oauth
from emulators.base import Call, EmulatorBase, LedgerEntry, route
from emulators.clock import Clock
from emulators import faults as F
from emulators.faults import Fault
from emulators.loopback import EmulatorRequest, EmulatorResponse, html_response, json_response
from emulators.values import CENT, EMAIL_RE, decimal_text, is_blank, json_number
from providers.clients.base import parse_decimal

TOKEN_PATH = "/connect/token"
SALES_CHANNEL_ID = "109"  # the channel seed 001 recommends; the only one the emulator has

# The 22 languages of seed 001's LocalizedString, in the seed's order.
LANGUAGES: tuple[str, ...] = (
    "en", "da", "sv", "no", "fi", "de", "ru", "fr", "nl", "it", "es",
    "pl", "cs", "ro", "hu", "bg", "pt", "ja", "el", "tr", "sk", "sl",
)
DELIVERY_METHODS: tuple[str, ...] = ("Physical", "Email", "CsvByEmail", "Sms", "Webhook")
PAYMENT_METHODS: tuple[str, ...] = ("InvoiceByFinance", "ExternalPsp", "Trustly")
# Which recipient field each delivery method needs (seed 001, ProductInput).
RECIPIENT_FIELD_BY_METHOD = {
    "Email": "recipientEmail",
    "CsvByEmail": "recipientEmail",
    "Sms": "recipientPhone",
    "Webhook": "recipientWebhookUrl",
    "Physical": "recipientAddress",
}
REFERENCE_REQUIRED_MESSAGE = (
    "The basket require order reference, but the order reference is not supplied"
)  # seed 000, word for word
IDEMPOTENCY_MISMATCH_MESSAGE = (
    'There is a mismatch between what we have encountered before as a request body and what '
    'is being sent for idempotency key "{key}". Please ensure that the provided request body '
    "does not change for a request with an already provided idempotency key."
)  # seed 001, word for word
# Faults answer as ServiceStack does: (errorCode, message) by status.
SERVER_ERRORS = {
    500: ("InternalServerError", "An unexpected error occurred."),
    503: ("ServiceUnavailable", "The service is temporarily unavailable."),
}

# Assumption: seed 001 documents exchangeRate but not the rates; fixed rates keep a EUR
# card in a DKK basket computable. Value of one unit in DKK.
DKK_PER_UNIT: dict[str, Decimal] = {
    "DKK": Decimal("1"),
    "EUR": Decimal("7.46"),
    "SEK": Decimal("0.65"),
    "NOK": Decimal("0.64"),
    "USD": Decimal("6.90"),
}
DEFAULT_PAYMENT_CURRENCY = "DKK"  # Assumption: a new basket pays in DKK until told otherwise
TOKEN_LIFETIME = 3600  # Assumption: seed 000 shows expires_in 3600


# --- Catalog ---------------------------------------------------------------------------------


class PerEnv(NamedTuple):
    """The same thing's identifier in each environment: seed 000 shows they differ."""

    sandbox: str
    production: str


@dataclass(frozen=True)
class Price:
    """One SKU. Fixed (`value`) or ranged (`minimum`/`step`/`maximum`), in `currency`."""

    sku: PerEnv
    currency: str
    value: int | None = None
    minimum: int | None = None
    step: int | None = None
    maximum: int | None = None


@dataclass(frozen=True)
class Offer:
    delivery_method: str
    prices: tuple[Price, ...]


@dataclass(frozen=True)
class CatalogProduct:
    ids: PerEnv
    title: dict[str, str]  # language -> text; missing languages are null
    description: dict[str, str]
    countries: tuple[str, ...]
    offers: tuple[Offer, ...]


CATALOG: tuple[CatalogProduct, ...] = (
    CatalogProduct(  # seed 000: The Global Gift Card, 50..5000 DKK in steps of 10
        ids=PerEnv("256314825926729728", "256472009205907456"),
        title={"en": "The Global Gift Card", "da": "Det Globale Gavekort"},
        description={"en": "One gift card, hundreds of shops.", "da": "Ét gavekort, hundredvis af butikker."},
        countries=("DK",),
        offers=(Offer("Email", (Price(PerEnv("AEC9A553", "FF79DB80"), "DKK", minimum=50, step=10, maximum=5000),)),),
    ),
    CatalogProduct(
        ids=PerEnv("256314825926730112", "256472009205908480"),
        title={"en": "Spa Day", "da": "Spadag"},
        description={"en": "A day of treatments at a partner spa."},
        countries=("DK",),
        offers=(Offer("Email", (
            Price(PerEnv("5B1C0E2A", "0A1B2C3D"), "DKK", value=250),
            Price(PerEnv("5B1C0E2B", "0A1B2C3E"), "DKK", value=500),
        )),),
    ),
    CatalogProduct(
        ids=PerEnv("256314825926731136", "256472009205909504"),
        title={"en": "Euro Gift Card", "de": "Euro-Geschenkkarte"},
        description={"en": "Spend it in shops across the euro area."},
        countries=("DE", "FR", "NL", "IT", "ES"),
        offers=(Offer("Email", (Price(PerEnv("C3D4E5F6", "D4E5F6A7"), "EUR", minimum=10, step=5, maximum=500),)),),
    ),
    CatalogProduct(  # delivered by text message only
        ids=PerEnv("256314825926732160", "256472009205910528"),
        title={"en": "Cinema Ticket", "da": "Biografbillet"},
        description={"en": "One ticket for any film, sent by SMS."},
        countries=("DK",),
        offers=(Offer("Sms", (Price(PerEnv("9A8B7C6D", "6B7C8D9E"), "DKK", value=120),)),),
    ),
    CatalogProduct(
        ids=PerEnv("256314825926733184", "256472009205911552"),
        title={"en": "Restaurant Gift Card", "da": "Restaurantgavekort"},
        description={"en": "Dinner at more than 300 restaurants."},
        countries=("DK",),
        offers=(
            Offer("Email", (Price(PerEnv("1F2E3D4C", "2C3D4E5F"), "DKK", minimum=100, step=50, maximum=2000),)),
            Offer("CsvByEmail", (Price(PerEnv("1F2E3D4D", "2C3D4E60"), "DKK", minimum=100, step=50, maximum=2000),)),
        ),
    ),
    CatalogProduct(
        ids=PerEnv("256314825926734208", "256472009205912576"),
        title={"en": "Wine Tasting", "da": "Vinsmagning"},
        description={"en": "An evening of wine tasting for two."},
        countries=("DK", "SE"),
        offers=(Offer("Email", (Price(PerEnv("7E6D5C4B", "8F9EAD0B"), "DKK", value=400),)),),
    ),
)


def _value_problem(price: Price, value: Decimal) -> str | None:
    """Why `value` cannot be bought on this SKU, or None when it can."""
    if price.value is not None:
        if value == price.value:
            return None
        return f"this SKU has a fixed value of {price.value} {price.currency}"
    assert price.minimum is not None and price.step is not None and price.maximum is not None
    # Steps count from the minimum; seed 000 says "multiples of 10" for a minimum of 50,
    # and every ranged SKU here has a minimum that is a multiple of its step.
    if price.minimum <= value <= price.maximum and (value - price.minimum) % price.step == 0:
        return None
    return f"minimum {price.minimum}, maximum {price.maximum}, step {price.step}"


_ErrorSink = Callable[..., None]  # error(field_name, message, code="Invalid")


def _check_recipient(item: dict[str, Any], method: str, error: _ErrorSink) -> None:
    """Seed 001: each delivery method needs its own recipient field."""
    name = RECIPIENT_FIELD_BY_METHOD[method]
    value = item.get(name)
    if is_blank(value):
        error(name, f"{name} is required when deliveryMethod is {method}.", "NotEmpty")
    elif name == "recipientEmail" and not EMAIL_RE.match(str(value).strip()):
        error(name, f"recipientEmail {value!r} is not a valid email address.")


def _invoice_buyer_errors(buyer: dict[str, Any]) -> list[FieldError]:
    """Seed 001, BuyerInput: accountId and accountType B2BDepartment are required for invoice."""
    errors = []
    if is_blank(buyer.get("accountId")):
        errors.append(FieldError("buyer.accountId", "Paying by InvoiceByFinance requires buyer.accountId "
                                                    "(your B2B department id) on the basket.", "NotEmpty"))
    if buyer.get("accountType") != "B2BDepartment":
        errors.append(FieldError("buyer.accountType", "Paying by InvoiceByFinance requires buyer.accountType "
                                                      f"B2BDepartment (got {buyer.get('accountType')!r}).", "Equal"))
    return errors


def _other_environment(environment: str) -> str:
    return "production" if environment == "sandbox" else "sandbox"


def _localized(texts: dict[str, str] | None = None) -> dict[str, str | None]:
    texts = texts or {}
    return {language: texts.get(language) for language in LANGUAGES}


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")  # seed 001, "Time": YYYY-MM-DDThh:mm:ssZ


# --- Errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    field_name: str
    message: str
    error_code: str = "Invalid"

    def to_json(self) -> dict[str, str]:
        return {"errorCode": self.error_code, "fieldName": self.field_name, "message": self.message}


def _response_status(code: str, message: str, errors: list[FieldError] | None = None) -> dict:
    return {
        "errorCode": code,
        "message": message,
        "stackTrace": None,
        "errors": [error.to_json() for error in errors or []],
        "meta": None,
    }


def _null_basket() -> dict[str, Any]:
    """The basket shape with nothing in it, as seed 001's idempotency error shows it."""
    return {
        "totalTaxAmount": 0,
        "totalPaymentAmountWithDiscountNoTax": 0,
        "totalPurchaseAmountWithTax": 0,
        "totalPaymentAmountWithTax": 0,
        "deliveries": None,
        "payments": None,
        "paymentCurrency": None,
        "buyer": None,
        "userIdMakingTheBasket": None,
        "salesChannelId": None,
        "lastUpdatedAt": None,
        "createdAt": None,
        "publicOrderId": None,
        "purchasePhase": None,
        "id": None,
        "reference": None,
    }


def error_response(
    path: str,
    status: int,
    code: str,
    message: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
) -> EmulatorResponse:
    """ServiceStack-style error: basket-shaped on basket endpoints, bare elsewhere."""
    body = _null_basket() if path.startswith("/baskets") else {}
    body["responseStatus"] = _response_status(code, message, errors)
    return json_response(status, body, headers)


def _validation_error(path: str, errors: list[FieldError]) -> EmulatorResponse:
    # The top-level message must read on its own: a client may show only that.
    message = errors[0].message
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more error{'s' if len(errors) > 2 else ''})"
    return error_response(path, 400, "ValidationException", message, errors)


# --- State -------------------------------------------------------------------------------------


@dataclass
class _Line:
    """One added product line; the emulator gives each its own delivery."""

    line_id: str
    delivery_id: str
    delivery_date: str
    delivery_method: str
    product_id: str
    product_title: str
    sku: str
    quantity: int
    giftcard_value: Decimal
    value_currency: str
    reference: str | None
    product_reference: str | None
    recipient_name: str | None
    recipient_email: str | None
    recipient_phone: str | None
    recipient_webhook_url: str | None
    recipient_address: dict | None


@dataclass
class _Basket:
    id: str
    client_id: str
    sales_channel_id: str
    public_order_id: str
    created_at: datetime
    last_updated_at: datetime
    payment_currency: str = DEFAULT_PAYMENT_CURRENCY
    buyer: dict[str, Any] | None = None
    reference: str | None = None
    lines: list[_Line] = field(default_factory=list)
    purchase_phase: str = "Shopping"
    payments: list[dict[str, Any]] = field(default_factory=list)
    order_id: str | None = None


# --- Request parsing helpers -------------------------------------------------------------------


def _accepts_json(accept: str | None) -> bool:
    """True when Accept names JSON. `*/*` alone does not: seed 000's troubleshooting says
    GoGift answers HTML until the client sends Accept: application/json."""
    for media_range in (accept or "").split(","):
        media_type, *params = [part.strip().lower() for part in media_range.split(";")]
        if "q=0" in params or "q=0.0" in params:
            continue
        if media_type == "application/json" or media_type.endswith("+json"):
            return True
    return False


def _basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """client_id/client_secret from HTTP Basic auth (RFC 6749 2.3.1: form-encoded, then base64)."""
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


def _canonical(value: Any, choices: tuple[str, ...]) -> str | None:
    """The documented spelling of an enum value; ServiceStack binds enums case-insensitively."""
    if not isinstance(value, str):
        return None
    return next((choice for choice in choices if choice.lower() == value.strip().lower()), None)


HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>GoGift</title></head>
<body>
<h1>GoGift</h1>
<p>Gift cards for every occasion.</p>
<noscript>You need to enable JavaScript to run this app.</noscript>
</body>
</html>
"""

# --- The emulator ------------------------------------------------------------------------------

class GoGiftEmulator(EmulatorBase):
    """In-memory GoGift: OAuth token endpoint, catalog, baskets, orders and a card ledger."""

    funds_routes = frozenset({("POST", "/baskets/finalize")})

    def __init__(
        self, environment: str = "sandbox", clients: dict[str, str] | None = None, *, clock: Clock | None = None,
    ) -> None:
        if environment not in ("sandbox", "production"):
            raise ValueError("environment must be 'sandbox' or 'production'")
        super().__init__(clock=clock, unscoped_excludes=(TOKEN_PATH,))
        self.environment = environment
        self.clients: dict[str, str] = dict(clients or {})
        self.token_lifetime = TOKEN_LIFETIME
        # Seed 000: "Production accounts require this field even if sandbox worked without it."
        self.require_reference = environment == "production"
        self._tokens = oauth.TokenStore(self.clock)
        self._baskets: dict[str, _Basket] = {}
        # Ids keep counting across reset() so ids handed out earlier never come back.
        self._ids = itertools.count(330_000_000_000_000_001)
        self._public_ids = itertools.count(100_001)
        mismatch = self._idempotency_mismatch
        self._routes = [
            route("POST", r"/products/filter", self._filter_products),
            route("GET", r"/products/filter", self._filter_products),
            route("GET", r"/products/(?P<product_id>[^/]+)", self._product_by_id),
            route("POST", r"/baskets", self._create_basket),
            # Seed 001: an Idempotency-Key replays the first answer, per client_id; the
            # same key with another body gets the mismatch error.
            route("PUT", r"/baskets", self._replaying(self._update_basket, mismatch)),
            route("POST", r"/baskets/finalize", self._replaying(self._finalize_basket, mismatch)),
        ]

    # --- Test helpers ------------------------------------------------------------------------

    def expire_all_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def product_ids(self) -> list[str]:
        return [getattr(product.ids, self.environment) for product in CATALOG]

    def _forget(self) -> None:
        self._baskets.clear()  # tokens stay valid: a running client need not log in again

    # --- Entry point and GoGift's error answers ----------------------------------------------

    def _dispatch(self, request: EmulatorRequest, credit_fault: Fault | None) -> EmulatorResponse:
        if request.path == TOKEN_PATH:
            return self._token_endpoint(request)
        # Assumption: content negotiation comes before authentication, so a client that
        # forgets Accept gets the HTML page whatever its token (seed 000, troubleshooting).
        if not _accepts_json(request.headers.get("Accept")):
            return html_response(200, HTML_PAGE)
        token = self._tokens.bearer(request)
        if token is None:
            return error_response(
                request.path, 401, "Unauthorized", "The access token is missing, invalid or expired.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return self._route(request, Call(caller=token.client_id, credit_fault=credit_fault))

    def _too_many_requests(self, request: EmulatorRequest, retry_after: int) -> EmulatorResponse:
        return error_response(request.path, 429, "TooManyRequests", "Too many requests. Please retry later.",
                              headers={"Retry-After": str(retry_after)})

    def _server_error(self, request: EmulatorRequest, status: int) -> EmulatorResponse:
        code, message = SERVER_ERRORS[status]
        return error_response(request.path, status, code, message)

    def _fault_response(self, request: EmulatorRequest, fault: Fault) -> EmulatorResponse:
        # Assumption: seed 001 documents no 401/403 body; they answer in the ServiceStack shape
        # of its other errors, the token endpoint as OpenID servers do (RFC 6749, 5.2).
        if fault.kind == F.UNAUTHORIZED:
            if request.path == TOKEN_PATH:
                return json_response(401, {"error": "invalid_client"})
            return error_response(request.path, 401, "Unauthorized", "The access token is missing, invalid or expired.",
                                  headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        if fault.kind == F.FORBIDDEN:
            if request.path == TOKEN_PATH:
                return json_response(403, {"error": "unauthorized_client"})
            return error_response(request.path, 403, "Forbidden",
                                  "The client is not allowed to call the API from this IP address.")
        return super()._fault_response(request, fault)

    def _method_not_allowed(self, request: EmulatorRequest, allowed: list[str]) -> EmulatorResponse:
        return error_response(request.path, 405, "MethodNotAllowed",
                              f"{request.method} is not allowed on {request.path}; use {', '.join(allowed)}.",
                              headers={"Allow": ", ".join(allowed)})

    def _not_found(self, request: EmulatorRequest) -> EmulatorResponse:
        return error_response(request.path, 404, "NotFound",
                              f"Handler for Request not found: {request.method} {request.path}")

    def _idempotency_mismatch(self, request: EmulatorRequest, key: str) -> EmulatorResponse:
        return error_response(request.path, 400, "ArgumentException", IDEMPOTENCY_MISMATCH_MESSAGE.format(key=key))

    # --- Token endpoint ----------------------------------------------------------------------

    def _token_endpoint(self, request: EmulatorRequest) -> EmulatorResponse:
        # Checks in the order an OpenID server makes them: request shape, client, grant.
        form = oauth.token_request_form(request)
        if form is None:
            return json_response(400, {"error": "invalid_request"})
        client_id, secret = _basic_credentials(request.headers.get("Authorization")) or (
            form.get("client_id", ""), form.get("client_secret", "")
        )
        if not oauth.client_secret_matches(self.clients, client_id, secret):
            return json_response(400, {"error": "invalid_client"})
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type"})
        token = self._tokens.issue(client_id, self.token_lifetime)
        return json_response(
            200, {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}, oauth.NO_STORE,
        )

    # --- Catalog ---------------------------------------------------------------------------

    def _catalog(self) -> dict[str, CatalogProduct]:
        return {getattr(product.ids, self.environment): product for product in CATALOG}

    def _sku(self, price: Price) -> str:
        return getattr(price.sku, self.environment)

    def _product_summary(self, product_id: str, product: CatalogProduct) -> dict[str, Any]:
        return {
            "availableDeliveryMethods": [offer.delivery_method for offer in product.offers],
            "id": product_id,
            "redeemableInCountries": list(product.countries),
            "title": _localized(product.title),
            "shortDescription": _localized(product.description),
        }

    def _filter_products(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        body = request.json()
        if request.body and not isinstance(body, dict):
            return _validation_error(request.path, [FieldError("", "The request body is not a JSON object.")])
        body = body or {}
        paging = body.get("paging") or {}
        per_page, page = paging.get("perPage", 50), paging.get("page", 1)
        errors = [
            FieldError(f"paging.{name}", f"paging.{name} must be a whole number of at least 1.", "GreaterThanOrEqual")
            for name, value in (("perPage", per_page), ("page", page))
            if isinstance(value, bool) or not isinstance(value, int) or value < 1
        ]
        if errors:
            return _validation_error(request.path, errors)
        matches = [
            self._product_summary(product_id, product)
            for product_id, product in self._catalog().items()
            if self._matches_filter(product, body)
        ]
        start = (page - 1) * per_page
        return json_response(200, {
            "products": matches[start:start + per_page],
            "pagingInfo": {
                "totalItems": len(matches),
                "totalPages": math.ceil(len(matches) / per_page),
                "perPage": per_page,
                "page": page,
            },
            "responseStatus": {},
        })

    @staticmethod
    def _matches_filter(product: CatalogProduct, body: dict[str, Any]) -> bool:
        channel = body.get("salesChannel")
        if not is_blank(channel) and str(channel) != SALES_CHANNEL_ID:
            return False
        method = body.get("withDeliveryMethod")
        if not is_blank(method) and str(method).lower() not in {o.delivery_method.lower() for o in product.offers}:
            return False
        # Seed 001 spells it "redeemableInCoutries"; a string in its table, a list in its code.
        countries = body.get("redeemableInCoutries")
        wanted = [countries] if isinstance(countries, str) else list(countries or [])
        return all(str(code).upper() in product.countries for code in wanted if code)

    def _product_by_id(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        product_id = call.params["product_id"]
        product = self._catalog().get(product_id)
        if product is None:
            return error_response(request.path, 404, "NotFound", self._unknown_product_message(product_id))
        delivery_methods = []
        for index, offer in enumerate(product.offers):
            delivery_methods.append({
                "deliveryMethod": offer.delivery_method,
                "inventory": {
                    # Assumption: inventory ids are not documented beyond "String"; derive one.
                    "id": str(int(product_id) + 1 + index),
                    "inventoryEntries": [self._inventory_entry(price) for price in offer.prices],
                },
            })
        return json_response(200, {
            "deliveryMethods": delivery_methods,
            "id": product_id,
            "redeemableInCountries": list(product.countries),
            "title": _localized(product.title),
            "shortDescription": _localized(product.description),
            "responseStatus": {},
        })

    def _inventory_entry(self, price: Price) -> dict[str, Any]:
        def amount(value: int | None) -> dict[str, int] | None:
            return None if value is None else {price.currency.lower(): value}

        return {
            "sku": self._sku(price),
            "priceCurrency": price.currency,
            "salesPriceNoTax": amount(price.value),
            "salesPriceMinNoTax": amount(price.minimum),
            "salesPriceStepNoTax": amount(price.step),
            "salesPriceMaxNoTax": amount(price.maximum),
        }

    def _unknown_product_message(self, product_id: str) -> str:
        other = _other_environment(self.environment)
        if any(getattr(product.ids, other) == product_id for product in CATALOG):
            return (
                f"Product {product_id} does not exist in this environment ({self.environment}); "
                f"it is a {other} product id. Use the {self.environment} catalog."
            )
        return f"Product {product_id} does not exist in this environment ({self.environment})."

    # --- Baskets -----------------------------------------------------------------------------

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _create_basket(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        body = request.json()
        body = body if isinstance(body, dict) else {}
        channel = body.get("salesChannelId")
        channel = SALES_CHANNEL_ID if is_blank(channel) else str(channel)  # seed 001 recommends 109
        if channel != SALES_CHANNEL_ID:
            return _validation_error(request.path, [FieldError(
                "salesChannelId", f"Sales channel {channel} is not available to this client; use {SALES_CHANNEL_ID}.",
            )])
        now = self.clock.now()
        basket = _Basket(
            id=self._new_id(), client_id=call.caller, sales_channel_id=channel,
            public_order_id=f"GG-{next(self._public_ids)}", created_at=now, last_updated_at=now,
        )
        self._baskets[basket.id] = basket
        return json_response(200, self._basket_json(basket))

    def _find_basket(self, basket_id: Any, client_id: str) -> _Basket | None:
        basket = self._baskets.get(str(basket_id)) if not is_blank(basket_id) else None
        # Baskets belong to the client that made them; others get a plain "not found".
        return basket if basket is not None and basket.client_id == client_id else None

    def _basket_not_found(self, path: str, basket_id: Any) -> EmulatorResponse:
        return error_response(path, 404, "NotFound", f"Basket {basket_id} was not found.")

    def _already_finalized(self, path: str, basket: _Basket) -> EmulatorResponse:
        return error_response(
            path, 400, "InvalidOperationException",
            f"Basket {basket.id} has already been finalized (order {basket.public_order_id}, "
            f"purchase phase {basket.purchase_phase}); it cannot be changed or bought again.",
        )

    def _basket_to_change(self, request: EmulatorRequest, call: Call, id_field: str,
                          id_missing: str) -> tuple[dict[str, Any], _Basket] | EmulatorResponse:
        """The body and the caller's basket it names in `id_field`, still open; or the refusal."""
        body = request.json()
        if not isinstance(body, dict):
            return _validation_error(request.path, [FieldError("", "The request body is not a JSON object.")])
        if is_blank(body.get(id_field)):
            return _validation_error(request.path, [FieldError(id_field, id_missing, "NotEmpty")])
        basket = self._find_basket(body[id_field], call.caller)
        if basket is None:
            return self._basket_not_found(request.path, body[id_field])
        if basket.purchase_phase != "Shopping":
            # A retry under a NEW idempotency key lands here: it must never buy again.
            return self._already_finalized(request.path, basket)
        return body, basket

    def _update_basket(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        found = self._basket_to_change(request, call, "id", "id (the basket id) is required.")
        if isinstance(found, EmulatorResponse):
            return found
        body, basket = found

        # All or nothing: every part is checked before the basket is touched.
        errors: list[FieldError] = []
        currency = body.get("paymentCurrency")
        if currency is not None and (not isinstance(currency, str) or currency.upper() not in DKK_PER_UNIT):
            errors.append(FieldError("paymentCurrency", f"paymentCurrency {currency!r} is not supported; "
                                                        f"use one of {', '.join(DKK_PER_UNIT)}."))
        buyer = body.get("buyer")
        if buyer is not None and not isinstance(buyer, dict):
            errors.append(FieldError("buyer", "buyer must be an object."))
        reference = body.get("reference")
        if reference is not None and not isinstance(reference, str):
            errors.append(FieldError("reference", "reference must be a string."))
        additions = body.get("addProducts") or []
        if not isinstance(additions, list):
            errors.append(FieldError("addProducts", "addProducts must be a list."))
            additions = []
        lines: list[_Line] = []
        for index, item in enumerate(additions):
            line, line_errors = self._parse_line(index, item)
            errors.extend(line_errors)
            if line is not None:
                lines.append(line)
        if errors:
            return _validation_error(request.path, errors)

        if currency is not None:
            basket.payment_currency = currency.upper()
        if buyer is not None:
            basket.buyer = buyer  # seed 001: "If not set, it will pick up the existing value"
        if reference is not None:
            basket.reference = reference
        if body.get("doClearProducts") is True:
            basket.lines.clear()
        basket.lines.extend(lines)
        basket.last_updated_at = self.clock.now()
        return json_response(200, self._basket_json(basket))

    def _parse_line(self, index: int, item: Any) -> tuple[_Line | None, list[FieldError]]:
        """One addProducts item -> a basket line, or every reason it cannot be one."""
        prefix = f"addProducts[{index}]"
        if not isinstance(item, dict):
            return None, [FieldError(prefix, f"{prefix} must be an object.")]
        errors: list[FieldError] = []

        def error(name: str, message: str, code: str = "Invalid") -> None:
            errors.append(FieldError(f"{prefix}.{name}", message, code))

        method = _canonical(item.get("deliveryMethod"), DELIVERY_METHODS)
        if method is None:
            error("deliveryMethod", f"deliveryMethod {item.get('deliveryMethod')!r} is not valid; "
                                    f"use one of {', '.join(DELIVERY_METHODS)}.")
        else:
            _check_recipient(item, method, error)
        quantity = item.get("quantity")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            error("quantity", f"quantity must be a whole number of at least 1 (got {quantity!r}).",
                  "GreaterThanOrEqual")
        value = parse_decimal(item.get("giftcardValue"))
        if value is None:
            error("giftcardValue", f"giftcardValue must be a number (got {item.get('giftcardValue')!r}).",
                  "NotEmpty")

        product_id = str(item.get("productId") or "")
        product = self._catalog().get(product_id)
        price: Price | None = None
        if product is None:
            message = self._unknown_product_message(product_id) if product_id else "productId is required."
            error("productId", message, "NotFound")
        elif method is not None:
            price = self._find_price(product, product_id, method, item.get("stockKeepingUnit"), error)
        if product is not None and price is not None:
            self._check_price(product_id, product, price, item.get("valueCurrency"), value, error)

        if errors or product is None or price is None or method is None or value is None:
            return None, errors
        return self._line(item, method, product_id, product, price, value, quantity), []

    def _find_price(
        self, product: CatalogProduct, product_id: str, method: str, sku: Any, error: _ErrorSink
    ) -> Price | None:
        """The SKU `sku` of `product` for delivery `method`, or None (and an error)."""
        offer = next((o for o in product.offers if o.delivery_method == method), None)
        if offer is None:
            methods = ", ".join(o.delivery_method for o in product.offers)
            error("deliveryMethod", f"Product {product_id} cannot be delivered by {method}; it offers {methods}.")
            return None
        wanted = str(sku or "").upper()
        price = next((p for p in offer.prices if self._sku(p) == wanted), None)
        if price is None:
            other = _other_environment(self.environment)
            hint = f" ({sku} is a {other} SKU)" if any(getattr(p.sku, other) == wanted for p in offer.prices) else ""
            skus = ", ".join(self._sku(p) for p in offer.prices)
            error("stockKeepingUnit", f"stockKeepingUnit {sku!r} does not belong to product {product_id} "
                                      f"with deliveryMethod {method}{hint}; use {skus}.", "NotFound")
        return price

    def _check_price(
        self, product_id: str, product: CatalogProduct, price: Price, currency: Any,
        value: Decimal | None, error: _ErrorSink,
    ) -> None:
        sku = self._sku(price)
        if not isinstance(currency, str) or currency.upper() != price.currency:
            error("valueCurrency", f"valueCurrency {currency!r} does not match SKU {sku}, "
                                   f"which is sold in {price.currency}.")
        problem = _value_problem(price, value) if value is not None else None
        if problem:
            error("giftcardValue", f"giftcardValue {decimal_text(value)} is not valid for product {product_id} "
                                   f"({product.title['en']}), SKU {sku}: {problem}")

    def _line(
        self, item: dict, method: str, product_id: str, product: CatalogProduct, price: Price,
        value: Decimal, quantity: int,
    ) -> _Line:
        delivery_date = item.get("deliveryDate")
        if not isinstance(delivery_date, str) or not delivery_date:
            delivery_date = _timestamp(self.clock.now())  # seed 001: none means "as soon as possible"
        return _Line(
            line_id=self._new_id(),
            delivery_id=self._new_id(),
            delivery_date=delivery_date,
            delivery_method=method,
            product_id=product_id,
            product_title=product.title["en"],
            sku=self._sku(price),
            quantity=quantity,
            giftcard_value=value,
            value_currency=price.currency,
            reference=item.get("reference"),
            product_reference=item.get("productReference"),
            recipient_name=item.get("recipientName"),
            recipient_email=item.get("recipientEmail"),
            recipient_phone=item.get("recipientPhone"),
            recipient_webhook_url=item.get("recipientWebhookUrl"),
            recipient_address=item.get("recipientAddress"),
        )

    # --- Basket JSON -------------------------------------------------------------------------

    @staticmethod
    def _exchange_rate(value_currency: str, payment_currency: str) -> Decimal:
        return (DKK_PER_UNIT[value_currency] / DKK_PER_UNIT[payment_currency]).quantize(Decimal("0.000001"))

    def _line_payment_amount(self, line: _Line, payment_currency: str) -> Decimal:
        """Per-unit amount in the payment currency (no tax, no discount on gift cards)."""
        rate = self._exchange_rate(line.value_currency, payment_currency)
        return (line.giftcard_value * rate).quantize(CENT, ROUND_HALF_UP)

    def _basket_total(self, basket: _Basket) -> Decimal:
        return sum(
            (self._line_payment_amount(line, basket.payment_currency) * line.quantity for line in basket.lines),
            Decimal("0"),
        )

    def _product_line_json(self, line: _Line, payment_currency: str) -> dict[str, Any]:
        unit = self._line_payment_amount(line, payment_currency)
        return {
            "discountPercentage": 0,
            "discountTitles": _localized(),
            "totalPaymentDiscountAmount": 0,
            "totalPaymentTaxAmount": 0,
            "totalPaymentAmountWithDiscountNoTax": json_number(unit * line.quantity),
            "paymentDiscountAmount": 0,
            "paymentTaxAmount": 0,
            "paymentAmountWithDiscountNoTax": json_number(unit),
            "exchangeRate": json_number(self._exchange_rate(line.value_currency, payment_currency)),
            "totalPriceDiscountAmount": 0,
            "totalPriceTaxAmount": 0,
            "totalPriceWithDiscountNoTax": json_number(line.giftcard_value * line.quantity),
            "priceDiscountAmount": 0,
            "priceTaxAmount": 0,
            "priceWithDiscountNoTax": json_number(line.giftcard_value),
            "giftcardValue": json_number(line.giftcard_value),
            "valueCurrency": line.value_currency,
            "quantity": line.quantity,
            "productId": line.product_id,
            "stockKeepingUnit": line.sku,
            "lineId": line.line_id,
            "taxType": "NoTax",  # Assumption: gift cards carry no tax; the value is not documented
            "taxRateMultiplier": 0,
            "reference": line.reference,
        }

    def _delivery_json(self, line: _Line, payment_currency: str) -> dict[str, Any]:
        return {
            "id": line.delivery_id,
            "deliveryDate": line.delivery_date,
            "deliveryMethod": line.delivery_method,
            "recipientName": line.recipient_name,
            "recipientAddress": line.recipient_address,
            "recipientEmail": line.recipient_email,
            "recipientPhone": line.recipient_phone,
            "recipientWebhookUrl": line.recipient_webhook_url,
            "productLines": [self._product_line_json(line, payment_currency)],
            "fees": [],
            "deliveryReference": line.product_reference,
        }

    @staticmethod
    def _buyer_json(buyer: dict[str, Any] | None) -> dict[str, Any] | None:
        if buyer is None:
            return None
        keys = ("accountId", "accountType", "name", "address", "email", "phone")
        return {key: buyer.get(key) for key in keys}

    def _basket_json(self, basket: _Basket) -> dict[str, Any]:
        total = json_number(self._basket_total(basket))
        return {
            "totalTaxAmount": 0,
            "totalPaymentAmountWithDiscountNoTax": total,
            "totalPurchaseAmountWithTax": total,
            "totalPaymentAmountWithTax": total,
            "deliveries": [self._delivery_json(line, basket.payment_currency) for line in basket.lines],
            "payments": list(basket.payments),
            "paymentCurrency": basket.payment_currency,
            "buyer": self._buyer_json(basket.buyer),
            "userIdMakingTheBasket": basket.client_id,
            "salesChannelId": basket.sales_channel_id,
            "lastUpdatedAt": _timestamp(basket.last_updated_at),
            "createdAt": _timestamp(basket.created_at),
            "publicOrderId": basket.public_order_id,
            "purchasePhase": basket.purchase_phase,
            "id": basket.id,
            "reference": basket.reference,
            "responseStatus": {},
        }

    # --- Finalize ----------------------------------------------------------------------------

    def _finalize_basket(self, request: EmulatorRequest, call: Call) -> EmulatorResponse:
        found = self._basket_to_change(request, call, "basketId", "basketId is required.")
        if isinstance(found, EmulatorResponse):
            return found
        body, basket = found
        errors = self._finalize_errors(basket, body)
        if errors:
            return _validation_error(request.path, errors)
        if call.credit_fault is not None:
            return self._insufficient_funds(request.path, basket)

        method = _canonical(body["paymentMethod"], PAYMENT_METHODS)
        basket.payments = [{"id": self._new_id(), "paymentMethod": method, "voucherId": None}]
        basket.last_updated_at = self.clock.now()
        if method != "InvoiceByFinance":
            # Assumption: a payment window must be completed before there is an order, and
            # the emulator never completes one; seed 001: orderId "Only set if the payment
            # has already been fulfilled".
            basket.purchase_phase = "Paying"
            return json_response(200, {
                "nextStep": "RedirectToPaymentWindow",
                "paymentWindowUrl": f"https://pay-pre.gogift.io/window/{basket.id}",
                "orderId": None,
                "publicOrderId": basket.public_order_id,
                "responseStatus": {},
            })
        basket.purchase_phase = "Completed"
        basket.order_id = self._new_id()
        self._issue_cards(basket)
        return json_response(200, {
            "nextStep": "ShowConfirmationPage",
            "paymentWindowUrl": None,
            "orderId": basket.order_id,
            "publicOrderId": basket.public_order_id,
            "responseStatus": {},
        })

    def _finalize_errors(self, basket: _Basket, body: dict[str, Any]) -> list[FieldError]:
        """Why this basket cannot be finalized as asked; checked in this order, first wins
        up to the payment method, then every payment problem at once."""
        if not basket.lines:
            return [FieldError("basketId", f"Basket {basket.id} is empty: add products before finalizing it.",
                               "NotEmpty")]
        if self.require_reference and is_blank(basket.reference):
            return [FieldError("reference", REFERENCE_REQUIRED_MESSAGE, "NotEmpty")]
        method = _canonical(body.get("paymentMethod"), PAYMENT_METHODS)
        if method is None:
            return [FieldError("paymentMethod", f"paymentMethod {body.get('paymentMethod')!r} is not valid; "
                                                f"use one of {', '.join(PAYMENT_METHODS)}.")]
        errors = []
        country = body.get("countryCode")
        if not isinstance(country, str) or not re.fullmatch(r"[A-Za-z]{2}", country):
            errors.append(FieldError("countryCode", f"countryCode {country!r} must be an ISO 3166 alpha-2 code "
                                                    "such as DK.", "NotEmpty"))
        if method == "InvoiceByFinance":
            errors += _invoice_buyer_errors(basket.buyer or {})
        elif not isinstance(body.get("redirectConfig"), dict):
            errors.append(FieldError("redirectConfig", f"redirectConfig is required when paymentMethod is {method}.",
                                     "NotEmpty"))
        return errors

    def _insufficient_funds(self, path: str, basket: _Basket) -> EmulatorResponse:
        required = self._basket_total(basket).quantize(CENT)
        # Assumption: the available credit is not documented; show one below what is needed.
        available = Decimal("200.00") if required > 200 else Decimal("0.00")
        currency = basket.payment_currency
        return error_response(
            path, 402, "InsufficientCredit",
            f"The department's credit limit does not cover this order "
            f"(required {required} {currency}, available {available} {currency})",
        )

    def _issue_cards(self, basket: _Basket) -> None:
        now = self.clock.now()
        for line in basket.lines:
            for _ in range(line.quantity):
                # The line's reference is GiftDesk's order; the basket's, the submission's.
                self.ledger.append(LedgerEntry(
                    card_id=self._new_id(), order_id=basket.order_id or "", reference=line.reference,
                    product_id=line.product_id, sku=line.sku, amount=line.giftcard_value,
                    currency=line.value_currency, recipient_name=line.recipient_name,
                    recipient_email=line.recipient_email, created_at=now,
                    extra={"public_order_id": basket.public_order_id, "basket_id": basket.id,
                           "basket_reference": basket.reference},
                ))


# --- Webhook deliveries (seed 001, "Webhook signature validation") ---------------------------


def signed_webhook(
    *, secret: str, client_id: str, content: list[dict[str, Any]], request_id: str, sent_at: str,
) -> tuple[dict[str, str], bytes]:
    """The headers and body GoGift would POST to a webhook URL, signed as seed 001 shows."""
    body = json.dumps({"webhookId": request_id, "timeStamp": sent_at, "content": content,
                       "message": "Gift card delivered"}).encode()
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    token = f"POST{sent_at}{client_id}{request_id}{digest}".encode()  # the method comes first
    signature = base64.b64encode(hmac.new(base64.b64decode(secret), token, hashlib.sha256).digest()).decode()
    headers = {
        "Signature": f'keyId="{client_id}",algorithm="hmac-sha256",signature="{signature}"',
        "X-Request-Datetime": sent_at, "X-Client-ID": client_id, "X-Request-ID": request_id,
        "Content-Type": "application/json",
    }
    return headers, body


# --- The local demo (see emulators/registry.py) -----------------------------------

DEMO_ACCOUNT = {
    "auth_path": "/connect/token",
    "credentials": oauth.DEMO_CREDENTIALS,
    "settings": {
        "sales_channel_id": "109",
        "payment_method": "InvoiceByFinance",
        "country_code": "DK",
        "buyer_account_id": "328685355341950976",
        "buyer_account_type": "B2BDepartment",
        "buyer_name": "GiftDesk Demo A/S",
        "buyer_email": "finance@giftdesk.example",
        "buyer_phone": "+4500000000",
        "buyer_address_line1": "Demovej 1",
        "buyer_city": "København",
        "buyer_post_code": "2100",
        "buyer_country_code": "DK",
        "sender_name": "GiftDesk demo",
        "max_cards_per_request": "10",
        "rate_limit_per_minute": "120",
    },
}


def make_demo_emulator() -> GoGiftEmulator:
    return GoGiftEmulator(environment="sandbox", clients=oauth.DEMO_CLIENTS)

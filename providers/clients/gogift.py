"""GoGift: OAuth client credentials, catalog, and the basket flow (seeds 000 and 001).

A provider order is one basket: create -> update (buyer, reference, products) -> finalize.
The basket id is stored before the update is sent, and update and finalize carry
`Idempotency-Key`s derived from the submission's key, so a retry continues the same basket
and GoGift replays instead of buying again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from providers.clients.base import (
    AccountError,
    CardResult,
    CardStatus,
    CardUpdate,
    OutcomeUnknown,
    ParsedWebhook,
    PermanentError,
    PricingKind,
    ProductInfo,
    ProviderClient,
    SubmitRequest,
    SubmitResult,
    TransientError,
    VerifyResult,
    WebhookRejected,
    WebhookRequest,
    signature_matches,
)
from providers.clients.http import HttpClient, Reply
from providers.clients import tokens

# Seed 000, "Sandbox vs. production".
DOCUMENTED_URLS = {
    "sandbox": ("https://api-pre.gogift.io", "https://auth-pre.gogift.io/connect/token"),
    "production": ("https://api.gogift.io", "https://auth.gogift.io/connect/token"),
}
DEFAULT_SALES_CHANNEL = "109"  # Seed 001 recommends sales channel 109.
DEFAULT_PAYMENT_METHOD = "InvoiceByFinance"
DEFAULT_COUNTRY = "DK"
PRODUCTS_PER_PAGE = 50
# GiftDesk sends cards to recipients' email addresses, so it syncs the Email SKUs only.
DELIVERY_METHOD = "Email"

# Where the documents are silent (one place to correct with the full API reference):
# - Finalize with InvoiceByFinance returning an `orderId` means the order is placed and
#   GoGift emails the card ("triggers delivery of the gift card to the recipient email",
#   seed 000); no order-status endpoint is documented, so such a card counts as delivered.
# - The cost of a card is its product line's payment amount (without discount, plus tax)
#   in the basket's payment currency, as the update response reports it.
# - Error bodies carry `responseStatus` {errorCode, message, errors[{fieldName, message}]}
#   (the ServiceStack shape seed 001 shows for the idempotency error).
REFERENCE_REQUIRED = "require order reference"


class GoGiftClient(ProviderClient):
    kind = "gogift"
    display_name = "GoGift"
    credential_keys = ("client_id", "client_secret")
    documented_urls = DOCUMENTED_URLS
    required_settings = {
        "buyer_account_id": "Buyer account id (B2B department), required to pay by invoice",
        "buyer_name": "Buyer name",
        "buyer_email": "Buyer email",
        "buyer_phone": "Buyer phone (with country prefix)",
    }
    # One basket is paid in one currency.
    submission_group = ("currency",)

    def __init__(self, account, *, recorder=None, throttle=None) -> None:
        super().__init__(account, recorder=recorder, throttle=throttle)
        self.http = HttpClient(provider_name=self.display_name, recorder=recorder, throttle=throttle)
        api_url, auth_url = DOCUMENTED_URLS[account.environment]
        self.api_url = (account.api_base_url or api_url).rstrip("/")
        self.auth_url = account.auth_url or auth_url
        self.client_id = account.credentials.get("client_id", "")
        self.client_secret = account.credentials.get("client_secret", "")
        self._token_key = tokens.token_cache_key(
            account.id, self.auth_url, self.client_id, self.client_secret
        )

    # --- Interface -------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        self._token(renew=True)
        reply = self._api("POST", "/products/filter", self._filter_body(page=1, per_page=1))
        total = (reply.data or {}).get("pagingInfo", {}).get("totalItems", 0)
        return VerifyResult(ok=True, message=f"Connected: {total} products with email delivery.")

    def list_products(self) -> list[ProductInfo]:
        products: list[ProductInfo] = []
        for product_id in self._product_ids():
            reply = self._api("GET", f"/products/{product_id}")
            products.extend(_parse_product(reply.data))
        return products

    def parse_webhook(self, request: WebhookRequest, secrets: list[str]) -> ParsedWebhook:
        """Seed 001, "Webhook signature validation": `Signature: algorithm="hmac-sha256",
        signature="<base64>"` over METHOD + X-Request-Datetime + X-Client-ID + X-Request-ID +
        base64(sha256(body)), keyed with the base64-decoded webhook secret."""
        params = _signature_params(request.header("Signature"))
        if not params.get("signature"):
            raise WebhookRejected("Missing Signature header.", status=401)
        if params.get("algorithm", "").lower() != "hmac-sha256":
            raise WebhookRejected(f"Unsupported signature algorithm {params.get('algorithm')!r}.", status=401)
        sent_at, client_id, request_id = (request.header(name) for name in
                                          ("X-Request-Datetime", "X-Client-ID", "X-Request-ID"))
        if not (sent_at and client_id and request_id):
            raise WebhookRejected("X-Request-Datetime, X-Client-ID and X-Request-ID are required.")
        if client_id.lower() != self.client_id.lower():
            raise WebhookRejected("The webhook was sent for another GoGift client.", status=401)
        moment = _parse_time(sent_at)
        if moment is None:
            raise WebhookRejected(f"X-Request-Datetime {sent_at!r} is not a date.")
        if abs((request.received_at - moment).total_seconds()) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRejected("The webhook is too old (or from the future): it may be a replay.")
        content = base64.b64encode(hashlib.sha256(request.body).digest()).decode()
        token = f"{request.method}{sent_at}{client_id}{request_id}{content}".encode()
        if not any(signature_matches(_gogift_signature(secret, token), params["signature"]) for secret in secrets):
            raise WebhookRejected("The signature does not match: check the account's webhook secret.", status=401)
        try:
            payload = json.loads(request.body)
        except ValueError:
            raise WebhookRejected("The body is not JSON.") from None
        updates = [
            CardUpdate(
                status=CardStatus.DELIVERED, provider_order_id=str(item.get("orderId")),
                details={key: str(item[key]) for key in ("deliveryId", "amountInDecimal", "currencyCode", "expiresAt")
                         if item.get(key) is not None},
            )
            for item in payload.get("content") or [] if item.get("orderId") is not None
        ]
        # X-Request-ID identifies the delivery: stored under a unique constraint, a replay changes nothing.
        return ParsedWebhook(event_id=request_id, event_type="delivery", updates=updates, payload=payload)

    def submit(self, request: SubmitRequest) -> SubmitResult:
        basket_id = request.provider_reference
        if not basket_id:
            # An empty basket buys nothing, so creating one is safe to repeat; its id is
            # stored before anything is added to it.
            reply = self._api("POST", "/baskets", {"salesChannelId": self._sales_channel()})
            basket_id = str((reply.data or {}).get("id") or "")
            if not basket_id:
                raise TransientError("GoGift created a basket but returned no id. It will be retried.")
            request.remember_reference(basket_id)

        update = self._api(
            "PUT", "/baskets", self._basket_update(basket_id, request),
            idempotency_key=f"{request.idempotency_key}-update", commits=True,
        )
        costs = _line_costs(update.data)
        finalize = self._api(
            "POST", "/baskets/finalize",
            {
                "basketId": basket_id,
                "paymentMethod": self.account.settings.get("payment_method", DEFAULT_PAYMENT_METHOD),
                "countryCode": self.account.settings.get("country_code", DEFAULT_COUNTRY),
            },
            idempotency_key=f"{request.idempotency_key}-finalize", commits=True,
        )
        order_id = str((finalize.data or {}).get("orderId") or "")
        if not order_id:
            # Only external payment windows answer without an order; GiftDesk cannot follow them.
            raise PermanentError(
                "GoGift finalized the basket without placing an order (next step: "
                f"{(finalize.data or {}).get('nextStep')!r}). Use payment method InvoiceByFinance."
            )
        payment_currency = (update.data or {}).get("paymentCurrency") or ""
        return SubmitResult(
            provider_reference=basket_id,
            cards=[
                CardResult(
                    order_reference=card.order_reference,
                    status=CardStatus.DELIVERED,
                    provider_order_id=order_id,
                    cost=costs.get(card.order_reference),
                    cost_currency=payment_currency if card.order_reference in costs else "",
                )
                for card in request.cards
            ],
        )

    # --- Requests ----------------------------------------------------------------------------

    def _sales_channel(self) -> str:
        return str(self.account.settings.get("sales_channel_id") or DEFAULT_SALES_CHANNEL)

    def _filter_body(self, *, page: int, per_page: int) -> dict[str, Any]:
        return {
            "salesChannel": self._sales_channel(),
            "withDeliveryMethod": DELIVERY_METHOD,
            "paging": {"perPage": per_page, "page": page},
        }

    def _product_ids(self) -> list[str]:
        ids: list[str] = []
        page = 1
        while True:
            reply = self._api("POST", "/products/filter", self._filter_body(page=page, per_page=PRODUCTS_PER_PAGE))
            data = reply.data or {}
            ids.extend(str(product["id"]) for product in data.get("products", []))
            total_pages = int(data.get("pagingInfo", {}).get("totalPages") or 1)
            if page >= total_pages:
                return ids
            page += 1

    def _basket_update(self, basket_id: str, request: SubmitRequest) -> dict[str, Any]:
        currency = request.cards[0].currency
        return {
            "id": basket_id,
            "buyer": self._buyer(),
            "paymentCurrency": self.account.settings.get("payment_currency") or currency,
            # Replace, never append: re-sending the update can then never add a line twice.
            "doClearProducts": True,
            "reference": request.reference,
            "addProducts": [
                {
                    "deliveryMethod": DELIVERY_METHOD,
                    "recipientName": card.recipient_name,
                    "recipientEmail": card.recipient_email,
                    "stockKeepingUnit": card.sku,
                    "productId": card.product_id,
                    "quantity": 1,
                    "giftcardValue": card.amount,
                    "valueCurrency": card.currency,
                    "reference": card.order_reference,
                    **({"deliveryDate": f"{card.send_on.isoformat()}T00:00:00Z"} if card.send_on else {}),
                }
                for card in request.cards
            ],
        }

    def _buyer(self) -> dict[str, Any]:
        settings = self.account.settings
        return {
            "accountId": settings.get("buyer_account_id", ""),
            "accountType": settings.get("buyer_account_type", "B2BDepartment"),
            "name": settings.get("buyer_name", ""),
            "email": settings.get("buyer_email", ""),
            "phone": settings.get("buyer_phone", ""),
            "address": {
                "line1": settings.get("buyer_address_line1", ""),
                "city": settings.get("buyer_city", ""),
                "postCode": settings.get("buyer_post_code", ""),
                "countryCode": settings.get("buyer_country_code", DEFAULT_COUNTRY),
            },
        }

    # --- Auth and calls ----------------------------------------------------------------------

    def _token(self, *, renew: bool = False) -> str:
        if not renew:
            token = tokens.cached_token(self._token_key)
            if token:
                return token
        if not (self.client_id and self.client_secret):
            raise AccountError("The GoGift account has no client ID or client secret. Enter both.")
        reply = self.http.request(
            "POST", self.auth_url,
            form={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
        )
        data = reply.data if isinstance(reply.data, dict) else {}
        if reply.status == 200 and data.get("access_token"):
            tokens.store_token(self._token_key, data["access_token"], data.get("expires_in", 300))
            return data["access_token"]
        if reply.status >= 500 or reply.status == 429:
            raise TransientError(
                f"GoGift's token service failed (HTTP {reply.status}). It will be retried.",
                status_code=reply.status, retry_after=reply.retry_after,
            )
        if data.get("error") == "invalid_client":
            raise AccountError(
                "GoGift rejected the client ID or client secret (invalid_client). Check both "
                f"with GoGift, and that they are {self.account.environment} credentials: sandbox "
                "and production credentials are separate.",
                status_code=reply.status, response_body=reply.text,
            )
        raise AccountError(
            f"GoGift's token exchange failed (HTTP {reply.status}, {data.get('error') or 'no reason'}). "
            f"Check the token URL ({self.auth_url}) is the one for {self.account.environment}.",
            status_code=reply.status, response_body=reply.text,
        )

    def _api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        idempotency_key: str | None = None,
        commits: bool = False,
    ) -> Reply:
        reply = tokens.send_with_bearer(
            self.http, method, f"{self.api_url}{path}", token=self._token, token_key=self._token_key,
            headers={"Idempotency-Key": idempotency_key} if idempotency_key else {},
            json_body=body, commits=commits,
        )
        if 200 <= reply.status < 300:
            return reply
        raise self._error(reply, commits=commits)

    def _error(self, reply: Reply, *, commits: bool) -> Exception:
        status = (reply.data or {}).get("responseStatus") if isinstance(reply.data, dict) else None
        status = status or {}
        message = _error_text(status) or f"HTTP {reply.status}"
        kwargs = {"status_code": reply.status, "response_body": reply.text}
        if reply.status == 401:
            return AccountError(
                "GoGift refused the access token twice. Check the account's credentials and "
                "that they are allowed to use this API.", **kwargs)
        if reply.status in (402, 403):
            return AccountError(f"GoGift refused the account: {message}", **kwargs)
        if reply.status == 429 or reply.status >= 500:
            return TransientError(
                f"GoGift is unavailable right now (HTTP {reply.status}). It will be retried.",
                retry_after=reply.retry_after, **kwargs)
        if "mismatch" in message and "idempotency key" in message:
            return PermanentError(
                "GoGift refused a retry because its request differs from the first one sent "
                "under the same idempotency key. Nothing new was bought; report this to "
                "GiftDesk's maintainers.", **kwargs)
        if REFERENCE_REQUIRED in message:
            return PermanentError(
                "GoGift requires an order reference on this account, and none was sent. "
                "Report this to GiftDesk's maintainers.", **kwargs)
        if "already been finalized" in message or "already finalized" in message:
            # The basket was bought by an earlier attempt whose answer we lost.
            return OutcomeUnknown(f"GoGift says the basket was already ordered: {message}", **kwargs)
        return PermanentError(f"GoGift refused the order: {message}", **kwargs)


# --- Parsing ----------------------------------------------------------------------------------

WEBHOOK_TOLERANCE_SECONDS = 60  # Seed 001: "sent no later than 60 seconds".


def _signature_params(header: str) -> dict[str, str]:
    """`algorithm="hmac-sha256",signature="..."` -> {"algorithm": ..., "signature": ...}."""
    params = {}
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return params


def _gogift_signature(secret: str, token: bytes) -> str:
    try:
        key = base64.b64decode(secret, validate=True)
    except (ValueError, binascii.Error):
        key = secret.encode()  # Not base64: use it as given rather than reject every delivery.
    return base64.b64encode(hmac.new(key, token, hashlib.sha256).digest()).decode()


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _error_text(response_status: dict[str, Any]) -> str:
    message = (response_status.get("message") or "").strip()
    details = [
        f"{error.get('fieldName')}: {error.get('message')}" if error.get("fieldName") else str(error.get("message"))
        for error in response_status.get("errors") or []
        if error.get("message") and error.get("message") not in message
    ]
    return "; ".join([part for part in [message, *details] if part])


def _title(localized: dict[str, Any] | None) -> str:
    localized = localized or {}
    return localized.get("en") or next((value for value in localized.values() if value), "") or ""


def _price(prices: dict[str, Any] | None, currency: str) -> Decimal | None:
    if not prices:
        return None
    value = prices.get(currency.lower(), prices.get(currency.upper()))
    return None if value is None else Decimal(str(value))


def _parse_product(data: dict[str, Any]) -> list[ProductInfo]:
    """One ProductInfo per Email SKU of a `GET /products/{id}` answer."""
    products = []
    methods = [method.get("deliveryMethod") for method in data.get("deliveryMethods", [])]
    for method in data.get("deliveryMethods", []):
        if method.get("deliveryMethod") != DELIVERY_METHOD:
            continue
        for entry in (method.get("inventory") or {}).get("inventoryEntries", []):
            currency = (entry.get("priceCurrency") or "").upper()
            fixed = _price(entry.get("salesPriceNoTax"), currency)
            common = {
                "provider_product_id": str(data["id"]),
                "sku": entry.get("sku") or "",
                "title": _title(data.get("title")),
                "currency": currency,
                "delivery_methods": tuple(m for m in methods if m),
                "raw": data,
            }
            if fixed is not None:
                products.append(ProductInfo(pricing=PricingKind.FIXED, denominations=(fixed,), **common))
            else:
                products.append(
                    ProductInfo(
                        pricing=PricingKind.RANGE,
                        min_amount=_price(entry.get("salesPriceMinNoTax"), currency),
                        max_amount=_price(entry.get("salesPriceMaxNoTax"), currency),
                        step=_price(entry.get("salesPriceStepNoTax"), currency),
                        **common,
                    )
                )
    return products


def _line_costs(basket: dict[str, Any] | None) -> dict[str, Decimal]:
    """Cost per order reference, from the product lines of a basket."""
    costs: dict[str, Decimal] = {}
    for delivery in (basket or {}).get("deliveries") or []:
        for line in delivery.get("productLines") or []:
            reference = line.get("reference")
            if not reference:
                continue
            quantity = Decimal(str(line.get("quantity") or 1))
            total = Decimal(str(line.get("totalPaymentAmountWithDiscountNoTax") or 0)) + Decimal(
                str(line.get("totalPaymentTaxAmount") or 0)
            )
            costs[reference] = (total / quantity).quantize(Decimal("0.01"))
    return costs


Client = GoGiftClient

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
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from giftdesk.text import plural
from providers.clients.base import (AccountError, Call, CardResult, CardStatus, CardUpdate, OutcomeUnknown,
                                    ParsedWebhook, PermanentError, PricingKind, ProductInfo, ProviderError,
                                    Reply, SettingField, SubmitRequest, SubmitResult, TransientError,
                                    VerifyResult, WebhookRejected, WebhookRequest, parse_decimal,
                                    signature_matches, webhook_json_object)
from providers.clients.tokens import TOKEN_EXCHANGE_FIELDS, OAuthClient

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
WEBHOOK_TOLERANCE_SECONDS = 60  # Seed 001: "sent no later than 60 seconds".

# Where the documents are silent (one place to correct with the full API reference):
# - Finalize with InvoiceByFinance returning an `orderId` means the order is placed and
#   GoGift emails the card ("triggers delivery of the gift card to the recipient email",
#   seed 000); no order-status endpoint is documented, so such a card counts as delivered.
# - The cost of a card is its product line's payment amount (without discount, plus tax)
#   in the basket's payment currency, as the update response reports it.
# - Error bodies carry `responseStatus` {errorCode, message, errors[{fieldName, message}]}
#   (the ServiceStack shape seed 001 shows for the idempotency error).
# - A basket already finalized (by an attempt whose answer was lost) is refused with a
#   message saying so: the outcome is then unknown, never a failure.
REFERENCE_REQUIRED = "require order reference"
# Seed 001's maps: a LocalizedString (language -> text) and a price per currency (lower case).
TRANSLATED_FIELDS = ("title", "shortDescription", "label", "discountTitle")
LANGUAGES = ("en", "da", "sv", "no", "fi", "de", "ru", "fr", "nl", "it", "es", "pl", "cs", "ro", "hu", "bg", "pt",
             "ja", "el", "tr", "sk", "sl")
PRICE_FIELDS = ("salesPriceNoTax", "salesPriceMinNoTax", "salesPriceMaxNoTax", "salesPriceStepNoTax")
PRICE_CURRENCIES = ("dkk", "sek", "nok", "isk", "eur", "gbp", "chf", "pln", "usd", "cad", "aud")


class GoGiftClient(OAuthClient):
    kind = "gogift"
    display_name = "GoGift"
    credential_fields = {"client_id": "Client ID", "client_secret": "Client secret"}
    # Seed 001 "Authentication" and seed 000 "OAuth connection — field reference".
    credential_help = {
        "client_id": ("From GoGift: the client id of the credentials GoGift gives you for its API (OAuth 2.0 "
                      "client credentials). Sandbox and production credentials are separate and not "
                      "interchangeable."),
        "client_secret": "From GoGift, with the client id — keep it confidential.",
        "webhook_secret": ("The WebhookSecret GoGift provides (with your ClientId) to validate the Signature of "
                           "the webhooks it sends."),
    }
    # Seed 000's basket bodies and seed 001's field descriptions.
    setting_fields = {
        "sales_channel_id": SettingField(
            "Sales channel", "GoGift recommends sales channel 109; it can create a custom channel offering a "
            "limited set of products.", default=DEFAULT_SALES_CHANNEL),
        "payment_method": SettingField(
            "Payment method", "How GoGift is paid when the basket is finalized: InvoiceByFinance, ExternalPsp "
            "or Trustly.", default=DEFAULT_PAYMENT_METHOD),
        "country_code": SettingField("Country of the order", "The country code the basket is finalized with.",
                                     default=DEFAULT_COUNTRY),
        "payment_currency": SettingField("Payment currency", "The currency the basket is paid in, e.g. DKK. "
                                                             "Blank: the cards' currency."),
        "buyer_account_id": SettingField(
            "Buyer account id (B2B department), required to pay by invoice",
            "Your buyer account at GoGift (the buyer's accountId, e.g. 328685355341950976).", required=True),
        "buyer_account_type": SettingField("Buyer account type", default="B2BDepartment"),
        "buyer_name": SettingField("Buyer name", "Your company, e.g. “YourCompany A/S”.", required=True),
        "buyer_email": SettingField("Buyer email", "E.g. contact@yourcompany.dk.", required=True),
        "buyer_phone": SettingField("Buyer phone (with country prefix)", "E.g. +4500000000.", required=True),
        "buyer_address_line1": SettingField("Buyer address", "Street and number."),
        "buyer_city": SettingField("Buyer city"),
        "buyer_post_code": SettingField("Buyer post code"),
        "buyer_country_code": SettingField("Buyer country", default=DEFAULT_COUNTRY),
    }
    documented_urls = DOCUMENTED_URLS
    # Seed 001's ids, states, amounts, catalog, paging and errors. Not a card's
    # `giftcardUri` or `pin`, nor the recipients' or the buyer's contact details, nor a
    # payment window or voucher.
    recorded_fields = TOKEN_EXCHANGE_FIELDS | {
        "id", "basketId", "orderId", "publicOrderId", "lineId", "deliveryId", "webhookId", "productId",
        "stockKeepingUnit", "sku", "reference", "deliveryReference", "salesChannelId", "salesChannel",
        "accountId", "accountType", "targetId", "targetType", "relatedToProductLine",
        "purchasePhase", "nextStep", "responseStatus", "deliveryMethod", "availableDeliveryMethods",
        "withDeliveryMethod", "paymentMethod", "doClearProducts", "countryCode", "redeemableInCountries",
        "redeemableInCoutries", "giftcardValue", "valueCurrency", "paymentCurrency", "priceCurrency",
        "amountInDecimal", "currencyCode", "quantity", "exchangeRate", "discountPercentage", "taxType",
        "taxRateMultiplier", "totalTaxAmount", "totalPurchaseAmountWithTax", "totalPaymentAmountWithTax",
        "totalPaymentAmountWithDiscountNoTax", "totalPaymentDiscountAmount", "totalPaymentTaxAmount",
        "totalPriceDiscountAmount", "totalPriceTaxAmount", "totalPriceWithDiscountNoTax",
        "paymentDiscountAmount", "paymentTaxAmount", "paymentAmountWithDiscountNoTax", "priceDiscountAmount",
        "priceTaxAmount", "priceWithDiscountNoTax", "page", "perPage", "totalItems", "totalPages",
        "createdAt", "lastUpdatedAt", "deliveryDate", "expiresAt", "timeStamp",
        "message", "errorCode", "fieldName",
    } | {f"{name}.{language}" for name in TRANSLATED_FIELDS for language in LANGUAGES} | {
        f"{name}.{currency}" for name in PRICE_FIELDS for currency in PRICE_CURRENCIES}
    # One basket is paid in one currency.
    submission_group = ("currency",)
    # Seeds 000 and 001 document no request limit: new accounts get models.RATE_LIMIT_FALLBACK.
    max_requests_per_minute = None

    # --- Interface -------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        self.access_token(renew=True)
        reply = self.api("POST", "/products/filter", self._filter_body(page=1, per_page=1))
        total = reply.fields.get("pagingInfo", {}).get("totalItems", 0)
        return VerifyResult(ok=True, message=f"Connected: {plural(int(total), 'product')} with email delivery.")

    def list_products(self) -> list[ProductInfo]:
        products: list[ProductInfo] = []
        for product_id in self._product_ids():
            products.extend(_parse_product(self.api("GET", f"/products/{product_id}").fields))
        return products

    def submit(self, request: SubmitRequest) -> SubmitResult:
        basket_id = request.provider_reference
        if not basket_id:
            # An empty basket buys nothing, so creating one is safe to repeat; its id is
            # stored before anything is added to it.
            reply = self.api("POST", "/baskets", {"salesChannelId": self.setting("sales_channel_id")})
            basket_id = str(reply.fields.get("id") or "")
            if not basket_id:
                raise TransientError("GoGift created a basket but returned no id. It will be retried.")
            request.remember_reference(basket_id)

        update = self.api("PUT", "/baskets", self._basket_update(basket_id, request),
                          idempotency_key=f"{request.idempotency_key}-update", commits=True,
                          refusal="refused the order")
        finalize = self.api("POST", "/baskets/finalize", self._finalize_body(basket_id),
                            idempotency_key=f"{request.idempotency_key}-finalize", commits=True,
                            refusal="refused the order")
        order_id = str(finalize.fields.get("orderId") or "")
        if not order_id:
            # Only external payment windows answer without an order; GiftDesk cannot follow them.
            raise PermanentError(
                "GoGift finalized the basket without placing an order (next step: "
                f"{finalize.fields.get('nextStep')!r}). Use payment method InvoiceByFinance."
            )
        costs = _line_costs(update.fields)
        payment_currency = update.fields.get("paymentCurrency") or ""
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
        # They are signed: without them nothing can be verified (401, as a wrong signature).
        if not (sent_at and client_id and request_id):
            raise WebhookRejected("X-Request-Datetime, X-Client-ID and X-Request-ID are required.", status=401)
        # The signature first: what is said of an unverified request must not depend on the
        # account (a 400 here but a 401 for an unknown account would reveal that it exists).
        content = base64.b64encode(hashlib.sha256(request.body).digest()).decode()
        token = f"{request.method}{sent_at}{client_id}{request_id}{content}".encode()
        if not any(signature_matches(_gogift_signature(secret, token), params["signature"]) for secret in secrets):
            raise WebhookRejected("The signature does not match: check the account's webhook secret.", status=401)
        if client_id.lower() != self.client_id.lower():
            raise WebhookRejected("The webhook was sent for another GoGift client.", status=401)
        moment = _parse_time(sent_at)
        if moment is None:
            raise WebhookRejected(f"X-Request-Datetime {sent_at!r} is not a date.")
        if abs((request.received_at - moment).total_seconds()) > WEBHOOK_TOLERANCE_SECONDS:
            raise WebhookRejected("The webhook is too old (or from the future): it may be a replay.")
        payload = _delivery_payload(request.body)
        updates = [
            CardUpdate(
                status=CardStatus.DELIVERED, provider_order_id=str(item["orderId"]),
                details={key: str(item[key]) for key in ("deliveryId", "amountInDecimal", "currencyCode", "expiresAt")
                         if isinstance(item.get(key), str | int | float) and not isinstance(item.get(key), bool)},
            )
            for item in payload["content"] if item.get("orderId") is not None
        ]
        # X-Request-ID identifies the delivery: stored under a unique constraint, a replay changes nothing.
        return ParsedWebhook(event_id=request_id, event_type="delivery", updates=updates, payload=payload)

    # --- Requests ----------------------------------------------------------------------------

    def _filter_body(self, *, page: int, per_page: int) -> dict[str, Any]:
        return {
            "salesChannel": self.setting("sales_channel_id"),
            "withDeliveryMethod": DELIVERY_METHOD,
            "paging": {"perPage": per_page, "page": page},
        }

    def _product_ids(self) -> list[str]:
        ids: list[str] = []
        page = 1
        while True:
            data = self.api("POST", "/products/filter", self._filter_body(page=page, per_page=PRODUCTS_PER_PAGE)).fields
            ids.extend(str(product["id"]) for product in data.get("products", []))
            if page >= int(data.get("pagingInfo", {}).get("totalPages") or 1):
                return ids
            page += 1

    def _basket_update(self, basket_id: str, request: SubmitRequest) -> dict[str, Any]:
        return {
            "id": basket_id,
            "buyer": self._buyer(),
            "paymentCurrency": self.setting("payment_currency") or request.cards[0].currency,
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

    def _finalize_body(self, basket_id: str) -> dict[str, Any]:
        return {
            "basketId": basket_id,
            "paymentMethod": self.setting("payment_method"),
            "countryCode": self.setting("country_code"),
        }

    def _buyer(self) -> dict[str, Any]:
        return {
            "accountId": self.setting("buyer_account_id"),
            "accountType": self.setting("buyer_account_type"),
            "name": self.setting("buyer_name"),
            "email": self.setting("buyer_email"),
            "phone": self.setting("buyer_phone"),
            "address": {
                "line1": self.setting("buyer_address_line1"),
                "city": self.setting("buyer_city"),
                "postCode": self.setting("buyer_post_code"),
                "countryCode": self.setting("buyer_country_code"),
            },
        }

    # --- Error refinements -------------------------------------------------------------------

    def error_reason(self, reply: Reply) -> str:
        return _error_text(reply.fields.get("responseStatus") or {})

    def token_refused(self, reply: Reply, error: str, detail: str) -> AccountError:
        if error == "invalid_client":
            return AccountError(
                "GoGift rejected the client ID or client secret (invalid_client). Check both "
                f"with GoGift, and that they are {self.account.environment} credentials: sandbox "
                "and production credentials are separate.",
                status_code=reply.status, response_body=reply.text,
            )
        return super().token_refused(reply, error, detail)

    def refine_error(self, error: ProviderError, reply: Reply, reason: str, call: Call) -> ProviderError:
        if "mismatch" in reason and "idempotency key" in reason:
            return error.reworded(
                "GoGift refused a retry because its request differs from the first one sent under "
                "the same idempotency key. Nothing new was bought; report this to GiftDesk's maintainers.")
        if REFERENCE_REQUIRED in reason:
            return error.reworded("GoGift requires an order reference on this account, and none was sent. "
                                  "Report this to GiftDesk's maintainers.")
        if "already been finalized" in reason or "already finalized" in reason:
            # The basket was bought by an earlier attempt whose answer we lost.
            return OutcomeUnknown(f"GoGift says the basket was already ordered: {reason}",
                                  status_code=reply.status, response_body=reply.text)
        return super().refine_error(error, reply, reason, call)


# --- Parsing ----------------------------------------------------------------------------------


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


def _delivery_payload(body: bytes) -> dict[str, Any]:
    """A verified delivery body as seed 001 shows it: {"content": [{"orderId", ...}, ...]}.
    Raises WebhookRejected (400: the provider stops retrying) for any other shape."""
    payload = webhook_json_object(body)
    content = payload.get("content")
    if not isinstance(content, list) or not all(isinstance(item, dict) for item in content):
        raise WebhookRejected("The delivery's content is not a list of gift cards.")
    for item in content:
        order_id = item.get("orderId")
        if order_id is not None and (not isinstance(order_id, str | int) or isinstance(order_id, bool)):
            raise WebhookRejected("A delivered gift card's orderId is not an id.")
    return payload


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
    return parse_decimal(prices.get(currency.lower(), prices.get(currency.upper())))


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
            quantity = parse_decimal(line.get("quantity")) or Decimal(1)
            total = (parse_decimal(line.get("totalPaymentAmountWithDiscountNoTax")) or Decimal(0)) + (
                parse_decimal(line.get("totalPaymentTaxAmount")) or Decimal(0)
            )
            costs[reference] = (total / quantity).quantize(Decimal("0.01"))
    return costs


Client = GoGiftClient

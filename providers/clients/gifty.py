"""Gifty: bearer token, External Orders and gift card lookup (seed 003).

One GiftDesk card is one Gifty external order with digital fulfillment: the configuration
(`GET /v1/external-orders/configuration`) is the catalog and holds the consent versions an
order must accept; `POST /v1/external-orders/preview` prices cards with their fees before
the user confirms (`quote`); `POST /v1/external-orders` places the order under the
submission's idempotency key. An order answers `pending`, so the engine polls it
(`fetch_status`) until it is `completed` (delivered) or `cancelled` (failed).

Amounts cross the wire as integer cents; they are converted to and from Decimal major
units exactly, never through float.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

from django.core.cache import cache

from giftdesk.text import plural
from providers.clients.base import (
    AccountConfig, AccountError, Call, CardRequest, CardResult, CardStatus, CardUpdate, HttpProviderClient,
    OutcomeUnknown, ParsedWebhook, PermanentError, PricingKind, ProductInfo, ProviderError, Quote, Reply,
    SettingField, StatusRequest, SubmitRequest, SubmitResult, TransientError, VerifyResult, WebhookRejected,
    WebhookRequest, hmac_sha256_hex, parse_decimal, signature_matches, webhook_event,
)

logger = logging.getLogger(__name__)

API_URL = "https://api.gifty.nl"  # Seed 003: one host, no separate sandbox.
DOCUMENTED_URLS = {"sandbox": (API_URL, ""), "production": (API_URL, "")}

CONFIGURATION_PATH = "/v1/external-orders/configuration"
PREVIEW_PATH = "/v1/external-orders/preview"
ORDERS_PATH = "/v1/external-orders"
GIFT_CARD_PATH = "/v1/giftcards/{code}"
WEBHOOKS_PATH = "/v1/webhooks"

FULFILLMENT_MODE = "digital"  # "Email delivery" (seed 003, Fulfillment Modes)
MESSAGE_CUSTOMISATION = "personalised_message"
ORDER_SOURCE = "giftdesk"
DEFAULT_LANGUAGE = "en"
# Seed 003, Caching: "stale-while-revalidate caching on the configuration endpoint with a
# 1-hour TTL". A stale copy is used when refreshing it fails for a transient reason.
CONFIGURATION_TTL_SECONDS = 3600
CONFIGURATION_STALE_SECONDS = 24 * 3600
IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # seed 003, Idempotency
GIFT_CARD_CODE = re.compile(r"^[A-Za-z0-9]{16}$")  # "16 characters long"
GIFT_CARD_IN_PATH = re.compile(r"(/v1/giftcards/)([^/?#]+)")
CENTS = Decimal(100)

# Webhooks (assumptions 11 to 13 below).
SIGNATURE_HEADERS = ("X-Gifty-Signature", "X-Gifty-Webhook-Signature")
WEBHOOK_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
WEBHOOK_NAME = "GiftDesk order updates"
WEBHOOK_EVENTS = ("external_order.completed", "external_order.cancelled")
ORDER_EVENT_PREFIX = "external_order."
EVENT_STATUS = {
    "external_order.completed": CardStatus.DELIVERED,
    "external_order.cancelled": CardStatus.FAILED,
}
WEBHOOK_PAGE_SIZE = 100  # seed 003: limit "between 1 and 100"
WEBHOOK_MAX_PAGES = 10

STATUS_MAP = {
    "pending": CardStatus.PROCESSING,
    "processing": CardStatus.PROCESSING,
    "completed": CardStatus.DELIVERED,
    "cancelled": CardStatus.FAILED,
}
# The account refusals in Gifty's words, with what to do about each ({reason}: Gifty's).
ACCOUNT_REFUSALS = {
    401: "Gifty refused the API token: create a new token in the Gifty dashboard (Developers) and enter it on "
         "the account (Gifty said: {reason}).",
    402: "Gifty refused to charge the account: {reason}. Settle or top up the Gifty account, then resume sending.",
    403: "Gifty refused this API token access: {reason}. Check the token's permissions in the Gifty dashboard "
         "(Developers), or ask Gifty to enable the External Orders API for the account.",
}
# Readable names of the preview's amounts keys; other keys are shown as written.
AMOUNT_LABELS = {
    "customisations": "Customisations",
    "shipping": "Shipping",
    "tax": "Tax",
    "service_fee": "Service fee",
}

# Where the documents are silent (one place to correct with the full API reference):
# 1. Status lookup: seed 003 documents no way to read an external order back. We assume
#    `GET /v1/external-orders/{id}` answering {"data": <the order object create answers>}.
# 2. Idempotency: the Create Order section names `Idempotency-Key`; the Introduction names
#    `X-Gifty-Idempotency-Key` for every POST/PUT/PATCH. The create request carries BOTH,
#    with the same value (the submission's key), so a retry replays whichever Gifty
#    honours. Seed 003: a repeated key within 24 hours returns "the original response"
#    whatever the body, so the client checks the answer's metadata.external_reference is
#    the card's own. We assume only successful (2xx) answers are kept: a refused or
#    failed request may be sent again under the same key. After 24 hours a key is
#    forgotten (the engine gives up on a submission long before that).
# 3. Rate limit: going over 120 requests/minute answers 429 with `Retry-After` (seconds)
#    and the usual error body.
# 4. Money: the create answer's `amounts` has the preview's keys (line_items,
#    customisations, shipping, subtotal, tax, total; cents). A card's cost is its order's
#    total, fees included. In a Quote, subtotal = line_items (the cards' value), fees =
#    total - line_items, one readable line per other amounts key (not subtotal/total).
#    A fixed-price product's card value is pricing.price.including_tax; its line item
#    still carries configuration.amount (= that value) so Gifty checks what we expect.
# 5. Delivery: digital fulfillment emails the card to the order's customer, so the
#    customer is the recipient (name, email, phone, locale = the account's language). Gifty
#    has no sender field: the sender name is not sent. The card's message is the
#    `personalised_message` customisation (Gifty charges for it per order).
# 6. Consent: every consent the configuration marks required is sent as accepted with its
#    current version. A 422 naming consent means the cached configuration is stale: it is
#    fetched again and the order sent once more (same key: the refusal was not kept).
# 7. Gift card code: the create answer masks it ("************Q25Y"). The code is stored as
#    Gifty reports it; `card_details` refuses a masked code without calling Gifty.
# 8. A status other than pending/processing/completed/cancelled is treated as still
#    processing (the order exists: it must not be failed or bought again).
# 9. 402 is not documented; an answer with it means the account cannot pay for orders
#    (AccountError), as for the other providers. 403 means the token may not do this.
# 10. Gifty documents no scheduled delivery: a card with a send date after today is
#    refused before sending rather than emailed early.
# 11. Webhook signature (DESIGN.md): hex HMAC-SHA256 of the raw body, keyed with the
#    secret we gave when creating the webhook, in `X-Gifty-Signature`. Gifty's public
#    webhooks guide (docs.gifty.nl/en/webhooks, not in seed 003) names the header
#    `X-Gifty-Webhook-Signature`, with the same HMAC: either header is accepted. That guide
#    also mentions checking a timestamp, but names no header, so none is checked: a replay
#    is caught by the event id instead (stored once by the webhook view).
# 12. Webhook events: seed 003 lists no external order events and no payload. We assume
#    `external_order.processing`, `external_order.completed` and `external_order.cancelled`,
#    each posted as {"id": "evt_...", "type": ..., "created_at": ..., "data": <the external
#    order, as create answers it>}. `id` is unique per event (the same on every retry of
#    it). The order is found by data.metadata.external_reference (our order reference),
#    else by data.id. completed -> delivered (with the gift card as fetch_status reports
#    it, the full code as the order's card id); cancelled -> failed;
#    processing changes nothing (the worker's own answer moves an order to processing);
#    other event types are stored and change nothing.
# 13. Webhook registration: `POST /v1/webhooks` with our secret ("Should match the
#    requirements as described in the ." - the link is missing). We assume 16 to 128
#    letters, digits, dashes and underscores: seed 003's example (a UUID) and GiftDesk's
#    generated secrets (token_urlsafe(32)) both qualify. The endpoint must be HTTPS ("Should
#    be a HTTPS URL"), checked before sending. The secret is immutable, so a new secret
#    means a new webhook: after creating it, older webhooks of ours for the same endpoint
#    are deleted (best effort), so only one signs deliveries to it. Seed 003 shows no
#    DELETE answer; any 2xx (we assume 204) or 404 (already gone) is fine.


class GiftyClient(HttpProviderClient):
    kind = "gifty"
    display_name = "Gifty"
    credential_fields = {"api_token": "API token"}
    # Seed 003, "Authentication" and "Webhooks".
    credential_help = {
        "api_token": ("Create an API token on the developer's page in your Gifty dashboard; GiftDesk sends it "
                      "as the Bearer token of every request."),
        "webhook_secret": ("The private key that verifies a webhook's authenticity, given when the webhook is "
                           "created; “Register webhook” creates one and keeps it here."),
    }
    setting_fields = {
        "language": SettingField("Language of Gifty's messages", "Gifty's validation errors in English (en) or "
                                 "Dutch (nl).", default=DEFAULT_LANGUAGE),
    }
    documented_urls = DOCUMENTED_URLS
    # Assumption 2: the create request carries the key in both documented headers.
    idempotency_headers = ("Idempotency-Key", "X-Gifty-Idempotency-Key")
    # One external order per card: each carries its recipient as the order's customer.
    max_cards_per_submission = 1
    submission_group = ("currency",)
    supports_status = True  # the create answer is "pending" (seed 003)
    max_requests_per_minute = 120  # seed 003, "Rate Limiting"
    # Seed 003's ids, statuses, amounts (cents), catalog and errors. Not the gift card
    # `code`, nor the customer (our recipient: name, email, phone), nor the message's
    # customisation `value`, nor any `url`, nor the webhook `secret`.
    recorded_fields = frozenset({
        "id", "product_id", "external_reference", "source", "package",
        "status", "type", "mode", "model", "application", "events", "is_active", "notifications_enabled",
        "is_redeemable", "is_issuable", "is_extendable", "is_capturable", "promotional", "required", "accepted",
        "amount", "balance", "currency", "quantity", "line_items", "customisations", "shipping", "service_fee",
        "subtotal", "tax", "total", "including_tax", "excluding_tax", "minimum", "maximum", "suggested_amounts",
        "max_length", "supported_currencies", "supported_locales", "locale", "version", "fulfillment_modes",
        "available_for", "title", "description", "endpoint",
        "created_at", "expires_at", "captured_at",
        "message", "detail",
    })

    def __init__(self, account: AccountConfig, **kwargs: Any) -> None:
        super().__init__(account, **kwargs)
        self.token = (account.credentials.get("api_token") or "").strip()
        self.language = self.setting("language").strip().lower()
        digest = hashlib.sha256(f"{self.api_url}\0{self.token}".encode()).hexdigest()
        self._configuration_key = f"giftdesk:gifty-configuration:{account.id}:{digest[:32]}"
        self._configuration: dict[str, Any] | None = None
        self._configuration_is_fresh = False

    # --- Interface -------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        configuration = self._configuration_data(fresh=True)
        count = sum(1 for product in _products(configuration) if _is_digital(product))
        return VerifyResult(ok=True, message=f"Connected: {plural(count, 'product')} with email delivery.")

    def list_products(self) -> list[ProductInfo]:
        configuration = self._configuration_data(fresh=True)
        consent = _consent_versions(configuration)
        products = []
        for product in _products(configuration):
            if _is_digital(product):
                info = _parse_product(product, consent)
                if info is not None:
                    products.append(info)
        return products

    def quote(self, cards: list[CardRequest]) -> Quote | None:
        """Price the cards with Gifty's preview. Cards alike (product, amount, with or
        without a message) cost the same, so each kind is previewed once."""
        if not cards:
            return None
        groups: dict[tuple[str, int, bool, str], list[CardRequest]] = defaultdict(list)
        for card in cards:
            product = self._product(card.product_id)
            cents = _line_cents(card, product)
            groups[(card.product_id, cents, bool(card.message.strip()), card.currency.upper())].append(card)
        currencies = {key[3] for key in groups}
        if len(currencies) > 1:
            raise PermanentError(
                f"These cards are in several currencies ({', '.join(sorted(currencies))}); "
                "Gifty prices one currency at a time. Quote each currency separately."
            )
        subtotal = total = Decimal("0.00")
        fee_lines: dict[str, Decimal] = defaultdict(lambda: Decimal("0.00"))
        for (product_id, _, _, _), group in groups.items():
            product = self._product(product_id)
            body = self._order_body(group[0], product, self._configuration_data(), for_create=False)
            reply = self.api("POST", PREVIEW_PATH, body, refusal="refused the price preview")
            amounts = (reply.fields.get("data") or {}).get("amounts") or {}
            count = len(group)
            try:
                line_items = _from_cents(amounts["line_items"])
                order_total = _from_cents(amounts["total"])
            except (KeyError, PermanentError):
                raise PermanentError(
                    "Gifty's price preview did not say what the cards cost (no amounts). "
                    "Report this to Gifty support."
                ) from None
            subtotal += line_items * count
            total += order_total * count
            for key, value in amounts.items():
                if key in ("line_items", "subtotal", "total"):
                    continue
                fee_lines[key] += _from_cents(value) * count
        currency = currencies.pop()
        lines = tuple(
            f"{AMOUNT_LABELS.get(key, key.replace('_', ' ').capitalize())}: {amount} {currency}"
            for key, amount in fee_lines.items()
            if amount
        )
        return Quote(currency=currency, subtotal=subtotal, fees=total - subtotal, total=total, lines=lines)

    def submit(self, request: SubmitRequest) -> SubmitResult:
        if len(request.cards) != 1:
            raise PermanentError(
                f"Gifty places one order per card, but {len(request.cards)} cards came in one "
                "request. Report this to GiftDesk's maintainers."
            )
        card = request.cards[0]
        key = request.idempotency_key
        if not IDEMPOTENCY_KEY.match(key or ""):
            raise PermanentError(
                f"The idempotency key {key!r} is not one Gifty accepts (at most 128 letters, digits, "
                "dashes and underscores). Report this to GiftDesk's maintainers."
            )
        _check_send_date(card, request.send_at)
        product = self._product(card.product_id)
        for last_try in (False, True):
            body = self._order_body(card, product, self._configuration_data(), for_create=True)
            try:
                reply = self.api("POST", ORDERS_PATH, body, idempotency_key=key, commits=True,
                                 refusal="refused the order")
                break
            except PermanentError as exc:
                if last_try or not _names_consent(exc) or self._configuration_is_fresh:
                    raise
                # Gifty's terms changed since the configuration was cached: fetch them again.
                self._configuration_data(fresh=True)
                product = self._product(card.product_id)
        order = reply.fields.get("data") or {}
        order_id = str(order.get("id") or "")
        if not order_id:
            raise OutcomeUnknown(
                "Gifty accepted the order but its answer carries no order id. It will be "
                "checked with the same idempotency key, never sent again as new.",
                status_code=reply.status, response_body=reply.text,
            )
        reference = (order.get("metadata") or {}).get("external_reference")
        if reference not in (None, "", card.order_reference):
            raise PermanentError(
                f"Gifty answered with its order {order_id} for reference {reference}: the "
                f"idempotency key {key} was already used for another order. Nothing was bought "
                "for this card; report this to GiftDesk's maintainers.",
                status_code=reply.status, response_body=reply.text,
            )
        return SubmitResult(provider_reference=order_id, cards=[_card_result(card, order)])

    def fetch_status(self, request: StatusRequest) -> SubmitResult:
        order_id = request.provider_reference
        if not order_id:
            raise PermanentError(
                "There is no Gifty order id to look up. Check the order in the Gifty dashboard "
                "(search for the order reference) before sending the card again."
            )
        reply = self.api("GET", f"{ORDERS_PATH}/{url_quote(order_id, safe='')}",
                         refusal=f"could not report on its order {order_id}")
        order = reply.fields.get("data") or {}
        return SubmitResult(provider_reference=order_id, cards=[_card_result(card, order) for card in request.cards])

    def card_details(self, provider_card_id: str) -> dict[str, Any] | None:
        code = re.sub(r"[\s-]", "", provider_card_id or "")
        if "*" in code:
            raise PermanentError(
                f"Gifty only showed part of this gift card's code (ending {code[-4:]}), so "
                "GiftDesk cannot look it up. Find the card in the Gifty dashboard."
            )
        if not GIFT_CARD_CODE.match(code):
            # Never the code itself in a message: it is cash.
            raise PermanentError(
                f"The card code ending {code[-4:]} is not a Gifty gift card code (16 letters and digits)."
            )
        reply = self.api("GET", GIFT_CARD_PATH.format(code=code), refusal="could not show the gift card")
        data = reply.fields.get("data") or {}
        return {
            "balance": _from_cents(data.get("balance", 0)),
            "currency": data.get("currency") or "",
            "is_redeemable": bool(data.get("is_redeemable")),
            "expires_at": data.get("expires_at"),
        }

    # --- Webhooks (assumptions 11 to 13) -----------------------------------------------------

    def parse_webhook(self, request: WebhookRequest, secrets: list[str]) -> ParsedWebhook:
        """A Gifty event: hex HMAC-SHA256 of the raw body with one of our secrets, then
        {"id", "type", "data": <the external order>}."""
        given = next((value for value in (request.header(name).strip() for name in SIGNATURE_HEADERS) if value), "")
        if not given:
            raise WebhookRejected("Missing X-Gifty-Signature header.", status=401)
        if not any(signature_matches(hmac_sha256_hex(secret, request.body), given) for secret in secrets if secret):
            raise WebhookRejected("The signature does not match: check the account's webhook secret.", status=401)
        event_id, event_type, payload = webhook_event(request.body)
        updates: list[CardUpdate] = []
        if event_type.startswith(ORDER_EVENT_PREFIX):
            order = payload.get("data")
            if not isinstance(order, dict) or not order.get("id"):
                raise WebhookRejected(f"The {event_type} event carries no external order.")
            problem = _external_order_shape_problem(order)
            if problem:  # signed but shaped like nothing Gifty documents: 400, so it is not retried
                raise WebhookRejected(f"The {event_type} event's external order {problem}.")
            status = EVENT_STATUS.get(event_type)
            if status is not None:
                updates.append(_card_update(order, status))
        # The event id is stored under a unique constraint: a replay changes nothing.
        return ParsedWebhook(event_id=event_id, event_type=event_type, updates=updates, payload=payload)

    def register_webhook(self, url: str, secret: str) -> tuple[str, str]:
        """Create a Gifty webhook for `url` signed with our `secret` (Gifty never returns or
        changes it), then delete our older webhooks for the same address."""
        endpoint = (url or "").strip()
        parts = urlsplit(endpoint)
        if parts.scheme.lower() != "https" or not parts.netloc:
            raise PermanentError(
                f"Gifty only sends webhooks to HTTPS addresses, not {endpoint!r}. Serve GiftDesk "
                "over HTTPS at a public address, then register the webhook again."
            )
        if not WEBHOOK_SECRET.match(secret or ""):
            raise PermanentError(
                "Gifty needs a webhook secret of 16 to 128 letters, digits, dashes and underscores. "
                "Report this to GiftDesk's maintainers."
            )
        # The same address and secret: a retried registration creates one webhook, not two.
        # The Introduction's header only: Create Order's `Idempotency-Key` is not documented here.
        key = "giftdesk-webhook-" + hashlib.sha256(f"{endpoint}\0{secret}".encode()).hexdigest()[:48]
        body = {
            "name": WEBHOOK_NAME,
            "endpoint": endpoint,
            "secret": secret,
            "events": list(WEBHOOK_EVENTS),
            "status": "active",
            "notifications_enabled": True,
        }
        reply = self.api("POST", WEBHOOKS_PATH, body, headers={"X-Gifty-Idempotency-Key": key}, commits=True,
                         refusal="refused to create the webhook")
        webhook_id = str((reply.fields.get("data") or {}).get("id") or "")
        if not webhook_id:
            raise PermanentError(
                "Gifty answered without a webhook id. Check the webhooks in the Gifty dashboard "
                "(Developers) and delete any for this address before registering again.",
                status_code=reply.status, response_body=reply.text,
            )
        self._delete_older_webhooks(endpoint, keep=webhook_id)
        return webhook_id, secret

    # --- Requests ----------------------------------------------------------------------------

    def _delete_older_webhooks(self, endpoint: str, *, keep: str) -> None:
        """Best effort: a leftover webhook only sends duplicates (the same event ids)."""
        try:
            older = [str(webhook.get("id")) for webhook in self._webhooks()
                     if webhook.get("endpoint") == endpoint and webhook.get("id") and str(webhook.get("id")) != keep]
            for webhook_id in older:
                try:
                    self.api("DELETE", f"{WEBHOOKS_PATH}/{url_quote(webhook_id, safe='')}",
                             refusal=f"refused to delete the older webhook {webhook_id}")
                except PermanentError as exc:
                    if exc.status_code != 404:  # 404: already gone.
                        raise
        except ProviderError as exc:
            logger.warning("Gifty account %s: older webhooks for %s not deleted: %s", self.account.id, endpoint,
                           exc.message)

    def _webhooks(self) -> list[dict[str, Any]]:
        """Every webhook of the account, newest first (seed 003's cursor pagination)."""
        webhooks: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(WEBHOOK_MAX_PAGES):
            query = f"?limit={WEBHOOK_PAGE_SIZE}" + (f"&cursor_before={url_quote(cursor, safe='')}" if cursor else "")
            reply = self.api("GET", f"{WEBHOOKS_PATH}{query}", refusal="refused to list the webhooks")
            page = [item for item in (reply.fields.get("data") or []) if isinstance(item, dict)]
            webhooks.extend(page)
            if len(page) < WEBHOOK_PAGE_SIZE or not page[-1].get("id"):
                break
            cursor = str(page[-1]["id"])
        return webhooks

    def _configuration_data(self, *, fresh: bool = False) -> dict[str, Any]:
        """The configuration (the catalog, consent versions, limits), cached per account."""
        if not fresh and self._configuration is not None:
            return self._configuration
        entry = cache.get(self._configuration_key)
        now = time.time()
        if not fresh and entry and now - entry["fetched_at"] < CONFIGURATION_TTL_SECONDS:
            self._configuration, self._configuration_is_fresh = entry["data"], False
            return entry["data"]
        try:
            reply = self.api("GET", CONFIGURATION_PATH, refusal="refused to show its order configuration")
        except TransientError:
            if entry and not fresh:
                self._configuration, self._configuration_is_fresh = entry["data"], False
                return entry["data"]
            raise
        data = reply.fields.get("data")
        if not isinstance(data, dict) or not isinstance(data.get("products"), list):
            raise PermanentError(
                "Gifty's order configuration lists no products. Check that the External Orders "
                "API is enabled for this Gifty account.",
                status_code=reply.status, response_body=reply.text,
            )
        cache.set(self._configuration_key, {"fetched_at": now, "data": data}, timeout=CONFIGURATION_STALE_SECONDS)
        self._configuration, self._configuration_is_fresh = data, True
        return data

    def _product(self, product_id: str) -> dict[str, Any]:
        for fresh in (False, True):
            if fresh and self._configuration_is_fresh:
                break
            for product in _products(self._configuration_data(fresh=fresh)):
                if str(product.get("id")) == product_id:
                    return product
        raise PermanentError(
            f"Gifty no longer offers product {product_id}. Sync the catalog and choose another product."
        )

    def _locale(self, configuration: dict[str, Any]) -> str:
        supported = [str(locale) for locale in configuration.get("supported_locales") or []]
        if not supported or self.language in supported:
            return self.language
        return DEFAULT_LANGUAGE if DEFAULT_LANGUAGE in supported else supported[0]

    def _order_body(
        self, card: CardRequest, product: dict[str, Any], configuration: dict[str, Any], *, for_create: bool
    ) -> dict[str, Any]:
        line: dict[str, Any] = {
            "product_id": card.product_id,
            "configuration": {"amount": _line_cents(card, product)},
            "quantity": 1,
        }
        message = card.message.strip()
        if message:
            _check_message(product, message)
            line["customisations"] = [{"type": MESSAGE_CUSTOMISATION, "value": message}]
        customer = {"name": card.recipient_name, "email": card.recipient_email}
        if card.recipient_phone:
            customer["phone"] = card.recipient_phone
        customer["locale"] = self._locale(configuration)
        body: dict[str, Any] = {
            "currency": card.currency.upper(),
            "fulfillment": {"mode": FULFILLMENT_MODE},
            "line_items": [line],
            "customer": customer,
        }
        if for_create:
            body["consent"] = {
                name: {"accepted": True, "version": version}
                for name, version in _consent_versions(configuration, required_only=True).items()
            }
            body["metadata"] = {"source": ORDER_SOURCE, "external_reference": card.order_reference}
        return body

    # --- Hooks -------------------------------------------------------------------------------

    def recorded_url(self, url: str) -> str:
        # GET /v1/giftcards/{code}: the path carries the card's code.
        return GIFT_CARD_IN_PATH.sub(lambda match: f"{match[1]}****{match[2][-4:]}", url)

    def auth_headers(self) -> dict[str, str]:
        if not self.token:
            raise AccountError(
                "The Gifty account has no API token: create one in the Gifty dashboard "
                "(Developers) and enter it on the account."
            )
        return {"Authorization": f"Bearer {self.token}", "Accept-Language": self.language}

    def error_reason(self, reply: Reply) -> str:
        return _error_text(reply.fields)

    def refine_error(self, error: ProviderError, reply: Reply, reason: str, call: Call) -> ProviderError:
        if reply.status in ACCOUNT_REFUSALS:
            return error.reworded(ACCOUNT_REFUSALS[reply.status].format(reason=reason))
        if reply.status == 429:
            wait = f" in {error.retry_after:.0f} s" if error.retry_after is not None else ""
            return error.reworded(f"Gifty's rate limit ({self.max_requests_per_minute} requests per minute) "
                                  f"was reached. It will be retried{wait}.")
        return error


# --- Parsing -------------------------------------------------------------------------------------


def _error_text(data: dict[str, Any]) -> str:
    """Seed 003's error body as one sentence: the message, then details not already in it."""
    message = str(data.get("message") or "").strip()
    details: list[str] = []
    for error in data.get("errors") or []:
        if not isinstance(error, dict):
            continue
        text = str(error.get("detail") or error.get("title") or "").strip()
        if text and text not in message and text not in details:
            details.append(text)
    return "; ".join(part for part in [message, *details] if part)


def _names_consent(exc: PermanentError) -> bool:
    return exc.status_code == 422 and "consent" in exc.response_body.lower()


def _to_cents(amount: Decimal, currency: str) -> int:
    value = parse_decimal(amount)
    if value is None:
        raise PermanentError(f"{amount!r} is not an amount.")
    cents = value * CENTS
    if cents != cents.to_integral_value():
        raise PermanentError(
            f"{amount} {currency} has more than two decimals; Gifty takes amounts in whole cents. "
            "Round the amount to cents."
        )
    return int(cents)


def _from_cents(value: Any) -> Decimal:
    """Gifty's integer cents (a JSON integer, or digits in a string) as exact major units."""
    cents = parse_decimal(value) if isinstance(value, int | str) else None
    if cents is None or cents != cents.to_integral_value():
        raise PermanentError(f"Gifty answered an amount that is not a whole number of cents ({value!r}).")
    return cents.scaleb(-2)


def _products(configuration: dict[str, Any]) -> list[dict[str, Any]]:
    return [product for product in configuration.get("products") or [] if isinstance(product, dict)]


def _is_digital(product: dict[str, Any]) -> bool:
    return FULFILLMENT_MODE in (product.get("fulfillment_modes") or [])


def _consent_versions(configuration: dict[str, Any], *, required_only: bool = False) -> dict[str, str]:
    return {
        str(name): str(item.get("version"))
        for name, item in (configuration.get("consent") or {}).items()
        if isinstance(item, dict) and item.get("version") and (item.get("required") or not required_only)
    }


def _fixed_price_cents(pricing: dict[str, Any]) -> Any:
    price = pricing.get("price")
    return price.get("including_tax") if isinstance(price, dict) else price


def _parse_product(product: dict[str, Any], consent: dict[str, str]) -> ProductInfo | None:
    pricing = product.get("pricing") or {}
    common = {
        "provider_product_id": str(product["id"]),
        "sku": str(product["id"]),  # Gifty has no SKUs: the product id is the only handle.
        "title": str(product.get("title") or product["id"]),
        "currency": str(pricing.get("currency") or "").upper(),
        "delivery_methods": tuple(str(mode) for mode in product.get("fulfillment_modes") or []),
        # What a later order needs besides the id: the consent versions to accept.
        "raw": {**product, "consent_versions": consent},
    }
    if pricing.get("model") == "variable":
        limits = pricing.get("range") or {}
        return ProductInfo(
            pricing=PricingKind.RANGE,
            min_amount=_from_cents(limits["minimum"]) if "minimum" in limits else None,
            max_amount=_from_cents(limits["maximum"]) if "maximum" in limits else None,
            **common,
        )
    if pricing.get("model") == "fixed" and _fixed_price_cents(pricing) is not None:
        return ProductInfo(pricing=PricingKind.FIXED, denominations=(_from_cents(_fixed_price_cents(pricing)),),
                           **common)
    return None  # A pricing model GiftDesk does not know: not offered.


def _line_cents(card: CardRequest, product: dict[str, Any]) -> int:
    """The card's value in cents, after the checks Gifty would make anyway, before sending."""
    pricing = product.get("pricing") or {}
    currency = str(pricing.get("currency") or "").upper()
    if currency and card.currency.upper() != currency:
        raise PermanentError(
            f"{product.get('title') or card.product_id} is sold in {currency}, not {card.currency}. "
            f"Send this card in {currency}."
        )
    if not _is_digital(product):
        raise PermanentError(
            f"{product.get('title') or card.product_id} cannot be delivered by email at Gifty. "
            "Choose a product with digital delivery."
        )
    return _to_cents(card.amount, card.currency)


def _check_message(product: dict[str, Any], message: str) -> None:
    option = next(
        (option for option in product.get("customisation_options") or []
         if option.get("type") == MESSAGE_CUSTOMISATION
         and FULFILLMENT_MODE in (option.get("available_for") or [FULFILLMENT_MODE])),
        None,
    )
    title = product.get("title") or product.get("id")
    if option is None:
        raise PermanentError(f"{title} cannot carry a personal message at Gifty. Remove the message.")
    max_length = (option.get("constraints") or {}).get("max_length")
    if isinstance(max_length, int) and len(message) > max_length:
        raise PermanentError(
            f"The message has {len(message)} characters; Gifty allows at most {max_length}. Shorten it."
        )


def _check_send_date(card: CardRequest, send_at: datetime | None) -> None:
    today = date.today()
    later = None
    if card.send_on and card.send_on > today:
        later = card.send_on.isoformat()
    elif send_at is not None:
        moment = send_at if send_at.tzinfo else send_at.replace(tzinfo=UTC)
        if moment.date() > datetime.now(UTC).date():
            later = moment.date().isoformat()
    if later:
        raise PermanentError(
            f"Gifty cannot schedule delivery: this card would be emailed at once, not on {later}. "
            "Send it on that day, or remove the send date."
        )


def _card_result(card: CardRequest, order: dict[str, Any]) -> CardResult:
    order_id = str(order.get("id") or "")
    status = str(order.get("status") or "").lower()
    mapped = STATUS_MAP.get(status, CardStatus.PROCESSING)
    currency = str(order.get("currency") or card.currency).upper()
    total = (order.get("amounts") or {}).get("total")
    gift_card = _gift_card(order)
    details = _gift_card_details(gift_card, currency) if gift_card is not None else {}
    return CardResult(
        order_reference=card.order_reference,
        status=mapped,
        provider_order_id=order_id,
        cost=_from_cents(total) if total is not None else None,
        cost_currency=currency if total is not None else "",
        error=_cancelled_error(order_id) if mapped == CardStatus.FAILED else "",
        provider_card_id=str((gift_card or {}).get("code") or ""),
        details=details,
    )


def _gift_card(order: dict[str, Any]) -> dict[str, Any] | None:
    return next((item for item in order.get("gift_cards") or [] if isinstance(item, dict)), None)


def _external_order_shape_problem(order: dict[str, Any]) -> str:
    """What is wrong with the shape of a webhook's external order (seed 003), or ""."""
    if not isinstance(order.get("id"), str):
        return "has an id that is not text"
    if not isinstance(order.get("metadata", {}), dict | None):
        return "has metadata that is not an object"
    cards = order.get("gift_cards")
    if cards is not None and (not isinstance(cards, list) or not all(isinstance(card, dict) for card in cards)):
        return "has gift_cards that are not a list of gift cards"
    if any(not isinstance(card.get("code", ""), str | None) for card in cards or []):
        return "has a gift card code that is not text"
    return ""


def _gift_card_details(gift_card: dict[str, Any], currency: str) -> dict[str, Any]:
    # Strings, not Decimals: these are stored as JSON on the order.
    details = {"gift_card_id": gift_card.get("id") or "", "currency": gift_card.get("currency") or currency}
    if gift_card.get("balance") is not None:
        details["balance"] = str(_from_cents(gift_card["balance"]))
    for key in ("is_redeemable", "expires_at"):
        if key in gift_card:
            details[key] = gift_card[key]
    return details


def _cancelled_error(order_id: str) -> str:
    return f"Gifty cancelled the order {order_id}. Ask Gifty why before sending this card again."


def _card_update(order: dict[str, Any], status: CardStatus) -> CardUpdate:
    """What a signed external order event says of our card (assumption 12)."""
    order_id = str(order.get("id") or "")
    metadata = order.get("metadata") if isinstance(order.get("metadata"), dict) else {}
    reference = str(metadata.get("external_reference") or "")
    if status == CardStatus.FAILED:
        return CardUpdate(status=status, order_reference=reference, provider_order_id=order_id,
                          error=_cancelled_error(order_id))
    details: dict[str, Any] = {}
    gift_card = _gift_card(order)
    if gift_card is not None:
        currency = str(order.get("currency") or "").upper()
        try:
            details = _gift_card_details(gift_card, currency)
        except PermanentError:  # An odd balance must not lose a delivery: keep the rest.
            details = _gift_card_details({**gift_card, "balance": None}, currency)
        code = str(gift_card.get("code") or "")
    else:
        code = ""
    # The full code goes to the order's card id (for card_details), never into the details.
    return CardUpdate(status=status, order_reference=reference, provider_order_id=order_id, details=details,
                      provider_card_id=code if code and "*" not in code else "")


Client = GiftyClient

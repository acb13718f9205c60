"""UGiftMe business API: `X-API-Key`, catalog, wallet, and sync or async orders (seed 004).

One provider order is one `POST /orders` (one card) or `POST /orders/bulk` (several), under
the submission's `Idempotency-Key`. With async processing on, UGiftMe answers 202 and an
`orderRequestId`, stored (remember_reference) before submit returns; `fetch_status` then
polls `GET /orders/order-requests/{id}` until it succeeded or failed. With async off it
answers 201 with the created order(s).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

from providers.clients.base import (
    Balance,
    Call,
    CardRequest,
    CardResult,
    CardStatus,
    CardUpdate,
    HttpProviderClient,
    OutcomeUnknown,
    ParsedWebhook,
    PermanentError,
    PricingKind,
    ProductInfo,
    ProviderError,
    Reply,
    StatusRequest,
    SubmitRequest,
    SubmitResult,
    VerifyResult,
    WebhookRejected,
    WebhookRequest,
    hmac_sha256_hex,
    parse_decimal,
    signature_matches,
    webhook_event,
)

# Seed 004, first paragraph. No token URL: the API key goes on every request.
DOCUMENTED_URLS = {
    "sandbox": ("https://api-stage.ugift.me/api/v1/business", ""),
    "production": ("https://api.ugift.me/api/v1/business", ""),
}

# --- Where the documents are silent -----------------------------------------------------------
# Seed 004 documents auth, /auth, async orders, Idempotency-Key and the error table; the rest
# is assumed here (DESIGN.md, "Where the documents are silent", and the choices below). The
# UGiftMe emulator implements exactly these assumptions.
# - Order body: {"productId", "amount", "currency", "recipient": {"name", "email"},
#   "message", "reference"}; `reference` is our order reference. Bulk: {"orders": [...]}.
#   Amounts are JSON numbers in major units (50, 12.5). The body is built in a fixed key
#   order from the cards sorted by reference, so the same cards give byte-identical JSON
#   under the same Idempotency-Key (UGiftMe answers 400 to a key reused with another body).
# - No field for a delivery date or a sender is documented: cards go out when ordered, so a
#   card dated later is refused before anything is sent (as Gifty's), never emailed early.
# - Catalog: GET /products -> {"products": [{"id", "name", "currency", "denominations"} or
#   {"id", "name", "currency", "minAmount", "maxAmount"}]}; no SKU and no step (a range
#   takes any amount with cents). Cards are delivered by email (recipient.email).
# - Wallet: GET /wallet -> {"balance", "currency"}; one wallet currency per business.
# - A created order: {"order": {"id", "status", "reference", ...}}; bulk: {"orders": [...]},
#   each echoing our `reference`. Order status "completed"/"fulfilled"/"delivered" ->
#   delivered; "failed"/"cancelled"/"rejected" -> failed; anything else ("pending",
#   "processing", ...) -> still processing. Each order may carry "charged": {"amount",
#   "currency"}, what the wallet paid for it (our cost).
# - An order request: {"orderRequestId", "status": "queued|processing|succeeded|failed",
#   "result", "errors"}. `result` is null until the request finished, then {"order": {...}}
#   for POST /orders and {"orders": [...]} for POST /orders/bulk (the orders it created).
#   `errors` is a list of {"reference", "error", "message"} (or plain strings); an error
#   without a reference concerns every card the result does not mention. A bulk request
#   may succeed for some orders and list the others in `errors`.
# - Orders are matched to our cards by `reference`; if no order carries one, by position
#   (UGiftMe keeps the request's order).
# - A synchronous (201) order still pending is looked up with GET /orders/{id} ->
#   {"order": {...}}; a synchronous order's provider reference is "order:<id>[,<id>...]" (the
#   ids of every order it created), while an async one is the bare orderRequestId.
# - 429: the wait is read from the standard headers as base.rate_limit_wait reads them
#   (Retry-After, else RateLimit-Reset, else X-RateLimit-Reset: seconds or a Unix time).
# - 402 body: {"error": "Insufficient funds", "required", "available", "currency"}, amounts
#   as numbers in the wallet's currency.
# - 403 on order calls means the same as on /auth (IP allow list, incomplete business,
#   access denied): the whole account is refused.
# - Webhook subscription (seed 004 documents the paths and the PATCH answer only): POST
#   /webhooks {"url", "events", "description"} -> 201 {"message", "webhook": {"_id", "url",
#   "events", "description", "isActive", "secret"}}, the secret in `webhook` (a top-level
#   `secret` is read too); GET /webhooks -> {"webhooks": [...]} without secrets; DELETE
#   /webhooks/{id} -> 200. A 400 may add "validEvents" (seed 004's error table).
# - Registering subscribes the URL to every order.* event; an older subscription of the same
#   URL is then deleted (best effort), so one event is not delivered twice under two secrets.
# - Webhook delivery (DESIGN.md): `X-Webhook-Signature` is the hex HMAC-SHA256 of the raw
#   body, keyed with the secret string exactly as UGiftMe returned it (UTF-8 bytes), no
#   prefix (a "sha256=" prefix is tolerated). No timestamp is signed, so no age check: a
#   replay is caught by the event id alone.
# - Delivery body: {"id": "evt_...", "type": "<event>", "createdAt": "<ISO 8601>", "data":
#   {...}}; `id` stays the same when UGiftMe retries a delivery. order.* events carry
#   "data": {"order": {"id", "reference", "status", ...}} (the order as GET /orders/{id}
#   shows it; `reference` is ours, `id` may be null when the order was refused before it
#   was created). order.succeeded -> delivered; order.failed -> failed, the reason in the
#   order's "error" and "failureReason" (or "reason"; not its "message", the greeting),
#   else in data's "error" and "message" (or "reason"); order.queued/order.processing
#   change nothing (a card still being sent must stay with the worker that sends it);
#   wallet.updated, product.updated and types this client does not know are accepted and
#   change nothing.
ORDER_REFERENCE_PREFIX = "order:"
DELIVERED_STATUSES = frozenset({"completed", "fulfilled", "delivered", "succeeded"})
FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled", "rejected"})
DELIVERY_METHOD = "Email"
CENT = Decimal("0.01")
# Seed 004, "Allowed events".
ORDER_EVENTS = ("order.queued", "order.processing", "order.succeeded", "order.failed")
WEBHOOK_EVENTS = ORDER_EVENTS + ("product.updated", "wallet.updated")
WEBHOOK_SIGNATURE_HEADER = "X-Webhook-Signature"
WEBHOOK_DESCRIPTION = "GiftDesk order status updates"


class UGiftMeClient(HttpProviderClient):
    kind = "ugiftme"
    display_name = "UGiftMe"
    credential_fields = {"api_key": "API key"}
    # Seed 004, "Authentication" and "Webhooks (B2B)".
    credential_help = {
        "api_key": ("Your integration API key, issued from the UGiftMe dashboard (sent as X-API-Key). If an IP "
                    "whitelist is configured on the key, GiftDesk's server address must be on it."),
        "webhook_secret": ("UGiftMe returns the secret once, when the webhook is registered, to verify "
                           "X-Webhook-Signature; “Register webhook” keeps it here."),
    }
    documented_urls = DOCUMENTED_URLS
    # Seed 004's ids, statuses, amounts, catalog, webhook types and errors. Not a card's
    # code, PIN, number or claim link (`claimLink`, `cardNumber`...), nor the recipient,
    # nor a webhook's `secret` or `url`, nor the API key's prefix.
    recorded_fields = frozenset({
        "id", "_id", "orderRequestId", "reference", "webhookId", "productId", "productName", "status", "type",
        "event", "events", "validEvents", "isActive", "description", "amount", "charged", "currency", "balance",
        "denominations", "minAmount", "maxAmount", "required", "available",
        "createdAt", "updatedAt", "error", "message", "reason", "failureReason",
    })
    # No documented cap on POST /orders/bulk; 100 is what the emulator allows.
    max_cards_per_submission = 100
    # One request is paid from one wallet; one currency per request keeps costs readable.
    submission_group = ("currency",)
    # Seed 004 documents a 429 with rate-limit headers but no number: new accounts get
    # models.RATE_LIMIT_FALLBACK, and a 429's wait is honoured.
    max_requests_per_minute = None
    supports_status = True
    reports_balance = True  # GET /wallet

    # --- Interface -------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        data = self.api("GET", "/auth").fields
        business = data.get("business") if isinstance(data.get("business"), dict) else {}
        name = business.get("name") or data.get("businessName") or data.get("name")
        who = f" as {name}" if name else ""
        return VerifyResult(ok=True, message=f"Connected to UGiftMe ({self.account.environment}){who}.")

    def list_products(self) -> list[ProductInfo]:
        products = self.api("GET", "/products").fields.get("products")
        return [_parse_product(item) for item in products or [] if isinstance(item, dict)]

    def balance(self) -> Balance:
        data = self.api("GET", "/wallet").fields
        amount = parse_decimal(data.get("balance"))
        if amount is None:
            raise PermanentError(
                "UGiftMe answered GET /wallet without a balance. Report this to UGiftMe support.",
                response_body=str(data)[:500],
            )
        return Balance(amount=amount, currency=str(data.get("currency") or "").upper())

    def submit(self, request: SubmitRequest) -> SubmitResult:
        if request.provider_reference:
            # An earlier attempt was accepted and its reference stored: follow that order
            # instead of sending it again.
            return self.fetch_status(StatusRequest(
                request.provider_reference, request.cards, request.idempotency_key))
        cards = sorted(request.cards, key=lambda card: card.order_reference)
        later = sorted({card.send_on for card in cards if card.send_on and card.send_on > date.today()})
        if later:
            raise PermanentError(
                f"UGiftMe cannot schedule delivery: this card would be emailed at once, not on "
                f"{later[0].isoformat()}. Send it on that day, or remove the send date."
            )
        if len(cards) == 1:
            path, body = "/orders", _order_body(cards[0])
        else:
            path, body = "/orders/bulk", {"orders": [_order_body(card) for card in cards]}
        reply = self.api("POST", path, body, idempotency_key=request.idempotency_key, commits=True)
        data = reply.fields
        if reply.status == 202:
            order_request_id = str(data.get("orderRequestId") or "")
            if not order_request_id:
                raise _unknown_outcome(reply, "UGiftMe accepted the order (HTTP 202) but gave no "
                                              "orderRequestId to follow it.")
            request.remember_reference(order_request_id)
            return SubmitResult(order_request_id, _order_request_cards(data, cards))
        orders = _orders_of(data)
        if not orders:
            raise _unknown_outcome(reply, f"UGiftMe answered HTTP {reply.status} without the created order.")
        results = _cards_from_orders(orders, cards, unmatched=_missing_card)
        # Every created order's id, delivered ones too: a later lookup (a reconciliation)
        # must find each card, not only those still pending.
        reference = ORDER_REFERENCE_PREFIX + ",".join(str(order.get("id")) for order in orders if order.get("id"))
        if any(_card_status(order) == CardStatus.PROCESSING for order in orders):
            request.remember_reference(reference)
        return SubmitResult(reference, results)

    def fetch_status(self, request: StatusRequest) -> SubmitResult:
        reference = request.provider_reference
        cards = sorted(request.cards, key=lambda card: card.order_reference)
        if reference.startswith(ORDER_REFERENCE_PREFIX):
            order_ids = [part for part in reference[len(ORDER_REFERENCE_PREFIX):].split(",") if part]
            orders = []
            for order_id in order_ids:
                order = self.api("GET", f"/orders/{quote(order_id, safe='')}").fields.get("order")
                if isinstance(order, dict):
                    orders.append(order)
            return SubmitResult(reference, _cards_from_orders(orders, cards, unmatched=_missing_card))
        data = self.api("GET", f"/orders/order-requests/{quote(reference, safe='')}").fields
        return SubmitResult(reference, _order_request_cards(data, cards))

    # --- Webhooks (seed 004, "Webhooks (B2B)") -----------------------------------------------

    def parse_webhook(self, request: WebhookRequest, secrets: list[str]) -> ParsedWebhook:
        """A UGiftMe delivery: `X-Webhook-Signature` = hex HMAC-SHA256 of the raw body with the
        subscription secret (DESIGN.md); the body is one event (see the assumptions above)."""
        given = request.header(WEBHOOK_SIGNATURE_HEADER).strip()
        if given.lower().startswith("sha256="):
            given = given[len("sha256="):]
        if not given:
            raise WebhookRejected(f"Missing {WEBHOOK_SIGNATURE_HEADER} header.", status=401)
        if not any(signature_matches(hmac_sha256_hex(secret, request.body), given) for secret in secrets):
            raise WebhookRejected(
                "The signature does not match: check the account's webhook secret (UGiftMe shows it "
                "once, when the webhook is registered).", status=401)
        event_id, event_type, payload = webhook_event(request.body)
        data = payload.get("data")
        updates: list[CardUpdate] = []
        if event_type in ORDER_EVENTS:
            order = data.get("order") if isinstance(data, dict) else None
            if not isinstance(order, dict):
                raise WebhookRejected(f"The {event_type} event carries no data.order.")
            # Signed but shaped like nothing UGiftMe sends: 400, so it is not retried forever.
            if any(order.get(key) is not None and (not isinstance(order[key], str | int) or isinstance(order[key], bool))
                   for key in ("id", "reference")):
                raise WebhookRejected(f"The {event_type} event's order id or reference is not an id.")
            update = _webhook_update(event_type, order, data)
            if update is not None:
                updates.append(update)
        # The event id identifies the event (kept across retries): stored under a unique
        # constraint, a replay changes nothing.
        return ParsedWebhook(event_id=event_id, event_type=event_type, updates=updates, payload=payload)

    def register_webhook(self, url: str, secret: str) -> tuple[str, str]:
        """Subscribe `url` to UGiftMe's order.* events (POST /webhooks). UGiftMe generates
        the signing secret itself and returns it once: the `secret` argument is ignored and
        UGiftMe's secret is returned, with the new subscription's id. An older subscription
        of the same URL is deleted afterwards (best effort)."""
        body = {"url": url, "events": list(ORDER_EVENTS), "description": WEBHOOK_DESCRIPTION}
        reply = self.api("POST", "/webhooks", body, commits=True)
        data = reply.fields
        webhook = data.get("webhook") if isinstance(data.get("webhook"), dict) else data
        webhook_id = str(webhook.get("_id") or webhook.get("id") or data.get("_id") or data.get("id") or "")
        provider_secret = str(webhook.get("secret") or data.get("secret") or "")
        if not webhook_id:
            raise PermanentError(
                f"UGiftMe answered HTTP {reply.status} without the new webhook's id. Check the "
                f"webhooks in the UGiftMe dashboard, delete any for {url}, then register again.",
                status_code=reply.status, response_body=json.dumps(self.recordable(data))[:500])
        if not provider_secret:
            self._delete_webhook_quietly(webhook_id)
            raise PermanentError(
                f"UGiftMe created webhook {webhook_id} but returned no secret to verify its "
                "deliveries with; it was deleted again. Register again, or report this to UGiftMe.",
                status_code=reply.status)
        self._delete_other_webhooks(url, keep=webhook_id)
        return webhook_id, provider_secret

    def _delete_other_webhooks(self, url: str, *, keep: str) -> None:
        try:
            data = self.api("GET", "/webhooks").data
        except ProviderError:
            return
        items = data.get("webhooks") if isinstance(data, dict) else data
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            webhook_id = str(item.get("_id") or item.get("id") or "")
            if webhook_id and webhook_id != keep and item.get("url") == url:
                self._delete_webhook_quietly(webhook_id)

    def _delete_webhook_quietly(self, webhook_id: str) -> None:
        try:
            self.api("DELETE", f"/webhooks/{quote(webhook_id, safe='')}")
        except ProviderError:
            pass  # the new subscription works; a leftover one only sends duplicates

    # --- Authentication and error refinements -------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        # Sent even when empty: UGiftMe's own 401 "Missing API key" then says what to fix.
        return {"X-API-Key": self.account.credentials.get("api_key", "")}

    def error_reason(self, reply: Reply) -> str:
        return _error_text(reply.fields)

    def refine_error(self, error: ProviderError, reply: Reply, reason: str, call: Call) -> ProviderError:
        data, status = reply.fields, reply.status
        if status == 401:
            name = str(data.get("error") or "").strip()
            if "missing" in name.lower():
                return error.reworded(
                    "UGiftMe says the request carried no API key. Enter the account's API key "
                    "(UGiftMe dashboard, integrations), then resume sending.")
            why = str(data.get("reason") or "").strip()
            return error.reworded(
                f"UGiftMe rejected the API key ({name or 'Invalid API key'}{': ' + why if why else ''}). "
                "Check the key in the UGiftMe dashboard (it may have been revoked; sandbox and production "
                f"keys differ, this account is {self.account.environment}), enter it again, then resume sending.")
        if status == 402:
            return error.reworded(_insufficient_funds_message(data))
        if status == 403:
            lowered = reason.lower()
            if "ip" in lowered.split() or "whitelist" in lowered or "allow" in lowered:
                advice = ("Add this server's public IP address to the API key's IP allow list in the "
                          "UGiftMe dashboard (or remove the list), then resume sending.")
            elif "business" in lowered or "incomplete" in lowered or "profile" in lowered:
                advice = "Complete the business profile in the UGiftMe dashboard, then resume sending."
            else:
                advice = ("Check in the UGiftMe dashboard that this API key may use the business "
                          "API and this resource, then resume sending.")
            return error.reworded(f"UGiftMe refused access ({reason}). {advice}")
        if status == 404:
            return error.reworded(
                f"UGiftMe found nothing at {call.method} {call.path} ({reason}). If an order was placed, "
                "check UGiftMe's order history before sending it again.")
        if status == 400 and "idempotency" in reason.lower():
            return error.reworded(
                "UGiftMe refused a retry because it differs from the first request sent under the "
                f"same idempotency key ({reason}). This retry bought nothing, but the first request may "
                "have: check UGiftMe's order history before sending these cards again, and report "
                "this to GiftDesk's maintainers.")
        valid = data.get("validEvents")
        if isinstance(error, PermanentError) and isinstance(valid, list) and valid:
            return error.reworded(f"UGiftMe {call.refusal}: {reason} "
                                  f"(valid events: {', '.join(str(event) for event in valid)})")
        return error


# --- Requests and answers -----------------------------------------------------------------------


def _order_body(card: CardRequest) -> dict[str, Any]:
    """One order, keys in a fixed order (the JSON must be the same for the same card)."""
    return {
        "productId": card.product_id,
        "amount": card.amount.quantize(CENT),
        "currency": card.currency.upper(),
        "recipient": {"name": card.recipient_name, "email": card.recipient_email},
        "message": card.message or "",
        "reference": card.order_reference,
    }


def _unknown_outcome(reply: Reply, what_happened: str) -> OutcomeUnknown:
    """An order answer this client cannot follow: the order may exist, so it is asked again."""
    return OutcomeUnknown(f"{what_happened} It will be asked again with the same idempotency key.",
                          status_code=reply.status, response_body=reply.text)


def _amount_text(value: Any) -> str:
    amount = parse_decimal(value)
    return "?" if amount is None else f"{amount.quantize(CENT, ROUND_HALF_UP):,.2f}"


def _insufficient_funds_message(data: dict[str, Any]) -> str:
    currency = str(data.get("currency") or "").upper()
    unit = f" {currency}" if currency else ""
    if data.get("available") is None and data.get("required") is None:
        return ("UGiftMe refused the order: the wallet does not hold enough funds. Top up the "
                "wallet, then resume sending.")
    return (f"UGiftMe wallet has {_amount_text(data.get('available'))}{unit}, this order needs "
            f"{_amount_text(data.get('required'))}{unit}: top up the wallet, then resume sending.")


def _orders_of(container: Any) -> list[dict[str, Any]]:
    """The orders of a created-order answer or an order request's `result`."""
    if not isinstance(container, dict):
        return []
    if isinstance(container.get("order"), dict):
        return [container["order"]]
    return [order for order in container.get("orders") or [] if isinstance(order, dict)]


def _card_status(order: dict[str, Any]) -> CardStatus:
    status = str(order.get("status") or "").strip().lower()
    if status in DELIVERED_STATUSES:
        return CardStatus.DELIVERED
    if status in FAILED_STATUSES:
        return CardStatus.FAILED
    return CardStatus.PROCESSING


def _card_from_order(card: CardRequest, order: dict[str, Any]) -> CardResult:
    status = _card_status(order)
    charged = order.get("charged") if isinstance(order.get("charged"), dict) else {}
    cost = parse_decimal(charged.get("amount"))
    error = ""
    if status == CardStatus.FAILED:
        detail = _error_text(order) or f"status {order.get('status')}"
        error = f"UGiftMe could not fulfil this card ({detail})."
    return CardResult(
        order_reference=card.order_reference,
        status=status,
        provider_order_id=str(order.get("id") or ""),
        cost=cost,
        cost_currency=str(charged.get("currency") or "").upper() if cost is not None else "",
        error=error,
    )


def _webhook_update(event_type: str, order: dict[str, Any], data: dict[str, Any]) -> CardUpdate | None:
    """What an order.* event says of our card; None when it changes nothing."""
    if event_type not in ("order.succeeded", "order.failed"):
        return None  # queued / processing: the card is already on its way
    reference = order.get("reference")
    order_id = order.get("id")
    reference = str(reference).strip() if isinstance(reference, str | int) and not isinstance(reference, bool) else ""
    order_id = str(order_id).strip() if isinstance(order_id, str | int) and not isinstance(order_id, bool) else ""
    if not reference and not order_id:
        return None  # nothing to find the card by
    if event_type == "order.succeeded":
        return CardUpdate(CardStatus.DELIVERED, order_reference=reference, provider_order_id=order_id)
    # Not the order's "message": on an order that is the recipient's greeting.
    detail = _error_text({"error": order.get("error"), "reason": order.get("failureReason") or order.get("reason")})
    detail = detail or _error_text(data) or "UGiftMe gave no reason"
    return CardUpdate(CardStatus.FAILED, order_reference=reference, provider_order_id=order_id,
                      error=f"UGiftMe could not fulfil this card ({detail}).")


def _missing_card(card: CardRequest) -> CardResult:
    return CardResult(
        order_reference=card.order_reference, status=CardStatus.FAILED,
        error="UGiftMe's answer does not mention this card. Check UGiftMe's order history for "
              f"reference {card.order_reference} before sending it again.",
    )


def _cards_from_orders(orders, cards, *, unmatched) -> list[CardResult]:
    by_reference = {str(order["reference"]): order for order in orders if order.get("reference")}
    if not by_reference and len(orders) == len(cards):
        by_reference = {card.order_reference: order for card, order in zip(cards, orders)}
    return [
        _card_from_order(card, by_reference[card.order_reference])
        if card.order_reference in by_reference else unmatched(card)
        for card in cards
    ]


def _error_text(item: Any) -> str:
    if isinstance(item, str):
        return item.strip()
    if not isinstance(item, dict):
        return ""
    error = str(item.get("error") or "").strip()
    message = str(item.get("message") or item.get("reason") or "").strip()
    return ": ".join(part for part in (error, message) if part)


def _order_request_cards(data: dict[str, Any], cards: list[CardRequest]) -> list[CardResult]:
    """What an order request (or the 202 that created it) says of each card."""
    status = str(data.get("status") or "").strip().lower()
    orders = _orders_of(data.get("result"))
    errors = [item for item in data.get("errors") or [] if _error_text(item)]
    card_errors: dict[str, str] = {}
    general: list[str] = []
    for item in errors:
        reference = item.get("reference") if isinstance(item, dict) else None
        if reference:
            card_errors.setdefault(str(reference), _error_text(item))
        else:
            general.append(_error_text(item))

    def unmatched(card: CardRequest) -> CardResult:
        if card.order_reference in card_errors:
            reason = card_errors[card.order_reference]
        elif status == "failed":
            reason = "; ".join(general) or "UGiftMe reports the order request as failed, without a reason"
        elif status == "succeeded":
            return _missing_card(card)
        else:  # queued, processing, or a status this client does not know yet
            return CardResult(card.order_reference, CardStatus.PROCESSING)
        return CardResult(card.order_reference, CardStatus.FAILED,
                          error=f"UGiftMe refused this card: {reason}.")

    if card_errors:
        # Cards named in `errors` were not created, whatever the position of the orders.
        matched = _cards_from_orders(orders, [c for c in cards if c.order_reference not in card_errors],
                                     unmatched=unmatched)
        by_reference = {result.order_reference: result for result in matched}
        return [by_reference.get(card.order_reference) or unmatched(card) for card in cards]
    return _cards_from_orders(orders, cards, unmatched=unmatched)


def _parse_product(item: dict[str, Any]) -> ProductInfo:
    currency = str(item.get("currency") or "").upper()
    common = {
        "provider_product_id": str(item.get("id") or ""),
        "sku": "",
        "title": str(item.get("name") or item.get("id") or ""),
        "currency": currency,
        "delivery_methods": (DELIVERY_METHOD,),
        "raw": item,
    }
    denominations = [parse_decimal(value) for value in item.get("denominations") or []]
    denominations = [value for value in denominations if value is not None]
    if denominations:
        return ProductInfo(pricing=PricingKind.FIXED, denominations=tuple(sorted(denominations)), **common)
    return ProductInfo(
        pricing=PricingKind.RANGE,
        min_amount=parse_decimal(item.get("minAmount")),
        max_amount=parse_decimal(item.get("maxAmount")),
        **common,
    )


Client = UGiftMeClient

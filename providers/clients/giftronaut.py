"""Giftronaut: OAuth client credentials, branded-card catalog, multi-recipient orders (seed 002).

A provider order is one `POST /api/v1/orders/branded-card` for one product, carrying many
recipients and one email (sender, subject, message), under an `X-Idempotency-Key`: the same
key returns the original order instead of creating a duplicate (seed 002, step 4). The
order is fulfilled asynchronously, PENDING -> IN_PROGRESS -> COMPLETE, so `submit` answers
PROCESSING cards and `fetch_status` reads `GET /api/v1/orders/{orderId}` until each
recipient was sent or bounced.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from providers.clients.base import (AccountError, Call, CardRequest, CardResult, CardStatus, PermanentError,
                                    PricingKind, ProductInfo, ProviderError, Reply, SettingField,
                                    StatusRequest, SubmitRequest, SubmitResult, TransientError, VerifyResult,
                                    parse_decimal)
from providers.clients.tokens import TOKEN_EXCHANGE_FIELDS, OAuthClient

# Seed 002, "Before you begin": one base URL; the credentials decide the environment.
API_BASE_URL = "https://api.giftronaut.com"
DOCUMENTED_URLS = {
    "sandbox": (API_BASE_URL, ""),
    "production": (API_BASE_URL, ""),
}
TOKEN_PATH = "/oauth2/token"  # relative to the API base URL unless the account's auth_url is set
SCOPES = "orders.read orders.write catalog.read"  # seed 002, step 2
CATALOG_PATH = "/api/v1/catalog/branded-cards"
ORDER_PATH = "/api/v1/orders/branded-card"
STATUS_PATH = "/api/v1/orders/{order_id}"
DEFAULT_SUBJECT = "You have received a gift card!"  # the seed's example subject
CENT = Decimal("0.01")

# Where the documents are silent (one place to correct with the full API reference):
# - Error bodies: every 4xx/5xx of the API carries {"error": code, "message": text} (DESIGN).
#   400 (malformed request) and 422 (a rule such as an amount outside the card's
#   denominations or range) refuse the order for good; 401 means the token is bad or
#   expired (renewed once); 403 a missing scope or a refused account; 404 an unknown
#   order or product; 429 and 5xx may carry Retry-After.
# - Insufficient balance: 402 {"error": "insufficient_balance", "message", "required",
#   "available"}, each amount a number or a money object {"amount", "currency"} like
#   `totalCost`.
# - Idempotency: the same X-Idempotency-Key with another body is refused with
#   409 {"error": "idempotency_conflict", "message"}; the same key and body returns the
#   original order (in its current state); a refused request does not use the key up.
# - The token endpoint answers errors as RFC 6749 does: {"error": "invalid_client" |
#   "invalid_scope" | ..., "error_description"}, with 400 or 401.
# - Names: the order wants firstName and lastName, GiftDesk keeps one name. The last word
#   is the last name, the rest the first name; a one-word name is a first name with
#   lastName "".
# - Scheduling: SubmitRequest.send_at becomes sendTiming {"type": "SCHEDULED",
#   "scheduledAt": ISO-8601 UTC, e.g. "2024-03-15T09:00:00Z"}; otherwise
#   {"type": "IMMEDIATE"}. Timing is per order, so the engine groups cards by their send_on
#   date; a group's send_on (09:00 UTC that day) is used when the batch has no send_at.
# - Status: `GET /api/v1/orders/{orderId}` answers the order shape of step 4 plus
#   `bouncedCount` and `recipients: [{"email", "amount", "status": "PENDING|SENT|BOUNCED",
#   "bounceReason"}]` in request order. Cards are matched to recipients by email and amount,
#   in order. A SENT recipient of a COMPLETE order is delivered; a BOUNCED one failed with
#   its bounceReason; others are processing while the order is PENDING or IN_PROGRESS, and
#   failed (check the portal) once it is COMPLETE without them sent. Without a recipients
#   list, a COMPLETE order with bouncedCount 0 is delivered, and one with bounces fails its
#   cards with a message to check the portal before resending (the counts do not say
#   which). An order status other than the three documented ones is final: its unsent
#   cards fail.
# - A new order answers 201 with the order, created PENDING (the seed: "PENDING or
#   IN_PROGRESS"); a replay answers 200 with the original order as it is now. Recipients are
#   resolved (SENT or BOUNCED) when the order becomes COMPLETE; a SCHEDULED order stays
#   PENDING until its time.
# - Order validation: a malformed body (not JSON, missing or mistyped field) is 400
#   invalid_request; a rule broken by a well-formed order (unknown productId, amount not
#   sold, invalid email) is 422; amounts are JSON numbers in major units, at most 2
#   decimals; lastName may be ""; emailSetting.senderName and subject are required,
#   message is optional. X-Idempotency-Key is recommended, not required.
# - A token without the scope an endpoint needs (catalog.read, orders.write, orders.read)
#   gets 403 {"error": "insufficient_scope"}; an unknown order, or one of other
#   credentials, 404 {"error": "order_not_found"}.
# - Cost: no fees; a card costs its amount in the card's currency (seed 002's example:
#   50 + 25 = totalCost 75.00). Used only when totalCost equals the sum of the order's
#   amounts; otherwise the cost is left unknown.
# - Catalog: a RANGE card may carry `stepAmount`; without it any amount (to the cent)
#   between minAmount and maxAmount is valid. Giftronaut has no SKUs: the productId is
#   both the product id and the SKU. Delivery is by email only.
# - Requests carry no per-recipient reference of ours (the seed shows none): recipients
#   are identified by email and amount only.
# - No documented cap on recipients per order: the account's max_cards_per_request decides.


class GiftronautClient(OAuthClient):
    kind = "giftronaut"
    display_name = "Giftronaut"
    credential_fields = {"client_id": "Client ID", "client_secret": "Client secret"}
    # Seed 002, "Before you begin" and step 1.
    credential_help = {
        "client_id": ("From the Apps section of Giftronaut's developer portal: create an app (scopes at least "
                      "orders.write and catalog.read) and copy its Client ID. The credentials decide the "
                      "environment: a Sandbox app's for sandbox, a Production app's for production."),
        "client_secret": ("Copied with the Client ID: Giftronaut shows it only once — store it securely. "
                          "Rotate it from the App settings page if it is ever compromised."),
        "webhook_secret": "Giftronaut's quickstart documents no webhooks: leave blank.",
    }
    # Seed 002, step 4: the order's emailSetting.
    setting_fields = {
        "sender_name": SettingField("Sender name shown in the gift card email",
                                    "The email's senderName, e.g. “Acme Corp”.", required=True),
        "email_subject": SettingField("Subject of the gift card email", default=DEFAULT_SUBJECT),
    }
    documented_urls = DOCUMENTED_URLS
    idempotency_headers = ("X-Idempotency-Key",)
    # Seed 002's ids, statuses, counts, amounts, catalog and errors. Not the recipients
    # (firstName, lastName, email).
    recorded_fields = TOKEN_EXCHANGE_FIELDS | {
        "orderId", "productId", "status", "type", "cardType", "cardName", "brandName", "faceValueType",
        "amount", "totalCost", "currency", "currencyCode", "denominations", "minAmount", "maxAmount", "stepAmount",
        "recipientCount", "sentCount", "bouncedCount", "bounceReason", "senderName", "subject",
        "createdAt", "scheduledAt", "message",
    }
    # For an order's page (orders.call_excerpts): `recipients` holds one entry per card in
    # the request's order, and nothing recorded in an entry names its card (no reference
    # of ours; names and emails are redacted), so entries are matched to cards by position.
    cards_in_order_lists = ("recipients",)
    token_scope = SCOPES
    default_token_lifetime = 3600
    # One order request is for one productId and carries one email message.
    submission_group = ("product", "message", "send_on")
    # Seed 002 documents no request limit: new accounts get models.RATE_LIMIT_FALLBACK.
    max_requests_per_minute = None
    supports_status = True

    # --- Interface -------------------------------------------------------------------------

    def verify(self) -> VerifyResult:
        self.access_token(renew=True)
        count = len(_catalog_items(self.api("GET", CATALOG_PATH).data))
        return VerifyResult(ok=True, message=f"Connected: {count} branded cards in the catalog.")

    def list_products(self) -> list[ProductInfo]:
        items = _catalog_items(self.api("GET", CATALOG_PATH).data)
        return [product for item in items if (product := _parse_product(item))]

    def submit(self, request: SubmitRequest) -> SubmitResult:
        reply = self.api("POST", ORDER_PATH, self._order_body(request), idempotency_key=request.idempotency_key,
                         commits=True, refusal="refused the order")
        order_id = str(reply.fields.get("orderId") or "")
        if not order_id:
            # Accepted but unidentifiable: ask again with the same key, which replays it.
            raise TransientError(
                "Giftronaut accepted the order but returned no orderId. It will be asked again "
                "with the same idempotency key, which returns the original order."
            )
        request.remember_reference(order_id)
        return SubmitResult(provider_reference=order_id, cards=_card_results(reply.fields, request.cards))

    def fetch_status(self, request: StatusRequest) -> SubmitResult:
        order_id = request.provider_reference
        reply = self.api("GET", STATUS_PATH.format(order_id=order_id),
                         refusal=f"has no order {order_id} for these credentials")
        return SubmitResult(provider_reference=order_id, cards=_card_results(reply.fields, request.cards))

    # --- Requests ----------------------------------------------------------------------------

    def token_url_for(self, environment: str) -> str:
        return f"{self.api_url}{TOKEN_PATH}"  # seed 002: the token endpoint is on the API host

    def _order_body(self, request: SubmitRequest) -> dict[str, Any]:
        if not request.cards:
            raise PermanentError("A Giftronaut order needs at least one card.")
        first = request.cards[0]
        for card in request.cards[1:]:
            if card.product_id != first.product_id or card.message != first.message:
                raise PermanentError(
                    "One Giftronaut order carries one product and one message, but these cards "
                    "differ. Report this to GiftDesk's maintainers."
                )
        sender_name = (request.sender_name or self.setting("sender_name")).strip()
        if not sender_name:
            raise AccountError(
                "The Giftronaut account has no sender name, which Giftronaut shows in the gift "
                "card email. Set it on the account (setting sender_name), then resume sending."
            )
        return {
            "productId": first.product_id,
            "recipients": [
                {**dict(zip(("firstName", "lastName"), split_name(card.recipient_name))),
                 "email": card.recipient_email,
                 "amount": card.amount}
                for card in request.cards
            ],
            "emailSetting": {
                "senderName": sender_name,
                "subject": self.setting("email_subject"),
                "message": first.message,
            },
            "sendTiming": _send_timing(request.send_at or _morning_of(first.send_on)),
        }

    # --- Error refinements -------------------------------------------------------------------

    def error_reason(self, reply: Reply) -> str:
        return str(reply.fields.get("message") or "").strip() or str(reply.fields.get("error") or "")

    def token_refused(self, reply: Reply, error: str, detail: str) -> AccountError:
        details = {"status_code": reply.status, "response_body": reply.text}
        if error == "invalid_client":
            return AccountError(
                "Giftronaut rejected the client ID or client secret (invalid_client). Copy both "
                "again from the app in the Giftronaut developer portal (the secret is shown only "
                "once: rotate it if it is lost), and check they belong to a "
                f"{self.account.environment} app: the credentials decide the environment.", **details)
        if error == "invalid_scope":
            return AccountError(
                f"Giftronaut refused the scopes GiftDesk needs ({SCOPES}): {detail or 'invalid_scope'}. "
                "Select all three scopes in the app's settings in the Giftronaut developer portal.",
                **details)
        return super().token_refused(reply, error, detail)

    def refine_error(self, error: ProviderError, reply: Reply, reason: str, call: Call) -> ProviderError:
        code = str(reply.fields.get("error") or "")
        if reply.status == 402:
            return error.reworded(
                f"Giftronaut refused the order: the balance is too low ({reason}"
                f"{_amounts_text(reply.fields)}). Top up the Giftronaut balance, then resume the account.")
        if reply.status == 403:
            return error.reworded(
                f"Giftronaut refused the account ({code or 'forbidden'}: {reason}). Check the app's "
                f"scopes ({SCOPES}) and status in the Giftronaut developer portal, then resume the account.")
        if reply.status == 409 and code == "idempotency_conflict":
            return error.reworded(
                "Giftronaut refused a retry because it differs from the first request sent under "
                "the same idempotency key. Nothing new was bought; report this to GiftDesk's maintainers.")
        if reply.status == 404 and call.method == "GET" and call.path.startswith(STATUS_PATH.split("{")[0]):
            return error.reworded(
                f"Giftronaut {call.refusal} ({reason}). Look it up in the Giftronaut portal before "
                "sending these cards again.")
        if reply.status == 404:
            return error.reworded(
                f"Giftronaut answered 404 ({reason}). Check the account's API base URL ({self.api_url}).")
        return super().refine_error(error, reply, reason, call)


# --- Parsing ----------------------------------------------------------------------------------


def split_name(name: str) -> tuple[str, str]:
    """(firstName, lastName): the last word is the last name; one word is a first name."""
    words = (name or "").split()
    if len(words) <= 1:
        return (words[0] if words else "", "")
    return " ".join(words[:-1]), words[-1]


def _decimal(value: Any) -> Decimal | None:
    """An amount: a number, or a money object {"amount", "currency"} like `totalCost`."""
    return parse_decimal(value.get("amount") if isinstance(value, dict) else value)


def _money_text(value: Any) -> str:
    amount = _decimal(value)
    if amount is None:
        return ""
    currency = value.get("currency", "") if isinstance(value, dict) else ""
    return f"{amount.quantize(CENT)} {currency}".strip()


def _amounts_text(data: dict[str, Any]) -> str:
    parts = [
        f"{label} {text}"
        for label, key in (("required", "required"), ("available", "available"))
        if (text := _money_text(data.get(key)))
    ]
    return f"; {', '.join(parts)}" if parts else ""


def _catalog_items(data: Any) -> list[dict[str, Any]]:
    items = data.get("data") if isinstance(data, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _parse_product(item: dict[str, Any]) -> ProductInfo | None:
    product_id = str(item.get("productId") or "")
    if not product_id:
        return None
    common = {
        "provider_product_id": product_id,
        "sku": product_id,
        "title": str(item.get("brandName") or product_id),
        "currency": str(item.get("currencyCode") or "").upper(),
        "delivery_methods": ("Email",),
        "raw": item,
    }
    kind = str(item.get("faceValueType") or "").upper()
    if kind == "FIXED":
        amounts = tuple(
            amount for value in item.get("denominations") or [] if (amount := _decimal(value)) is not None
        )
        return ProductInfo(pricing=PricingKind.FIXED, denominations=amounts, **common)
    if kind == "RANGE":
        return ProductInfo(
            pricing=PricingKind.RANGE,
            min_amount=_decimal(item.get("minAmount")),
            max_amount=_decimal(item.get("maxAmount")),
            step=_decimal(item.get("stepAmount")),
            **common,
        )
    return None  # An unknown face value type cannot be priced: leave it out of the catalog.


def _card_costs(
    order: dict[str, Any], cards: list[CardRequest], matches: list[dict | None]
) -> dict[int, tuple[Decimal, str]]:
    """Each card's cost: its amount, when the order's totalCost is the sum of its amounts."""
    total = order.get("totalCost") if isinstance(order.get("totalCost"), dict) else {}
    amount = _decimal(total.get("amount"))
    currency = str(total.get("currency") or "")
    if amount is None or not cards:
        return {}
    recipients = order.get("recipients")
    if isinstance(recipients, list):
        ordered = [_decimal(r.get("amount")) if isinstance(r, dict) else None for r in recipients]
        if None in ordered or sum(ordered, Decimal("0")) != amount:
            return {}  # Fees, or an order we cannot read: no cost per card can be told.
        return {index: (card.amount.quantize(CENT), currency or card.currency)
                for index, (card, match) in enumerate(zip(cards, matches, strict=True)) if match is not None}
    if sum((card.amount for card in cards), Decimal("0")) != amount:
        return {}
    return {index: (card.amount.quantize(CENT), currency or card.currency) for index, card in enumerate(cards)}


def _card_results(order: dict[str, Any], cards: list[CardRequest]) -> list[CardResult]:
    order_id = str(order.get("orderId") or "")
    status = str(order.get("status") or "").upper()
    recipients = order.get("recipients")
    matches = (
        _match_recipients(recipients, cards) if isinstance(recipients, list) else [None] * len(cards)
    )
    costs = _card_costs(order, cards, matches)
    results = []
    for index, (card, recipient) in enumerate(zip(cards, matches, strict=True)):
        card_status, error = _card_state(order_id, status, order, recipients, recipient)
        cost, cost_currency = costs.get(index, (None, ""))
        results.append(CardResult(
            order_reference=card.order_reference,
            status=card_status,
            provider_order_id=order_id,
            cost=cost,
            cost_currency=cost_currency,
            error=error,
        ))
    return results


def _match_recipients(recipients: list[Any], cards: list[CardRequest]) -> list[dict | None]:
    """Each card's recipient: the first unused one with the same email and amount."""
    used: set[int] = set()
    matches: list[dict | None] = []
    for card in cards:
        found = None
        for index, recipient in enumerate(recipients):
            if index in used or not isinstance(recipient, dict):
                continue
            if (str(recipient.get("email") or "").strip().lower() == card.recipient_email.strip().lower()
                    and _decimal(recipient.get("amount")) == card.amount):
                found = index
                break
        if found is not None:
            used.add(found)
        matches.append(recipients[found] if found is not None else None)
    return matches


def _card_state(
    order_id: str, status: str, order: dict[str, Any], recipients: Any, recipient: dict | None
) -> tuple[CardStatus, str]:
    if isinstance(recipients, list):
        if recipient is None:
            return CardStatus.FAILED, (
                f"Giftronaut's order {order_id} has no recipient with this email and amount, so "
                "this card was not sent. Check the order in the Giftronaut portal before resending."
            )
        recipient_status = str(recipient.get("status") or "").upper()
        if recipient_status == "BOUNCED":
            reason = recipient.get("bounceReason") or "no reason given"
            return CardStatus.FAILED, (
                f"The gift card email to {recipient.get('email')} bounced ({reason}). Correct the "
                "email address and send a new card."
            )
        if status == "COMPLETE" and recipient_status == "SENT":
            return CardStatus.DELIVERED, ""
        if status in ("PENDING", "IN_PROGRESS"):
            return CardStatus.PROCESSING, ""
        return CardStatus.FAILED, (
            f"Giftronaut reports order {order_id} as {status or 'without a status'} and this "
            "card as not sent. Check the order in the Giftronaut portal before resending."
        )
    # No recipient list: only the counts can tell.
    if status in ("PENDING", "IN_PROGRESS"):
        return CardStatus.PROCESSING, ""
    bounced = int(order.get("bouncedCount") or 0)
    if status == "COMPLETE" and bounced == 0:
        return CardStatus.DELIVERED, ""
    if status == "COMPLETE":
        return CardStatus.FAILED, (
            f"Giftronaut reports {bounced} of {order.get('recipientCount')} emails of order "
            f"{order_id} as bounced without saying which. Check the order in the Giftronaut "
            "portal before resending: some of its cards were delivered."
        )
    return CardStatus.FAILED, (
        f"Giftronaut reports order {order_id} as {status or 'without a status'}. Check the order in "
        "the Giftronaut portal before resending."
    )


def _morning_of(day) -> datetime | None:
    """A card's send_on date as a moment: 09:00 UTC that day (a working-hours delivery)."""
    return None if day is None else datetime.combine(day, time(9, 0), tzinfo=UTC)


def _send_timing(moment: datetime | None) -> dict[str, str]:
    if moment is None:
        return {"type": "IMMEDIATE"}
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return {"type": "SCHEDULED", "scheduledAt": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


Client = GiftronautClient

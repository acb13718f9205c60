"""What staff ask a provider about orders outside the delivery engine: the price of a
checked spreadsheet before it becomes a batch, and the state of a card already bought.
Neither buys anything."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils import timezone

from orders.models import Order
from providers.clients import client_class
from providers.clients.base import CardRequest, ProviderClient, ProviderError, Quote
from providers.crypto import CredentialsUnreadable
from providers.models import ProviderAccount
from providers.services import account_client


def rows_quote(*, account: ProviderAccount, rows: Sequence) -> tuple[Quote | None, str]:
    """What the provider will charge for these checked rows, fees included, where it
    quotes prices before ordering. Returns (quote or None, a problem to show or "")."""
    cards = [
        CardRequest(
            order_reference=f"preview-row-{row.row}", recipient_name=row.name, recipient_email=row.email,
            recipient_phone=row.phone, amount=row.amount, currency=row.currency,
            product_id=row.product.provider_product_id, sku=row.product.sku, message=row.message,
            send_on=row.send_on,
        )
        for row in rows
    ]
    if not cards:
        return None, ""
    try:
        return account_client(account).quote(cards), ""
    except ProviderError as exc:
        return None, f"{account.get_kind_display()} could not price this batch: {exc.message}"


def account_quotes_prices(account: ProviderAccount) -> bool:
    """Whether the account's provider prices cards before ordering (its client has a quote)."""
    return client_class(account.kind).quote is not ProviderClient.quote


def orders_quote(*, account: ProviderAccount, orders) -> tuple[dict[str, Quote], str]:
    """What the provider will charge for these orders (a queryset of one account's orders),
    fees included, one quote per currency (a provider prices one currency at a time).
    Returns ({currency: quote}, a problem to show or ""); ({}, "") for a provider that does
    not quote, which is never called."""
    if not account_quotes_prices(account):
        return {}, ""
    by_currency: dict[str, list[CardRequest]] = {}
    for order in orders.select_related("recipient", "product").order_by("id").iterator(chunk_size=2000):
        by_currency.setdefault(order.currency, []).append(CardRequest(
            order_reference=order.reference, recipient_name=order.recipient.name,
            recipient_email=order.recipient.email, recipient_phone=order.recipient.phone,
            amount=order.amount, currency=order.currency, product_id=order.product.provider_product_id,
            sku=order.product.sku, message=order.message, send_on=order.send_on,
        ))
    if not by_currency:
        return {}, ""
    quotes: dict[str, Quote] = {}
    try:
        client = account_client(account)
        for currency, cards in sorted(by_currency.items()):
            quote = client.quote(cards)
            if quote is not None:
                quotes[currency] = quote
    except CredentialsUnreadable as exc:
        return quotes, f"{account.get_kind_display()} could not price this batch: {exc}"
    except ProviderError as exc:
        return quotes, f"{account.get_kind_display()} could not price this batch: {exc.message}"
    return quotes, ""


def order_card_details_refresh(*, order: Order) -> str:
    """Ask the provider for the current state of the card an order bought (balance, expiry)."""
    if not order.card_code_encrypted:
        return f"{order.reference}: the provider reported no card for this order."
    try:
        details = account_client(order.batch.account).card_details(order.card_code())
    except CredentialsUnreadable as exc:
        return f"{order.reference}: card details not refreshed. {exc}"
    except ProviderError as exc:
        return f"{order.reference}: card details not refreshed. {exc.message}"
    if details is None:
        return f"{order.reference}: {order.batch.account.get_kind_display()} does not report card details."
    # Money as text, as the engine stores a card's details: JSON has no Decimal.
    details = {key: str(value) if isinstance(value, Decimal) else value for key, value in details.items()}
    Order.objects.filter(pk=order.pk).update(provider_details=details, updated_at=timezone.now())
    return f"{order.reference}: card details refreshed."

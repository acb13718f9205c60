"""What staff ask a provider about orders outside the delivery engine: the price of a
checked spreadsheet before it becomes a batch, and the state of a card already bought.
Neither buys anything."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.utils import timezone

from orders.models import Order
from providers.clients.base import CardRequest, ProviderError, Quote
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

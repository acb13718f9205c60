"""Reads of orders that other screens need, without knowing the order models."""

from __future__ import annotations

from orders.models import Order, OrderStatus
from providers.models import ProviderAccount


def waiting_products_no_longer_offered(account: ProviderAccount) -> list[str]:
    """Titles of the products that the account's unsent orders use and its catalog no longer
    offers, sorted: those orders would be refused."""
    waiting = Order.objects.filter(
        batch__account=account, status__in=[OrderStatus.PENDING, OrderStatus.QUEUED, OrderStatus.SENDING]
    )
    return sorted(set(waiting.filter(product__is_active=False).values_list("product__title", flat=True)))

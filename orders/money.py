"""Money as staff read it, and totals per currency (never summed across currencies)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from django.db.models import QuerySet, Sum


def amount_text(amount: Decimal, currency: str) -> str:
    """Decimal("11000") -> "11,000.00 DKK"."""
    return f"{amount:,.2f} {currency}"


def totals_text(totals: Mapping[str, Decimal]) -> str:
    """{"DKK": 100, "EUR": 5} -> "100.00 DKK and 5.00 EUR"; "nothing" when empty."""
    parts = [amount_text(total, currency) for currency, total in sorted(totals.items())]
    if not parts:
        return "nothing"
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def totals_of(orders: QuerySet) -> dict[str, Decimal]:
    """The orders' face value per currency, in one query."""
    rows = orders.order_by().values_list("currency").annotate(total=Sum("amount"))
    return {currency: total for currency, total in rows}


def totals_add(pairs: Iterable[tuple[str, Decimal]]) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for currency, amount in pairs:
        totals[currency] = totals.get(currency, Decimal(0)) + amount
    return totals

"""Four eyes (DESIGN.md "Approvals and limits"): which sends need an approver, and what an
approval signs.

`GIFTDESK_APPROVAL_THRESHOLDS` ("DKK=10000,EUR=1500"): a send whose total in a currency
reaches that currency's threshold needs approval; once the setting is given, a currency it
does not list always does, and 0 means every send. Unset: nothing needs approval (the demo,
and scripts written before approvals, behave as before)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation

from django.conf import settings

from orders.models import Batch, OrderStatus
from orders.money import amount_text


class ThresholdsInvalid(ValueError):
    """The setting cannot be read; the message says which part and how to write it."""


def thresholds_parse(text: str | None) -> dict[str, Decimal] | None:
    """"DKK=10000,EUR=1500" -> {"DKK": Decimal("10000"), "EUR": Decimal("1500")}; None when
    unset. Raises ThresholdsInvalid on anything else, naming the part."""
    if text is None:
        return None
    thresholds: dict[str, Decimal] = {}
    for part in (piece.strip() for piece in text.split(",")):
        if not part:
            continue
        currency, sep, value = part.partition("=")
        currency = currency.strip().upper()
        try:
            amount = Decimal(value.strip())
        except InvalidOperation:
            amount = None
        if (not sep or len(currency) != 3 or not currency.isalpha() or amount is None
                or not amount.is_finite() or amount < 0):  # NaN cannot even be compared
            raise ThresholdsInvalid(
                f"GIFTDESK_APPROVAL_THRESHOLDS: {part!r} is not CURRENCY=AMOUNT; write it like "
                "DKK=10000,EUR=1500 (0 means every batch in that currency needs approval)."
            )
        thresholds[currency] = amount
    return thresholds


def thresholds() -> dict[str, Decimal] | None:
    return thresholds_parse(settings.GIFTDESK_APPROVAL_THRESHOLDS)


def approval_reasons(totals: Mapping[str, Decimal]) -> list[str]:
    """Why a send of these totals needs approval; empty when it does not."""
    limits = thresholds()
    if limits is None:
        return []
    reasons = []
    for currency, total in sorted(totals.items()):
        threshold = limits.get(currency)
        if threshold is None:
            reasons.append(f"{currency} has no approval threshold, so every {currency} send needs approval")
        elif total >= threshold:
            reasons.append(f"{amount_text(total, currency)} reaches the approval threshold of "
                           f"{amount_text(threshold, currency)}")
    return reasons


def batch_fingerprint(batch: Batch) -> str:
    """A digest of everything an approver signs: each order still to send (recipient,
    amount, currency, product, message, delivery date), the batch's schedule and sender,
    and where it goes (the account, its environment and API address: the pages name them).
    Any change to these changes the digest, so an approval cannot carry over to a batch
    that was edited after it, nor a confirmation to a batch sent elsewhere than shown."""
    account = batch.account
    digest = hashlib.sha256()
    digest.update(repr((batch.scheduled_for.isoformat() if batch.scheduled_for else "",
                        batch.sender_name, batch.message, account.pk, account.environment,
                        account.api_base_url)).encode())
    rows = (batch.orders.filter(status=OrderStatus.PENDING).order_by("id")
            .values_list("id", "recipient__name", "recipient__email", "recipient__phone", "amount",
                         "currency", "product_id", "message", "send_on"))
    for row in rows.iterator(chunk_size=2000):
        digest.update(repr(row).encode())
    return digest.hexdigest()

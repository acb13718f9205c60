"""Funds (DESIGN.md "Approvals and limits"): where the provider keeps a prepaid wallet, a
batch's total is compared with its balance. Short funds are a warning at the preview, and
Send and approval refuse them (`orders.batches`); an administrator may send anyway, which
is recorded.

The balance is asked again when the stored one is older than
GIFTDESK_BALANCE_MAX_AGE_SECONDS (`providers.services.account_balance_fresh`). A wallet
holds one currency: a total in another currency cannot be compared with it (the provider
converts at its own rate when it charges), and says so rather than guessing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from orders.money import amount_text
from providers.models import ProviderAccount
from providers.services import BalanceUnknown, account_balance_fresh


@dataclass(frozen=True)
class FundsCheck:
    """A batch's total against the account's wallet.

    `balance` and `checked_at` are None only when the balance could not be read at all
    (then `short` is False and `message` says so). `needed` is the total in the wallet's
    currency (0 when the batch has none)."""

    balance: Decimal | None
    currency: str
    needed: Decimal
    short: bool
    message: str
    checked_at: datetime | None

    @property
    def known(self) -> bool:
        return self.balance is not None


def funds_check(account: ProviderAccount, totals: Mapping[str, Decimal], *,
                refresh: bool = True) -> FundsCheck | None:
    """Compare `totals` (currency -> amount) with the account's wallet; None when the
    provider keeps no balance. `refresh=False`: compare with the stored balance, asking the
    provider nothing (the caller asked just before, outside its locks)."""
    provider = account.get_kind_display()
    try:
        balance = account_balance_fresh(account=account, refresh=refresh)
    except BalanceUnknown as exc:
        return FundsCheck(
            balance=None, currency="", needed=Decimal(0), short=False, checked_at=None,
            message=(f"The {provider} wallet's balance could not be read, so this batch's total was not "
                     f"compared with it. {exc} Check the balance with {provider} before sending."),
        )
    if balance is None:
        return None
    currency = balance.currency
    needed = totals.get(currency, Decimal(0))
    short = needed > balance.amount
    wallet = amount_text(balance.amount, currency)
    if short:
        parts = [f"The wallet has {wallet}, this batch needs {amount_text(needed, currency)}: top up, then send."]
    elif needed:
        parts = [f"The wallet has {wallet}, enough for this batch's {amount_text(needed, currency)}."]
    else:
        parts = [f"The wallet has {wallet}."]
    others = sorted(other for other, total in totals.items() if other != currency and total)
    if others:
        parts.append(
            f"This batch's {' and '.join(others)} total{'s' if len(others) > 1 else ''} cannot be compared with "
            f"the wallet, which is kept in {currency or 'an unnamed currency'}: {provider} converts at its own "
            "rate when it charges."
        )
    problem = getattr(balance, "problem", "")
    if problem:
        parts.append(problem)
    return FundsCheck(balance=balance.amount, currency=currency, needed=needed, short=short,
                      message=" ".join(parts), checked_at=getattr(balance, "checked_at", None))

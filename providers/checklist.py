"""The pre-launch checklist of an account: what must be true before real cards are sent.

Computed from what GiftDesk already knows (the last connection test, the catalog, the
settings, the orders waiting), so showing it costs no provider call. What the waiting
orders use is a read of orders, so the caller passes it in: providers do not depend on orders.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils import timezone

from giftdesk.text import plural
from providers.clients import client_class
from providers.models import ProviderAccount


@dataclass(frozen=True)
class CheckItem:
    label: str
    ok: bool
    detail: str


def account_checklist(
    account: ProviderAccount, *, products_no_longer_offered: list[str] | None = None
) -> list[CheckItem]:
    """`products_no_longer_offered`: titles of the products the account's waiting orders use
    and its catalog no longer offers; None leaves that item out."""
    try:
        client = client_class(account.kind)
    except LookupError as exc:
        return [CheckItem("Provider supported", False, str(exc))]
    items = [_credentials_stored(account, client.credential_keys), _connection(account), _catalog(account)]
    if products_no_longer_offered is not None:
        items.append(_products_in_use(products_no_longer_offered))
    return [
        *items,
        _settings(account, client.required_settings),
        _rate_limit(account, client.max_requests_per_minute),
        _not_paused(account),
    ]


def _credentials_stored(account, keys) -> CheckItem:
    stored = account.credentials if account.has_credentials else {}
    missing = [key for key in keys if not stored.get(key)]
    if missing:
        return CheckItem("Credentials entered", False, f"Missing: {', '.join(missing)}. Enter them on this page.")
    return CheckItem("Credentials entered", True, "Stored encrypted.")


def _connection(account) -> CheckItem:
    if account.last_check_ok is None:
        return CheckItem("Credentials work", False, "Not tested yet: use the “Test connection” action.")
    when = timezone.localtime(account.last_checked_at).strftime("%Y-%m-%d %H:%M")
    if not account.last_check_ok:
        return CheckItem("Credentials work", False, f"Last test ({when}) failed: {account.last_check_message}")
    return CheckItem("Credentials work", True, f"Connected at the last test ({when}).")


def _catalog(account) -> CheckItem:
    active = account.products.filter(is_active=True)
    count = active.count()
    if not count:
        return CheckItem("Catalog synced", False, "No products yet: use the “Sync catalog” action.")
    last = active.order_by("-last_synced_at").values_list("last_synced_at", flat=True).first()
    return CheckItem("Catalog synced", True,
                     f"{plural(count, 'product')}, last synced {timezone.localtime(last):%Y-%m-%d %H:%M}.")


def _products_in_use(gone: list[str]) -> CheckItem:
    if gone:
        return CheckItem("Products in use exist in this environment", False,
                         f"No longer offered by the provider: {', '.join(gone)}. Sync the catalog, or "
                         "cancel those orders and upload them again with a current product.")
    return CheckItem("Products in use exist in this environment", True,
                     "Every product of the waiting orders is offered.")


def _settings(account, required: dict[str, str]) -> CheckItem:
    missing = [label for key, label in required.items() if not (account.settings or {}).get(key)]
    if missing:
        return CheckItem("Required settings present", False, "Missing: " + "; ".join(missing) + ".")
    return CheckItem("Required settings present", True, "All present." if required else "None required.")


def _rate_limit(account, documented: int | None) -> CheckItem:
    limit = account.rate_limit_per_minute
    if documented and limit > documented:
        return CheckItem("Rate limit set", False,
                         f"{limit} requests/minute is above the provider's limit of {documented}; lower it.")
    return CheckItem("Rate limit set", True, f"{limit} requests/minute, shared by all workers.")


def _not_paused(account) -> CheckItem:
    if account.blocked_reason:
        return CheckItem("Sending not paused", False,
                         f"{account.blocked_reason} Fix it, then use “Resume sending”.")
    return CheckItem("Sending not paused", True, "Active.")

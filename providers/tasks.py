"""Task-queue entry points for accounts: they take no instances and call services."""

from providers.clients.base import ProviderError
from providers.models import ProviderAccount
from providers.services import account_balance_refresh, catalog_sync


def sync_all_catalogs() -> str:
    """Daily: every active account's catalog; one account's failure does not stop the rest."""
    lines = []
    for account in ProviderAccount.objects.filter(is_active=True):
        try:
            lines.append(f"{account}: {catalog_sync(account=account)}")
        except (ProviderError, LookupError) as exc:
            lines.append(f"{account}: not synced. {getattr(exc, 'message', exc)}")
    return "\n".join(lines) or "No active accounts."


def refresh_balances() -> str:
    """Every 15 minutes: wallet balances, for the providers that keep one."""
    return "\n".join(
        account_balance_refresh(account=account) for account in ProviderAccount.objects.filter(is_active=True)
    ) or "No active accounts."

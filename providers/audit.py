"""What the audit trail keeps of provider accounts.

Field history (django-auditlog): who changed which URL or setting, when, from where.
Credentials are never part of it: their field is left out, so not even their ciphertext
reaches a log entry.

Account changes as actions (audit.AuditEntry): who saved the account in the admin or ran
`configure_account`, which fields changed, and who tested, synced or registered it. Fields
are named, never their values where a value could be a secret."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from auditlog.registry import auditlog

from audit.models import AuditAction
from audit.services import record
from providers.models import ProviderAccount

# Never compared: the ciphertext (credentials are named by key below), and what changes by
# itself on every save.
NOT_COMPARED = {"id", "credentials_encrypted", "created_at", "updated_at"}
# JSON fields whose changed keys are named, so "settings" says which setting.
KEYED = {"settings", "monthly_limits"}


def register() -> None:
    auditlog.register(
        ProviderAccount,
        # updated_at changes on every save and says nothing the entry's time does not.
        exclude_fields=["credentials_encrypted", "updated_at"],
    )


def _credential_keys(account: ProviderAccount | None) -> set[str]:
    if account is None or not account.has_credentials:
        return set()
    try:
        return {key for key, value in account.credentials.items() if value}
    except Exception:  # noqa: BLE001 — unreadable credentials: nothing can be named
        return set()


def account_changes(before: ProviderAccount | None, account: ProviderAccount,
                    credentials_entered: dict[str, str]) -> list[str]:
    """What changed from `before` (as stored) to `account` (as saved), by name: fields,
    setting keys, and the names of credentials entered or cleared. Never a credential's value."""
    changes = []
    for field in ProviderAccount._meta.concrete_fields if before is not None else []:
        if field.name in NOT_COMPARED:
            continue
        old, new = getattr(before, field.attname), getattr(account, field.attname)
        if old == new:
            continue
        if field.name in KEYED:
            old, new = old or {}, new or {}
            keys = sorted(key for key in {*old, *new} if old.get(key) != new.get(key))
            changes.append(f"{field.name} ({', '.join(keys)})" if keys else field.name)
        else:
            changes.append(field.name)
    stored, now = _credential_keys(before), _credential_keys(account)
    entered = sorted(key for key, value in credentials_entered.items() if value)
    if entered:
        changes.append(f"credentials entered ({', '.join(entered)})")
    cleared = sorted(stored - now - set(entered))
    if cleared:
        changes.append(f"credentials cleared ({', '.join(cleared)})")
    return changes


def limits_text(limits: dict | None) -> str:
    parts = []
    for currency, amount in sorted((limits or {}).items()):
        try:
            parts.append(f"{Decimal(str(amount)):,.2f} {currency}")
        except InvalidOperation:
            parts.append(f"{amount} {currency}")
    return ", ".join(parts) or "none"


def account_change_record(*, account: ProviderAccount, before: ProviderAccount | None, user=None,
                          credentials_entered: dict[str, str], how: str) -> None:
    """One ACCOUNT_CHANGE entry for a save of `account` (`how`: "in the admin", "with
    configure_account ..."); nothing when the save changed nothing."""
    changes = account_changes(before, account, credentials_entered)
    label = f"{account.get_kind_display()} account “{account.name}” ({account.environment})"
    if before is None:
        summary = f"Created the {label} {how}" + (f": {'; '.join(changes)}." if changes else ".")
    elif changes:
        summary = f"Changed the {label} {how}: {'; '.join(changes)}."
    else:
        return  # saved unchanged: no action on the account to record
    if before is None or (before.monthly_limits or {}) != (account.monthly_limits or {}):
        if account.monthly_limits:
            summary += f" Monthly limits now: {limits_text(account.monthly_limits)}."
    record(AuditAction.ACCOUNT_CHANGE, user=user, target=account, summary=summary)


def account_action_record(*, account: ProviderAccount, user, summary: str) -> None:
    """An admin action on an account that calls its provider (test, sync, balance, webhook)."""
    record(AuditAction.ACCOUNT_CHANGE, user=user, target=account, summary=summary)

"""Services on provider accounts: configure, check the connection, sync the catalog, block and
resume sending, refresh the balance, register the webhook."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from providers.clients import client_class, client_for
from providers.clients.base import ProviderClient, ProviderError, Recorder
from providers.models import Environment, Product, ProviderAccount, ProviderKind
from providers.ratelimit import throttle_for

# `--set` keys stored as model fields rather than in `settings`.
FIELD_KEYS = {"max_cards_per_request", "rate_limit_per_minute"}
# Credentials every kind has besides its own (key -> label).
COMMON_CREDENTIALS = {"webhook_secret": "Webhook secret"}
# Settings every kind takes besides its declared ones: the delivery engine hands the
# account's sender name to every client as the default of a batch's sender.
COMMON_SETTINGS = {"sender_name"}
# Where an account sends requests (and so its credentials), with how staff call them.
ENDPOINT_LABELS = {"api_base_url": "API URL", "auth_url": "token URL"}


def credential_keys(kind: str) -> set[str]:
    """The `--set` keys that are credentials for `kind`: encrypted, never shown back."""
    return {*client_class(kind).credential_keys, *COMMON_CREDENTIALS}


def credential_labels() -> dict[str, str]:
    """Every kind's credentials (key -> label) as the clients declare them, then the common ones."""
    labels: dict[str, str] = {}
    for kind in ProviderKind.values:
        for key, label in client_class(kind).credential_fields.items():
            labels.setdefault(key, label)
    return {**labels, **COMMON_CREDENTIALS}


def credentials_merge(stored: dict[str, str], entered: dict[str, str]) -> dict[str, str]:
    """New credential values over the stored ones. A new webhook secret keeps the one it
    replaces as `webhook_secret_previous`, so deliveries signed with it still verify."""
    merged = {**stored, **{key: value for key, value in entered.items() if value}}
    old_secret = stored.get("webhook_secret")
    if entered.get("webhook_secret") and old_secret and entered["webhook_secret"] != old_secret:
        merged["webhook_secret_previous"] = old_secret
    return merged


def account_client(account: ProviderAccount, *, recorder: Recorder | None = None) -> ProviderClient:
    """The account's client, holding the account's rate limit across all workers."""
    return client_for(account, recorder=recorder, throttle=throttle_for(account))


class AccountConfigError(ValueError):
    """Configuration values that cannot be applied; the message says which and why."""


def known_keys(kind: str) -> dict[str, list[str]]:
    """The `configure_account --set` keys of `kind`, grouped as the refusal lists them."""
    declared = client_class(kind).setting_fields
    return {
        "credentials (stored encrypted)": sorted(credential_keys(kind)),
        "settings": sorted({*declared, *COMMON_SETTINGS}),
        "sending": sorted(FIELD_KEYS),
    }


def values_check(kind: str, values: dict[str, str]) -> None:
    """Refuse keys `kind` does not know, before anything is saved: a typo such as
    `client_secrt`, or another provider's credential, would otherwise land in the visible
    settings in clear. The message names keys only, never a value."""
    known = known_keys(kind)
    allowed = {key for keys in known.values() for key in keys}
    unknown = [key for key in values if key not in allowed]
    if not unknown:
        return
    others = {key: ProviderKind(other).label for other in ProviderKind.values if other != kind
              for key in client_class(other).credential_keys}
    reasons = [f"{key} is a {others[key]} credential" if key in others else f"{key!r} is not a known key"
               for key in unknown]
    listing = "; ".join(f"{group}: {', '.join(keys)}" for group, keys in known.items())
    raise AccountConfigError(
        f"{'; '.join(reasons)}. Nothing was saved. A {ProviderKind(kind).label} account knows {listing}."
    )


def endpoints_changed(before: ProviderAccount | None, account: ProviderAccount) -> list[str]:
    """The endpoints (API URL, token URL) `account` changes from the stored `before`, as staff
    call them. A trailing slash is no change: the clients strip it."""
    if before is None:
        return []
    return [label for field, label in ENDPOINT_LABELS.items()
            if (getattr(before, field) or "").strip().rstrip("/") != (getattr(account, field) or "").strip().rstrip("/")]


@transaction.atomic
def account_save(*, account: ProviderAccount, credentials: dict[str, str]) -> list[str]:
    """Save an account edited in the admin or by `configure_account`, with the credentials
    entered (a blank value keeps the stored one). Returns notices for the user.

    Changing where the account sends requests (its API or token URL) clears the stored
    credentials it would send there, so nobody can read a secret back by pointing the
    account at a listener and testing the connection: they must be entered again. Webhook
    secrets stay: they are never sent anywhere, they check what the provider sends us.
    The change itself is in the account's audit log (providers/audit.py)."""
    before = ProviderAccount.objects.select_for_update().filter(pk=account.pk).first() if account.pk else None
    stored = before.credentials if before is not None and before.has_credentials else {}
    notices, cleared = [], []
    changed = endpoints_changed(before, account)
    if changed:
        outbound = set(client_class(account.kind).credential_keys)
        cleared = sorted(key for key in stored if key in outbound and not credentials.get(key))
        stored = {key: value for key, value in stored.items() if key not in outbound}
        if cleared:
            labels = client_class(account.kind).credential_fields
            notices.append(
                f"Credentials cleared because the {' and the '.join(changed)} changed: enter them again "
                f"({', '.join(labels.get(key, key) for key in cleared)})."
            )
    account.set_credentials(credentials_merge(stored, credentials))
    # Recorded with the change by the audit log (ProviderAccount.get_additional_data), this save only.
    account.credentials_cleared = cleared
    try:
        account.save()
    finally:
        account.credentials_cleared = []
    return notices


@dataclass(frozen=True)
class Configured:
    """What `account_configure` did. Unpacks as (account, created), as it always has."""

    account: ProviderAccount
    created: bool
    notices: tuple[str, ...] = ()

    def __iter__(self):
        return iter((self.account, self.created))


@transaction.atomic
def account_configure(
    *,
    name: str,
    kind: str,
    environment: str,
    api_base_url: str | None = None,
    auth_url: str | None = None,
    values: dict[str, str] | None = None,
) -> Configured:
    """Create or update an account by name; unknown keys are refused (`values_check`)."""
    if kind not in ProviderKind.values:
        raise AccountConfigError(f"Unknown kind {kind!r}; choose one of {', '.join(ProviderKind.values)}.")
    if environment not in Environment.values:
        raise AccountConfigError(
            f"Unknown environment {environment!r}; choose one of {', '.join(Environment.values)}."
        )
    values_check(kind, values or {})
    account = ProviderAccount.objects.select_for_update().filter(name=name).first()
    created = account is None
    if created:
        account = ProviderAccount(name=name, kind=kind)
    elif account.kind != kind:
        raise AccountConfigError(
            f"The account {name!r} is a {account.get_kind_display()} account; it cannot become {kind!r}. "
            "Create a new account with another name."
        )
    account.environment = environment
    if api_base_url is not None:
        account.api_base_url = api_base_url
    if auth_url is not None:
        account.auth_url = auth_url
    credentials: dict[str, str] = {}
    settings = dict(account.settings or {})
    for key, value in (values or {}).items():
        if key in credential_keys(kind):
            credentials[key] = value
        elif key in FIELD_KEYS:
            try:
                number = int(value)
            except ValueError:
                raise AccountConfigError(f"{key} must be a whole number, not {value!r}.") from None
            if number < 1:
                raise AccountConfigError(f"{key} must be at least 1.")
            setattr(account, key, number)
        else:
            settings[key] = value
    account.settings = settings
    account.full_clean()
    notices = account_save(account=account, credentials=credentials)
    return Configured(account=account, created=created, notices=tuple(notices))


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def account_check(*, account: ProviderAccount) -> CheckResult:
    """Test the connection and remember the result on the account."""
    try:
        result = account_client(account).verify()
        outcome = CheckResult(ok=result.ok, message=result.message)
    except ProviderError as exc:
        outcome = CheckResult(ok=False, message=exc.message)
    except LookupError as exc:
        outcome = CheckResult(ok=False, message=str(exc))
    ProviderAccount.objects.filter(pk=account.pk).update(
        last_checked_at=timezone.now(), last_check_ok=outcome.ok, last_check_message=outcome.message
    )
    return outcome


@dataclass(frozen=True)
class SyncResult:
    created: int
    updated: int
    deactivated: int

    def __str__(self) -> str:
        return f"{self.created} new, {self.updated} updated, {self.deactivated} no longer offered"


def catalog_sync(*, account: ProviderAccount) -> SyncResult:
    """Fetch the catalog and mirror it; products that disappear are deactivated, never
    deleted, so old orders keep their product."""
    products = account_client(account).list_products()  # Before the transaction: slow HTTP.
    now = timezone.now()
    created = updated = 0
    with transaction.atomic():
        seen: set[int] = set()
        for info in products:
            product, was_created = Product.objects.update_or_create(
                account=account, provider_product_id=info.provider_product_id, sku=info.sku,
                defaults={
                    "title": info.title[:300],
                    "currency": info.currency,
                    "pricing": str(info.pricing),
                    "denominations": [str(amount) for amount in info.denominations],
                    "min_amount": info.min_amount,
                    "max_amount": info.max_amount,
                    "step": info.step,
                    "delivery_methods": list(info.delivery_methods),
                    "is_active": True,
                    "last_synced_at": now,
                    "raw": info.raw,
                },
            )
            seen.add(product.pk)
            created += was_created
            updated += not was_created
        deactivated = (
            Product.objects.filter(account=account, is_active=True).exclude(pk__in=seen).update(is_active=False)
        )
    return SyncResult(created=created, updated=updated, deactivated=deactivated)


def account_balance_refresh(*, account: ProviderAccount) -> str:
    """Fetch the account's wallet balance, where the provider keeps one."""
    try:
        balance = account_client(account).balance()
    except ProviderError as exc:
        return f"{account}: balance not refreshed. {exc.message}"
    if balance is None:
        return f"{account}: {account.get_kind_display()} keeps no balance."
    ProviderAccount.objects.filter(pk=account.pk).update(
        balance=balance.amount, balance_currency=balance.currency, balance_checked_at=timezone.now()
    )
    return f"{account}: balance {balance.amount:.2f} {balance.currency}."


def account_block(*, account_id: int, reason: str) -> None:
    """The provider refused the whole account: pause its sending, saying why."""
    now = timezone.now()
    ProviderAccount.objects.filter(pk=account_id).update(blocked_reason=reason, blocked_at=now, updated_at=now)


def account_resume(*, account: ProviderAccount) -> None:
    """Staff fixed what paused the account: clear the block. Retrying the orders that waited
    is the delivery engine's part, which calls this."""
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="", blocked_at=None, updated_at=timezone.now())


def account_webhook_register(*, account: ProviderAccount, url: str) -> tuple[bool, str]:
    """Subscribe the account's webhook URL at the provider and keep the secret that signs
    its deliveries (encrypted, the previous one kept for the rotation). Returns (ok, message)."""
    proposed = secrets.token_urlsafe(32)
    try:
        webhook_id, secret = account_client(account).register_webhook(url, proposed)
    except NotImplementedError as exc:
        return False, f"{account}: {exc} Enter the webhook secret {account.get_kind_display()} gave you on the account."
    except ProviderError as exc:
        return False, f"{account}: webhook not registered. {exc.message}"
    stored = account.credentials if account.has_credentials else {}
    account.set_credentials(credentials_merge(stored, {"webhook_secret": secret}))
    account.webhook_id = webhook_id
    account.save(update_fields=["credentials_encrypted", "webhook_id", "updated_at"])
    return True, f"{account}: webhook registered for {url} (id {webhook_id})."

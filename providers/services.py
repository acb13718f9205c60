"""Services on provider accounts: configure, check the connection, sync the catalog, block and
resume sending, refresh the balance, register the webhook."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone
from django.utils.timesince import timesince

from providers.clients import client_class, client_for
from providers.clients.base import Balance, ProviderClient, ProviderError, Recorder
from providers.models import Environment, Product, ProviderAccount, ProviderKind
from providers.ratelimit import throttle_for

# `--set` keys stored as model fields rather than in `settings`.
FIELD_KEYS = {"max_cards_per_request", "rate_limit_per_minute"}
# `--set monthly_limit=DKK:50000,EUR:5000`: ProviderAccount.monthly_limits (engine rule 8).
MONTHLY_LIMIT_KEY = "monthly_limit"
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


def account_client(account: ProviderAccount, *, recorder: Recorder | None = None,
                   lookup: bool = False) -> ProviderClient:
    """The account's client, holding the account's rate limit across all workers. `lookup`:
    its requests are status lookups, which take only slots no order waits for and never wait
    in line (RateLimited with the wait instead: see providers.ratelimit)."""
    return client_for(account, recorder=recorder, throttle=throttle_for(account, lookup=lookup))


class AccountConfigError(ValueError):
    """Configuration values that cannot be applied; the message says which and why."""


def known_keys(kind: str) -> dict[str, list[str]]:
    """The `configure_account --set` keys of `kind`, grouped as the refusal lists them."""
    declared = client_class(kind).setting_fields
    return {
        "credentials (stored encrypted)": sorted(credential_keys(kind)),
        "settings": sorted({*declared, *COMMON_SETTINGS}),
        "sending": sorted({*FIELD_KEYS, MONTHLY_LIMIT_KEY}),
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


MONTHLY_LIMITS_EXAMPLE = "DKK 50000, EUR 5000"
MONTHLY_LIMIT_CEILING = Decimal("1e13")  # Beyond this it is a typo, and past Decimal's exact range.
# Parts are split at a comma or semicolon followed by a currency, so "DKK 50,000" stays one
# part and is refused for its thousands separator rather than read as two.
_LIMIT_PARTS = re.compile(r"[,;]\s*(?=[A-Za-z])")
_LIMIT_PART = re.compile(r"^([A-Za-z]+)\s*[:=\s]\s*(\S+)$")


def monthly_limits_parse(text: str) -> dict[str, str]:
    """"DKK:50000,EUR:5000" or "DKK 50000, EUR 5000" -> {"DKK": "50000.00", "EUR": "5000.00"};
    blank -> {} (no limits). Raises AccountConfigError naming the part it cannot read."""
    limits: dict[str, str] = {}
    text = (text or "").strip()
    if not text:
        return limits
    how = f"write each as CURRENCY AMOUNT, e.g. “{MONTHLY_LIMITS_EXAMPLE}”"
    for part in (piece.strip() for piece in _LIMIT_PARTS.split(text)):
        match = _LIMIT_PART.match(part.strip(",; "))
        if not match:
            raise AccountConfigError(f"Monthly limit “{part}” is not a currency and an amount; {how}.")
        currency, value = match.group(1).upper(), match.group(2)
        if len(currency) != 3:
            raise AccountConfigError(
                f"Monthly limit “{part}”: “{match.group(1)}” is not a currency code; write three letters, "
                f"e.g. DKK."
            )
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            hint = " (write it without thousands separators, e.g. 50000)" if "," in value or "." in value else ""
            raise AccountConfigError(f"Monthly limit “{part}”: “{value}” is not a number{hint}.")
        if amount < 0:
            raise AccountConfigError(f"Monthly limit “{part}”: a limit cannot be negative (0 stops all "
                                     f"{currency} sending).")
        if amount >= MONTHLY_LIMIT_CEILING:
            raise AccountConfigError(f"Monthly limit “{part}”: {value} is more than any account may spend.")
        if amount.as_tuple().exponent < -2:  # as written: "50.000" is a Dane's fifty thousand
            raise AccountConfigError(f"Monthly limit “{part}”: {currency} amounts have at most two "
                                     "decimals; write thousands without a separator, e.g. 50000.")
        if currency in limits:
            raise AccountConfigError(f"Monthly limit for {currency} is given twice; give each currency once.")
        limits[currency] = f"{amount + 0:.2f}"  # + 0: "-0" is stored as 0.00
    return limits


def monthly_limits_text(limits: dict[str, str] | None) -> str:
    """{"DKK": "50000.00"} -> "DKK 50000.00": how the admin's field shows what is stored."""
    return ", ".join(f"{currency} {amount}" for currency, amount in sorted((limits or {}).items()))


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
        elif key == MONTHLY_LIMIT_KEY:
            try:
                account.monthly_limits = monthly_limits_parse(value)
            except AccountConfigError as exc:
                raise AccountConfigError(f"{exc} Nothing was saved.") from None
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
    return _balance_refresh(account)[1]


def _balance_refresh(account: ProviderAccount) -> tuple[Balance | None, str]:
    """Ask the provider for the balance and store it: (the balance, or None when it was not
    read) and one sentence for staff."""
    try:
        balance = account_client(account).balance()
    except ProviderError as exc:
        return None, f"{account}: balance not refreshed. {exc.message}"
    except LookupError as exc:  # no client for the kind, or no credentials
        return None, f"{account}: balance not refreshed. {exc}"
    if balance is None:
        return None, f"{account}: {account.get_kind_display()} keeps no balance."
    ProviderAccount.objects.filter(pk=account.pk).update(
        balance=balance.amount, balance_currency=balance.currency, balance_checked_at=timezone.now()
    )
    return balance, f"{account}: balance {balance.amount:.2f} {balance.currency}."


class BalanceUnknown(Exception):
    """The provider keeps a balance, but it could not be read and none was ever stored; the
    message says why."""


@dataclass(frozen=True)
class StoredBalance(Balance):
    """A balance as GiftDesk stored it: when it was read and, when asking again failed, why
    (the stored balance is then older than the maximum age)."""

    checked_at: datetime
    problem: str = ""


BALANCE_FIELDS = ("balance", "balance_currency", "balance_checked_at")


def account_balance_fresh(*, account: ProviderAccount, refresh: bool = True) -> Balance | None:
    """The account's wallet balance (a `StoredBalance`), asked again from the provider when
    the stored one is older than GIFTDESK_BALANCE_MAX_AGE_SECONDS. None when the provider
    keeps no balance. When asking fails, the stored balance is returned with the reason and
    its age in `problem`; with none stored either, BalanceUnknown is raised.

    Call it outside a transaction that may roll back, or the refreshed balance goes with it.
    `refresh=False`: the stored balance only, for a caller that already asked (and holds
    locks no provider call should wait under).
    """
    if not client_class(account.kind).reports_balance:
        return None
    stored = ProviderAccount.objects.filter(pk=account.pk).values(*BALANCE_FIELDS).get()
    max_age = timedelta(seconds=django_settings.GIFTDESK_BALANCE_MAX_AGE_SECONDS)
    problem = ""
    checked_at = stored["balance_checked_at"]
    stale = stored["balance"] is None or checked_at is None or timezone.now() - checked_at > max_age
    if stale and not refresh:
        problem = "It could not be asked again just now."
    elif stale:
        balance, problem = _balance_refresh(account)
        if balance is not None:
            problem = ""
            stored = ProviderAccount.objects.filter(pk=account.pk).values(*BALANCE_FIELDS).get()
    checked_at = stored["balance_checked_at"]
    if stored["balance"] is None or checked_at is None:
        raise BalanceUnknown(f"{problem} No earlier balance is known.".strip())
    for field in BALANCE_FIELDS:  # the caller's instance shows what was compared
        setattr(account, field, stored[field])
    if problem:
        problem = f"{problem} The balance shown was read {timesince(checked_at)} ago."
    return StoredBalance(amount=stored["balance"], currency=stored["balance_currency"],
                         checked_at=checked_at, problem=problem)


def account_block(*, account_id: int, reason: str) -> None:
    """The provider refused the whole account: pause its sending, saying why."""
    now = timezone.now()
    ProviderAccount.objects.filter(pk=account_id).update(blocked_reason=reason, blocked_at=now, updated_at=now)


@transaction.atomic
def account_resume(*, account: ProviderAccount) -> str:
    """Staff fixed what paused the account: clear the block. Returns the reason it was paused
    for ("" when it was not). Checking the connection first and retrying the orders that
    waited is the delivery engine's part (orders.dispatch.account_sending_resume)."""
    # Locked: of two resumes at once, one clears the pause and the other finds none.
    reason = (ProviderAccount.objects.select_for_update().filter(pk=account.pk)
              .values_list("blocked_reason", flat=True).first()) or ""
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="", blocked_at=None, updated_at=timezone.now())
    return reason


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

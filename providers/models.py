"""Provider accounts and their catalogs."""

from decimal import Decimal

from django.db import models
from django.utils import timezone

from providers import crypto
from providers.clients import client_class
from providers.clients.base import PricingKind  # one definition, shared with the clients

# Requests a minute for an account whose provider documents no limit.
RATE_LIMIT_FALLBACK = 60


def default_rate_per_minute(kind: str) -> int:
    """The rate a new account of `kind` gets unless one is chosen: its provider's documented
    limit (the client's `max_requests_per_minute`), else RATE_LIMIT_FALLBACK."""
    try:
        documented = client_class(kind).max_requests_per_minute
    except LookupError:
        documented = None
    return documented or RATE_LIMIT_FALLBACK


def money(amount: Decimal | None, *, grouped: bool = False) -> str:
    """50.00 -> "50", 12.5 -> "12.50": how staff write amounts. `grouped`: 5000 -> "5,000",
    as staff read the amounts of a price rule."""
    if amount is None:
        return "?"
    group = "," if grouped else ""
    return f"{amount:{group}.0f}" if amount == amount.to_integral_value() else f"{amount:{group}.2f}"


class ProviderKind(models.TextChoices):
    GOGIFT = "gogift", "GoGift"
    GIFTRONAUT = "giftronaut", "Giftronaut"
    GIFTY = "gifty", "Gifty"
    UGIFTME = "ugiftme", "UGiftMe"


class Environment(models.TextChoices):
    SANDBOX = "sandbox", "Sandbox"
    PRODUCTION = "production", "Production"


class ProviderAccount(models.Model):
    """One set of credentials with one provider in one environment."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=ProviderKind.choices)
    environment = models.CharField(
        max_length=20, choices=Environment.choices, default=Environment.SANDBOX
    )
    api_base_url = models.URLField(
        blank=True, help_text="Blank: the provider's documented URL for this environment."
    )
    auth_url = models.URLField(
        blank=True, help_text="Token URL. Blank: the provider's documented URL."
    )
    # Fernet token of a JSON object; never shown back, never logged.
    credentials_encrypted = models.TextField(blank=True, editable=False)
    settings = models.JSONField(
        default=dict,
        blank=True,
        help_text="Provider settings: buyer details, sales channel, payment method, sender name…",
    )
    # {currency: "amount"}: what the account may spend per calendar month in each currency
    # (face value of cards claimed to send, delivered or in fulfilment). No entry: no limit.
    monthly_limits = models.JSONField(default=dict, blank=True)
    max_cards_per_request = models.PositiveIntegerField(default=10)
    # None until saved: then the provider's documented limit (`default_rate_per_minute`), so a
    # new Gifty account paces at Gifty's 120 a minute however it is created. Stored accounts
    # keep whatever they hold.
    rate_limit_per_minute = models.PositiveIntegerField(default=None)
    is_active = models.BooleanField(default=True)

    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_ok = models.BooleanField(null=True, blank=True)
    last_check_message = models.TextField(blank=True)

    blocked_reason = models.TextField(
        blank=True, help_text="Set when the provider refuses the whole account; sending waits."
    )
    blocked_at = models.DateTimeField(null=True, blank=True)

    # The provider's id of our webhook subscription, where we registered one through its API.
    webhook_id = models.CharField(max_length=100, blank=True)

    # Prepaid wallet, where the provider keeps one (refreshed on a schedule).
    balance = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    balance_currency = models.CharField(max_length=3, blank=True)
    balance_checked_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def _rate_default(self) -> None:
        if self.rate_limit_per_minute is None:
            self.rate_limit_per_minute = default_rate_per_minute(self.kind)

    def clean_fields(self, exclude=None) -> None:
        self._rate_default()
        super().clean_fields(exclude=exclude)

    def save(self, *args, **kwargs) -> None:
        self._rate_default()
        super().save(*args, **kwargs)

    @property
    def credentials(self) -> dict:
        return crypto.decrypt_json(self.credentials_encrypted)

    def set_credentials(self, values: dict) -> None:
        self.credentials_encrypted = crypto.encrypt_json(values)

    @property
    def has_credentials(self) -> bool:
        return bool(self.credentials_encrypted)

    @property
    def is_blocked(self) -> bool:
        return bool(self.blocked_reason)

    def monthly_limit(self, currency: str) -> Decimal | None:
        value = (self.monthly_limits or {}).get(currency)
        return Decimal(str(value)) if value not in (None, "") else None

    def get_additional_data(self) -> dict | None:
        """What the audit log keeps beside a change's fields (django-auditlog asks): the names,
        never the values, of credentials a URL change cleared (services.account_save)."""
        cleared = getattr(self, "credentials_cleared", None)
        return {"credentials_cleared": cleared} if cleared else None


class Product(models.Model):
    """One sellable unit of a provider's catalog (for GoGift: one SKU of a product)."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="products")
    provider_product_id = models.CharField(max_length=100)
    sku = models.CharField(max_length=100, blank=True)
    title = models.CharField(max_length=300)
    currency = models.CharField(max_length=3)
    pricing = models.CharField(max_length=10, choices=PricingKind.choices)
    # Fixed pricing: the allowed amounts, as strings of Decimals.
    denominations = models.JSONField(default=list, blank=True)
    min_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    max_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    step = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    delivery_methods = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    last_synced_at = models.DateTimeField(default=timezone.now)
    raw = models.JSONField(default=dict, blank=True, help_text="The provider's own description.")

    class Meta:
        ordering = ["account", "title"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "provider_product_id", "sku"], name="unique_product_sku"
            )
        ]
        indexes = [models.Index(fields=["account", "is_active"])]

    def __str__(self) -> str:
        sku = f" / {self.sku}" if self.sku else ""
        return f"{self.title} ({self.provider_product_id}{sku}, {self.currency})"

    @property
    def denomination_amounts(self) -> list[Decimal]:
        return [Decimal(str(value)) for value in self.denominations]

    def pricing_summary(self) -> str:
        """The amounts it takes, as the import form, the template and row errors all say it:
        "50–5,000 DKK in steps of 10", "25, 50, 100 EUR"."""
        currency = self.currency
        if self.pricing == PricingKind.FIXED:
            amounts = sorted(self.denomination_amounts)
            return ", ".join(money(amount, grouped=True) for amount in amounts) + f" {currency}"
        low, high = self.min_amount, self.max_amount
        if low is not None and high is not None:
            rule = f"{money(low, grouped=True)}–{money(high, grouped=True)} {currency}"
        elif low is not None:
            rule = f"from {money(low, grouped=True)} {currency}"
        elif high is not None:
            rule = f"up to {money(high, grouped=True)} {currency}"
        else:
            rule = f"any amount in {currency}"
        return f"{rule} in steps of {money(self.step, grouped=True)}" if self.step else rule

    def amount_error(self, amount: Decimal) -> str | None:
        """Why `amount` cannot be bought as this product, or None when it can."""
        if amount <= 0:
            return "The amount must be greater than zero."
        if self.pricing == PricingKind.FIXED:
            if amount not in self.denomination_amounts:
                return f"{money(amount)} is not a value of {self.title}; choose one of {self.pricing_summary()}."
            return None
        if self.min_amount is not None and amount < self.min_amount:
            return f"{money(amount)} is below the minimum; {self.title} takes {self.pricing_summary()}."
        if self.max_amount is not None and amount > self.max_amount:
            return f"{money(amount)} is above the maximum; {self.title} takes {self.pricing_summary()}."
        if self.step:
            base = self.min_amount or Decimal(0)
            if (amount - base) % self.step != 0:
                return f"{money(amount)} is not a valid value; {self.title} takes {self.pricing_summary()}."
        return None


class AccountPace(models.Model):
    """The rate limiter's one row per account (providers.ratelimit): the account's theoretical
    arrival time, when its next request may go without getting ahead of its rate.

    In the database so the pace holds across every worker process and machine; a table of its
    own, so a save of the account (which writes every field) never puts it back.
    """

    account = models.OneToOneField(ProviderAccount, on_delete=models.CASCADE, primary_key=True, related_name="+")
    # Microseconds since the Unix epoch, on the database's clock (one clock for every machine).
    tat_us = models.BigIntegerField()
    # Slots before this time belong to the burst that began after the last pause: they go at once.
    burst_until_us = models.BigIntegerField()


class WebhookEvent(models.Model):
    """An inbound provider webhook, stored once: the unique event id makes a replay a no-op."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="webhook_events")
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    payload = models.JSONField(default=dict, blank=True, help_text="Secrets (PINs, card links) removed.")
    outcome = models.TextField(blank=True, help_text="What the event changed.")

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["account", "event_id"], name="unique_webhook_event"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type or 'event'} {self.event_id}"

"""Admin screens for provider accounts and their catalogs. Presentation only: every
change goes through `providers.services` or `orders.dispatch`."""

from __future__ import annotations

from urllib.parse import urljoin

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from orders.dispatch import account_resume
from providers.clients.base import ProviderError
from providers.models import Product, ProviderAccount, WebhookEvent
from providers.checklist import account_checklist
from providers.services import (
    account_balance_refresh,
    account_check,
    account_webhook_register,
    catalog_sync,
    credential_keys,
    credentials_merge,
)

CREDENTIAL_LABELS = {
    "client_id": "Client ID",
    "client_secret": "Client secret",
    "api_token": "API token",
    "api_key": "API key",
    "webhook_secret": "Webhook secret",
}


def _credential_field(label: str) -> forms.CharField:
    return forms.CharField(
        label=label, required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Stored encrypted. Leave blank to keep the stored value.",
    )


class ProviderAccountForm(forms.ModelForm):
    """Credentials are write-only: blank keeps what is stored, nothing is ever shown back."""

    api_base_url = forms.URLField(
        assume_scheme="https", required=False, label="API base URL",
        help_text="As the provider documents it. Blank: the provider's URL for this environment.",
    )
    auth_url = forms.URLField(
        assume_scheme="https", required=False, label="Token URL",
        help_text="GoGift and Giftronaut only. Blank: the provider's documented token URL.",
    )

    # Declared on the class so the admin's fieldsets can name them.
    credential_client_id = _credential_field("Client ID")
    credential_client_secret = _credential_field("Client secret")
    credential_api_token = _credential_field("API token")
    credential_api_key = _credential_field("API key")
    credential_webhook_secret = _credential_field("Webhook secret")

    class Meta:
        model = ProviderAccount
        fields = ["name", "kind", "environment", "api_base_url", "auth_url", "settings",
                  "max_cards_per_request", "rate_limit_per_minute", "is_active"]

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        if kind:
            unused = [
                CREDENTIAL_LABELS[key] for key in CREDENTIAL_LABELS
                if cleaned.get(f"credential_{key}") and key not in credential_keys(kind)
            ]
            if unused:
                raise forms.ValidationError(
                    f"{', '.join(unused)} do not apply to {kind} accounts; "
                    f"{kind} uses {', '.join(CREDENTIAL_LABELS[key] for key in sorted(credential_keys(kind)))}."
                )
        return cleaned

    def save(self, commit=True):
        account = super().save(commit=False)
        stored = account.credentials if account.has_credentials else {}
        entered = {
            key: self.cleaned_data[f"credential_{key}"]
            for key in credential_keys(account.kind) if self.cleaned_data.get(f"credential_{key}")
        }
        if entered or not account.has_credentials:
            account.set_credentials(credentials_merge(stored, entered))
        if commit:
            account.save()
        return account


@admin.register(ProviderAccount)
class ProviderAccountAdmin(admin.ModelAdmin):
    form = ProviderAccountForm
    list_display = ["name", "kind", "environment", "connection", "sending", "wallet", "product_count", "is_active"]
    list_filter = ["kind", "environment", "is_active"]
    search_fields = ["name"]
    actions = ["test_connection", "sync_catalog", "refresh_balance", "register_webhook", "resume_sending"]
    readonly_fields = ["connection", "last_checked_at", "sending", "blocked_at", "credentials_stored",
                       "checklist", "wallet"]

    class Media:
        css = {"all": ["giftdesk/admin.css"]}

    def get_fieldsets(self, request, obj=None):
        credentials = [f"credential_{key}" for key in CREDENTIAL_LABELS]
        return [
            (None, {"fields": ["name", "kind", "environment", "is_active"]}),
            ("Pre-launch checklist", {"fields": ["checklist"]}),
            ("Connection", {"fields": ["connection", "last_checked_at", "sending", "blocked_at", "wallet"]}),
            ("Credentials", {"fields": ["credentials_stored", *credentials]}),
            ("Endpoints", {"fields": ["api_base_url", "auth_url"]}),
            ("Sending", {"fields": ["settings", "max_cards_per_request", "rate_limit_per_minute"]}),
        ]

    def get_queryset(self, request):
        from django.db.models import Count, Q

        return super().get_queryset(request).annotate(
            active_products=Count("products", filter=Q(products__is_active=True))
        )

    @admin.display(description="Products")
    def product_count(self, account):
        return account.active_products

    @admin.display(description="Stored credentials")
    def credentials_stored(self, account):
        if not account.pk or not account.has_credentials:
            return "None yet"
        try:
            keys = sorted(key for key, value in account.credentials.items() if value)
        except Exception as exc:  # noqa: BLE001 — unreadable credentials are shown, not fatal.
            return str(exc)
        return ", ".join(CREDENTIAL_LABELS.get(key, key) for key in keys) or "None yet"

    @admin.display(description="Pre-launch checklist")
    def checklist(self, account):
        if not account.pk:
            return "Save the account first."
        return format_html(
            '<ul class="giftdesk-checklist">{}</ul>',
            format_html_join("", '<li class="{}"><strong>{} {}</strong> — {}</li>', (
                ("check-ok" if item.ok else "check-missing", "✓" if item.ok else "✗", item.label, item.detail)
                for item in account_checklist(account)
            )),
        )

    @admin.display(description="Wallet balance")
    def wallet(self, account):
        if account.balance is None:
            return "—"
        when = f" (at {timezone.localtime(account.balance_checked_at):%Y-%m-%d %H:%M})" if account.balance_checked_at else ""
        return f"{account.balance:,.2f} {account.balance_currency}{when}"

    @admin.display(description="Connection")
    def connection(self, account):
        if account.last_check_ok is None:
            return "Not checked yet — use “Test connection”."
        label = "Connected" if account.last_check_ok else "Not connected"
        css = "delivered" if account.last_check_ok else "failed"
        return format_html('<span class="status status-{}">{}</span> {}', css, label, account.last_check_message)

    @admin.display(description="Sending")
    def sending(self, account):
        if account.blocked_reason:
            return format_html('<span class="status status-failed">Paused</span> {}', account.blocked_reason)
        return format_html('<span class="status status-delivered">{}</span>', "Active")

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        for account in queryset:
            result = account_check(account=account)
            level = messages.SUCCESS if result.ok else messages.ERROR
            prefix = "Connected" if result.ok else "Not connected"
            self.message_user(request, f"{account}: {prefix}. {result.message}", level)

    @admin.action(description="Sync catalog", permissions=["change"])
    def sync_catalog(self, request, queryset):
        for account in queryset:
            try:
                result = catalog_sync(account=account)
            except (ProviderError, LookupError) as exc:
                self.message_user(request, f"{account}: catalog not synced. {getattr(exc, 'message', exc)}",
                                  messages.ERROR)
                continue
            self.message_user(request, f"{account}: catalog synced ({result}).", messages.SUCCESS)

    @admin.action(description="Refresh wallet balance", permissions=["change"])
    def refresh_balance(self, request, queryset):
        for account in queryset:
            self.message_user(request, account_balance_refresh(account=account))

    @admin.action(description="Register webhook (order status updates)", permissions=["change"])
    def register_webhook(self, request, queryset):
        base = settings.GIFTDESK_PUBLIC_URL or request.build_absolute_uri("/")
        for account in queryset:
            url = urljoin(base, reverse("provider-webhook", args=[account.pk]))
            ok, message = account_webhook_register(account=account, url=url)
            self.message_user(request, message, messages.SUCCESS if ok else messages.ERROR)

    @admin.action(description="Resume sending (after fixing what paused it)", permissions=["change"])
    def resume_sending(self, request, queryset):
        for account in queryset:
            if not account.blocked_reason:
                self.message_user(request, f"{account}: sending was not paused.", messages.INFO)
                continue
            waiting = account_resume(account=account)
            self.message_user(request, f"{account}: sending resumed; {waiting} waiting submissions will be retried.",
                              messages.SUCCESS)


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "account", "provider_product_id", "sku", "currency", "pricing_display",
                    "is_active", "last_synced_at"]
    list_filter = ["account", "is_active", "currency", "pricing"]
    search_fields = ["title", "provider_product_id", "sku"]
    list_select_related = ["account"]
    readonly_fields = ["account", "provider_product_id", "sku", "title", "currency", "pricing",
                       "denominations", "min_amount", "max_amount", "step", "delivery_methods",
                       "last_synced_at", "raw"]

    def has_add_permission(self, request):
        return False  # Products come from "Sync catalog".

    @admin.display(description="Pricing")
    def pricing_display(self, product):
        return product.pricing_summary()


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "account", "event_type", "event_id", "outcome"]
    list_filter = ["account", "event_type"]
    search_fields = ["event_id"]
    list_select_related = ["account"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

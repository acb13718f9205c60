"""Admin screens for provider accounts and their catalogs. Presentation only: every
change goes through `providers.services`. What only orders know (the "Resume sending"
action, the products waiting orders use) is added by `orders.admin`, which extends
`ProviderAccountAdmin`: providers do not depend on orders."""

from __future__ import annotations

from urllib.parse import urljoin

from auditlog.mixins import AuditlogHistoryAdminMixin
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from giftdesk.admin_restrictions import AdministratorsOnlyMixin
from providers.audit import account_action_record, account_change_record
from providers.checklist import account_checklist
from providers.clients import client_class
from providers.clients.base import ProviderError
from providers.forms import account_form, credential_field_name, setting_field_name
from providers.models import Product, ProviderAccount, WebhookEvent
from providers.services import (
    account_balance_refresh,
    account_check,
    account_save,
    account_webhook_register,
    catalog_sync,
    credential_labels,
)

BASICS = ["name", "kind", "environment", "is_active"]
ENDPOINTS = ("Endpoints", {"fields": ["api_base_url", "auth_url"]})
SENDING = ("Sending", {"fields": ["max_cards_per_request", "rate_limit_per_minute", "monthly_limits"]})


@admin.register(ProviderAccount)
class ProviderAccountAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    list_display = ["name", "kind", "environment", "connection", "sending", "wallet", "product_count", "is_active"]
    list_filter = ["kind", "environment", "is_active"]
    search_fields = ["name"]
    actions = ["test_connection", "sync_catalog", "refresh_balance", "register_webhook"]
    readonly_fields = ["connection", "last_checked_at", "sending", "blocked_at", "credentials_stored",
                       "checklist", "wallet", "changes"]

    class Media:
        css = {"all": ["giftdesk/admin.css"]}

    def get_form(self, request, obj=None, change=False, **kwargs):
        # The kind's own settings are fields of the change page; when adding, the kind is not known yet.
        kwargs["form"] = account_form(obj.kind if obj else None)
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The page shows the kind's settings: another kind is another account (as configure_account says).
        return [*self.readonly_fields, "kind"] if obj else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        credentials = [credential_field_name(key) for key in credential_labels()]
        if obj is None:
            return [
                (None, {"fields": BASICS, "description": (
                    "Choose the provider and enter its credentials. After saving, the account's page "
                    "shows the provider's own settings (GoGift's buyer details, a sender name…).")}),
                ("Credentials", {"fields": credentials}),
                ENDPOINTS,
                SENDING,
            ]
        settings_fields = [setting_field_name(key) for key in client_class(obj.kind).setting_fields]
        return [
            (None, {"fields": BASICS}),
            ("Pre-launch checklist", {"fields": ["checklist"]}),
            ("Connection", {"fields": ["connection", "last_checked_at", "sending", "blocked_at", "wallet"]}),
            ("Credentials", {"fields": ["credentials_stored", *credentials]}),
            ("Endpoints", {"fields": [*ENDPOINTS[1]["fields"], "changes"], "description": (
                "Changing the API or token URL clears the stored credentials: enter them again.")}),
            *([(f"{obj.get_kind_display()} settings", {"fields": settings_fields})] if settings_fields else []),
            SENDING,
        ]

    def save_model(self, request, obj, form, change):
        # Through the service, as configure_account: a changed URL clears the stored credentials.
        before = ProviderAccount.objects.filter(pk=obj.pk).first() if change else None
        entered = form.entered_credentials(obj.kind)
        for notice in account_save(account=obj, credentials=entered):
            self.message_user(request, notice, messages.WARNING)
        # In the admin's transaction: the change and its audit entry commit together.
        account_change_record(account=obj, before=before, user=request.user, credentials_entered=entered,
                              how="in the admin")

    @admin.display(description="History")
    def changes(self, account):
        # django-auditlog's page: who changed which URL or setting, when, old and new values.
        url = reverse("admin:providers_provideraccount_auditlog", args=[account.pk])
        return format_html('<a href="{}">Changes to this account (URLs, settings), by whom and when</a>', url)

    def response_add(self, request, obj, post_url_continue=None):
        # As Django's UserAdmin: the new account's page is where its settings are entered.
        if "_addanother" not in request.POST and IS_POPUP_VAR not in request.POST:
            request.POST = request.POST.copy()
            request.POST["_continue"] = 1
        return super().response_add(request, obj, post_url_continue)

    def get_queryset(self, request):
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
        labels = credential_labels()
        return ", ".join(labels.get(key, key) for key in keys) or "None yet"

    @admin.display(description="Pre-launch checklist")
    def checklist(self, account):
        if not account.pk:
            return "Save the account first."
        return format_html(
            '<ul class="giftdesk-checklist">{}</ul>',
            format_html_join("", '<li class="{}"><strong>{} {}</strong> — {}</li>', (
                ("check-ok" if item.ok else "check-missing", "✓" if item.ok else "✗", item.label, item.detail)
                for item in account_checklist(
                    account, products_no_longer_offered=self.products_no_longer_offered(account))
            )),
        )

    def products_no_longer_offered(self, account) -> list[str] | None:
        """The products waiting orders use that the catalog no longer offers: a read of orders,
        supplied by `orders.admin`'s extension of this admin. None leaves that check out."""
        return None

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
            account_action_record(account=account, user=request.user,
                                  summary=f"Tested the connection: {prefix}. {result.message}")

    @admin.action(description="Sync catalog", permissions=["change"])
    def sync_catalog(self, request, queryset):
        for account in queryset:
            try:
                result = catalog_sync(account=account)
            except (ProviderError, LookupError) as exc:
                self.message_user(request, f"{account}: catalog not synced. {getattr(exc, 'message', exc)}",
                                  messages.ERROR)
                account_action_record(account=account, user=request.user,
                                      summary=f"Tried to sync the catalog: not synced. {getattr(exc, 'message', exc)}")
                continue
            self.message_user(request, f"{account}: catalog synced ({result}).", messages.SUCCESS)
            account_action_record(account=account, user=request.user, summary=f"Synced the catalog ({result}).")

    @admin.action(description="Refresh wallet balance", permissions=["change"])
    def refresh_balance(self, request, queryset):
        for account in queryset:
            outcome = account_balance_refresh(account=account)
            self.message_user(request, outcome)
            account_action_record(account=account, user=request.user,
                                  summary=f"Refreshed the wallet balance: {outcome.removeprefix(f'{account}: ')}")

    @admin.action(description="Register webhook (order status updates)", permissions=["change"])
    def register_webhook(self, request, queryset):
        base = settings.GIFTDESK_PUBLIC_URL or request.build_absolute_uri("/")
        for account in queryset:
            url = urljoin(base, reverse("provider-webhook", args=[account.pk]))
            ok, message = account_webhook_register(account=account, url=url)
            self.message_user(request, message, messages.SUCCESS if ok else messages.ERROR)
            account_action_record(account=account, user=request.user,
                                  summary=f"{'Registered' if ok else 'Tried to register'} the webhook {url}: "
                                          f"{message.removeprefix(f'{account}: ')}")


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
class WebhookEventAdmin(AdministratorsOnlyMixin, admin.ModelAdmin):
    list_display = ["received_at", "account", "event_type", "event_id", "outcome"]
    list_filter = ["account", "event_type"]
    search_fields = ["event_id"]
    list_select_related = ["account"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # The stored event id is what refuses a replay: deleting it would let it in again.

"""Admin screens for provider accounts and their catalogs. Presentation only: every
change goes through `providers.services`. What only orders know (the "Resume sending"
action, the products waiting orders use) is added by `orders.admin`, which extends
`ProviderAccountAdmin`: providers do not depend on orders."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from auditlog.mixins import AuditlogHistoryAdminMixin
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.options import IS_POPUP_VAR
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import get_text_list

from giftdesk.admin_restrictions import AdministratorsOnlyMixin
from providers.audit import account_action_record, account_change_record
from providers.checklist import account_checklist
from providers.clients import client_class
from providers.clients.base import ProviderError
from providers.clients.tokens import OAuthClient
from providers.forms import account_form, credential_field_name, kind_credentials, setting_field_name
from providers.models import Product, ProviderAccount, ProviderKind, WebhookEvent
from providers.services import (
    account_balance_refresh,
    account_check,
    account_save,
    account_webhook_register,
    catalog_sync,
    credential_labels,
)

# Once chosen, the kind is shown as "Provider", not edited.
BASICS = ["name", "provider", "environment", "is_active"]
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

    # --- One provider's form: the provider first when adding ---------------------------------------

    @staticmethod
    def chosen_kind(request) -> str | None:
        """The provider of the account being added: posted, or chosen in the first step (?kind=)."""
        kind = request.POST.get("kind") or request.GET.get("kind")
        return kind if kind in ProviderKind.values else None

    def add_view(self, request, form_url="", extra_context=None):
        # Two steps, as Django's user admin: the provider, then that provider's form. Plain
        # forms, so it works without JavaScript; the kind travels in the URL (?kind=).
        kind = self.chosen_kind(request)
        if request.method == "POST" and "_choose_provider" in request.POST and kind and self.has_add_permission(request):
            query = request.GET.copy()
            query["kind"] = kind
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        title = f"Add {client_class(kind).display_name} account" if kind else "Add provider account"
        context = {"title": title, "choosing_provider": kind is None, **(extra_context or {})}
        return super().add_view(request, form_url, context)

    def get_form(self, request, obj=None, change=False, **kwargs):
        kwargs["form"] = account_form(obj.kind if obj else self.chosen_kind(request))
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The page shows the kind's credentials and settings: another kind is another account
        # (as configure_account says), so the kind is shown, not edited, once chosen.
        return [*self.readonly_fields, "provider"] if obj or self.chosen_kind(request) else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        kind = obj.kind if obj else self.chosen_kind(request)
        if kind is None:
            return [(None, {"fields": ["kind"]})]
        client = client_class(kind)
        credentials = [credential_field_name(key) for key in kind_credentials(kind)]
        # Only providers that exchange client credentials for a token have a token URL.
        endpoints = ["api_base_url", *(["auth_url"] if issubclass(client, OAuthClient) else [])]
        settings_fields = [setting_field_name(key) for key in client.setting_fields]
        provider_settings = [(f"{client.display_name} settings", {"fields": settings_fields})] if settings_fields else []
        if obj is None:
            query = request.GET.copy()
            query.pop("kind", None)
            restart = f"{request.path}?{query.urlencode()}" if query else request.path
            return [
                (None, {"fields": BASICS, "description": format_html(
                    '<a href="{}" id="choose-another-provider">Choose another provider</a>', restart)}),
                (f"{client.display_name} credentials", {"fields": credentials}),
                *provider_settings,
                ("Endpoints", {"fields": endpoints}),
                SENDING,
            ]
        return [
            (None, {"fields": BASICS}),
            ("Pre-launch checklist", {"fields": ["checklist"]}),
            ("Connection", {"fields": ["connection", "last_checked_at", "sending", "blocked_at", "wallet"]}),
            (f"{client.display_name} credentials", {"fields": ["credentials_stored", *credentials]}),
            ("Endpoints", {"fields": [*endpoints, "changes"], "description": (
                "Changing the API or token URL clears the stored credentials: enter them again.")}),
            *provider_settings,
            SENDING,
        ]

    def save_model(self, request, obj, form, change):
        # Through the service, as configure_account: a changed URL clears the stored credentials.
        before = ProviderAccount.objects.filter(pk=obj.pk).first() if change else None
        entered = form.entered_credentials(obj.kind)
        for notice in account_save(account=obj, credentials=entered):
            self.message_user(request, notice, messages.WARNING)
        if not change and not entered:
            # Allowed (the credentials may come later), but never under a plain success message.
            needed = get_text_list(list(client_class(obj.kind).credential_fields.values()), "and")
            self.message_user(request, f"{obj} has no credentials yet: enter its {needed} on its page before "
                                       "testing the connection.", messages.WARNING)
        # In the admin's transaction: the change and its audit entry commit together.
        account_change_record(account=obj, before=before, user=request.user, credentials_entered=entered,
                              how="in the admin")

    @admin.display(description="Provider")
    def provider(self, account):
        return account.get_kind_display()

    @admin.display(description="History")
    def changes(self, account):
        # django-auditlog's page: who changed which URL or setting, when, old and new values.
        url = reverse("admin:providers_provideraccount_auditlog", args=[account.pk])
        return format_html('<a href="{}">Changes to this account (URLs, settings), by whom and when</a>', url)

    def response_add(self, request, obj, post_url_continue=None):
        # On to the new account's page: its checklist and the "Test connection" button are there.
        if "_addanother" not in request.POST and IS_POPUP_VAR not in request.POST:
            request.POST = request.POST.copy()
            request.POST["_continue"] = 1
        response = super().response_add(request, obj, post_url_continue)
        if isinstance(response, HttpResponseRedirect) and "_addanother" not in request.POST:
            # The admin carries the add page's query over; the chosen kind is the account's now.
            url = urlsplit(response["Location"])
            query = urlencode([(key, value) for key, value in parse_qsl(url.query) if key != "kind"])
            response["Location"] = urlunsplit(url._replace(query=query))
        return response

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

    # --- Test connection: an action on the list, a button on the account's page --------------------

    def get_urls(self):
        return [
            path("<path:object_id>/test-connection/", self.admin_site.admin_view(self.test_connection_view),
                 name="providers_provideraccount_test_connection"),
            *super().get_urls(),
        ]

    def test_connection_view(self, request, object_id):
        """The account page's "Test connection" button: the action's check for this account,
        then back to its page with the outcome."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = self.get_object(request, unquote(object_id))
        if account is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        self.connection_test(request, account)
        return HttpResponseRedirect(reverse("admin:providers_provideraccount_change", args=[account.pk]))

    def connection_test(self, request, account) -> None:
        result = account_check(account=account)
        level = messages.SUCCESS if result.ok else messages.ERROR
        prefix = "Connected" if result.ok else "Not connected"
        self.message_user(request, f"{account}: {prefix}. {result.message}", level)
        account_action_record(account=account, user=request.user,
                              summary=f"Tested the connection: {prefix}. {result.message}")

    @admin.action(description="Test connection", permissions=["change"])
    def test_connection(self, request, queryset):
        for account in queryset:
            self.connection_test(request, account)

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

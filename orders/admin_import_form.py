"""The import form's helpers on the batch admin: the account offered first, the product list
of the chosen account (JSON, for static/giftdesk/import_form.js), and the spreadsheet
template download. Both views need the import permission, like the form itself.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseBadRequest, HttpResponseNotFound, JsonResponse
from django.urls import path
from django.utils.http import content_disposition_header

from orders.product_choices import account_product, active_account, empty_label, product_options
from orders.spreadsheet_template import FORMATS, spreadsheet_template
from providers.models import ProviderAccount

PLAIN_TEXT = "text/plain; charset=utf-8"


def only_active_account() -> ProviderAccount | None:
    accounts = list(ProviderAccount.objects.filter(is_active=True)[:2])
    return accounts[0] if len(accounts) == 1 else None


class ImportFormMixin:
    """For BatchAdmin (with import-export's ImportMixin after it in the bases)."""

    def import_form_urls(self) -> list:
        return [
            path("import/products/", self.admin_site.admin_view(self.import_products_view),
                 name="orders_batch_import_products"),
            path("import/template/", self.admin_site.admin_view(self.import_template_view),
                 name="orders_batch_template"),
        ]

    def get_import_form_initial(self, request):
        # ?account=<id>[&product=<id>] (links from elsewhere), else the only active account.
        initial = super().get_import_form_initial(request)
        account = active_account(request.GET.get("account")) or only_active_account()
        if account is not None:
            initial["account"] = account.pk
            product = account_product(account, request.GET.get("product"))
            if product is not None:
                initial["default_product"] = product.pk
        return initial

    def import_products_view(self, request):
        """The account's active products as the form labels them: {"products": [{id, label}]}."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        account = active_account(request.GET.get("account"))
        if account is None:
            return JsonResponse({"error": "No active account has this id."}, status=404)
        options = product_options(account)
        return JsonResponse({
            "account": account.pk,
            "empty_label": empty_label(account, bool(options)),
            "products": [{"id": pk, "label": label} for pk, label in options],
        })

    def import_template_view(self, request):
        """?account=<id>[&product=<id>]&format=csv|xlsx: the template file, as an attachment."""
        if not self.has_import_permission(request):
            raise PermissionDenied
        file_format = request.GET.get("format", "csv")
        if file_format not in FORMATS:
            return HttpResponseBadRequest(f"Unknown template format “{file_format}”: use format=csv or format=xlsx.",
                                          content_type=PLAIN_TEXT)
        account = active_account(request.GET.get("account"))
        if account is None:
            return HttpResponseNotFound("No active account has this id: choose an account on the import page "
                                        "and download the template from there.", content_type=PLAIN_TEXT)
        product = None
        if request.GET.get("product"):
            product = account_product(account, request.GET["product"])
            if product is None:
                return HttpResponseNotFound(f"{account} has no active product with this id: choose one of its "
                                            "products on the import page.", content_type=PLAIN_TEXT)
        template = spreadsheet_template(account=account, product=product, file_format=file_format)
        response = HttpResponse(template.content, content_type=template.content_type)
        response["Content-Disposition"] = content_disposition_header(True, template.filename)
        return response

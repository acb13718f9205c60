"""The products an upload may use, as people choose them: one account's active products,
each labelled with its price rule ("The Global Gift Card — 50–5,000 DKK in steps of 10").

The import form, the small JSON view that refills its product list, and the spreadsheet
template all read the catalog through here, so they offer the same products in the same words.
"""

from __future__ import annotations


from django import forms
from django.db.models import QuerySet

from providers.models import Product, ProviderAccount

CHOOSE_ACCOUNT_FIRST = "Choose an account first"
NO_DEFAULT_PRODUCT = "None: each row names its product"
NO_ACTIVE_PRODUCTS = "This account has no active products: sync its catalog"


def account_products(account: ProviderAccount | None) -> QuerySet[Product]:
    """The account's active products, by title; none without an account."""
    if account is None:
        return Product.objects.none()
    return Product.objects.filter(account=account, is_active=True).order_by("title", "pk")


def active_account(value) -> ProviderAccount | None:
    """The active account a form's raw value (or an account) names; None for anything else."""
    if isinstance(value, ProviderAccount):
        return value if value.is_active else None
    try:
        pk = int(str(value))
    except (TypeError, ValueError):
        return None
    return ProviderAccount.objects.filter(pk=pk, is_active=True).first()


def price_rule(product: Product) -> str:
    """ "50–5,000 DKK in steps of 10", "25, 50, 100 EUR": the amounts a product takes (the
    same words as the spreadsheet's row errors)."""
    return product.pricing_summary()


def product_label(product: Product) -> str:
    return f"{product.title} — {price_rule(product)}"


def product_options(account: ProviderAccount | None) -> list[tuple[int, str]]:
    """(id, label) for each of the account's active products; two products that would read
    the same (one title, one rule) are told apart by their SKU or product id."""
    products = list(account_products(account))
    labels = [product_label(product) for product in products]
    return [
        (product.pk, f"{label} ({product.sku or product.provider_product_id})" if labels.count(label) > 1 else label)
        for product, label in zip(products, labels)
    ]


def empty_label(account: ProviderAccount | None, has_products: bool) -> str:
    if account is None:
        return CHOOSE_ACCOUNT_FIRST
    return NO_DEFAULT_PRODUCT if has_products else NO_ACTIVE_PRODUCTS


class AccountProductField(forms.ModelChoiceField):
    """A product of one account (set with `for_account`); another account's product is
    refused naming the account it belongs to, an inactive one saying so."""

    def __init__(self, **kwargs) -> None:
        super().__init__(queryset=Product.objects.none(), empty_label=CHOOSE_ACCOUNT_FIRST, **kwargs)
        self.account: ProviderAccount | None = None
        self.labels: dict[int, str] = {}

    def for_account(self, account: ProviderAccount | None) -> None:
        self.account = account
        self.queryset = account_products(account).select_related("account")
        self.labels = dict(product_options(account))
        self.empty_label = empty_label(account, bool(self.labels))

    def label_from_instance(self, product: Product) -> str:
        return self.labels.get(product.pk) or product_label(product)

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError as refusal:
            if refusal.code != "invalid_choice":
                raise
            raise forms.ValidationError(self.refusal_reason(value), code="invalid_choice") from None

    def refusal_reason(self, value) -> str:
        try:
            product = Product.objects.select_related("account").filter(pk=int(str(value))).first()
        except (TypeError, ValueError):
            product = None
        if self.account is None:
            return "Choose an account first, then one of its products."
        if product is None:
            return "That product does not exist (any more). Choose one from the list."
        if product.account_id != self.account.pk:
            return (f"“{product.title}” belongs to {product.account}, not to {self.account}. "
                    "Choose a product of the selected account.")
        return f"“{product.title}” is no longer offered by {self.account}. Choose an active product."

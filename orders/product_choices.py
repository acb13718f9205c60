"""The products an upload may use, as people choose them: one account's active products,
each labelled with its price rule ("The Global Gift Card — 50–5,000 DKK in steps of 10").

The import form (its product field, `orders.admin_import.AccountProductField`), the small
JSON view that refills its product list, and the spreadsheet template all read the catalog
through here, so they offer the same products in the same words. Queries and labels only.
"""

from __future__ import annotations

from collections import Counter

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
    pk = raw_id(value)
    return None if pk is None else ProviderAccount.objects.filter(pk=pk, is_active=True).first()


def account_product(account: ProviderAccount | None, value) -> Product | None:
    """The account's active product a raw value (?product=, a form's value) names; None for
    anything else, another account's product or an inactive one included."""
    pk = raw_id(value)
    return None if pk is None else account_products(account).filter(pk=pk).first()


def raw_id(value) -> int | None:
    """A database id from a raw value: what int() reads, else None ("²" is a digit to
    str.isdigit but not to int)."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def product_label(product: Product) -> str:
    """ "The Global Gift Card — 50–5,000 DKK in steps of 10": the title and the amounts the
    product takes, in the same words as the spreadsheet's row errors."""
    return f"{product.title} — {product.pricing_summary()}"


def product_options(account: ProviderAccount | None) -> list[tuple[int, str]]:
    """(id, label) for each of the account's active products; two products that would read
    the same (one title, one rule) are told apart by their SKU or product id."""
    products = list(account_products(account))
    labels = [product_label(product) for product in products]
    counts = Counter(labels)
    return [
        (product.pk, f"{label} ({product.sku or product.provider_product_id})" if counts[label] > 1 else label)
        for product, label in zip(products, labels)
    ]


def empty_label(account: ProviderAccount | None, has_products: bool) -> str:
    if account is None:
        return CHOOSE_ACCOUNT_FIRST
    return NO_DEFAULT_PRODUCT if has_products else NO_ACTIVE_PRODUCTS


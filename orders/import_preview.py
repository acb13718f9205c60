"""What the preview says beyond valid and invalid rows: the rows with warnings, and the
recent recipients the uploader may leave out; and the preview kept for its confirm step.

A recent recipient (someone who got or is due to get a card from the account within
GIFTDESK_RECENT_RECIPIENT_DAYS: an order not cancelled or failed, `orders.recent_recipients`)
is a warning, not an error: the row is valid, flagged ``ValidRow.recent`` by validation. Leaving such
rows out is the uploader's choice on the confirm step; they are then not created and not
counted as invalid rows (they are not), but named in the success message and the audit entry.

The preview's checked rows are kept server-side for its confirm step (`preview_keep`), under
the upload's token (which the browser never sees: its confirm form carries a signed ticket),
in Django's cache (Redis in production) for GIFTDESK_UPLOAD_MAX_AGE_HOURS, like the file. The
confirm uses them instead of reading and checking the file again, but only when nothing they
depend on changed: the file's bytes (checksum), the choices beside it, and what validation
read from the database (`context_fingerprint`: the account's catalog, its recent recipients,
today's date). Anything else, or nothing kept (another web process without a shared cache),
reads and checks the file again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.cache import cache

from giftdesk.text import plural
from orders.money import totals_add, totals_text

if TYPE_CHECKING:
    from orders.spreadsheet import ImportContext, ImportPreview, ValidRow


@dataclass(frozen=True)
class RecentRecipients:
    rows: list[ValidRow]
    days: int
    totals: dict[str, Decimal] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def label(self) -> str:
        """The confirm form's checkbox: what leaving them out means, with the count and value."""
        if len(self.rows) == 1:
            who = "the recipient who got or is due to get"
        else:
            who = f"the {plural(len(self.rows), 'recipient')} who got or are due to get"
        return (f"Leave out {who} a card in the last {plural(self.days, 'day')} "
                f"({totals_text(self.totals)} of the total)")


def recent_recipients(preview: ImportPreview, context: ImportContext) -> RecentRecipients:
    """The valid rows whose recipient got or is due to get a card from this account lately (the
    flag validation set, and worded among the row's warnings)."""
    rows = [row for row in preview.valid_rows if row.recent]
    return RecentRecipients(rows=rows, days=context.recent_days,
                            totals=totals_add((row.currency, row.amount) for row in rows))


def rows_with_warnings(preview: ImportPreview) -> int:
    return sum(1 for row in preview.valid_rows if row.warnings)


def rows_kept(preview: ImportPreview, left_out: list[ValidRow]) -> list[ValidRow]:
    left_out_rows = {row.row for row in left_out}
    return [row for row in preview.valid_rows if row.row not in left_out_rows]


def left_out_note(rows: list[ValidRow]) -> str:
    """For the success message and the audit entry; empty when none were left out."""
    if not rows:
        return ""
    numbers = ", ".join(str(row.row) for row in rows[:20]) + (", …" if len(rows) > 20 else "")
    return (f"{plural(len(rows), 'recent recipient')} left out as chosen "
            f"(row{'s' if len(rows) != 1 else ''} {numbers}).")


# --- The preview kept for its confirm step ---------------------------------------------------

KEPT_PREVIEW_KEY = "giftdesk:orders:kept-preview:{token}"


@dataclass
class KeptPreview:
    """A preview's checked rows, and what they were checked from."""

    checksum: str  # SHA-256 of the file's bytes
    fingerprint: str  # context_fingerprint of the choices and the database, then
    preview: ImportPreview

    def preview_for(self, context: ImportContext) -> ImportPreview:
        """The kept preview, its rows pointing at `context`'s products (equal, by the fingerprint)."""
        products = {product.pk: product for product in context.products}
        if context.default_product is not None:
            products.setdefault(context.default_product.pk, context.default_product)
        for row in self.preview.valid_rows:
            row.product = products.get(row.product.pk, row.product)
        return self.preview


def context_fingerprint(context: ImportContext) -> str:
    """Everything besides the file that validation's outcome depends on: the account, the
    defaults chosen beside the file, today's date, every field of the account's active products
    and the recipients who got a card lately. Equal fingerprints, equal checks."""
    def fields(product) -> tuple:
        return tuple(getattr(product, each.attname) for each in product._meta.concrete_fields) if product else ()

    parts = [
        context.account.pk, fields(context.default_product),
        None if context.default_amount is None else str(context.default_amount), context.default_message,
        context.today.isoformat(), context.recent_days,
        sorted((fields(product) for product in context.products), key=lambda values: values[0]),
        sorted(context.recent_recipient_emails),
    ]
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def preview_keep(token: str, kept: KeptPreview) -> None:
    cache.set(KEPT_PREVIEW_KEY.format(token=token), kept, timeout=settings.GIFTDESK_UPLOAD_MAX_AGE_HOURS * 3600)


def preview_take(token: str) -> KeptPreview | None:
    """The preview kept under `token` (an upload's, from a valid confirm ticket), once: it is
    removed as it is taken, as the file is on confirm. None when nothing is kept."""
    key = KEPT_PREVIEW_KEY.format(token=token)
    kept = cache.get(key)
    cache.delete(key)
    return kept if isinstance(kept, KeptPreview) else None

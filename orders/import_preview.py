"""What the preview says beyond valid and invalid rows: the rows with warnings, and the
recent recipients the uploader may leave out.

A recent recipient (someone who got or is due to get a card from the account within
GIFTDESK_RECENT_RECIPIENT_DAYS: an order not cancelled or failed, `orders.recent_recipients`)
is a warning, not an error: the row is valid, flagged ``ValidRow.recent`` by validation. Leaving such
rows out is the uploader's choice on the confirm step; they are then not created and not
counted as invalid rows (they are not), but named in the success message and the audit entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

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

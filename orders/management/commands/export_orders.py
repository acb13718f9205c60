"""Export orders for the books, streamed to a CSV or XLSX file.

Exit status: 0 written; 2 an option or the output refused (nothing written).
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from audit.context import os_user
from giftdesk.text import plural
from orders.audit import export_record
from orders.exports import (
    FORMATS,
    ExportCriteria,
    ExportRefused,
    check_status,
    find_account,
    orders_export,
    parse_date,
)

EXIT_REFUSED = 2


class Command(BaseCommand):
    help = ("Write the orders (all, or those created in a period, of one account, in one status) "
            "to a CSV or XLSX file; every text cell is escaped against spreadsheet formulas.")

    def add_arguments(self, parser):
        parser.add_argument("--format", required=True, choices=FORMATS, dest="file_format")
        parser.add_argument("--output", required=True, type=Path, help="The file to write (replaced when done).")
        parser.add_argument("--from", dest="created_from", metavar="DATE",
                            help="Orders created on or after this day (YYYY-MM-DD, server time zone).")
        parser.add_argument("--to", dest="created_to", metavar="DATE",
                            help="Orders created on or before this day (YYYY-MM-DD).")
        parser.add_argument("--account", help="Only this provider account's orders (its name).")
        parser.add_argument("--status", help="Only orders in this status, e.g. delivered or failed.")

    def handle(self, *args, **options):
        try:
            criteria = ExportCriteria(
                created_from=_given(options["created_from"], lambda text: parse_date(text, "--from")),
                created_to=_given(options["created_to"], lambda text: parse_date(text, "--to")),
                account=_given(options["account"], find_account),
                status=_given(options["status"], check_status),
            )
            if criteria.created_from and criteria.created_to and criteria.created_from > criteria.created_to:
                raise ExportRefused("--from is after --to: nothing could match. Swap them.")
            count = orders_export(criteria=criteria, file_format=options["file_format"], path=options["output"])
        except ExportRefused as exc:
            raise CommandError(str(exc), returncode=EXIT_REFUSED) from exc
        # Once the file is there: an export that failed took nothing out.
        chosen = [f"--{name.removeprefix('created_')} {options[name]}"
                  for name in ("created_from", "created_to", "account", "status") if options[name] is not None]
        where = f"with export_orders to {Path(options['output']).resolve()} (run by the OS user {os_user()})"
        export_record(user=None, orders=criteria.queryset(), count=count, file_format=options["file_format"],
                      where=where, chosen=" ".join(chosen) or "all orders")
        self.stdout.write(f"Exported {plural(count, 'order')} to {options['output']}")


def _given(value: str | None, parse):
    return None if value is None else parse(value)

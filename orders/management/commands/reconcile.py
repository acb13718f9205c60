"""Ask each provider what became of the orders GiftDesk has as accepted or delivered, and
report every difference. It only reports: no order is changed.

Exit status: 0 everything agrees (orders of a provider without an order lookup are counted
as not checked); 1 a difference was found, or a provider could not be asked, or the run
itself failed; 2 an option was refused (nothing asked).
"""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from audit.context import os_user
from orders.exports import ExportRefused, find_account, parse_date
from orders.models import ReconciliationState
from orders.reconciliation import (
    DEFAULT_DAYS,
    default_since,
    line_text,
    reconciliation_run,
    reconciliation_start,
    scope_text,
    stale_reconciliations_stop,
)

EXIT_DIFFERENCES = 1
EXIT_REFUSED = 2


class Command(BaseCommand):
    help = ("Ask each provider what became of the orders it accepted (and of failed orders it was sent), "
            "and print every difference: a card the provider does not know, a status or a cost that "
            "disagrees. Changes nothing. Exit status 0: everything agrees; 1: differences; 2: bad option.")

    def add_arguments(self, parser):
        parser.add_argument("--account", help="Only this provider account (its name); default: every active one.")
        parser.add_argument("--since", metavar="DATE",
                            help=f"Orders created on or after this day (YYYY-MM-DD, server time zone); "
                                 f"default: {DEFAULT_DAYS} days ago.")

    def handle(self, *args, **options):
        try:  # the same option checks, in the same words, as export_orders
            account = None if options["account"] is None else find_account(options["account"])
            since = default_since() if options["since"] is None else parse_date(options["since"], "--since")
        except ExportRefused as exc:
            raise CommandError(str(exc), returncode=EXIT_REFUSED) from exc
        if since > timezone.localdate():
            raise CommandError(f"--since {since.isoformat()} is in the future: no order was created since then.",
                               returncode=EXIT_REFUSED)
        stale_reconciliations_stop()
        reconciliation = reconciliation_start(
            account=account, since=since, how=f"with manage.py reconcile (run by the OS user {os_user()})")
        self.stdout.write(f"{reconciliation}: orders of {scope_text(account)} created since {since.isoformat()}. "
                          "Nothing is changed: a reconciliation only reports.")
        # In slices, as a worker runs it: killed, it leaves a claim that runs out (see
        # orders.reconciliation); nobody else runs this one meanwhile.
        while reconciliation_run(reconciliation.pk) is False:
            pass
        reconciliation.refresh_from_db()
        for line in reconciliation.lines:
            self.stdout.write(line_text(line))
        self.stdout.write(reconciliation.summary)
        if reconciliation.state != ReconciliationState.AGREED:
            sys.exit(EXIT_DIFFERENCES)

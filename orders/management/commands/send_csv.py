"""Send a spreadsheet from the shell, with the same checks and lifecycle as the admin.

Exit status: 0 every row valid; 1 some rows invalid (the valid ones were queued unless
--dry-run or --strict; when every row is invalid nothing was created, and it is still 1);
2 the file or an option refused, nothing created (a header without any recipient row
under it is such a file: there is nothing to send); 3 --wait ended
with failed orders (or timed out before every order was finished); 4 the batch was created
but its total reaches an approval threshold (GIFTDESK_APPROVAL_THRESHOLDS), so it waits for
an approver (`manage.py approve_batch`) and nothing was queued. 4 wins over 1 (what a script
must know first is that nothing was sent), and --wait does not wait (there is nothing to
wait for until someone approves).
"""

from __future__ import annotations

import hashlib
import sys
import time
from decimal import Decimal
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from giftdesk.text import plural
from orders import spreadsheet
from orders.spreadsheet.read import too_large_message
from orders.models import Order, OrderStatus, TERMINAL_STATUSES
from orders.approvals import approval_reasons
from orders.batches import BatchActionRefused, batch_create, batch_send
from orders.money import totals_of
from providers.models import Product, ProviderAccount

EXIT_OK, EXIT_INVALID_ROWS, EXIT_REFUSED, EXIT_FAILED_ORDERS, EXIT_AWAITING_APPROVAL = 0, 1, 2, 3, 4


class Command(BaseCommand):
    help = "Check a CSV/XLSX of recipients, create a batch of its valid rows and queue it for sending."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--account", required=True, help="The provider account's name.")
        parser.add_argument("--product", help="Default product: provider product id or SKU.")
        parser.add_argument("--amount", help="Default amount for rows without one, e.g. 250.")
        parser.add_argument("--message", default="", help="Default greeting on every card.")
        parser.add_argument("--user", help="The user the batch is created for (default: none).")
        parser.add_argument("--dry-run", action="store_true", help="Check only; create nothing.")
        parser.add_argument("--strict", action="store_true", help="Create nothing if any row is invalid.")
        parser.add_argument("--wait", action="store_true", help="Block until every order is finished.")
        parser.add_argument("--timeout", type=float, default=900.0,
                            help="With --wait: give up after this many seconds (default 900).")

    def handle(self, *args, **options):
        try:
            code = self._run(options)
        except _Refused as exc:
            self.stderr.write(f"Refused: {exc}")
            code = EXIT_REFUSED
        if code:
            sys.exit(code)

    def _run(self, options) -> int:
        account = ProviderAccount.objects.filter(name=options["account"]).first()
        if account is None:
            names = ", ".join(ProviderAccount.objects.values_list("name", flat=True)) or "none yet"
            raise _Refused(f"no account named {options['account']!r} (accounts: {names}).")
        user = self._user(options["user"])
        product = self._product(account, options["product"])
        amount = self._amount(options["amount"])
        path: Path = options["file"]
        data = self._read(path)
        try:
            table = spreadsheet.read_table(data, path.name)
        except spreadsheet.FileRefused as exc:
            raise _Refused(exc.message) from exc

        context = spreadsheet.ImportContext.for_account(
            account, default_product=product, default_amount=amount, default_message=options["message"]
        )
        try:
            preview = spreadsheet.validate(table, context)
        except spreadsheet.FileRefused as exc:
            raise _Refused(exc.message) from exc
        del table  # its rows are the preview's now: not held while the batch is created
        self._report(preview)
        code = EXIT_INVALID_ROWS if preview.invalid_rows else EXIT_OK
        if options["dry_run"]:
            self.stdout.write("Dry run: nothing was created.")
            return code
        if preview.invalid_rows and options["strict"]:
            self.stdout.write("--strict: nothing was created because some rows are invalid.")
            return code
        if not preview.valid_rows:
            self.stdout.write("No valid rows: nothing was created.")
            return code

        try:
            batch = batch_create(
                account=account, rows=preview.valid_rows, user=user, default_product=product,
                default_amount=amount, message=options["message"], source_filename=path.name,
                source_checksum=hashlib.sha256(data).hexdigest(),
                rejected_rows=preview.errors,
            )
            sent = batch_send(batch=batch, user=user)
        except BatchActionRefused as exc:
            raise _Refused(str(exc)) from exc
        if sent.awaiting_approval:
            reasons = approval_reasons(totals_of(batch.orders.filter(status=OrderStatus.PENDING)))
            uploader = f" other than {user.get_username()}" if user else ""
            self.stdout.write(
                f"Batch {batch.pk} “{batch}” needs approval before it is sent: {'; '.join(reasons)}.\n"
                f"Nothing was queued; an approver{uploader} runs "
                f"`manage.py approve_batch {batch.pk} --user <name>`."
            )
            return EXIT_AWAITING_APPROVAL
        self.stdout.write(f"Batch {batch.pk} “{batch}”: {plural(sent.queued, 'order')} queued on {account}.")
        if options["wait"] and not self._wait(batch.pk, options["timeout"]):
            return EXIT_FAILED_ORDERS
        return code

    def _read(self, path: Path) -> bytes:
        """The file's bytes; one over the size limit is refused before it is read (a huge
        file, or a device such as /dev/zero, must not be read into memory)."""
        limit = settings.GIFTDESK_IMPORT_MAX_BYTES
        try:
            size = path.stat().st_size
            if size > limit:
                raise _Refused(f"{too_large_message(size, limit)} Split it into smaller files.")
            with path.open("rb") as file:
                return file.read(limit + 1)  # what is not a regular file may not say its size
        except OSError as exc:
            raise _Refused(f"cannot read {path}: {exc.strerror}.") from exc

    # --- Options ------------------------------------------------------------------------------

    def _user(self, username: str | None):
        if not username:
            return None
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise _Refused(f"no user named {username!r}.")
        return user

    def _product(self, account: ProviderAccount, value: str | None) -> Product | None:
        if not value:
            return None
        matches = Product.objects.filter(account=account, is_active=True).filter(
            provider_product_id=value
        ) | Product.objects.filter(account=account, is_active=True, sku=value)
        product = matches.order_by("id").first()
        if product is None:
            raise _Refused(
                f"{account} has no active product with id or SKU {value!r}. "
                f"Run `manage.py sync_catalog --account \"{account}\"` or check the id."
            )
        return product

    def _amount(self, value: str | None) -> Decimal | None:
        if value is None:
            return None
        # Read as the amount column is ("1e2", "NaN" and "٥٠" are refused), in the same words.
        try:
            amount = spreadsheet.parse_amount(value.strip())
        except spreadsheet.NotAnAmount as refusal:
            raise _Refused(f"--amount {refusal}") from None
        if not amount:
            raise _Refused(f"--amount {value!r} is not more than 0; give the amount of one card, e.g. 250.")
        return amount

    # --- Output -------------------------------------------------------------------------------

    def _report(self, preview: spreadsheet.ImportPreview) -> None:
        if preview.header_row_note:
            self.stdout.write(preview.header_row_note)
        for error in preview.errors:
            self.stdout.write(f"Row {error.row}, {error.column or 'row'}: {error.message}")
        for warning in preview.warnings:
            self.stdout.write(f"Warning: {warning}")
        if preview.ignored_columns:
            self.stdout.write(f"Ignored columns: {', '.join(preview.ignored_columns)}")
        totals = ", ".join(f"{total:f} {currency}" for currency, total in preview.totals.items()) or "nothing"
        self.stdout.write(
            f"{plural(len(preview.valid_rows), 'valid row')} ({totals}), "
            f"{plural(len(preview.invalid_rows), 'invalid row')}."
        )

    def _wait(self, batch_id: int, timeout: float) -> bool:
        """Block until every order is terminal; True when none failed."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            counts = dict(
                Order.objects.filter(batch_id=batch_id).values_list("status").annotate(n=Count("id"))
            )
            summary = ", ".join(f"{counts[status]} {status}" for status in OrderStatus.values if counts.get(status))
            if summary != last:
                self.stdout.write(f"  {summary}")
                last = summary
            unfinished = sum(n for status, n in counts.items() if status not in TERMINAL_STATUSES)
            if not unfinished:
                failed = counts.get(OrderStatus.FAILED, 0)
                self.stdout.write(f"Finished: {summary}.")
                if failed:
                    for reference, error in Order.objects.filter(
                        batch_id=batch_id, status=OrderStatus.FAILED
                    ).values_list("reference", "last_error")[:20]:
                        self.stdout.write(f"  {reference}: {error}")
                return not failed
            if time.monotonic() > deadline:
                self.stderr.write(
                    f"Gave up waiting after {timeout:.0f} s with {plural(unfinished, 'order')} unfinished "
                    "(they go on in the background). Is a worker running (`manage.py qcluster`)?"
                )
                return False
            time.sleep(0.5)


class _Refused(CommandError):
    """Nothing was created: the file or an option is not usable."""

"""Approve or reject a batch awaiting approval from the shell (four eyes, DESIGN.md
"Approvals and limits"), with the same rules as the approval screen:

    manage.py approve_batch BATCH_ID --user U                      approve: the batch is queued
    manage.py approve_batch BATCH_ID --user U --reject --reason T  reject: its orders are cancelled

Exit status: 0 done; 2 refused, with the reason on stderr, and nothing changed: no such batch
or user, a user who is not an approver or administrator, the user's own batch (nobody
approves their own batch, administrators included), a batch not awaiting approval, --reject
without --reason or --reason without --reject.

The approval screen also refuses a batch that changed while the approver read it (it
carries what they saw); from the shell there is no such earlier reading, so the batch is
approved as it stands when the command runs.
"""

from __future__ import annotations

import sys

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from giftdesk.text import plural
from orders.batches import BatchActionRefused, batch_approve, batch_reject
from orders.models import Batch, OrderStatus
from orders.money import totals_of, totals_text

EXIT_OK, EXIT_REFUSED = 0, 2


class Command(BaseCommand):
    help = "Approve a batch awaiting approval (which queues it), or reject it with a reason."

    def add_arguments(self, parser):
        # Checked here rather than by argparse, so every refusal exits 2 with a sentence.
        parser.add_argument("batch_id", help="The batch's number (send_csv prints it).")
        parser.add_argument("--user", help="The approver's username; never the batch's uploader.")
        parser.add_argument("--reject", action="store_true", help="Reject instead of approving.")
        parser.add_argument("--reason", help="With --reject: why, for the uploader to read.")

    def handle(self, *args, **options):
        try:
            self._run(options)
        except _Refused as exc:
            self.stderr.write(f"Refused: {exc} Nothing was changed.")
            sys.exit(EXIT_REFUSED)

    def _run(self, options) -> None:
        reject, reason = options["reject"], options["reason"]
        if reject and not (reason or "").strip():
            raise _Refused("--reject needs --reason TEXT: the uploader reads why their batch was rejected.")
        if reason is not None and not reject:
            raise _Refused("--reason goes with --reject; an approval takes no reason. "
                           "Add --reject to reject the batch, or leave out --reason to approve it.")
        if not options["user"]:
            raise _Refused("give --user: the approver who signs this decision.")
        user = get_user_model().objects.filter(username=options["user"]).first()
        if user is None:
            raise _Refused(f"no user named {options['user']!r}.")
        batch = self._batch(options["batch_id"])
        orders = batch.orders.filter(status=OrderStatus.PENDING)
        count, totals = orders.count(), totals_of(orders)  # read before the decision changes them
        try:
            if reject:
                cancelled = batch_reject(batch=batch, user=user, reason=reason)
            else:
                outcome = batch_approve(batch=batch, user=user)
        except BatchActionRefused as exc:
            raise _Refused(str(exc)) from exc
        what = f"batch {batch.pk} “{batch}” ({plural(count, 'order')}, {totals_text(totals)})"
        if reject:
            self.stdout.write(f"{user.get_username()} rejected {what}: {plural(cancelled, 'order')} cancelled. "
                              f"Reason: {reason.strip()}")
        else:
            self.stdout.write(f"{user.get_username()} approved {what}. {outcome.message}")

    def _batch(self, value: str) -> Batch:
        try:
            batch_id = int(value)
        except ValueError:
            raise _Refused(f"BATCH_ID {value!r} is not a batch number; send_csv and the batch page show it.") from None
        batch = Batch.objects.filter(pk=batch_id).first()
        if batch is None:
            raise _Refused(f"no batch number {batch_id}.")
        return batch


class _Refused(CommandError):
    """Nothing was changed: the decision is not allowed, or an argument is not usable."""

"""Who may touch a batch (DESIGN.md "Roles"), read by the admin before it offers or does
anything. Two rules:

- Sending and cancelling: the batch's uploader, an approver (the Approvers group) or an
  administrator, and only with the permission to change batches (which Finance lacks).
- Editing (name, campaign, message...): the same people, and only before it is sent. A batch
  that has been sent, or any of whose orders has left "pending", is part of the books: no
  one edits it, administrators included. Editing an approved batch voids its approval.
- Approving or rejecting (four eyes): the Approvers group (`orders.approve_batch`) and
  administrators, never on a batch they uploaded, administrators included.
"""

from __future__ import annotations

from orders.models import Batch, BatchState, OrderStatus

APPROVERS_GROUP = "Approvers"  # created by orders/migrations/0002_groups_and_schedules.py
SENT_STATES = (BatchState.SENDING, BatchState.COMPLETED, BatchState.CANCELLED, BatchState.REJECTED)


def batch_is_sent(batch: Batch) -> bool:
    """Sent (or closed): in a sending state, or any order past pending."""
    return batch.state in SENT_STATES or batch.orders.exclude(status=OrderStatus.PENDING).exists()


def is_approver(user) -> bool:
    return user.groups.filter(name=APPROVERS_GROUP).exists()


def may_send_or_cancel_batch(user, batch: Batch) -> bool:
    if not (user.is_active and user.has_perm("orders.change_batch")):
        return False
    return user.is_superuser or batch.created_by_id == user.pk or is_approver(user)


def may_edit_batch(user, batch: Batch) -> bool:
    return may_send_or_cancel_batch(user, batch) and not batch_is_sent(batch)


def approval_refusal(user, batch: Batch) -> str | None:
    """Why `user` may not approve or reject `batch`; None when they may."""
    if not (user.is_active and user.has_perm("orders.approve_batch")):
        return ("Only a member of Approvers or an administrator may approve or reject a batch; "
                f"{user.get_username()} is neither.")
    if batch.created_by_id == user.pk:
        return (f"{user.get_username()} uploaded “{batch}”, and nobody approves their own batch "
                "(administrators included): another approver must decide.")
    if batch.send_requested_by_id == user.pk:
        # Asking to send is one pair of eyes: the same person cannot be the second.
        return (f"{user.get_username()} asked to send “{batch}”, and nobody approves a send they asked "
                "for themselves: another approver must decide.")
    return None


def may_approve_batch(user, batch: Batch) -> bool:
    return approval_refusal(user, batch) is None

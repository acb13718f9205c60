"""The queue may hand the same work to two workers at once: the database decides, so each
card is still bought once."""

from orders import dispatch
from orders.models import OrderStatus
from orders.batches import batch_send
from tests.fixtures.data import make_batch
from tests.orders.test_batch_totals import assert_batch_totals_match
from tests.racing import pumps_racing


def test_two_pumps_racing_on_one_account_buy_each_card_once(transactional_db, emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, [str(50 + 10 * i) for i in range(12)])
    batch_send(batch=batch)
    pumps_racing(emulated_gogift_account.pk, budget_seconds=30)
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}, not_delivered(batch)
    bought = [entry.recipient_email for entry in gogift_emulator.ledger]
    assert sorted(bought) == sorted(batch.orders.values_list("recipient__email", flat=True))
    assert_batch_totals_match(batch)  # the stored counts survive workers racing


def not_delivered(batch) -> str:
    """Diagnostics for a failed run: each order not delivered, its submission and its history."""
    lines = []
    for order in batch.orders.exclude(status=OrderStatus.DELIVERED).select_related("submission").order_by("id"):
        submission = order.submission
        lines.append(f"{order.reference}: {order.status}, last_error={order.last_error!r}; submission "
                     + (f"{submission.idempotency_key} {submission.state}, attempts={submission.attempts}, "
                        f"outcome_unknown={submission.outcome_unknown}, last_error={submission.last_error!r}"
                        if submission else "none"))
        lines.extend(f"    {event.created_at:%H:%M:%S.%f} {event.actor}: {event.from_status or '-'} -> "
                     f"{event.to_status or 'note'}: {event.message}" for event in order.events.order_by("id"))
    return "orders not delivered:\n" + "\n".join(lines)


def test_a_pump_for_an_account_that_is_gone_does_nothing(db):
    report = dispatch.account_pump(987654, budget_seconds=0)
    assert (report.claimed, report.attempted, report.polled) == (0, 0, 0)

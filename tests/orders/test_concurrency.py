"""The queue may hand the same work to two workers at once: the database decides, so each
card is still bought once."""

from orders import dispatch
from orders.models import OrderStatus
from orders.batches import batch_send
from tests.fixtures.data import make_batch
from tests.racing import pumps_racing


def test_two_pumps_racing_on_one_account_buy_each_card_once(transactional_db, emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, [str(50 + 10 * i) for i in range(12)])
    batch_send(batch=batch)
    pumps_racing(emulated_gogift_account.pk, budget_seconds=30)
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    bought = [entry.recipient_email for entry in gogift_emulator.ledger]
    assert sorted(bought) == sorted(batch.orders.values_list("recipient__email", flat=True))


def test_a_pump_for_an_account_that_is_gone_does_nothing(db):
    report = dispatch.account_pump(987654, budget_seconds=0)
    assert (report.claimed, report.attempted, report.polled) == (0, 0, 0)

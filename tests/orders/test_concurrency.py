"""The queue may hand the same work to two workers at once: the database decides, so each
card is still bought once."""

import threading

from django.db import connection

from orders import dispatch
from orders.models import OrderStatus
from orders.batches import batch_send
from tests.fixtures.data import make_batch


def test_two_pumps_racing_on_one_account_buy_each_card_once(transactional_db, emulated_gogift_account, gogift_emulator):
    batch = make_batch(emulated_gogift_account, [str(50 + 10 * i) for i in range(12)])
    batch_send(batch=batch)
    errors = []

    def pump():
        try:
            dispatch.account_pump(emulated_gogift_account.pk, budget_seconds=30)
        except Exception as exc:  # noqa: BLE001 — reported below, with the thread's own error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pump) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.DELIVERED}
    bought = [entry.recipient_email for entry in gogift_emulator.ledger]
    assert sorted(bought) == sorted(batch.orders.values_list("recipient__email", flat=True))


def test_a_pump_for_an_account_that_is_gone_does_nothing(db):
    report = dispatch.account_pump(987654, budget_seconds=0)
    assert (report.claimed, report.attempted, report.polled) == (0, 0, 0)

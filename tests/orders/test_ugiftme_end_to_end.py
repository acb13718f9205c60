"""A CSV sent through UGiftMe by a real worker: `manage.py send_csv --wait`, end to end."""

from __future__ import annotations

import pytest

from orders.models import Batch, OrderStatus
from emulators.ugiftme import (
    BOL_CARD,
    EXPERIENCE_CARD,
    MAGASIN_CARD,
    UNIVERSAL_CARD,
)
from tests.commands import send_csv

# Six rows valid for the emulator's catalog: EUR and DKK, fixed and ranged pricing. The
# account sends at most 3 cards per request, so EUR goes as a bulk of 3 and a single order.
ROWS = f"""name,email,amount,product
Ana Andersen,ana@example.com,50,{BOL_CARD}
Bo Berg,bo@example.com,100,{BOL_CARD}
Cy Christensen,cy@example.com,25,{BOL_CARD}
Di Dahl,di@example.com,37.50,{UNIVERSAL_CARD}
Ed Eriksen,ed@example.com,200,{MAGASIN_CARD}
Fi Frost,fi@example.com,750,{EXPERIENCE_CARD}
"""


def assert_every_order_delivered_once(emulator, worker) -> None:
    orders = list(Batch.objects.get().orders.all())
    assert len(orders) == 6
    assert {order.status for order in orders} == {OrderStatus.DELIVERED}, worker.output()
    for order in orders:
        [entry] = [entry for entry in emulator.ledger if entry.reference == order.reference]
        assert entry.amount == order.amount and entry.recipient_email == order.recipient.email
    assert len(emulator.ledger) == 6


@pytest.mark.worker
def test_a_csv_is_delivered_through_async_order_requests_one_card_per_order(
    worker, emulated_ugiftme_account, ugiftme_emulator, tmp_path
):
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS, encoding="utf-8")

    code, output = send_csv(rows, "--account", emulated_ugiftme_account.name, "--wait", "--timeout", "60")

    assert code == 0, output + worker.output()
    assert_every_order_delivered_once(ugiftme_emulator, worker)
    assert any(r.path.startswith("/orders/order-requests/") for r in ugiftme_emulator.requests)
    assert "Finished: 6 delivered." in output


@pytest.mark.worker
def test_a_csv_is_delivered_through_synchronous_orders_one_card_per_order(
    worker, emulated_ugiftme_account, ugiftme_emulator, tmp_path
):
    ugiftme_emulator.async_orders = False
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS, encoding="utf-8")

    code, output = send_csv(rows, "--account", emulated_ugiftme_account.name, "--wait", "--timeout", "60")

    assert code == 0, output + worker.output()
    assert_every_order_delivered_once(ugiftme_emulator, worker)
    assert {r.path for r in ugiftme_emulator.requests if r.method == "POST"} == {"/orders", "/orders/bulk"}

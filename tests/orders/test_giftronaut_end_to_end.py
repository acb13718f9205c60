"""`manage.py send_csv --wait` through a real worker to the Giftronaut emulator and back.

Giftronaut fulfils orders asynchronously, so this needs the engine's status polling:
the worker submits each group of cards as one order, then polls until every card is sent.
"""


import pytest

from orders.models import Batch, OrderStatus
from tests.commands import send_csv

ROWS = """name,email,amount
Alice Kim,alice@example.com,50
Bob Lee,bob@example.com,25
Mary Ann Smith,mary@example.com,100
Cher,cher@example.com,10
Dan Brown,dan@example.com,50
Eve Adams,eve@example.com,25
"""


@pytest.mark.worker
def test_a_csv_is_delivered_through_giftronaut_with_one_card_per_order(
    worker, emulated_giftronaut_account, giftronaut_emulator, tmp_path
):
    rows = tmp_path / "recipients.csv"
    rows.write_text(ROWS, encoding="utf-8")

    code, output = send_csv(rows, "--account", emulated_giftronaut_account.name, "--product", "GC-AMAZON-USD",
                            "--message", "Thank you!", "--wait", "--timeout", "90")

    assert code == 0, output + worker.output()
    orders = list(Batch.objects.get().orders.select_related("recipient"))
    assert len(orders) == 6
    assert {order.status for order in orders} == {OrderStatus.DELIVERED}, worker.output()
    for order in orders:
        cards = giftronaut_emulator.cards_for(order.recipient.email)
        assert [(card.amount, card.currency) for card in cards] == [(order.amount, "USD")]
        assert order.provider_order_id == cards[0].order_id
    assert len(giftronaut_emulator.ledger) == 6
    # max_cards_per_request is 4: two orders, each for one product with one message.
    assert len({entry.order_id for entry in giftronaut_emulator.ledger}) == 2

"""A CSV sent through Gifty by a real worker: `manage.py send_csv --wait`, end to end."""

from __future__ import annotations

import pytest

from orders.models import Batch, OrderStatus
from tests.commands import send_csv
from tests.fixtures.emulators_gifty import GIFTY_DINNER_PACKAGE, GIFTY_VARIABLE_CARD

# Six rows valid for the emulator's catalog: the variable card (5..500 EUR, any cent) and
# the fixed-price dinner package (75 EUR), some with a message (a paid customisation).
ROWS = f"""name,email,amount,product,message
Ana Andersen,ana@example.com,5,{GIFTY_VARIABLE_CARD},
Bo Berg,bo@example.com,25.50,{GIFTY_VARIABLE_CARD},Thank you!
Cy Claes,cy@example.com,100,{GIFTY_VARIABLE_CARD},
Di Dekker,di@example.com,500,{GIFTY_VARIABLE_CARD},Well done
Ed Evers,ed@example.com,75,{GIFTY_DINNER_PACKAGE},
Fi Fokker,fi@example.com,75,{GIFTY_DINNER_PACKAGE},Enjoy your dinner
"""


@pytest.mark.worker
def test_a_csv_is_delivered_as_one_gifty_order_per_card_each_bought_once(
    worker, emulated_gifty_account, gifty_emulator, tmp_path
):
    rows = tmp_path / "rows.csv"
    rows.write_text(ROWS, encoding="utf-8")

    code, output = send_csv(rows, "--account", emulated_gifty_account.name, "--wait", "--timeout", "60")

    assert code == 0, output + worker.output()
    orders = list(Batch.objects.get().orders.all())
    assert len(orders) == 6
    assert {order.status for order in orders} == {OrderStatus.DELIVERED}, worker.output()
    for order in orders:
        [entry] = [entry for entry in gifty_emulator.ledger if entry.reference == order.reference]
        assert entry.amount == order.amount and entry.recipient_email == order.recipient.email
        assert order.provider_order_id == entry.order_id and order.card_code() == entry.extra["code"]
        assert order.card_code_last4 == entry.extra["code"][-4:] and entry.extra["code"] not in order.card_code_encrypted
        assert order.provider_details["balance"] == str(entry.amount)
    assert len(gifty_emulator.ledger) == 6
    assert len({entry.order_id for entry in gifty_emulator.ledger}) == 6
    assert any(r.method == "GET" and r.path.startswith("/v1/external-orders/or_") for r in gifty_emulator.requests)
    assert "Finished: 6 delivered." in output

"""Two workers racing on one account never take it over its monthly limit (engine rule 8):
the emulator's ledger, what the provider really sold, is the judge. Runs on SQLite and, in
.ci/run, on PostgreSQL (`-s` prints the ledger's figures)."""

from collections import Counter
from decimal import Decimal

from orders.batches import batch_send
from orders.models import OrderStatus
from orders.spending import WAIT_REASON_START, month_spent
from providers.services import account_configure
from tests.fixtures.data import make_batch
from tests.orders.test_batch_totals import assert_batch_totals_match
from tests.racing import pumps_racing

LIMIT = Decimal("4000")
# 30 cards of 100..500 DKK (about 9,000 DKK in all): only part of the batch fits the limit.
AMOUNTS = [str(100 + (index * 37 % 41) * 10) for index in range(30)]


def test_two_workers_racing_on_one_account_never_exceed_its_monthly_limit(
    transactional_db, emulated_gogift_account, gogift_emulator
):
    account = emulated_gogift_account
    # One or two cards a request: many claims, so the workers meet at the limit many times.
    account_configure(name=account.name, kind=account.kind, environment=account.environment,
                      values={"max_cards_per_request": "2", "monthly_limit": f"DKK:{LIMIT}"})
    batch = make_batch(account, AMOUNTS)
    batch_send(batch=batch)
    reports = pumps_racing(account.pk, budget_seconds=60)
    ledger = gogift_emulator.ledger
    bought = sum((entry.amount for entry in ledger), Decimal(0))
    delivered = list(batch.orders.filter(status=OrderStatus.DELIVERED).select_related("recipient"))
    waiting = list(batch.orders.filter(status=OrderStatus.QUEUED))
    print(f"\nspending-limit race: {len(ledger)} cards bought for {bought:,.2f} DKK against a limit of "
          f"{LIMIT:,.2f} DKK; {len(waiting)} of {len(AMOUNTS)} orders wait "
          f"({sum(order.amount for order in waiting):,.2f} DKK); claims per worker: "
          f"{[report.claimed for report in reports]}")

    assert {entry.currency for entry in ledger} == {"DKK"}
    assert bought <= LIMIT
    # What the provider sold is what our delivered orders say, card by card, and nothing twice.
    assert bought == sum(order.amount for order in delivered) == month_spent(account, "DKK")
    emails = Counter(entry.recipient_email for entry in ledger)
    assert max(emails.values()) == 1
    assert sorted(emails) == sorted(order.recipient.email for order in delivered)
    # Every other order waits, saying why; none that would still fit was left behind.
    assert len(delivered) + len(waiting) == len(AMOUNTS) and waiting
    for order in waiting:
        assert order.waiting_reason.startswith(f"{WAIT_REASON_START}DKK limit of “{account.name}”")
        assert f"{bought:,.2f} DKK spent or in flight this month" in order.waiting_reason
        assert order.amount > LIMIT - bought
    assert_batch_totals_match(batch)  # the stored counts survive workers racing

"""What recording provider calls costs: 1,000 GoGift cards, 50 per basket, through the real
client to the emulator on a loopback port, sent in this process.

Prints the provider calls stored, the bytes of call bodies stored (each call once), and the
bytes the old scheme (one event per order, each with the whole call) would have stored for
the same calls, measured in the same run.

    .venv/bin/python bench/call_records.py [--orders 1000] [--per-basket 50]

Runs on a fresh SQLite database under var/bench/ (or DATABASE_URL if set).
"""

from __future__ import annotations

import argparse
import sys
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)

# Django is set up in main(), on a fresh database: project imports wait until then.
CLIENT_ID, CLIENT_SECRET = "bench", "bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--per-basket", type=int, default=50, help="the account's max_cards_per_request")
    args = parser.parse_args()
    start_django("call_records.sqlite3")

    from emulators.gogift import GoGiftEmulator
    from emulators.loopback import LoopbackServer

    emulator = GoGiftEmulator(environment="sandbox", clients={CLIENT_ID: CLIENT_SECRET})
    with LoopbackServer(emulator) as server:
        batch = send_all(server.base_url, orders=args.orders, per_basket=args.per_basket)
    report(batch, cards_bought=len(emulator.ledger))


def send_all(base_url: str, *, orders: int, per_basket: int):
    """Configure an account on the emulator, import `orders` rows and pump until all are done."""
    from orders import dispatch
    from orders.batches import batch_create, batch_send
    from orders.models import TERMINAL_STATUSES
    from orders.spreadsheet import ValidRow
    from providers.models import Product
    from providers.services import account_configure, catalog_sync

    account, _ = account_configure(
        name="GoGift call records", kind="gogift", environment="sandbox", api_base_url=base_url,
        auth_url=f"{base_url}/connect/token",
        values={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "buyer_account_id": "1",
                "max_cards_per_request": str(per_basket), "rate_limit_per_minute": "100000"},
    )
    catalog_sync(account=account)
    product = Product.objects.get(account=account, sku="AEC9A553")  # The Global Gift Card, 50..5000 DKK
    rows = [
        ValidRow(row=i + 2, name=f"Person {i}", email=f"person{i}@example.com", phone="", reference=f"E{i:05d}",
                 message="Thank you!", amount=Decimal(50 + 10 * (i % 100)), currency=product.currency,
                 product=product, send_on=None)
        for i in range(orders)
    ]
    batch = batch_create(account=account, rows=rows, source_filename="call-records-bench.csv")
    batch_send(batch=batch)
    while batch.orders.exclude(status__in=TERMINAL_STATUSES).exists():
        dispatch.account_pump(account.pk, budget_seconds=60)
    return batch


def report(batch, *, cards_bought: int) -> None:
    from django.db.models import Count

    from orders.models import OrderEvent, ProviderCall

    calls = ProviderCall.objects.filter(submission__account=batch.account_id)
    stored = carried_bytes = links = 0
    for request_body, response_body, carried in calls.annotate(carried=Count("orders")).values_list(
        "request_body", "response_body", "carried"
    ):
        body_bytes = len(request_body.encode()) + len(response_body.encode())
        stored += body_bytes
        carried_bytes += body_bytes * carried  # the old scheme: the whole call in each order's event
        links += carried
    delivered = batch.orders.filter(status="delivered").count()
    print(f"orders: {batch.orders.count()}, delivered: {delivered}, cards in the emulator ledger: {cards_bought}")
    print(f"provider calls stored: {calls.count()} (linked to orders {links} times)")
    print(f"events stored (state changes and notes): {OrderEvent.objects.filter(order__batch=batch).count()}")
    print(f"call bodies stored now: {stored:,} bytes ({stored / 1e6:.2f} MB)")
    print(f"one event per order carried (old scheme), same calls: {carried_bytes:,} bytes "
          f"({carried_bytes / 1e6:.2f} MB)")
    print(f"ratio old / now: {carried_bytes / stored:.1f}x")


if __name__ == "__main__":
    main()

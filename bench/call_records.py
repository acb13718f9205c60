"""What recording provider calls costs per 1,000 cards: GoGift at 50 cards per basket, UGiftMe
at one card per call and at its account default (10), and Gifty (one card per call), through
the real clients to the emulators on loopback ports, sent in this process.

For each it prints the calls stored and the real size their records take in the database:
the calls table (bodies stored compact, cut at GIFTDESK_CALL_BODY_MAX_BYTES), its link table to
the orders, and the events that name a call, indexes included (SQLite's `dbstat`, PostgreSQL's
`pg_total_relation_size`). Beside it, the old scheme for the same calls: one event per order
per call, each with the whole call (the bodies as measured, an event row as measured here).
Then it ages the calls and lets the retention task (orders.call_retention) blank their bodies,
one run after the other, and prints what each keeps for good.

    .venv/bin/python bench/call_records.py [--cards 1000] [--per-basket 50] [--quick]

Runs on a fresh SQLite database under var/bench/ (or DATABASE_URL if set).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)
from bench.harness import account_on_emulator, recipient_rows  # noqa: E402

# Django is set up in main(), on a fresh database: project imports wait until then.
GOAL_MB = 1.0  # per 1,000 cards (issue 12)
TABLES = ("orders_providercall", "orders_providercall_orders", "orders_orderevent")


@dataclass
class Run:
    label: str
    account_id: int
    cards: int
    delivered: int
    calls: int
    links: int
    call_events: int
    bodies: int  # bytes of the stored bodies, each call once
    old_bodies: int  # bytes the same bodies took in the old scheme: once per order each call carried
    # Real sizes, None where the database cannot tell: the calls with their bodies, the links,
    # the events naming a call, one event row (indexes included), the calls once blanked.
    calls_bytes: int | None = None
    links_bytes: int | None = None
    events_bytes: int | None = None
    event_row_bytes: float | None = None
    blanked_calls_bytes: int | None = None

    def mb(self, value: float) -> float:
        """MB per 1,000 cards."""
        return value * 1000 / max(self.cards, 1) / 1e6

    @property
    def ours(self) -> int:
        if self.calls_bytes is None:
            return self.bodies
        return self.calls_bytes + self.links_bytes + self.events_bytes

    @property
    def after_retention(self) -> int | None:
        if self.blanked_calls_bytes is None:
            return None
        return self.ours - self.calls_bytes + self.blanked_calls_bytes

    @property
    def old_scheme(self) -> int:
        """The old scheme's size for the same calls: an event row carrying the whole call per
        order each call carried, beside the same state-change events. Its rows had a few more
        columns than an event row has now: an underestimate."""
        if self.event_row_bytes is None:
            return self.old_bodies
        return self.old_bodies + int(self.links * self.event_row_bytes) + self.events_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", "--orders", type=int, default=1000, help="cards per provider")
    parser.add_argument("--per-basket", type=int, default=50, help="GoGift's max_cards_per_request")
    parser.add_argument("--quick", action="store_true", help="200 cards per provider")
    args = parser.parse_args()
    cards = 200 if args.quick else args.cards
    # Status lookups soon and often: the emulators move an order on one step per lookup, not
    # with time, so the calls made (what is measured) are the same, only sooner.
    os.environ.setdefault("GIFTDESK_POLL_SECONDS", "0.2")
    os.environ.setdefault("GIFTDESK_POLL_MAX_SECONDS", "0.5")
    start_django("call_records.sqlite3")

    runs = [
        measured(f"GoGift, {args.per_basket} per basket", lambda: send_gogift(cards, args.per_basket)),
        measured("UGiftMe, 1 per call", lambda: send_ugiftme(cards, per_call=1)),
        measured("UGiftMe, 10 per call (an account's default)", lambda: send_ugiftme(cards, per_call=10)),
        measured("Gifty, 1 per call (all it takes)", lambda: send_gifty(cards)),
    ]
    retention_measure(runs)
    report(runs)


# --- Sending -------------------------------------------------------------------------------------


def send_gogift(cards: int, per_basket: int):
    from emulators.gogift import GoGiftEmulator
    from emulators.loopback import LoopbackServer

    emulator = GoGiftEmulator(environment="sandbox", clients={"bench": "bench-secret"})
    with LoopbackServer(emulator) as server:
        url = server.base_url
        return send_all(kind="gogift", base_url=url, cards=cards, sku="AEC9A553",  # 50..5000 DKK
                        auth_path="/connect/token",
                        values={"client_id": "bench", "client_secret": "bench-secret", "buyer_account_id": "1",
                                "max_cards_per_request": str(per_basket)})


def send_ugiftme(cards: int, *, per_call: int):
    from emulators.loopback import LoopbackServer
    from emulators.ugiftme import DEMO_API_KEY, make_demo_emulator

    emulator = make_demo_emulator()
    emulator.auto_deliver_webhooks = False  # no webhook registered: looked up, as most accounts are
    with LoopbackServer(emulator) as server:
        return send_all(kind="ugiftme", base_url=server.base_url, cards=cards, name=f"UGiftMe {per_call} per call",
                        values={"api_key": DEMO_API_KEY, "max_cards_per_request": str(per_call)})


def send_gifty(cards: int):
    from emulators.gifty import DEMO_API_TOKEN, GiftyEmulator
    from emulators.loopback import LoopbackServer

    # Completed soon and no provider rate limit: this measures the records, not the waiting.
    emulator = GiftyEmulator(tokens=[DEMO_API_TOKEN], processing_after=0.05, complete_after=0.1)
    emulator.rate_limit = 1_000_000
    with LoopbackServer(emulator) as server:
        return send_all(kind="gifty", base_url=server.base_url, cards=cards,
                        values={"api_token": DEMO_API_TOKEN, "language": "en", "max_cards_per_request": "1"})


def send_all(*, kind: str, base_url: str, cards: int, values: dict, sku: str | None = None, auth_path: str = "",
             name: str = ""):
    """Configure an account on the emulator, import `cards` rows and pump until all are done."""
    from orders import dispatch
    from orders.batches import batch_create, batch_send
    from orders.models import TERMINAL_STATUSES

    account = account_on_emulator(kind=kind, base_url=base_url, name=name or f"{kind} call records",
                                  values={**values, "rate_limit_per_minute": "100000"}, auth_path=auth_path)
    product, amounts = product_and_amounts(account, sku)
    rows = recipient_rows(cards, product, amounts, name=f"Person {account.pk} {{i}}",
                          email=f"person{{i}}.{account.pk}@example.com", reference="E{i:05d}")
    batch = batch_create(account=account, rows=rows, source_filename=f"call-records-{kind}.csv")
    batch_send(batch=batch)
    while batch.orders.exclude(status__in=TERMINAL_STATUSES).exists():
        dispatch.account_pump(account.pk, budget_seconds=60)
    return batch


def product_and_amounts(account, sku: str | None):
    """The product to send (`sku`, else the catalog's first) and amounts it accepts."""
    products = account.products.filter(is_active=True).order_by("id")
    product = products.get(sku=sku) if sku else products.first()
    if product.pricing == "fixed":
        amounts = list(product.denomination_amounts)
    else:
        low, step = product.min_amount or Decimal("1"), product.step or Decimal("1")
        amounts = [low + step * index for index in range(100)]
    return product, [amount for amount in amounts if product.amount_error(amount) is None]


# --- Measuring -----------------------------------------------------------------------------------


def measured(label: str, send) -> Run:
    before = table_sizes()
    started = time.monotonic()
    batch = send()
    print(f"{label}: sent in {time.monotonic() - started:.1f} s", flush=True)
    after = table_sizes()
    return records_of(label, batch, before, after)


def records_of(label: str, batch, before: dict | None, after: dict | None) -> Run:
    from django.db.models import Count

    from orders.models import OrderEvent, ProviderCall

    calls = ProviderCall.objects.filter(submission__account=batch.account_id)
    bodies = old_bodies = links = 0
    for request_body, response_body, carried in calls.annotate(carried=Count("orders")).values_list(
        "request_body", "response_body", "carried"
    ):
        body_bytes = len(request_body.encode()) + len(response_body.encode())
        bodies += body_bytes
        old_bodies += body_bytes * carried  # the old scheme: the whole call in each order's event
        links += carried
    events = OrderEvent.objects.filter(order__batch=batch)
    event_count, call_events = events.count(), events.filter(provider_call__isnull=False).count()
    run = Run(label=label, account_id=batch.account_id, cards=batch.orders.count(),
              delivered=batch.orders.filter(status="delivered").count(), calls=calls.count(), links=links,
              call_events=call_events, bodies=bodies, old_bodies=old_bodies)
    if before is not None and after is not None:
        grown = {name: after[name] - before[name] for name in TABLES}
        run.calls_bytes = grown["orders_providercall"]
        run.links_bytes = grown["orders_providercall_orders"]
        # The events table holds every event of the run; the share naming a call is counted.
        run.event_row_bytes = grown["orders_orderevent"] / max(event_count, 1)
        run.events_bytes = int(run.event_row_bytes * call_events)
    return run


def table_sizes() -> dict[str, int] | None:
    """Bytes each table takes with its indexes (and PostgreSQL's TOAST), or None."""
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            return {name: _one(cursor, "SELECT pg_total_relation_size(%s)", [name]) for name in TABLES}
        if connection.vendor == "sqlite":
            try:
                return {name: _one(cursor, "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name IN "
                                           "(SELECT name FROM sqlite_master WHERE tbl_name = %s)", [name])
                        for name in TABLES}
            except Exception:  # built without SQLITE_ENABLE_DBSTAT_VTAB
                return None
    return None


def _one(cursor, sql: str, params: list) -> int:
    cursor.execute(sql, params)
    return int(cursor.fetchone()[0])


def retention_measure(runs: list[Run]) -> None:
    """Age each run's calls (the first run's oldest), then let the retention task blank the
    bodies of one run after the other: what the calls table gives back is that run's."""
    from django.db import connection
    from django.utils import timezone

    from orders.call_retention import bodies_blank
    from orders.models import ProviderCall

    now = timezone.now()
    for index, run in enumerate(runs):
        ProviderCall.objects.filter(submission__account=run.account_id).update(
            created_at=now - timedelta(days=1000 - 100 * index))

    def compacted_size() -> int | None:
        # The space blanked bodies leave is what new calls' rows fill: compacted here to show
        # the size the table keeps once the bodies of all but the last days are blanked.
        with connection.cursor() as cursor:
            cursor.execute("VACUUM FULL orders_providercall" if connection.vendor == "postgresql" else "VACUUM")
        sizes = table_sizes()
        return None if sizes is None else sizes["orders_providercall"]

    size = compacted_size()
    if size is None:
        return
    for index, run in enumerate(runs):
        bodies_blank(older_than_days=1000 - 100 * index - 50)
        blanked = compacted_size()
        run.blanked_calls_bytes = run.calls_bytes - (size - blanked)
        size = blanked


# --- Reporting -----------------------------------------------------------------------------------


def report(runs: list[Run]) -> None:
    from django.conf import settings
    from django.db import connection

    print(f"\nProvider-call records on {connection.vendor}, bodies stored compact and cut at "
          f"{settings.GIFTDESK_CALL_BODY_MAX_BYTES:,} bytes; MB per 1,000 cards:")
    for run in runs:
        print(f"\n{run.label}: {run.cards} cards, {run.delivered} delivered; {run.calls} calls stored, "
              f"{run.links} links to orders, {run.call_events} events naming a call")
        if run.calls_bytes is not None:
            print(f"  calls {run.mb(run.calls_bytes):.3f} (their bodies {run.mb(run.bodies):.3f}) + links "
                  f"{run.mb(run.links_bytes):.3f} + events naming a call {run.mb(run.events_bytes):.3f} "
                  f"= {run.mb(run.ours):.3f} MB in the database, indexes included")
        else:
            print(f"  call bodies (each call once): {run.mb(run.bodies):.3f} MB")
        if run.after_retention is not None:
            print(f"  once the retention task has blanked the bodies: {run.mb(run.after_retention):.3f} MB "
                  f"(calls {run.mb(run.blanked_calls_bytes):.3f})")
        print(f"  old scheme, an event per order per call carrying the whole call: {run.mb(run.old_scheme):.3f} MB "
              f"(its bodies alone {run.mb(run.old_bodies):.3f})")
    print()
    # The measure is GoGift in baskets: its old records held each call once per order it
    # carried. UGiftMe at one card per call is printed beside it, without the goal: each call
    # carries one order, so there was nothing stored twice to remove, and its bodies alone (the
    # provider's own request and answer for each card) come to about 1 MB per 1,000 cards.
    for index, run in enumerate(runs[:2]):
        lines = [(run.label, run.ours)]
        if run.after_retention is not None:
            lines.append((f"{run.label}, bodies past retention blanked", run.after_retention))
        for label, ours in lines:
            ours, baseline = run.mb(ours), run.mb(run.old_scheme)
            goal = index == 0
            print("BENCH " + json.dumps({
                "measure": f"provider-call records per 1,000 cards, {label}",
                "ours": round(ours, 3), "baseline": round(baseline, 3),
                "ratio": round(ours / baseline, 3) if baseline else None,
                "unit": "MB", "goal": f"<= {GOAL_MB:g} MB" if goal else None, "met": ours <= GOAL_MB if goal else None,
            }, ensure_ascii=False))


if __name__ == "__main__":
    main()

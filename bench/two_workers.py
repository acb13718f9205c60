"""Two worker processes against one: 2,000 UGiftMe cards on PostgreSQL with the Redis broker.

The UGiftMe emulator serves on a loopback port in this process; `manage.py run_worker`
processes (GIFTDESK_WORKERS=1 each, the project's default settings otherwise) send the cards.
First one worker process delivers 2,000 cards, then two deliver 2,000 others (a fresh emulator
and fresh accounts each time). Each time runs from "Send" until every order is delivered,
with the workers already up. Duplicates are read from the emulator's ledger (cards bought per
recipient; every order has its own): 0 with one worker and with two.

The cards are spread over --accounts UGiftMe accounts (default 4), each with UGiftMe's default
rate limit and the demo account's 20 cards per request: one account's sending is paced by its
rate limit whatever the number of workers (a worker sends one account at a time); more workers
help across accounts.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/twoworkers_bench \\
        REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/two_workers.py [--quick]

The named database is dropped and created afresh; the Redis database is emptied.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402 (needs ROOT on the path)
    account_on_emulator, bench_line, django_on_fresh_database, recipient_rows, redis_flush, worker_start,
    workers_stop,
)

SWEEP_SECONDS = 3.0  # what the minutely schedule does, at benchmark speed (as emulators/fault_harness.py)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cards", type=int, default=None, help="default 2,000 (--quick: 100)")
    parser.add_argument("--accounts", type=int, default=None, help="default 4 (--quick: 2)")
    parser.add_argument("--per-request", type=int, default=20, help="each account's max_cards_per_request")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds each run may take")
    parser.add_argument("--quick", action="store_true", help="100 cards over 2 accounts")
    args = parser.parse_args()
    cards = args.cards or (100 if args.quick else 2000)
    accounts = args.accounts or (2 if args.quick else 4)

    database_url, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not database_url.startswith(("postgres://", "postgresql://")) or not redis_url:
        print("two_workers measures worker processes on PostgreSQL with the Redis broker: set DATABASE_URL "
              "(postgres://...) and REDIS_URL, e.g.\n"
              "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/twoworkers_bench "
              "REDIS_URL=redis://127.0.0.1:6379/7 .venv/bin/python bench/two_workers.py", file=sys.stderr)
        return 2
    # Stopped from outside (bench/run's timeout, kill): the workers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    django_on_fresh_database(database_url)
    logging.getLogger("django-q").setLevel(logging.WARNING)  # this process only queues; workers log to files
    redis_flush()

    log_dir = ROOT / "var" / "bench" / "two_workers"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = {}
    for workers in (1, 2):
        runs[workers] = deliver(cards=cards, accounts=accounts, per_request=args.per_request, workers=workers,
                                database_url=database_url, timeout=args.timeout, log_dir=log_dir)
        print(f"{workers} worker process(es): {runs[workers]['delivered']}/{cards} delivered in "
              f"{runs[workers]['seconds']:.1f} s, {runs[workers]['duplicates']} duplicates, "
              f"{runs[workers]['missing']} delivered without a card, {runs[workers]['unfinished']} unfinished",
              flush=True)

    one, two = runs[1], runs[2]
    ratio = two["seconds"] / one["seconds"]
    duplicates = one["duplicates"] + two["duplicates"]
    complete = all(run["delivered"] == cards and not run["missing"] for run in runs.values())
    print(f"\nPostgreSQL + Redis, {cards} UGiftMe cards over {accounts} account(s), {args.per_request} per request:")
    print(f"  1 worker process : {one['seconds']:8.1f} s  ({cards / one['seconds']:.1f} cards/s)")
    print(f"  2 worker processes: {two['seconds']:7.1f} s  ({cards / two['seconds']:.1f} cards/s)")
    print(f"  2 workers / 1 worker: {ratio:.2f}; duplicates: {duplicates}")
    print(bench_line(
        measure=f"{cards} UGiftMe cards, 2 workers time / 1 worker time (PostgreSQL + Redis)",
        ours=round(two["seconds"], 2), baseline=round(one["seconds"], 2), ratio=round(ratio, 3),
        unit="s", goal="<= 1.0x (no slower)", met=ratio <= 1.0 and complete,
    ))
    print(bench_line(
        measure=f"{cards} UGiftMe cards, duplicates (1 and 2 workers)", ours=duplicates, baseline=None,
        ratio=None, unit="cards", goal="== 0", met=duplicates == 0 and complete,
    ))
    return 0 if duplicates == 0 and complete else 1  # a broken promise, as bench/faults.py


def deliver(*, cards: int, accounts: int, per_request: int, workers: int, database_url: str, timeout: float,
            log_dir: Path) -> dict:
    """One run: a fresh emulator and accounts, `workers` worker processes, every card sent."""
    from emulators.fault_harness import ledger_emails
    from emulators.loopback import LoopbackServer
    from emulators.ugiftme import UGiftMeEmulator
    from orders.batches import batch_send
    from orders.models import TERMINAL_STATUSES, Order, OrderStatus

    keys = [f"bench-{workers}w-key-{n}" for n in range(accounts)]
    emulator = UGiftMeEmulator(api_keys=keys, wallet_balance=Decimal("100000000.00"))
    with LoopbackServer(emulator) as server:
        batches = [_batch(server.base_url, key, f"{workers} worker(s) {n}", count, per_request)
                   for n, (key, count) in enumerate(zip(keys, _shares(cards, accounts)))]
        pool = [worker_start(log_dir / f"worker-{workers}w-{n}.log",
                             {"DATABASE_URL": database_url, "GIFTDESK_WORKERS": "1"}) for n in range(workers)]
        try:
            _wait_for_clusters(workers)
            orders = Order.objects.filter(batch__in=batches)
            started = time.monotonic()
            for batch in batches:
                batch_send(batch=batch)
            last_sweep = time.monotonic()
            while orders.exclude(status__in=TERMINAL_STATUSES).exists():
                if time.monotonic() - started > timeout:
                    break
                if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                    from orders import tasks

                    tasks.sweep()
                    last_sweep = time.monotonic()
                time.sleep(0.2)
            seconds = time.monotonic() - started
        finally:
            workers_stop(pool)
        bought = Counter(email.lower() for email in ledger_emails(emulator))
    statuses = Counter(orders.values_list("status", flat=True))
    delivered_emails = [email.lower() for email in
                        orders.filter(status=OrderStatus.DELIVERED).values_list("recipient__email", flat=True)]
    return {
        "seconds": seconds,
        "delivered": statuses.get(OrderStatus.DELIVERED, 0),
        "unfinished": sum(count for status, count in statuses.items() if status not in TERMINAL_STATUSES),
        "duplicates": sum(max(count - 1, 0) for count in bought.values()),
        "missing": sum(1 for email in delivered_emails if not bought.get(email)),
    }


def _shares(cards: int, accounts: int) -> list[int]:
    return [cards // accounts + (1 if n < cards % accounts else 0) for n in range(accounts)]


def _batch(base_url: str, api_key: str, name: str, count: int, per_request: int):
    from orders.batches import batch_create

    account = account_on_emulator(kind="ugiftme", base_url=base_url, name=f"UGiftMe {name}",
                                  values={"api_key": api_key, "max_cards_per_request": str(per_request)})
    product, amount = _product_and_amount(account)
    rows = recipient_rows(count, product, [amount], name="Recipient {i}", email=f"{api_key}.{{i}}@example.com",
                          reference="W{i:05d}")
    return batch_create(account=account, rows=rows, source_filename=f"two-workers-{api_key}.csv")


def _product_and_amount(account):
    for product in account.products.filter(is_active=True).order_by("id"):
        candidates = (product.denomination_amounts if product.pricing == "fixed"
                      else [product.min_amount or Decimal("10")])
        for amount in candidates:
            if product.amount_error(amount) is None:
                return product, amount
    raise RuntimeError(f"{account} has no product to send")


def _wait_for_clusters(count: int, timeout: float = 60) -> None:
    """Until `count` clusters report idle in Redis: their start-up is not part of the time."""
    from django_q.conf import Conf
    from django_q.status import Stat

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for stat in Stat.get_all() if stat.status == Conf.IDLE) >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{count} worker cluster(s) did not start within {timeout:g} s (see var/bench/two_workers/)")


if __name__ == "__main__":
    sys.exit(main())

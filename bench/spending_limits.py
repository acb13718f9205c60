"""What a monthly spending limit costs the engine: one claim of queued orders on an account
that already spent (delivered) N orders this month, with and without a limit, beside the
plain baseline of one raw `SUM` over the same rows.

Runs on a fresh SQLite database under var/bench/ (or DATABASE_URL if set). No provider is
called: claiming is the database's work. Prints its figures.

    .venv/bin/python bench/spending_limits.py [--orders 100000] [--claims 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)

PER_BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000, help="orders already spent this month")
    parser.add_argument("--claims", type=int, default=200, help="claims timed per run")
    args = parser.parse_args()
    start_django("spending_limits.sqlite3")
    account = seed(args.orders, args.claims * 2)
    baseline = time_baseline(account, args.claims)
    unlimited = time_claims(account, args.claims, limits={})
    limited = time_claims(account, args.claims, limits={"DKK": str(Decimal(args.orders) * 1000)})
    report(args.orders, args.claims, baseline, unlimited, limited)


def seed(spent: int, queued: int):
    """`spent` delivered orders claimed this month, and `queued` orders to claim (one card
    per claim: the most claims, so the per-claim cost shows)."""
    from django.utils import timezone

    from orders.models import Batch, Order, OrderStatus, Recipient
    from providers.models import PricingKind, Product, ProviderAccount

    account = ProviderAccount.objects.create(name="GoGift bench", kind="gogift", max_cards_per_request=1)
    product = Product.objects.create(account=account, provider_product_id="1", sku="AEC9A553",
                                     title="The Global Gift Card", currency="DKK", pricing=PricingKind.RANGE,
                                     min_amount=Decimal("50"), max_amount=Decimal("5000"), step=Decimal("10"))
    now = timezone.now()
    for start in range(0, spent + queued, PER_BATCH):
        size = min(PER_BATCH, spent + queued - start)
        batch = Batch.objects.create(name=f"Batch {start // PER_BATCH}", account=account)
        recipients = Recipient.objects.bulk_create(
            Recipient(name=f"R {start + i}", email=f"r{start + i}@example.com") for i in range(size))
        Order.objects.bulk_create(
            Order(batch=batch, recipient=recipient, product=product, amount=Decimal("100"), currency="DKK",
                  reference=f"GD-BENCH-{start + i}",
                  status=OrderStatus.DELIVERED if start + i < spent else OrderStatus.QUEUED,
                  claimed_at=now if start + i < spent else None)
            for i, recipient in enumerate(recipients))
    return account


def time_baseline(account, claims: int) -> list[float]:
    """The least a limit check can cost: one raw SUM of the month's spend."""
    from django.db import connection

    from orders.spending import month_start

    sql = ("SELECT SUM(o.amount) FROM orders_order o JOIN orders_batch b ON b.id = o.batch_id "
           "WHERE b.account_id = %s AND o.currency = 'DKK' AND o.status IN ('sending', 'processing', 'delivered') "
           "AND o.claimed_at >= %s")
    times = []
    with connection.cursor() as cursor:
        for _ in range(claims):
            began = time.perf_counter()
            cursor.execute(sql, [account.pk, month_start()])
            cursor.fetchone()
            times.append(time.perf_counter() - began)
    return times


def time_claims(account, claims: int, *, limits: dict) -> list[float]:
    from orders import dispatch
    from providers.models import ProviderAccount

    ProviderAccount.objects.filter(pk=account.pk).update(monthly_limits=limits)
    account.refresh_from_db()
    times = []
    for _ in range(claims):
        began = time.perf_counter()
        submission = dispatch.orders_claim(account=account)
        times.append(time.perf_counter() - began)
        assert submission is not None, "ran out of queued orders"
    return times


def report(spent: int, claims: int, baseline, unlimited, limited) -> None:
    def ms(times):
        return statistics.median(times) * 1000

    print(f"Claims of 1 card on an account with {spent:,} orders spent this month ({claims} claims each, median):")
    print(f"  raw SUM of the month's spend (baseline)  {ms(baseline):8.2f} ms")
    print(f"  claim, no limit                          {ms(unlimited):8.2f} ms")
    print(f"  claim, DKK limit (check + claim)         {ms(limited):8.2f} ms")
    print(f"  the limit adds {ms(limited) - ms(unlimited):.2f} ms a claim = "
          f"{(ms(limited) - ms(unlimited)) / ms(baseline):.2f}x the raw SUM")


if __name__ == "__main__":
    main()

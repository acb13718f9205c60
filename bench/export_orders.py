"""What `manage.py export_orders` costs against a plain baseline: rows per second and peak
memory, CSV and XLSX, with the ratio to a bare `csv.writer` over a raw `values_list` query
of the same columns (no model instances, no escaping).

    .venv/bin/python bench/export_orders.py [--orders 50000]

Creates the orders on a fresh SQLite database under var/bench/ (or DATABASE_URL if set),
then runs each export in its own process, so each one's peak memory is its own: peak is
the process's maximum resident set size less its size just before the export started.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import BENCH_DIR, start_django  # noqa: E402 (needs ROOT on the path)

# Django is set up in main() or measure(): project imports wait until then.
DATABASE = "export_orders.sqlite3"
PER_BATCH = 1000
BASELINE_FIELDS = [
    "reference", "created_at", "submitted_at", "completed_at", "batch__name", "batch__campaign",
    "batch__created_by__username", "batch__approved_by__username", "recipient__name", "recipient__email",
    "recipient__reference", "batch__account__kind", "batch__account__name", "product__title", "amount",
    "currency", "cost", "cost_currency", "provider_order_id", "status", "last_error", "card_code_last4",
]
RUNS = [("baseline", "csv"), ("export_orders", "csv"), ("export_orders", "xlsx")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=50_000)
    parser.add_argument("--measure", nargs=2, metavar=("WHAT", "FORMAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        return measure(*args.measure)

    start_django(DATABASE)
    seed(args.orders)
    results = {}
    for what, file_format in RUNS:
        done = subprocess.run([sys.executable, __file__, "--measure", what, file_format],
                              capture_output=True, text=True, check=True, env=os.environ)
        results[what, file_format] = json.loads(done.stdout.splitlines()[-1])
    report(args.orders, results)


def seed(count: int) -> None:
    """`count` orders in batches of 1,000, a fifth of them with hostile text to escape."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from orders.models import Batch, Order, OrderStatus, Recipient
    from providers.models import PricingKind, Product, ProviderAccount

    user = get_user_model().objects.create_user("bench")
    account = ProviderAccount.objects.create(name="GoGift bench", kind="gogift")
    product = Product.objects.create(account=account, provider_product_id="1", sku="AEC9A553",
                                     title="The Global Gift Card", currency="DKK", pricing=PricingKind.RANGE,
                                     min_amount=Decimal("50"), max_amount=Decimal("5000"), step=Decimal("10"))
    statuses = [OrderStatus.DELIVERED, OrderStatus.DELIVERED, OrderStatus.DELIVERED, OrderStatus.FAILED,
                OrderStatus.PROCESSING]
    now = timezone.now()
    for start in range(0, count, PER_BATCH):
        size = min(PER_BATCH, count - start)
        batch = Batch.objects.create(name=f"=Batch {start // PER_BATCH}", campaign="HR - Q4", account=account,
                                     created_by=user, approved_by=user, approved_at=now)
        recipients = Recipient.objects.bulk_create([
            Recipient(name=f"+Person {i}" if i % 5 == 0 else f"Person {i}", email=f"person{i}@example.com",
                      reference=f"E{i:06d}")
            for i in range(start, start + size)
        ])
        Order.objects.bulk_create([
            Order(batch=batch, recipient=recipient, product=product, amount=Decimal(50 + 10 * (i % 100)),
                  currency="DKK", reference=f"GD-BENCH-{i:08d}", source_row=i - start + 2,
                  status=statuses[i % len(statuses)], provider_order_id=f"GG-{i}",
                  cost=Decimal(50 + 10 * (i % 100)) + Decimal("1.25"), cost_currency="DKK",
                  last_error="-Refused: out of stock" if i % 5 == 3 else "", card_code_last4=f"{i % 10000:04d}",
                  submitted_at=now, completed_at=now)
            for i, recipient in zip(range(start, start + size), recipients)
        ])


def measure(what: str, file_format: str) -> None:
    """In a fresh process: one export, its time and the growth of its resident memory."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "giftdesk.settings"
    import django

    django.setup()
    from orders.exports import ExportCriteria, orders_export
    from orders.models import Order

    Order.objects.exists()  # connect before measuring
    output = BENCH_DIR / f"export-{what}.{file_format}"
    before_kib = resident_kib()
    started = time.perf_counter()
    if what == "baseline":
        rows = baseline_csv(output)
    else:
        rows = orders_export(criteria=ExportCriteria(), file_format=file_format, path=output)
    seconds = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mib": (peak_kib - before_kib) / 1024,
                      "bytes": output.stat().st_size}))


def baseline_csv(output: Path) -> int:
    from orders.models import Order

    rows = Order.objects.order_by("created_at", "id").values_list(*BASELINE_FIELDS).iterator(chunk_size=2000)
    count = 0
    with output.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow(BASELINE_FIELDS)
        for count, row in enumerate(rows, start=1):
            writer.writerow(row)
    return count


def resident_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def report(orders: int, results: dict) -> None:
    base = results["baseline", "csv"]
    base_rate = base["rows"] / base["seconds"]
    print(f"{orders:,} orders, {os.cpu_count()} CPUs, database {os.environ.get('DATABASE_URL')}")
    print(f"{'export':<22}{'rows/s':>10}{'x baseline':>12}{'peak MiB':>10}{'x baseline':>12}{'file MB':>9}")
    for (what, file_format), result in results.items():
        rate = result["rows"] / result["seconds"]
        print(f"{what + ' ' + file_format:<22}{rate:>10,.0f}{rate / base_rate:>12.2f}{result['peak_mib']:>10.1f}"
              f"{result['peak_mib'] / max(base['peak_mib'], 0.1):>12.2f}{result['bytes'] / 1e6:>9.1f}")
        assert result["rows"] == orders, f"{what} {file_format} wrote {result['rows']} rows, not {orders}"


if __name__ == "__main__":
    main()

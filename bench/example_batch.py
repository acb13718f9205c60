"""How long a batch takes from "send" to every card delivered, with a real worker process.

Runs on a fresh SQLite database under var/bench/ (or DATABASE_URL if set), the GoGift
emulator on a loopback port, and one `manage.py run_worker`. Prints its figures.

    .venv/bin/python bench/example_batch.py [--orders 500]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)
from bench.harness import account_on_emulator, worker_start, workers_stop  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=500, help="size of the synthetic batch")
    args = parser.parse_args()

    bench_dir = start_django("bench.sqlite3")

    from emulators.gogift import GoGiftEmulator
    from emulators.loopback import LoopbackServer

    emulator = GoGiftEmulator(environment="sandbox", clients={"bench": "bench-secret"})
    with LoopbackServer(emulator) as server:
        account = account_on_emulator(
            kind="gogift", base_url=server.base_url, name="GoGift bench", auth_path="/connect/token",
            # A limit far above what the run sends: this measures the engine, not the limiter
            # (at the default 60 requests a minute, 500 orders would wait for it for minutes).
            values={"client_id": "bench", "client_secret": "bench-secret", "buyer_account_id": "1",
                    "max_cards_per_request": "10", "rate_limit_per_minute": "6000"},
        )
        worker = worker_start(bench_dir / "example_batch-worker.log", {"GIFTDESK_WORKERS": "1"})
        try:
            time.sleep(2)  # let the cluster start, so its start-up is not counted
            example = run_file(ROOT / "examples" / "recipients.csv", account)
            synthetic_file = bench_dir / "synthetic.csv"
            synthetic_file.write_text(
                "name,email,amount\n"
                + "".join(f"Person {i},person{i}@example.com,{50 + 10 * (i % 100)}\n" for i in range(args.orders)),
                encoding="utf-8",
            )
            synthetic = run_file(synthetic_file, account)
        finally:
            workers_stop([worker], grace=20)
        cards = len(emulator.ledger)
        duplicates = cards - len({entry.reference for entry in emulator.ledger})

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"example batch ({example['orders']} orders): {example['seconds']:.2f} s from send to all delivered")
    print(f"synthetic batch ({synthetic['orders']} orders): {synthetic['seconds']:.2f} s "
          f"= {synthetic['orders'] / synthetic['seconds']:.0f} orders/s with 1 worker, 10 cards per basket")
    print(f"import + validation of the synthetic file: {synthetic['import_seconds']:.2f} s")
    print(f"cards in the emulator ledger: {cards}; duplicates: {duplicates}")
    print(f"peak memory of this process: {peak_mb:.0f} MB")


def run_file(path: Path, account) -> dict:
    from orders import spreadsheet
    from orders.models import Order, TERMINAL_STATUSES
    from orders.batches import batch_create, batch_send
    from providers.models import Product

    product = Product.objects.get(account=account, sku="AEC9A553")
    started = time.monotonic()
    table = spreadsheet.read_table(path.read_bytes(), path.name)
    preview = spreadsheet.validate(table, spreadsheet.ImportContext.for_account(account, default_product=product))
    batch = batch_create(account=account, rows=preview.valid_rows, default_product=product, source_filename=path.name)
    import_seconds = time.monotonic() - started
    started = time.monotonic()
    batch_send(batch=batch)
    while Order.objects.filter(batch=batch).exclude(status__in=TERMINAL_STATUSES).exists():
        time.sleep(0.1)
    return {"orders": batch.orders.count(), "seconds": time.monotonic() - started, "import_seconds": import_seconds}


if __name__ == "__main__":
    main()

"""The import preview (read + validate) of a file whose rows all share one email, beside the
same file with every email distinct (the baseline), measured in the same run.

    .venv/bin/python bench/duplicate_emails.py [--rows 10000] [--quick]

Each case runs in a fresh process on its own fresh database (SQLite under var/bench/, or
DATABASE_URL if set): peak RSS is a high-water mark per process, so two cases in one process
would hide the second. The process sets Django up, makes an account with one product and
builds the ``ImportContext`` first; then the peak is started over and only
``read_table`` + ``validate`` of the CSV are timed. Goal (issue 12): the duplicates cost
at most 1.5x the time and memory of the distinct emails (it was quadratic: every row's
warning listed every other row).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)
from bench.harness import child_figures, memory_mb, peak_reset, ratio_line  # noqa: E402

GOAL = 1.5
CASES = ("distinct", "same")  # the baseline first


def csv_file(rows: int, same: bool) -> bytes:
    lines = ["name,email,amount,product,reference"]
    for index in range(1, rows + 1):
        email = "jane@example.com" if same else f"p{index}@example.com"
        lines.append(f"Person {index},{email},50,GLOBAL,EMP{index:06}")
    return ("\n".join(lines) + "\n").encode()


def run_case(case: str, rows: int) -> None:
    """In the child: one preview, then one JSON line with its figures."""
    start_django(f"duplicate_emails_{case}.sqlite3")
    from orders.spreadsheet import ImportContext, read_table, validate
    from providers.models import PricingKind, Product, ProviderAccount

    account = ProviderAccount.objects.create(name="Bench", kind="gogift", environment="sandbox")
    Product.objects.create(account=account, provider_product_id="1", sku="GLOBAL", title="Global",
                           currency="DKK", pricing=PricingKind.RANGE, min_amount=Decimal("50"),
                           max_amount=Decimal("5000"), step=Decimal("10"))
    context = ImportContext.for_account(account)
    data = csv_file(rows, same=case == "same")
    peak_reset()  # the peak measures the preview alone
    before = memory_mb("VmRSS")
    started = time.perf_counter()
    preview = validate(read_table(data, "bench.csv"), context)
    seconds = time.perf_counter() - started
    peak = memory_mb("VmHWM")
    print(json.dumps({
        "seconds": seconds, "peak_mb": peak, "growth_mb": peak - before, "valid": len(preview.valid_rows),
        "warnings": len(preview.warnings), "warning_chars": sum(len(text) for text in preview.warnings),
        "examples": preview.warnings[:2],
    }))


def measure(case: str, rows: int) -> dict:
    return child_figures(__file__, "--case", case, "--rows", str(rows), what=f"case {case}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="5,000 rows")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case, in turn; the best is kept")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # the child's part
    args = parser.parse_args()
    rows = 5_000 if args.quick else args.rows
    if args.case:
        run_case(args.case, rows)
        return
    runs: dict[str, list[dict]] = {case: [] for case in CASES}
    for _ in range(max(args.repeat, 1)):
        for case in CASES:  # in turn, so a busy moment of the machine hits both
            runs[case].append(measure(case, rows))
    # The best run of each: what the code costs, less what the machine added.
    figures = {case: {**min(found, key=lambda run: run["seconds"]),
                      "peak_mb": min(run["peak_mb"] for run in found),
                      "growth_mb": min(run["growth_mb"] for run in found)}
               for case, found in runs.items()}
    print(f"Preview (read_table + validate) of {rows:,} CSV rows, each case in its own process, "
          f"best of {max(args.repeat, 1)}:")
    print(f"{'case':28} {'time':>8} {'peak RSS':>10} {'growth':>9} {'warnings':>9} {'warning text':>13}")
    for case, label in (("distinct", "distinct emails (baseline)"), ("same", "all the same email")):
        figure = figures[case]
        print(f"{label:28} {figure['seconds']:7.2f}s {figure['peak_mb']:7.0f} MB {figure['growth_mb']:6.0f} MB "
              f"{figure['warnings']:9,} {figure['warning_chars']:11,} ch")
    for example in figures["same"]["examples"]:
        print(f"  e.g. {example[:150]!r}{' ...' if len(example) > 150 else ''} ({len(example):,} characters)")
    same, distinct = figures["same"], figures["distinct"]
    print(ratio_line(f"duplicate emails, {rows:,} rows: preview time", same["seconds"], distinct["seconds"], "s",
                     GOAL))
    print(ratio_line(f"duplicate emails, {rows:,} rows: preview peak RSS", same["peak_mb"], distinct["peak_mb"],
                     "MB", GOAL))
    # The peak holds Django's ~90 MB either way; the growth is what the preview itself took.
    print(ratio_line(f"duplicate emails, {rows:,} rows: preview RSS growth", same["growth_mb"],
                     max(distinct["growth_mb"], 1.0), "MB", GOAL))


if __name__ == "__main__":
    main()

"""Importing a spreadsheet (read + validate + create the batch) beside a plain baseline that
reads the same file and bulk-inserts the same Recipient and Order rows, in the same run.

    .venv/bin/python bench/import_speed.py [--rows 50000] [--quick] [--formats csv,xlsx] [--repeat 1] [--profile]

The files (valid rows, distinct emails, the GoGift sandbox product of the test catalog) are
written once; then each case runs in a fresh process on its own fresh database (SQLite under
var/bench/, or DATABASE_URL if set: PostgreSQL, flushed first), so peak RSS (ru_maxrss, a
high-water mark per process) is comparable:
- baseline: ``csv.reader`` (resp. openpyxl read-only) + ``bulk_create`` of the Recipients and
  Orders, no checks at all;
- ours: the service path the admin and ``send_csv`` use: ``read_table`` + ``validate`` +
  ``batch_create`` (a workbook is parsed in the bounded child process: its peak is shown apart).
Goal (issue 12): ours <= 1.25x the baseline's time; for the CSV also <= 1.2x its peak memory
(the XLSX's is printed against the same bound; its reader child's peak is shown apart).
``--repeat N`` runs each case N times, alternating, and takes each one's median (a shared
machine's load moves single runs by 10-20%).
``--profile`` prints the 30 most expensive functions of "ours" (cProfile, cumulative).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import BENCH_DIR, start_django  # noqa: E402 (needs ROOT on the path)
from bench.harness import child_figures, ratio_line  # noqa: E402

TIME_GOAL = 1.25
MEMORY_GOAL = 1.2
CASES = ("baseline", "ours")
FORMATS = ("csv", "xlsx")
HEADER = ["name", "email", "amount", "product", "reference", "message"]
SKU = "AEC9A553"  # The Global Gift Card (seed 000; tests/fixtures/data.py), 50..5000 in steps of 10


def row_values(index: int) -> list:
    return [f"Person {index}", f"person{index}@example.com", 50 + 10 * (index % 100), SKU, f"EMP{index:06}",
            "Thank you for this year!"]


def write_files(rows: int) -> dict[str, Path]:
    import csv

    import xlsxwriter

    paths = {"csv": BENCH_DIR / f"import_speed_{rows}.csv", "xlsx": BENCH_DIR / f"import_speed_{rows}.xlsx"}
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    with paths["csv"].open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(HEADER)
        writer.writerows(row_values(index) for index in range(1, rows + 1))
    # As Excel writes a workbook: shared strings, a <dimension>.
    workbook = xlsxwriter.Workbook(str(paths["xlsx"]), {"constant_memory": True})
    sheet = workbook.add_worksheet("Recipients")
    sheet.write_row(0, 0, HEADER)
    for index in range(1, rows + 1):
        sheet.write_row(index, 0, row_values(index))
    workbook.close()
    return paths


def child_setup(name: str):
    start_django(f"import_speed_{name}.sqlite3")
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "sqlite":
        call_command("flush", interactive=False, verbosity=0)  # each case on an empty database
    from providers.models import PricingKind, Product, ProviderAccount

    account = ProviderAccount.objects.create(name="GoGift bench", kind="gogift", environment="sandbox")
    Product.objects.create(account=account, provider_product_id="256314825926729728", sku=SKU,
                           title="The Global Gift Card", currency="DKK", pricing=PricingKind.RANGE,
                           min_amount=Decimal("50"), max_amount=Decimal("5000"), step=Decimal("10"),
                           delivery_methods=["Email"])
    return account


def baseline(path: Path, file_format: str, account) -> int:
    """Read the file plainly and insert the same rows: no checks, no events, no totals."""
    import csv

    from django.db import transaction

    from orders.batches import new_order_reference
    from orders.models import Batch, Order, Recipient
    from providers.models import Product

    data = path.read_bytes()
    if file_format == "csv":
        records = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
        next(records)
    else:
        import openpyxl

        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
        records = ([("" if cell is None else str(cell)) for cell in values]
                   for values in workbook.worksheets[0].iter_rows(min_row=2, values_only=True))
    products = {product.sku: product for product in Product.objects.filter(account=account)}
    rows = [(number, record) for number, record in enumerate(records, start=2)]
    with transaction.atomic():
        batch = Batch.objects.create(name=path.name, account=account, source_filename=path.name)
        recipients = Recipient.objects.bulk_create(
            Recipient(name=record[0], email=record[1], reference=record[4]) for _, record in rows)
        Order.objects.bulk_create(
            Order(batch=batch, recipient=recipient, product=products[record[3]], amount=Decimal(record[2]),
                  currency="DKK", message=record[5], reference=new_order_reference(), source_row=number)
            for (number, record), recipient in zip(rows, recipients, strict=True))
    return len(rows)


def ours(path: Path, file_format: str, account) -> int:
    """What `manage.py send_csv` and the admin's confirm do: read, check, create the batch."""
    from orders import spreadsheet
    from orders.batches import batch_create

    data = path.read_bytes()
    table = spreadsheet.read_table(data, path.name)
    preview = spreadsheet.validate(table, spreadsheet.ImportContext.for_account(account))
    del table  # as send_csv does: its rows are the preview's now
    if preview.invalid_rows:
        raise SystemExit(f"{len(preview.invalid_rows)} rows invalid, e.g. {preview.errors[0]}")
    batch = batch_create(account=account, rows=preview.valid_rows, source_filename=path.name,
                         rejected_rows=preview.errors)
    return batch.orders.count()


def run_case(case: str, file_format: str, path: Path, profile: bool) -> None:
    """In the child: one import, then one JSON line with its figures."""
    account = child_setup(f"{file_format}_{case}")
    run = baseline if case == "baseline" else ours
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    rows = run(path, file_format, account)
    seconds = time.perf_counter() - started
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    print(json.dumps({
        "seconds": seconds, "rows": rows,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "children_peak_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }))


def measure(case: str, file_format: str, path: Path, profile: bool) -> dict:
    profiled = profile and case == "ours"
    return child_figures(__file__, "--case", case, "--format", file_format, "--file", str(path),
                         *(["--profile"] if profiled else []), what=f"{file_format} {case}", show_stderr=profiled)


def median_run(runs: list[dict]) -> dict:
    """Each figure's median over the runs."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--quick", action="store_true", help="5,000 rows")
    parser.add_argument("--formats", default="csv,xlsx", help="csv, xlsx or both (default)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is shown")
    parser.add_argument("--profile", action="store_true", help="cProfile the service path")
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # the child's part
    parser.add_argument("--format", choices=FORMATS, help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.format, args.file, args.profile)
        return
    rows = 5_000 if args.quick else args.rows
    formats = [name for name in args.formats.split(",") if name in FORMATS]
    paths = write_files(rows)
    lines = []
    database = "PostgreSQL" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
    print(f"Import of {rows:,} valid rows on {database}, each case in its own process:")
    print(f"{'':28} {'time':>8} {'rows/s':>8} {'peak RSS':>9} {'reader child':>13}")
    for file_format in formats:
        runs: dict[str, list[dict]] = {case: [] for case in CASES}
        for _ in range(max(1, args.repeat)):
            for case in CASES:
                runs[case].append(measure(case, file_format, paths[file_format], args.profile))
        figures = {case: median_run(found) for case, found in runs.items()}
        for case in CASES:
            figure = figures[case]
            label = f"{file_format.upper()} {'plain baseline' if case == 'baseline' else 'ours (service path)'}"
            child = f"{figure['children_peak_mb']:9.0f} MB" if figure["children_peak_mb"] else f"{'—':>12}"
            print(f"{label:28} {figure['seconds']:7.2f}s {figure['rows'] / figure['seconds']:8,.0f} "
                  f"{figure['peak_mb']:6.0f} MB {child}")
        base, our = figures["baseline"], figures["ours"]
        print(f"{file_format.upper()}: {our['seconds'] / base['seconds']:.2f}x the time, "
              f"{our['peak_mb'] / base['peak_mb']:.2f}x the peak memory of the baseline")
        lines.append(ratio_line(f"import {file_format.upper()} {rows:,} rows: time", our["seconds"], base["seconds"],
                                "s", TIME_GOAL))
        memory = "peak RSS" if file_format == "csv" else "peak RSS of the web process (reader child apart)"
        lines.append(ratio_line(f"import {file_format.upper()} {rows:,} rows: {memory}", our["peak_mb"],
                                base["peak_mb"], "MB", MEMORY_GOAL))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

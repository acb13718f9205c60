"""Time and peak memory of reading spreadsheets: hostile workbooks and normal ones.

    .venv/bin/python bench/hostile_spreadsheets.py [WORD ...]   (only the cases naming a WORD)

Each case runs in a fresh process (peak RSS is a high-water mark per process), which
prints the seconds, the outcome, its own peak RSS (the "web process") and the peak RSS
of its children (the bounded reader). Cases:
- the hostile workbooks of tests/hostile_files.py, through ``read_table`` with the
  default limits (and the memory one with 120 MB, as in the tests);
- a normal 50,000-row and a 50-row XLSX (written by xlsxwriter, as Excel writes them:
  shared strings, a <dimension>), three ways: plain openpyxl read-only iterating the rows
  (the baseline), our reader in this process (``read_xlsx``, no child), and
  ``read_table`` (the child process);
- a 20 MB CSV, which is read in the web process: its peak shows what that costs.
"""

from __future__ import annotations

import io
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import memory_mb, peak_reset  # noqa: E402 (needs ROOT on the path)

MB = 1024  # ru_maxrss is in KB on Linux


def normal_xlsx(rows: int) -> bytes:
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet("Recipients")
    sheet.write_row(0, 0, ["name", "email", "amount", "currency", "product", "phone", "message",
                           "reference", "send_on"])
    for index in range(1, rows + 1):
        sheet.write_row(index, 0, [f"Person {index}", f"p{index}@example.com", 50, "DKK", "GLOBAL",
                                   "4512345678", "Thank you for this year!", f"EMP{index:06}", ""])
    workbook.close()
    return buffer.getvalue()


def big_csv(size: int, rows: int = 50_000) -> bytes:
    """`rows` recipients whose messages make the file `size` bytes: the most a CSV can be."""
    header = b"name,email,amount,currency,product,phone,message\n"
    start = b"Person 000000,p000000@example.com,50,DKK,GLOBAL,4512345678,"
    message = b"x" * ((size - len(header)) // rows - len(start) - 1)
    return header + (start + message + b"\n") * rows


def limits(**changes):
    from dataclasses import replace

    import django
    from django.conf import settings

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giftdesk.settings")
    if not settings.configured:
        django.setup()
    from orders.spreadsheet.limits import ReadLimits

    return replace(ReadLimits.from_settings(), **changes)


def plain_openpyxl(data: bytes) -> str:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    count = sum(1 for _ in workbook.worksheets[0].iter_rows(values_only=True))
    workbook.close()
    return f"{count} rows"


def in_process(data: bytes) -> str:
    from orders.spreadsheet.read import read_xlsx

    return f"{len(read_xlsx(data, 'bench.xlsx', limits()).rows)} rows"


def bounded(data: bytes, **changes) -> str:
    from orders.spreadsheet import FileRefused
    from orders.spreadsheet.read import read_table

    try:
        return f"{len(read_table(data, 'bench.xlsx', limits(**changes)).rows)} rows"
    except FileRefused as refusal:
        return "refused: " + refusal.message[:60]


def hostile(name: str, **arguments):
    def make() -> bytes:
        from tests import hostile_files

        return getattr(hostile_files, name)(**arguments)

    return make


INPUTS = {
    "blank-200mb": hostile("blank_rows_bomb"),
    "blank-60mb": hostile("blank_rows_bomb", unpacked_bytes=60_000_000),
    "lying": hostile("lying_directory"),
    "strings-4x24mb": hostile("shared_strings_bomb", strings=4, length=24_000_000),
    "repeated-row": hostile("repeated_row_number"),
    "normal-50000": lambda: normal_xlsx(50_000),
    "normal-50": lambda: normal_xlsx(50),
    "csv-20mb": lambda: big_csv(20 * 1024 * 1024 - 1),
    "csv-20mb-wide": lambda: b"name,email,amount\n" + b"x," * (10 * 1024 * 1024 - 10),
}

# name -> (input, how it is read)
CASES = {
    "blank rows, 200 MB sheet": ("blank-200mb", bounded),
    "blank rows, 60 MB sheet": ("blank-60mb", bounded),
    "lying directory (200 MB)": ("lying", bounded),
    "shared strings 4x24 MB, 120 MB cap": ("strings-4x24mb", lambda data: bounded(data, read_memory_mb=120)),
    "shared strings 4x24 MB, default cap": ("strings-4x24mb", bounded),
    "repeated row number, default limits": ("repeated-row", bounded),
    "50,000 rows: plain openpyxl": ("normal-50000", plain_openpyxl),
    "50,000 rows: our reader in-process": ("normal-50000", in_process),
    "50,000 rows: read_table (child)": ("normal-50000", bounded),
    "50 rows: plain openpyxl": ("normal-50", plain_openpyxl),
    "50 rows: our reader in-process": ("normal-50", in_process),
    "50 rows: read_table (child)": ("normal-50", bounded),
    "20 MB CSV: read_table (in-process)": ("csv-20mb", bounded),
    "20 MB CSV, a row of 10M cells": ("csv-20mb-wide", bounded),
}

INPUT_DIR = ROOT / "var" / "bench" / "spreadsheets"


def run_case(name: str) -> None:
    input_name, read = CASES[name]
    data = (INPUT_DIR / input_name).read_bytes()
    limits()  # Django set up before the baseline, as in the web process
    import openpyxl  # noqa: F401  (imported by the web process too)

    peak_reset()  # the peak measures the reading alone
    before = int(memory_mb("VmRSS"))
    started = time.monotonic()
    outcome = read(data)
    seconds = time.monotonic() - started
    peak = int(memory_mb("VmHWM"))
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"{name:38} {seconds:6.2f} s  {len(data) / 1e6:5.1f} MB  parent {before:4d} -> "
          f"{peak:4d} MB (+{peak - before:3d})  child {child // MB:4d} MB  {outcome}", flush=True)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--case":
        run_case(sys.argv[2])
        return
    INPUT_DIR.mkdir(parents=True, exist_ok=True)
    for input_name, make in INPUTS.items():
        if not (INPUT_DIR / input_name).exists():
            (INPUT_DIR / input_name).write_bytes(make())
    chosen = [name for name in CASES if not sys.argv[1:] or any(word in name for word in sys.argv[1:])]
    print(f"{'case':38} {'time':>8}  {'file':>8}  RSS of this process (before -> peak), peak RSS of the child")
    for name in chosen:
        subprocess.run([sys.executable, __file__, "--case", name], check=False)


if __name__ == "__main__":
    main()

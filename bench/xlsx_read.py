"""Reading a 50,000-row XLSX: plain openpyxl read-only (the baseline), plain python-calamine,
and ours (``read_table``: zip directory checks, then the bounded child process), each run in
a fresh process, in turn, best of --repeat.

    .venv/bin/python bench/xlsx_read.py [--rows 50000] [--repeat 3] [--quick]

The workbook is written by xlsxwriter as Excel writes them (shared strings, a <dimension>).
Plain readers turn every row into Python values and keep them (as an import must); ours
also finds the header, maps the columns, numbers the rows and builds the ``Table`` (and,
through the child, sends it back as JSON). Peak RSS is the process's high-water mark (reset
just before the read), for ``read_table`` the larger of the web process's and the child's.

python-calamine is measured, not used: it reads a whole sheet into a dense range before the
first row is handed out, so it cannot stop at the row limits (a broken tail past them reads
as a damaged file), does not see blank rows (the "last row read" bound), and pads every row
to the widest one (one note in column XFD of a 5,000-row sheet: 2.6 GB, the child aborts).
No database: reading needs none (``ReadLimits`` come from the settings).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import bench_line, child_figures, memory_mb, peak_reset, ratio_line  # noqa: E402
from bench.hostile_spreadsheets import normal_xlsx  # noqa: E402 (needs ROOT on the path)

GOAL = 1.25  # issue 12: the XLSX import within 1.25x openpyxl read-only + bulk_create
INPUT_DIR = ROOT / "var" / "bench" / "spreadsheets"


def plain_openpyxl(data: bytes) -> int:
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    rows = list(workbook.worksheets[0].iter_rows(values_only=True))  # kept, as an import keeps them
    workbook.close()
    return len(rows)


def plain_calamine(data: bytes) -> int:
    from python_calamine import CalamineWorkbook

    workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
    rows = workbook.get_sheet_by_index(0).to_python(skip_empty_area=False)
    workbook.close()
    return len(rows)


def ours_in_process(data: bytes) -> int:
    from orders.spreadsheet.limits import ReadLimits
    from orders.spreadsheet.read import check_workbook_archive, read_xlsx

    limits = ReadLimits.from_settings()
    check_workbook_archive(data, "bench.xlsx", limits)
    return len(read_xlsx(data, "bench.xlsx", limits).rows) + 1


def ours(data: bytes) -> int:
    from orders.spreadsheet import read_table

    return len(read_table(data, "bench.xlsx").rows) + 1


READERS = {
    "openpyxl": ("plain openpyxl read-only (baseline)", plain_openpyxl),
    "calamine": ("plain python-calamine", plain_calamine),
    "ours-in-process": ("ours, in this process (read_xlsx)", ours_in_process),
    "ours": ("ours: read_table (checks + child)", ours),
}


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: on a busy machine it varies far
    less than the wall clock."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_case(reader: str, path: Path) -> None:
    """In the child: one read, then one JSON line with its figures."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "giftdesk.settings")
    from django.conf import settings

    settings.GIFTDESK_IMPORT_MAX_ROWS  # noqa: B018  (loaded as the web process has them; no app setup needed)
    import openpyxl  # noqa: F401  (imported by the web process too)
    import python_calamine  # noqa: F401

    data = path.read_bytes()
    peak_reset()
    before = memory_mb("VmRSS")
    started, cpu_started = time.perf_counter(), cpu_seconds()
    rows = READERS[reader][1](data)
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    peak = memory_mb("VmHWM")
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu": cpu, "peak_mb": max(peak, child), "own_growth_mb": peak - before,
                      "child_mb": child, "rows": rows}))


def measure(reader: str, path: Path) -> dict:
    return child_figures(__file__, "--case", reader, "--input", str(path), what=reader)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10,000 rows, once")
    parser.add_argument("--case", choices=READERS, help=argparse.SUPPRESS)  # the child's part
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        run_case(args.case, args.input)
        return
    rows, repeat = (10_000, 1) if args.quick else (args.rows, max(args.repeat, 1))
    INPUT_DIR.mkdir(parents=True, exist_ok=True)
    path = INPUT_DIR / f"xlsx-read-{rows}.xlsx"
    if not path.exists():
        path.write_bytes(normal_xlsx(rows))
    runs: dict[str, list[dict]] = {reader: [] for reader in READERS}
    for _ in range(repeat):
        for reader in READERS:  # in turn, so a busy moment of the machine hits each
            runs[reader].append(measure(reader, path))
    best = {reader: {"seconds": min(run["seconds"] for run in found), "cpu": min(run["cpu"] for run in found),
                     "peak_mb": min(run["peak_mb"] for run in found),
                     "own_growth_mb": min(run["own_growth_mb"] for run in found),
                     "child_mb": min(run["child_mb"] for run in found), "rows": found[0]["rows"]}
            for reader, found in runs.items()}
    print(f"Reading an XLSX of {rows:,} recipient rows ({path.stat().st_size / 1e6:.1f} MB), "
          f"each reader in a fresh process, best of {repeat}:")
    print(f"{'reader':38} {'time':>8} {'CPU':>8} {'peak RSS':>10}  notes")
    for reader, (label, _) in READERS.items():
        figure = best[reader]
        note = (f"web process +{figure['own_growth_mb']:.0f} MB, child {figure['child_mb']:.0f} MB"
                if reader == "ours" else "")
        print(f"{label:38} {figure['seconds']:7.2f}s {figure['cpu']:7.2f}s {figure['peak_mb']:7.0f} MB  "
              f"{figure['rows']:,} rows {note}")
    baseline = best["openpyxl"]
    print(f"calamine / openpyxl: time {best['calamine']['seconds'] / baseline['seconds']:.2f}x, "
          f"peak RSS {best['calamine']['peak_mb'] / baseline['peak_mb']:.2f}x")
    print(ratio_line(f"XLSX read, {rows:,} rows: time", best["ours"]["seconds"], baseline["seconds"], "s", GOAL))
    print(ratio_line(f"XLSX read, {rows:,} rows: CPU time", best["ours"]["cpu"], baseline["cpu"], "s", GOAL))
    ours_mb, baseline_mb = best["ours"]["peak_mb"], baseline["peak_mb"]
    print(bench_line(measure=f"XLSX read, {rows:,} rows: peak RSS", ours=round(ours_mb, 3),
                     baseline=round(baseline_mb, 3), ratio=round(ours_mb / baseline_mb, 3), unit="MB",
                     goal="reported (issue 12 sets no memory goal here)", met=None))


if __name__ == "__main__":
    main()

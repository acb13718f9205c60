"""bench/run: runs a benchmark, collects its BENCH lines into one table, and says what is missing."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COLUMNS = ["bench", "measure", "ours", "baseline", "ratio", "goal", "met"]


def bench_run(*args: str) -> subprocess.CompletedProcess:
    # On SQLite whatever the test run uses: bench/run would make a PostgreSQL database per benchmark.
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    return subprocess.run([sys.executable, "bench/run", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def table_rows(output: str) -> list[dict[str, str]]:
    """The Markdown table at the end of the output, one dict per row."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == COLUMNS
    assert set(lines[1]) <= {"|", "-"}
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def test_quick_emulator_latency_makes_a_table_of_its_measures():
    result = bench_run("--quick", "emulator_latency")
    rows = table_rows(result.stdout)

    assert [row["measure"] for row in rows] == ["emulator request, kept alive: median",
                                               "emulator request, kept alive: p95"], result.stdout
    for row in rows:
        assert row["bench"] == "emulator_latency"
        ours, baseline = (float(row[column].removesuffix(" ms").replace(",", "")) for column in ("ours", "baseline"))
        assert 0 < ours < baseline, row  # Nagle's ~40 ms stall is the baseline
        assert row["ratio"].endswith("x") and row["goal"].startswith("<=") and row["met"] in {"yes", "NO"}
    # The status says whether every goal was met.
    assert result.returncode == (0 if all(row["met"] == "yes" for row in rows) else 1), result.stdout


def test_a_missing_benchmark_is_a_row_of_its_own_and_fails_the_run():
    result = bench_run("--quick", "no_such_benchmark")

    assert result.returncode == 1
    assert table_rows(result.stdout) == [{
        "bench": "no_such_benchmark", "measure": "MISSING: no bench/no_such_benchmark.py", "ours": "–",
        "baseline": "–", "ratio": "–", "goal": "–", "met": "NO"}]


def test_a_benchmark_that_fails_is_a_row_saying_so_with_its_reason_shown():
    """two_workers needs PostgreSQL and Redis: without them it refuses, and the table says it failed."""
    result = bench_run("--quick", "two_workers")

    assert result.returncode == 1
    assert table_rows(result.stdout) == [{
        "bench": "two_workers", "measure": "FAILED: exit status 2", "ours": "–", "baseline": "–", "ratio": "–",
        "goal": "–", "met": "NO"}]
    assert "set DATABASE_URL (postgres://...) and REDIS_URL" in result.stdout

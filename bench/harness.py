"""What the benchmarks share: fresh databases, `BENCH` lines, cases run in child processes and
their memory figures, accounts on emulators, and `manage.py run_worker` processes.

Nothing here imports the project at load time: the helpers that need Django import it when
called, once the benchmark has set Django up (bench/fresh_django.py or `django_on_fresh_database`).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


# --- Databases -----------------------------------------------------------------------------------


def sqlite_remove(path: Path | str) -> None:
    """Delete a SQLite database file and the journal files beside it."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def postgres_recreate(url: str) -> None:
    """Drop the PostgreSQL database named at the end of `url` (whoever is connected) and create
    it empty."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def database_fresh(url: str) -> None:
    """An empty database at `url`: a SQLite file removed, or a PostgreSQL database recreated."""
    if url.startswith("sqlite:///"):
        sqlite_remove(url.removeprefix("sqlite:///"))
    else:
        postgres_recreate(url)


def django_on_fresh_database(url: str) -> None:
    """Django on an empty, migrated database at `url`, made afresh at each call (Django itself is
    set up once per process)."""
    os.environ["DATABASE_URL"] = url  # read when the settings load
    os.environ["DJANGO_SETTINGS_MODULE"] = "giftdesk.settings"
    import django
    from django.apps import apps

    if apps.ready:
        from django.db import connections

        connections.close_all()  # the database is dropped and created again under them
    database_fresh(url)
    if not apps.ready:
        django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def redis_flush() -> None:
    """Empty REDIS_URL's database, if one is set: no queued task or cluster status of an
    earlier run is left in the broker."""
    if os.environ.get("REDIS_URL"):
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


# --- Figures -------------------------------------------------------------------------------------


def bench_line(*, measure: str, ours, baseline, ratio, unit: str, goal: str, met: bool | None) -> str:
    """One measure as bench/run collects it: `BENCH {json}`, its keys in the table's order."""
    return "BENCH " + json.dumps({
        "measure": measure, "ours": ours, "baseline": baseline, "ratio": ratio, "unit": unit, "goal": goal,
        "met": met,
    }, ensure_ascii=False)


def ratio_line(measure: str, ours: float, baseline: float, unit: str, goal: float) -> str:
    """A `BENCH` line whose goal is at most `goal` times the baseline (figures to 3 places)."""
    ratio = ours / baseline if baseline else None
    return bench_line(measure=measure, ours=round(ours, 3), baseline=round(baseline, 3),
                      ratio=round(ratio, 3) if ratio is not None else None, unit=unit,
                      goal=f"<= {goal}x baseline", met=ratio is not None and ratio <= goal)


# --- Cases in child processes --------------------------------------------------------------------


def child_figures(script: str, *args: str, what: str, show_stderr: bool = False) -> dict:
    """Run `script` with `args` in a fresh Python process (peak RSS is a high-water mark per
    process) and return the JSON figures of its last output line; exit, showing its error,
    when it fails."""
    result = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=False)
    if result.returncode:
        sys.exit(f"{what} failed:\n{result.stderr[-3000:]}")
    if show_stderr:
        print(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def peak_reset() -> None:
    """Start this process's peak RSS (VmHWM) over from here (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def memory_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(field)


# --- Emulators and accounts ----------------------------------------------------------------------


def account_on_emulator(*, kind: str, base_url: str, name: str, values: dict[str, str], auth_path: str = ""):
    """A sandbox account of `kind` on the emulator served at `base_url` (a sandbox account may
    point at any host), its catalog synced."""
    from providers.services import account_configure, catalog_sync

    account, _ = account_configure(name=name, kind=kind, environment="sandbox", api_base_url=base_url,
                                   auth_url=f"{base_url}{auth_path}" if auth_path else "", values=values)
    catalog_sync(account=account)
    return account


def recipient_rows(count: int, product, amounts: list, *, name: str, email: str, reference: str) -> list:
    """`count` valid import rows of `product`, taking `amounts` in turn; `name`, `email` and
    `reference` are templates of the row's index, e.g. "P{i:05d}"."""
    from orders.spreadsheet import ValidRow

    return [
        ValidRow(row=i + 2, name=name.format(i=i), email=email.format(i=i), phone="",
                 reference=reference.format(i=i), message="Thank you!", amount=amounts[i % len(amounts)],
                 currency=product.currency, product=product, send_on=None)
        for i in range(count)
    ]


# --- Worker processes ----------------------------------------------------------------------------


def worker_start(log: Path, settings: dict[str, str]) -> subprocess.Popen:
    """A `manage.py run_worker` with `settings` over this environment, its output in `log`. In
    a session of its own, so its cluster can be signalled as one process group."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "giftdesk.settings", **settings}
    return subprocess.Popen([sys.executable, "manage.py", "run_worker"], cwd=ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True)


def worker_kill(process: subprocess.Popen) -> None:
    """SIGKILL to the worker's whole cluster: no clean-up runs, as when a machine dies."""
    os.killpg(process.pid, signal.SIGKILL)


def workers_stop(processes: list[subprocess.Popen], *, at_once: bool = False, grace: float = 30) -> None:
    """Stop workers: SIGTERM to each `run_worker` alone, which lets running tasks finish and
    stops its cluster (README "Running at scale"), or with `at_once` to each whole group;
    SIGKILL to the group of any still running `grace` seconds later."""
    for process in processes:
        if process.poll() is None:
            if at_once:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

"""Exactly-once under faults, full size: 1,000 orders across every provider, random faults,
a worker SIGKILLed mid-send and restarted. Prints orders, faults injected, duplicates and
lost orders, and the time to drain.

    .venv/bin/python bench/faults.py                       # SQLite, 1 worker
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/giftdesk_faults \\
        REDIS_URL=redis://127.0.0.1:6379/14 .venv/bin/python bench/faults.py --workers 2

The database is created afresh (SQLite: var/faults/faults.sqlite3; PostgreSQL: the named
database is dropped and created). Exit status 1 when a promise is broken.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000, help="orders in all (split across providers)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    log_dir = ROOT / "var" / "faults"
    log_dir.mkdir(parents=True, exist_ok=True)
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{log_dir / 'faults.sqlite3'}"
    _fresh_database(database_url)
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "giftdesk.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    if os.environ.get("REDIS_URL"):
        import redis

        redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()

    from emulators.fault_harness import provider_setups, run

    providers = len(provider_setups())
    last_print = [0.0]

    def progress(done: int, total: int) -> None:
        if time.monotonic() - last_print[0] > 10:
            print(f"  {done}/{total} orders finished", flush=True)
            last_print[0] = time.monotonic()

    result = run(database_url=database_url, orders_per_provider=args.orders // providers, workers=args.workers,
                 fault_rate=args.fault_rate, seed=args.seed, timeout=args.timeout, log_dir=log_dir,
                 progress=progress)
    engine = "PostgreSQL" if database_url.startswith("postgres") else "SQLite"
    broker = "Redis" if os.environ.get("REDIS_URL") else "ORM"
    print(f"\n{engine} + {broker} broker, {args.workers} worker process(es), fault rate {args.fault_rate:.0%}")
    print(result.summary())
    for kind, statuses in result.per_provider.items():
        print(f"  {kind}: " + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items())))
    for problem in (result.lost + result.cards_for_undelivered + result.failed_without_reason)[:20]:
        print(f"  PROBLEM: {problem}")
    broken = result.duplicates or result.lost or result.cards_for_undelivered or result.failed_without_reason
    return 1 if broken else 0


def _fresh_database(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


if __name__ == "__main__":
    sys.exit(main())

"""Django for a benchmark: a fresh SQLite file under var/bench/ (or DATABASE_URL if set), migrated."""

from __future__ import annotations

import os
from pathlib import Path

from bench.harness import sqlite_remove

BENCH_DIR = Path(__file__).resolve().parents[1] / "var" / "bench"


def start_django(database_name: str) -> Path:
    """Set Django up on a new database named `database_name`; returns var/bench/."""
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    database = BENCH_DIR / database_name
    sqlite_remove(database)
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{database}")
    os.environ["DJANGO_SETTINGS_MODULE"] = "giftdesk.settings"
    # Imported only now: the settings read DATABASE_URL when they load.
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return BENCH_DIR

"""Pumps of one account racing in threads, each on its own database connection, as several
workers would: the tests of what the database must decide alone (claims, limits)."""

from __future__ import annotations

import threading

from django.db import connection

from orders import dispatch


def pumps_racing(account_id: int, *, workers: int = 2, budget_seconds: float = 30) -> list[dispatch.PumpReport]:
    """Start `workers` pumps of the account at the same instant; return their reports once
    all have finished. A pump's error, or one still running after twice its budget, fails."""
    errors, reports = [], []
    start = threading.Barrier(workers)

    def pump():
        try:
            start.wait()
            reports.append(dispatch.account_pump(account_id, budget_seconds=budget_seconds))
        except Exception as exc:  # noqa: BLE001 — reported below, with the thread's own error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pump) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=budget_seconds * 2)
    assert errors == []
    assert not any(thread.is_alive() for thread in threads)
    return reports

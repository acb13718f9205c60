"""Gifty pacing: N requests through the account's rate limiter and the real Gifty client to the
Gifty emulator on a loopback port, from two threads (two workers, each on its own database
connection), first with GiftDesk's limiter (providers.ratelimit: a burst of three after a
pause, then one request every 61 s / limit), then with the old sliding 60-second window kept
below for comparison, in the same run.

For each it prints the requests in the busiest 1 s and 60 s windows, the gaps between
requests (mean and standard deviation beside the ideal 60 s / limit), the emulator's 429s
(Gifty's own limit: 120 in any 60 s), how long the N took, and the SQL statements the limiter
ran per request (the old one also opened and committed a transaction per request).

    .venv/bin/python bench/gifty_pacing.py [--requests 240] [--rate 120] [--workers 2] [--quick]

Default: 240 requests at Gifty's documented 120 a minute (two minutes; about 3 minutes in all).
--quick: 60 requests at 600 a minute (a few seconds). Fresh SQLite under var/bench/ (or
DATABASE_URL if set: PostgreSQL).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)
from bench.harness import bench_line  # noqa: E402

# Django is set up in main(), on a fresh database: project imports wait until then.


@dataclass
class Run:
    label: str
    rate: int
    times: list[float]  # when each request left, seconds from the start
    seconds: float
    statements: int  # the limiter's, transaction control included
    transaction_statements: int  # of those, BEGIN and COMMIT
    refusals: int  # the emulator's 429s: Gifty's own limit exceeded

    @property
    def requests(self) -> int:
        return len(self.times)

    def most_in(self, window: float) -> int:
        """The most requests in any closed window of `window` seconds."""
        times, most, start = sorted(self.times), 0, 0
        for end, moment in enumerate(times):
            while moment - times[start] > window:
                start += 1
            most = max(most, end - start + 1)
        return most

    @property
    def gaps(self) -> list[float]:
        times = sorted(self.times)
        return [later - earlier for earlier, later in zip(times, times[1:])]

    @property
    def per_request(self) -> float:
        return self.statements / max(self.requests, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=240, help="requests in all (default: two minutes' worth)")
    parser.add_argument("--rate", type=int, default=120, help="the account's limit per minute (Gifty: 120)")
    parser.add_argument("--workers", type=int, default=2, help="threads sending at once")
    parser.add_argument("--quick", action="store_true", help="60 requests at 600 a minute")
    args = parser.parse_args()
    requests, rate = (60, 600) if args.quick else (args.requests, args.rate)
    start_django("gifty_pacing.sqlite3")

    from providers import ratelimit

    print(f"{requests} Gifty requests at {rate} a minute from {args.workers} threads, "
          f"through the real client to the emulator on loopback.\n")
    ours = measured("GiftDesk's limiter (GCRA)", rate, requests, args.workers,
                    lambda account: ratelimit.throttle_for(account), ("providers_accountpace",))
    old = OldSlidingWindow.install()
    baseline = measured("old sliding window", rate, requests, args.workers,
                        # Beyond 20 s the engine reschedules the request: here it just waits.
                        lambda account: (lambda: old.acquire(account.pk, rate, max_wait=3600)),
                        (OldSlidingWindow.table, "providers_provideraccount"), per_acquire=old)
    report([ours, baseline], rate)


# --- Measuring ----------------------------------------------------------------------------------


def measured(label: str, rate: int, requests: int, workers: int, throttle_of, tables: tuple[str, ...],
             per_acquire=None) -> Run:
    """`requests` calls of the Gifty client (one GET each) split over `workers` threads."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from emulators.gifty import DEMO_API_TOKEN, GiftyEmulator
    from emulators.loopback import LoopbackServer
    from providers.clients import client_for
    from providers.models import ProviderAccount
    from providers.services import account_configure

    emulator = GiftyEmulator(tokens=[DEMO_API_TOKEN])
    emulator.rate_limit = 120 if rate <= 120 else rate  # Gifty's documented limit (the test rate in --quick)
    name = f"Gifty pacing: {label}"
    ProviderAccount.objects.filter(name=name).delete()
    times: list[float] = []
    statements = [0]
    errors: list[BaseException] = []
    lock = threading.Lock()
    with LoopbackServer(emulator) as server:
        # Sandbox: a sandbox account may point at any host, as an emulator on loopback.
        account, _ = account_configure(name=name, kind="gifty", environment="sandbox",
                                       api_base_url=server.base_url,
                                       values={"api_token": DEMO_API_TOKEN, "language": "en",
                                               "rate_limit_per_minute": str(rate)})
        barrier = threading.Barrier(workers)
        started = [0.0]

        def worker(count: int) -> None:
            limiter = throttle_of(account)

            def throttle() -> None:
                limiter()
                with lock:
                    times.append(time.monotonic() - started[0])

            client = client_for(account, throttle=throttle)
            try:
                with CaptureQueriesContext(connection) as queries:
                    barrier.wait()
                    if not started[0]:
                        started[0] = time.monotonic()
                    for _ in range(count):
                        client.verify()  # one GET of the order configuration
                with lock:
                    statements[0] += sum(1 for query in queries if any(table in query["sql"] for table in tables))
            except BaseException as exc:  # noqa: BLE001 — reported below
                errors.append(exc)
            finally:
                connection.close()

        shares = [requests // workers + (1 if index < requests % workers else 0) for index in range(workers)]
        threads = [threading.Thread(target=worker, args=(share,)) for share in shares]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.monotonic() - began
    if errors:
        raise errors[0]
    # Ours runs each statement on its own (autocommit): no BEGIN or COMMIT to add.
    control = per_acquire.transaction_statements if per_acquire is not None else 0
    return Run(label=label, rate=rate, times=times, seconds=seconds, statements=statements[0] + control,
               transaction_statements=control, refusals=emulator.rate_limit_refusals)


class OldSlidingWindow:
    """The limiter GiftDesk had before (providers/ratelimit.py until issue 12), kept here to be
    measured beside the new one: a sliding 61 s window of request rows per account, counted
    under a lock on the account row, in one transaction per request."""

    table = "bench_ratelimitslot"
    WINDOW_SECONDS = 61

    def __init__(self, model) -> None:
        self.model = model
        self.transactions = 0
        self.lock = threading.Lock()

    @property
    def transaction_statements(self) -> int:
        return 2 * self.transactions  # BEGIN and COMMIT, which the query log does not show

    @classmethod
    def install(cls) -> OldSlidingWindow:
        from django.db import connection, models

        from providers.models import ProviderAccount

        class BenchRateLimitSlot(models.Model):
            account = models.ForeignKey(ProviderAccount, on_delete=models.CASCADE, related_name="+")
            at = models.DateTimeField(db_index=True)

            class Meta:
                app_label = "providers"
                db_table = cls.table
                indexes = [models.Index(fields=["account", "at"], name="bench_slot_account_at")]

        with connection.schema_editor() as editor:
            if cls.table in connection.introspection.table_names():
                editor.delete_model(BenchRateLimitSlot)
            editor.create_model(BenchRateLimitSlot)
        return cls(BenchRateLimitSlot)

    def acquire(self, account_id: int, limit: int, max_wait: float = 20.0) -> None:
        from providers.clients.base import RateLimited

        while True:
            wait = self._try_acquire(account_id, max(limit, 1))
            if wait is None:
                return
            if wait > max_wait:
                raise RateLimited(f"over {limit} a minute", retry_after=wait)
            time.sleep(wait)

    def _try_acquire(self, account_id: int, limit: int) -> float | None:
        from datetime import timedelta

        from django.db import transaction
        from django.utils import timezone

        from providers.models import ProviderAccount

        window = timedelta(seconds=self.WINDOW_SECONDS)
        with self.lock:
            self.transactions += 1
        with transaction.atomic():
            ProviderAccount.objects.select_for_update().filter(pk=account_id).values_list("pk").first()
            now = timezone.now()
            self.model.objects.filter(account_id=account_id, at__lte=now - window).delete()
            in_window = list(self.model.objects.filter(account_id=account_id).order_by("at")
                             .values_list("at", flat=True))
            if len(in_window) < limit:
                self.model.objects.create(account_id=account_id, at=now)
                return None
            frees_at = in_window[len(in_window) - limit] + window
            return max((frees_at - now).total_seconds(), 0.01)


# --- Reporting ----------------------------------------------------------------------------------


def report(runs: list[Run], rate: int) -> None:
    ideal = 60 / rate  # the gap of requests spread exactly evenly over the minute
    second_goal = rate // 60 + 1  # at 120 a minute: 3
    for run in runs:
        gaps = run.gaps
        print(f"{run.label}: {run.requests} requests in {run.seconds:.1f} s "
              f"({run.requests * 60 / max(run.seconds, 1e-9):.0f} a minute overall)")
        print(f"  busiest 1 s: {run.most_in(1.0)} requests; busiest 60 s: {run.most_in(60.0)} (limit {rate})")
        print(f"  gaps: mean {statistics.mean(gaps):.3f} s, stdev {statistics.pstdev(gaps):.3f} s, "
              f"longest {max(gaps):.2f} s (ideal: {ideal:.3f} s each)")
        steady = gaps[3:]  # after the first three: ours sends them at once (its burst after a pause)
        print(f"  gaps after the first three: mean {statistics.mean(steady):.3f} s, "
              f"stdev {statistics.pstdev(steady):.3f} s, longest {max(steady):.2f} s")
        control = (f" (of which BEGIN and COMMIT: {run.transaction_statements / max(run.requests, 1):.2f})"
                   if run.transaction_statements else " (each on its own, no transaction)")
        print(f"  Gifty's 429s: {run.refusals}; limiter SQL statements per request: {run.per_request:.2f}{control}")
        print()
    ours, baseline = runs
    lines = [
        ("max requests in any 60 s window", ours.most_in(60.0), baseline.most_in(60.0), "requests",
         f"<= {rate} (the documented limit), no 429", ours.most_in(60.0) <= rate and ours.refusals == 0),
        ("max requests in any 1 s window", ours.most_in(1.0), baseline.most_in(1.0), "requests",
         f"<= {second_goal}", ours.most_in(1.0) <= second_goal),
        ("rate limiter SQL statements per request", round(ours.per_request, 2), round(baseline.per_request, 2),
         "statements", "<= 1", ours.per_request <= 1),
    ]
    for measure, mine, theirs, unit, goal, met in lines:
        print(bench_line(measure=f"Gifty pacing at {rate}/min, {measure}", ours=mine, baseline=theirs,
                         ratio=round(mine / theirs, 3) if theirs else None, unit=unit, goal=goal, met=bool(met)))


if __name__ == "__main__":
    main()

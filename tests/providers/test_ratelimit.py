"""The account rate limit: a burst of three after a pause, then requests evenly spaced (GCRA),
one pace per account in the database, held across threads and processes; status lookups take
only slots no order waits for."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from providers import ratelimit
from providers.clients.base import RateLimited, TransientError
from providers.models import AccountPace, ProviderAccount
from tests.fixtures.worker import worker_database_url

ROOT = Path(__file__).resolve().parents[2]
# Time measured after a sleep can run late (a busy machine), never early: the slack allowed late.
LATE = 0.1
# ...and early by no more than the clocks' rounding.
EARLY = 0.003


@pytest.fixture
def account(db):
    return ProviderAccount.objects.create(name="Limited", kind="gifty", rate_limit_per_minute=3)


def backlog(account) -> float:
    return ratelimit._backlog(account.pk)


def queue_up(account, limit: int, seconds: float) -> None:
    """Requests waiting in line on the account for at least `seconds` (other workers'
    reservations), beyond a burst's, which do not wait."""
    while not (ratelimit._reserve(account.pk, limit, allowed_backlog=3600) > 0 and backlog(account) >= seconds):
        pass


def max_in_window(times: list[float], window: float) -> int:
    """The most of `times` in any closed window of `window` seconds."""
    times, most, start = sorted(times), 0, 0
    for end, moment in enumerate(times):
        while moment - times[start] > window:
            start += 1
        most = max(most, end - start + 1)
    return most


def test_a_burst_of_three_goes_at_once_then_one_request_each_interval(account):
    limit = 600  # a request every 0.102 s
    interval = ratelimit.interval_seconds(limit)
    started = time.monotonic()
    moments = []
    for _ in range(8):
        ratelimit.acquire(account.pk, limit, max_wait=5)
        moments.append(time.monotonic() - started)
    assert ratelimit.BURST == 3 and moments[2] < LATE  # nothing was queued: three go at once
    # The burst took three slots: the fourth request waits for the fourth slot, and so on, one
    # each interval (a grid: never before its slot, and lateness never adds up).
    for slot, moment in enumerate(moments[3:], start=3):
        assert slot * interval - EARLY <= moment <= slot * interval + LATE, (slot, moments)
    assert AccountPace.objects.filter(account=account).count() == 1  # one row per account, not one per request


def test_a_new_burst_needs_a_pause_of_three_intervals(account):
    limit = 600
    interval = ratelimit.interval_seconds(limit)
    for _ in range(4):
        ratelimit.acquire(account.pk, limit)
    time.sleep(interval)  # the last slot ended: a short pause
    started = time.monotonic()
    ratelimit.acquire(account.pk, limit)
    ratelimit.acquire(account.pk, limit)
    assert interval - EARLY <= time.monotonic() - started  # no burst: the second waited its interval
    time.sleep(4 * interval)  # a pause of more than three intervals after the last slot
    started = time.monotonic()
    for _ in range(3):
        ratelimit.acquire(account.pk, limit)
    assert time.monotonic() - started < LATE


def test_requests_keep_an_even_spacing(account):
    limit = 1200  # 0.051 s apart: a few seconds for 40
    interval = ratelimit.interval_seconds(limit)
    started = time.monotonic()
    moments = []
    for _ in range(40):
        ratelimit.acquire(account.pk, limit, max_wait=5)
        moments.append(time.monotonic() - started)
    gaps = [later - earlier for earlier, later in zip(moments[3:], moments[4:])]  # after the burst
    assert abs(statistics.mean(gaps) - interval) < 0.005
    assert statistics.median(gaps) == pytest.approx(interval, abs=0.003)
    # The slots are a fixed grid: after the burst never before its slot, and lateness never adds up.
    assert all(slot * interval - EARLY <= moment for slot, moment in enumerate(moments) if slot >= 3)
    assert moments[-1] < 39 * interval + LATE


def test_the_interval_spans_a_minute_and_a_second_for_the_limit():
    # Gifty: a request every 0.508 s, so 120 in a row span 61 s, never 121 in a minute.
    assert ratelimit.interval_seconds(120) == pytest.approx(61 / 120)
    assert 119 * ratelimit.interval_seconds(120) > 60


def test_each_request_is_one_statement(account):
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            ratelimit.acquire(account.pk, 6000, max_wait=5)
    assert len(queries) == 3, [query["sql"] for query in queries]


def test_a_request_over_the_limit_is_rescheduled_with_the_wait(account):
    for _ in range(3):  # the burst: at 3 a minute, the whole minute's three slots
        ratelimit.acquire(account.pk, 3, max_wait=0)
    before = AccountPace.objects.get(account=account).tat_us
    with pytest.raises(TransientError) as error:
        ratelimit.acquire(account.pk, 3, max_wait=5)
    assert 55 < error.value.retry_after <= 61
    assert "3 requests per minute" in error.value.message
    assert AccountPace.objects.get(account=account).tat_us == before  # refused: no slot taken


def test_a_request_waits_in_line_for_its_slot(account):
    queue_up(account, 600, 0.3)  # other workers' requests go in the next 0.3 s or more
    queued = backlog(account)
    started = time.monotonic()
    ratelimit.acquire(account.pk, 600, max_wait=5)
    waited = time.monotonic() - started
    assert queued - EARLY < waited < queued + LATE


def test_other_accounts_do_not_count(account):
    other = ProviderAccount.objects.create(name="Other", kind="gifty")
    for _ in range(3):
        ratelimit._reserve(other.pk, 3, allowed_backlog=61)
    started = time.monotonic()
    ratelimit.acquire(account.pk, 3, max_wait=0)
    assert time.monotonic() - started < LATE
    assert backlog(other) > 40 and 19 < backlog(account) <= 61 / 3


# --- Status lookups ----------------------------------------------------------------------------


def test_a_lookup_goes_at_once_when_nothing_is_queued_and_counts(account):
    interval = ratelimit.interval_seconds(600)
    started = time.monotonic()
    ratelimit.acquire(account.pk, 600, lookup=True)
    assert time.monotonic() - started < LATE
    # It took the first of the burst's three slots: two orders go at once, the next waits.
    ratelimit.acquire(account.pk, 600)
    ratelimit.acquire(account.pk, 600)
    assert time.monotonic() - started < LATE
    ratelimit.acquire(account.pk, 600)
    assert 3 * interval - EARLY <= time.monotonic() - started < 3 * interval + LATE


def test_a_lookup_never_waits_and_never_takes_a_queued_orders_slot(account):
    queue_up(account, 600, 0.15)  # orders wait in line for their slots
    queued = backlog(account)
    before = AccountPace.objects.get(account=account).tat_us
    started = time.monotonic()
    with pytest.raises(RateLimited) as error:
        ratelimit.acquire(account.pk, 600, lookup=True)
    assert time.monotonic() - started < LATE  # refused at once, not after a wait
    assert queued - LATE < error.value.retry_after <= queued  # when the line is clear
    assert "Status lookups wait while orders use the account's limit of 600 requests per minute" in error.value.message
    assert AccountPace.objects.get(account=account).tat_us == before
    time.sleep(error.value.retry_after)  # when told: the queue is clear and the lookup goes
    ratelimit.acquire(account.pk, 600, lookup=True)


def test_lookups_take_a_bursts_slots_but_never_wait_for_one(account):
    for _ in range(3):  # after a pause, the burst's three slots go at once, lookups' too
        ratelimit.acquire(account.pk, 3, lookup=True)
    with pytest.raises(RateLimited) as error:
        ratelimit.acquire(account.pk, 3, lookup=True)
    assert 55 < error.value.retry_after <= 61


def test_a_lookup_of_several_requests_queues_its_later_ones(account):
    """UGiftMe asks order by order: once a lookup went, its next requests wait in line as
    orders do, or a lookup of two requests could never finish."""
    account.rate_limit_per_minute = 600
    throttle = ratelimit.throttle_for(account, lookup=True)
    queue_up(account, 600, 0)
    with pytest.raises(RateLimited):
        throttle()  # orders wait in line: the lookup does not begin
    time.sleep(backlog(account))
    throttle()  # the line is clear: it begins
    queue_up(account, 600, 0.15)  # meanwhile orders queued again
    queued = backlog(account)
    started = time.monotonic()
    throttle()  # its second request waits its turn instead of failing the lookup
    assert queued - EARLY < time.monotonic() - started < queued + LATE


def run_in_threads(*targets) -> None:
    errors = []

    def guarded(target):
        try:
            target()
        except Exception as exc:  # noqa: BLE001 — reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=guarded, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and not any(thread.is_alive() for thread in threads)


def test_a_flood_of_lookups_never_starves_orders(transactional_db):
    account = ProviderAccount.objects.create(name="Busy", kind="gifty", rate_limit_per_minute=300)
    limit, orders_to_send = 300, 12
    interval = ratelimit.interval_seconds(limit)  # 0.2 s
    orders, lookups, done = [], [], threading.Event()
    lookups_flowing = threading.Event()

    def order_worker():
        lookups_flowing.wait(5)
        time.sleep(0.5)  # the lookups hold every free slot by now
        orders.append(("start", time.monotonic()))
        for _ in range(orders_to_send):
            ratelimit.acquire(account.pk, limit)
            orders.append(("sent", time.monotonic()))
        done.set()

    def lookup_worker():
        while not done.is_set():
            try:
                ratelimit.acquire(account.pk, limit, lookup=True)
            except RateLimited:
                time.sleep(0.002)  # asked again very soon: a flood, not a polite poller
                continue
            lookups.append(time.monotonic())
            lookups_flowing.set()

    run_in_threads(order_worker, lookup_worker, lookup_worker)

    start = orders[0][1]
    sent = [moment for kind, moment in orders if kind == "sent"]
    # The first order waits at most for the one lookup ahead of it, then orders go back to back.
    assert sent[0] - start <= interval + LATE
    assert sent[-1] - sent[0] < (orders_to_send - 1) * interval + LATE * 2
    # No lookup got between two orders: while an order is queued, lookups are refused.
    assert [moment for moment in lookups if sent[0] < moment < sent[-1]] == []
    # Lookups still count: before and after, every request (either kind) kept the spacing.
    everything = sorted([*sent, *lookups])[ratelimit.BURST:]  # after the first lookups' burst
    assert min(later - earlier for earlier, later in zip(everything, everything[1:])) > interval / 2
    assert len(lookups) >= 2  # they did flow whenever no order waited


# --- Across workers ---------------------------------------------------------------------------


def assert_paced(times: list[float], limit: int) -> None:
    """Each request in a slot of its own, and never more than the limit's share of a window
    (`limit` per 60 s is n per 60·n/limit s)."""
    interval = ratelimit.interval_seconds(limit)
    times = sorted(times)
    # A grid of slots from the first request: two requests in one slot (a race between the
    # workers) would leave the last a whole interval early. Lateness only delays a request.
    assert times[-1] - times[0] >= (len(times) - 1) * interval - EARLY - LATE / 2
    assert max_in_window(times, 60 * (len(times) - 1) / limit) <= len(times) - 1


def test_two_threads_together_keep_the_limit(transactional_db):
    account = ProviderAccount.objects.create(name="Shared", kind="gifty", rate_limit_per_minute=600)
    times: list[float] = []
    start = threading.Barrier(2)

    def worker():
        start.wait()
        for _ in range(20):
            ratelimit.acquire(account.pk, 600)
            times.append(time.monotonic())

    run_in_threads(worker, worker)
    assert len(times) == 40
    assert_paced(times, 600)


CHILD = """
import json, os, sys, time
import django
django.setup()
from providers import ratelimit
account_id, limit, count, start_at = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
ratelimit._backlog(account_id)  # connected before the start
time.sleep(max(start_at - time.time(), 0))
times = []
for _ in range(count):
    ratelimit.acquire(account_id, limit)
    times.append(time.time())
print(json.dumps(times))
"""


def test_two_processes_together_keep_the_limit(transactional_db):
    """Two worker processes on one account, each on its own connection (SQLite or PostgreSQL)."""
    limit, each = 600, 20
    account = ProviderAccount.objects.create(name="Two workers", kind="gifty", rate_limit_per_minute=limit)
    env = {**os.environ, "DATABASE_URL": worker_database_url(), "DJANGO_SETTINGS_MODULE": "giftdesk.settings"}
    start_at = time.time() + 6  # both are set up by then
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(account.pk), str(limit), str(each), str(start_at)],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(2)]
    times = []
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0, err
        times += json.loads(out)
    assert len(times) == 2 * each
    assert min(times) >= start_at  # both ran at the same time, neither before the start
    assert_paced(times, limit)

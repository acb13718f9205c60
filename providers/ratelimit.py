"""Each account's rate limit, held across every worker process and machine together, with its
requests spread evenly over the minute (a generic cell rate algorithm, GCRA, with a small burst).

The database keeps one row per account (`AccountPace`). `tat_us` is the theoretical arrival
time (TAT): when the account's next slot begins. A request takes the slot at max(TAT, now)
and moves TAT on by one interval, PACING_WINDOW_SECONDS / limit, then sleeps until its slot
(a slot in the future is kept for it meanwhile). That is one statement per request: an upsert
(it creates the row on the account's first request) whose RETURNING says how long to wait.
Of two workers the database serializes the two statements on the account's row, so each gets
a slot of its own; they never poll nor race.

The interval is 61 s / limit: at Gifty's 120 a minute a request every 0.508 s, so `limit`
slots in a row span 61 s, more than the provider's minute even when the first request arrives
up to a second late (requests in flight reach the provider a little after they leave here).

Burst tolerance: BURST requests (3; fewer when the limit is lower) go at once after a pause,
as a token and a call, or one GoGift basket's three calls, need. They take the next BURST
slots but do not wait for them (`burst_until_us`: slots before it go at once), and a new
burst needs the account idle for BURST intervals first, so the requests of any 61 s still fit
`limit` slots: never more than `limit` in any minute at the provider, and at 120 a minute
never more than 3 in any second.

Time is PostgreSQL's clock, read in the statement, and the wait comes back as seconds:
machines whose clocks disagree still pace as one (SQLite is a file on one machine: its clock).

A status lookup (`lookup=True`) shares the limit but never takes a slot an order waits for:
it goes only when no request waits in line (TAT <= now, or the slot is one of a burst's,
which go at once), and never waits itself; otherwise it raises RateLimited with the seconds
until the line is clear, to be asked again then. An order arriving after lookups waits at
most one interval for them (three, for the burst after a pause). A lookup of several requests
queues its later ones as orders do (`throttle_for`), so a lookup that began can finish.

The reservation is written in its own statement: call the limiter outside a transaction (the
engine sends every request outside one), or a rollback would forget a request that was sent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.db import connection

from giftdesk.text import plural
from providers.clients.base import RateLimited
from providers.models import AccountPace, ProviderAccount

# A second more than the provider's minute: requests in flight arrive a little after they leave.
PACING_WINDOW_SECONDS = 61.0
# Wait in-line for a slot at most this long; beyond it the request is rescheduled.
MAX_INLINE_WAIT_SECONDS = 20.0
# Requests that may go at once after a pause (at most the limit): a token and a call, one
# GoGift basket's create, update and finalize. At 120 a minute: never more than 3 in a second.
BURST = 3
MICROSECONDS = 1_000_000


def interval_seconds(limit: int) -> float:
    """The spacing of an account's requests at `limit` requests per minute."""
    return PACING_WINDOW_SECONDS / max(limit, 1)


def acquire(account_id: int, limit: int, *, max_wait: float = MAX_INLINE_WAIT_SECONDS, lookup: bool = False) -> None:
    """Take the account's next slot and sleep until it; RateLimited (nothing sent) when that is
    more than `max_wait` away, or for a lookup when any request is queued."""
    limit = max(limit, 1)
    # A lookup goes only when no request waits in line (idle, or a burst's slot), never waiting.
    allowed_backlog = 0.0 if lookup else max_wait
    while True:
        wait = _reserve(account_id, limit, allowed_backlog)
        if wait is not None:
            if wait > 0:
                time.sleep(wait)
            return
        backlog = _backlog(account_id)
        if backlog > allowed_backlog:
            break
        # The queue cleared between the two statements: try again.
    # Not sooner than one interval: a lookup asked again in a few milliseconds would only churn.
    retry_after = max(backlog, interval_seconds(limit))
    rate, seconds = f"{plural(limit, 'request')} per minute", math.ceil(retry_after)
    if lookup:
        message = f"Status lookups wait while orders use the account's limit of {rate}; asked again in {seconds} s."
    else:
        message = f"The account's limit of {rate} is reached; sending goes on in {seconds} s."
    raise RateLimited(message, retry_after=retry_after)


def _clock() -> tuple[str, dict[str, int]]:
    """Now, in microseconds since the Unix epoch, as SQL and its parameters: one value for the
    whole statement. PostgreSQL's own clock, so every machine reads the same one; an SQLite
    database is a file on one machine, whose clock (to the microsecond) is passed in."""
    if connection.vendor == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM statement_timestamp()) * 1000000 AS BIGINT)", {}
    if connection.vendor == "sqlite":
        return "%(now)s", {"now": time.time_ns() // 1000}
    raise NotImplementedError(f"The rate limiter has no clock for {connection.vendor}.")


def _reserve(account_id: int, limit: int, allowed_backlog: float) -> float | None:
    """One statement: take the next slot unless it is more than `allowed_backlog` seconds
    away and not one of a burst's. Returns the seconds to wait for the slot taken, or None
    when none was taken."""
    table = connection.ops.quote_name(AccountPace._meta.db_table)
    now, params = _clock()
    # After BURST idle intervals a burst begins: its BURST slots go at once.
    sql = (
        f"INSERT INTO {table} AS pace (account_id, tat_us, burst_until_us) "
        f"VALUES (%(account)s, {now} + %(interval)s, {now} + %(burst)s) "
        f"ON CONFLICT (account_id) DO UPDATE SET "
        f"burst_until_us = CASE WHEN pace.tat_us <= {now} - %(burst)s THEN {now} + %(burst)s "
        f"ELSE pace.burst_until_us END, "
        f"tat_us = CASE WHEN pace.tat_us > {now} THEN pace.tat_us ELSE {now} END + %(interval)s "
        f"WHERE pace.tat_us - {now} <= %(allowed)s OR pace.tat_us < pace.burst_until_us "
        # The slot taken begins one interval before the new TAT; a burst's slot goes at once.
        f"RETURNING CASE WHEN tat_us - %(interval)s < burst_until_us THEN 0 "
        f"ELSE tat_us - %(interval)s - {now} END"
    )
    interval_us = round(interval_seconds(limit) * MICROSECONDS)
    params |= {"account": account_id, "interval": interval_us, "burst": interval_us * min(BURST, limit),
               "allowed": round(allowed_backlog * MICROSECONDS)}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else max(row[0], 0) / MICROSECONDS


def _backlog(account_id: int) -> float:
    """Seconds until the account's queued requests have all gone (0 when none is queued)."""
    table = connection.ops.quote_name(AccountPace._meta.db_table)
    now, params = _clock()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tat_us - {now} FROM {table} WHERE account_id = %(account)s",
                       params | {"account": account_id})
        row = cursor.fetchone()
    return 0.0 if row is None else max(row[0], 0) / MICROSECONDS


def throttle_for(account: ProviderAccount, *, lookup: bool = False) -> Callable[[], None]:
    """What a client calls before each request. With `lookup`, for the client of one status
    lookup: its first request goes only into an idle slot; once it went, the lookup's further
    requests (UGiftMe asks order by order) queue as orders do, so a lookup that began finishes."""
    account_id, limit = account.pk, account.rate_limit_per_minute
    if not lookup:
        return lambda: acquire(account_id, limit)
    started = False

    def throttle() -> None:
        nonlocal started
        acquire(account_id, limit, lookup=not started)
        started = True

    return throttle

"""SQL statements per card while sending: 1,000 cards through the real client to each
provider's emulator on a loopback port, sent in this process by `account_pump` (as a worker
would), every statement on the sending connection counted and put in the phase whose code
sent it:

    claim        orders_claim_round (spending limits, the claim, its events and batch totals)
    attempt      submissions_attempt around the requests (start, read the orders, release)
    record call  the calls' rows and their links to the orders (orders.events)
    results      recording the answers: orders' changes, events, batch totals, the submissions,
                 completing batches (also when the answers came from status lookups)
    poll         submissions_poll around the lookups (taking them, reading the orders)
    pump         account_pump's own reads (the account, what is due, when to wake)
    ratelimit    providers/ratelimit.py: the account's request budget (counted apart)

    .venv/bin/python bench/sql_per_card.py [--quick] [--orders 1000] [--provider gogift ...]

The goal figure (issue 12: <= 0.2 statements per card) is every statement of the pump except
the rate limit's; the figure with it is printed too. A SAVEPOINT/BEGIN sent through a cursor
is a statement; an executemany counts as one statement per parameter set. The figures of the
build before the bulk engine (one UPDATE and one INSERT per order) were measured with this
script before the change and are printed beside ours as the baseline.

Runs on a fresh SQLite database under var/bench/ (or DATABASE_URL if set).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.fresh_django import start_django  # noqa: E402 (needs ROOT on the path)

GOAL = 0.2

# Statements per card of the build before the bulk engine, 1,000 cards, measured with this
# script (each provider at its size below): (rate limit excluded, included), per database.
BEFORE = {
    "sqlite": {"gogift": (2.630, 2.930), "ugiftme": (4.493, 4.643), "giftronaut": (4.493, 4.643)},
    "postgresql": {"gogift": (2.508, 2.568), "ugiftme": (4.405, 4.435), "giftronaut": (4.405, 4.435)},
}

# Phases by the innermost function of the stack that sent the statement.
PHASE_OF_FUNCTION = {
    ("orders/events.py", "record_call"): "record call",
    ("orders/events.py", "flush"): "record call",
    ("orders/dispatch.py", "orders_claim_round"): "claim",
    ("orders/dispatch.py", "submissions_attempt"): "attempt",
    ("orders/dispatch.py", "_attempts_release"): "attempt",
    ("orders/dispatch.py", "submissions_poll"): "poll",
    ("orders/dispatch.py", "_polls_take"): "poll",
    ("orders/dispatch.py", "account_pump"): "pump",
    **{("orders/dispatch.py", name): "results" for name in (
        "_answers_record", "_polls_record", "_accept_many", "_poll_failed", "_attempt_failed",
        "_reject", "_split", "_fail_orders", "_results_apply", "_retry_later",
        "_block_account", "_settle_without_orders", "_scheduled_cards_deliver", "_complete_finished_batches")},
}
PHASES = ("claim", "attempt", "record call", "results", "poll", "pump", "ratelimit")


def phase_of_stack() -> str:
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename.replace("\\", "/")
        if filename.endswith("providers/ratelimit.py"):
            return "ratelimit"
        name = frame.f_code.co_name
        if name == "inner" and filename.endswith("contextlib.py"):
            # A function decorated with @transaction.atomic: its BEGIN is sent before its own
            # frame starts, by the decorator's; it belongs to the function.
            function = frame.f_locals.get("func")
            name = getattr(function, "__name__", name)
            code = getattr(function, "__code__", None)
            filename = code.co_filename.replace("\\", "/") if code else filename
        for (suffix, function_name), phase in PHASE_OF_FUNCTION.items():
            if name == function_name and filename.endswith(suffix):
                return phase
        frame = frame.f_back
    return "other"


class StatementCounter:
    """A connection.execute_wrapper counting statements per phase."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.counts[phase_of_stack()] += len(params) if many and params is not None else 1
        return execute(sql, params, many, context)


# --- Providers -------------------------------------------------------------------------------------


def gogift_setup():
    from emulators.gogift import GoGiftEmulator

    emulator = GoGiftEmulator(environment="sandbox", clients={"bench": "bench-secret"})

    def configure(base_url: str, per_request: int) -> dict:
        return dict(kind="gogift", environment="sandbox", api_base_url=base_url, auth_url=f"{base_url}/connect/token",
                    values={"client_id": "bench", "client_secret": "bench-secret", "buyer_account_id": "1"})

    return emulator, configure, {"sku": "AEC9A553"}, lambda i: Decimal(50 + 10 * (i % 100))


def ugiftme_setup():
    from emulators.ugiftme import EXPERIENCE_CARD, UGiftMeEmulator

    key = "ugm_test_0a1b2c3d4e5f60718293a4b5c6d7e8f9"
    emulator = UGiftMeEmulator(api_keys=[key], wallet_balance=Decimal("100000000.00"))

    def configure(base_url: str, per_request: int) -> dict:
        return dict(kind="ugiftme", environment="sandbox", api_base_url=base_url, auth_url="",
                    values={"api_key": key})

    return emulator, configure, {"provider_product_id": EXPERIENCE_CARD}, lambda i: Decimal(100 + 10 * (i % 100))


def giftronaut_setup():
    from emulators.giftronaut import TOKEN_PATH, GiftronautEmulator

    emulator = GiftronautEmulator(environment="sandbox", clients={"bench": "bench-secret"})

    def configure(base_url: str, per_request: int) -> dict:
        return dict(kind="giftronaut", environment="sandbox", api_base_url=base_url,
                    auth_url=f"{base_url}{TOKEN_PATH}",
                    values={"client_id": "bench", "client_secret": "bench-secret", "sender_name": "Bench",
                            "email_subject": "You have received a gift card!"})

    return emulator, configure, {"provider_product_id": "GC-MAGASIN-DKK"}, lambda i: Decimal(100 + 50 * (i % 90))


# provider: (setup, cards per request). GoGift at 50 per basket (the figure);
# UGiftMe at its cap (max_cards_per_submission); Giftronaut has no cap (the account's
# max_cards_per_request decides): measured at 100, like UGiftMe.
PROVIDERS = {"gogift": (gogift_setup, 50), "ugiftme": (ugiftme_setup, 100), "giftronaut": (giftronaut_setup, 100)}


def measure(provider: str, *, orders: int, per_request: int) -> dict:
    from django.db import connection

    from emulators.loopback import LoopbackServer
    from orders import dispatch
    from orders.batches import batch_create, batch_send
    from orders.models import TERMINAL_STATUSES, Submission
    from orders.spreadsheet import ValidRow
    from providers.models import Product
    from providers.services import account_configure, catalog_sync

    setup, _ = PROVIDERS[provider]
    emulator, configure, product_lookup, amount_of = setup()
    with LoopbackServer(emulator) as server:
        config = configure(server.base_url, per_request)
        config["values"].update({"max_cards_per_request": str(per_request), "rate_limit_per_minute": "100000"})
        account, _ = account_configure(name=f"SQL per card {provider} {per_request}", **config)
        catalog_sync(account=account)
        product = Product.objects.get(account=account, **product_lookup)
        rows = [
            ValidRow(row=i + 2, name=f"Person {i}", email=f"person{i}@example.com", phone="",
                     reference=f"S{provider[:2].upper()}{per_request}-{i:05d}", message="Thank you!",
                     amount=amount_of(i), currency=product.currency, product=product, send_on=None)
            for i in range(orders)
        ]
        batch = batch_create(account=account, rows=rows, source_filename=f"sql-per-card-{provider}.csv")
        batch_send(batch=batch)
        counter = StatementCounter()
        started = time.monotonic()
        while batch.orders.exclude(status__in=TERMINAL_STATUSES).exists():  # the bench's check: not counted
            if time.monotonic() - started > 600:
                raise SystemExit(f"{provider}: not finished after 600 s")
            with connection.execute_wrapper(counter):
                dispatch.account_pump(account.pk, budget_seconds=60)
        elapsed = time.monotonic() - started
    counts = counter.counts
    delivered = batch.orders.filter(status="delivered").count()
    submissions = Submission.objects.filter(account=account).count()
    return {"provider": provider, "orders": orders, "per_request": per_request, "delivered": delivered,
            "ledger": len(emulator.ledger), "submissions": submissions, "counts": dict(counts),
            "seconds": elapsed}


def per_card(result: dict, *, ratelimit: bool) -> float:
    total = sum(n for phase, n in result["counts"].items() if ratelimit or phase != "ratelimit")
    return total / result["orders"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--quick", action="store_true", help="200 cards per provider")
    parser.add_argument("--provider", action="append", choices=list(PROVIDERS),
                        help="measure only these (default: all three)")
    parser.add_argument("--per-request", type=int, help="cards per request for every provider measured")
    args = parser.parse_args()
    orders = 200 if args.quick else args.orders
    start_django("sql_per_card.sqlite3")
    from django.conf import settings

    # Status lookups soon and often: the bench counts statements, it does not wait for the
    # provider. The number of lookups is the emulators' (two per provider order).
    settings.GIFTDESK_POLL_SECONDS = 0.05
    settings.GIFTDESK_POLL_MAX_SECONDS = 0.2
    for name in ("GIFTDESK_POLL_FIRST_SECONDS", "GIFTDESK_POLL_MIN_SECONDS"):
        if hasattr(settings, name):
            setattr(settings, name, 0.05)

    results = []
    for provider in args.provider or list(PROVIDERS):
        per_request = args.per_request or PROVIDERS[provider][1]
        try:
            results.append(measure(provider, orders=orders, per_request=per_request))
        except Exception:  # noqa: BLE001 — one provider failing still reports the others
            traceback.print_exc()
    from django.db import connection

    print(f"\nSQL statements while sending {orders:,} cards, on {connection.vendor}")
    header = f"{'provider':<11}{'cards/req':>10}{'subm.':>7}" + "".join(f"{p:>12}" for p in PHASES)
    print(header + f"{'per card':>10}{'+ratelimit':>11}")
    for result in results:
        counts = result["counts"]
        print(f"{result['provider']:<11}{result['per_request']:>10}{result['submissions']:>7}"
              + "".join(f"{counts.get(p, 0):>12,}" for p in PHASES)
              + f"{per_card(result, ratelimit=False):>10.3f}{per_card(result, ratelimit=True):>11.3f}")
        if counts.get("other"):
            print(f"   (other: {counts['other']} statements outside the phases above, counted in the totals)")
        print(f"   delivered {result['delivered']:,} of {result['orders']:,}, cards bought {result['ledger']:,}, "
              f"{result['seconds']:.1f} s; per submission: "
              f"{sum(n for p, n in counts.items() if p != 'ratelimit') / max(result['submissions'], 1):.1f} "
              "statements (rate limit excluded)")
    print("\nBaseline: the same measure on the build before the bulk engine (per-order UPDATE + INSERT).")
    for result in results:
        provider = result["provider"]
        before, before_all = BEFORE.get(connection.vendor, {}).get(provider, (None, None))
        if result["per_request"] != PROVIDERS[provider][1]:
            before = before_all = None  # measured at the default request sizes only (per card: at any count)
        ours = round(per_card(result, ratelimit=False), 3)
        ours_all = round(per_card(result, ratelimit=True), 3)
        okay = result["delivered"] == result["orders"] == result["ledger"]
        for measure_name, value, baseline, goal in (
            (f"SQL statements per card sending, {provider} {result['per_request']}/request (goal figure: "
             "rate limit excluded)", ours, before, f"<= {GOAL} per card"),
            (f"SQL statements per card sending, {provider} {result['per_request']}/request, rate limit included",
             ours_all, before_all, None),
        ):
            line = {"measure": measure_name, "ours": value, "baseline": baseline,
                    "ratio": round(value / baseline, 3) if baseline else None, "unit": "statements/card",
                    "goal": goal, "met": (okay and value <= GOAL) if goal else None}
            print("BENCH " + json.dumps(line))


if __name__ == "__main__":
    main()

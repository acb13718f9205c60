"""Exactly-once delivery under faults: the harness shared by tests/faults/ and bench/faults.py.

It serves every provider's emulator on loopback with faults injected at random (seeded),
creates batches through the same services as an upload, lets real worker processes send
them (killing one with SIGKILL mid-send and starting another), and then checks the
promises against the emulators' ledgers: every order finished, one card per delivered
order, none for a failed one, and a readable reason on every failure.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from emulators.base import EmulatorBase
from emulators.loopback import LoopbackServer
from emulators.registry import available_kinds, emulator_module
from orders import tasks
from orders.batches import batch_create, batch_send
from orders.models import TERMINAL_STATUSES, Order, OrderStatus
from orders.spreadsheet import ValidRow
from providers.services import account_configure, catalog_sync

ROOT = Path(__file__).resolve().parents[1]

# What the issue names: 5xx, 429, timeouts after commit, dropped connections, HTML pages.
FAULT_KINDS = ["http_500", "http_503", "http_429", "timeout_after_commit", "drop_before",
               "drop_after_commit", "html"]

# Fast clocks for the workers, so a run drains in seconds, not hours.
WORKER_ENV = {
    "GIFTDESK_RETRY_BASE_SECONDS": "0.2",
    "GIFTDESK_RETRY_MAX_SECONDS": "2",
    "GIFTDESK_MAX_SUBMIT_ATTEMPTS": "12",
    "GIFTDESK_POLL_SECONDS": "0.5",
    "GIFTDESK_POLL_MAX_SECONDS": "8",
    "GIFTDESK_HTTP_READ_TIMEOUT": "1",
    "GIFTDESK_TASK_TIMEOUT": "60",
    "GIFTDESK_STALE_AFTER_SECONDS": "4",
}
FAULT_DELAY_SECONDS = 1.5  # timeout_after_commit answers this late: past the 1 s read timeout
# The schedule sweeps every minute; a run sweeps every few seconds (more would only flood
# the queue with pumps of accounts already being pumped).
SWEEP_SECONDS = 3.0


@dataclass
class ProviderSetup:
    kind: str
    emulator: EmulatorBase
    credentials: dict[str, str]
    token_path: str = ""
    settings: dict[str, str] = field(default_factory=dict)


def provider_setups() -> list[ProviderSetup]:
    """A fresh emulator per provider that GiftDesk has a client and an emulator for."""
    setups = []
    for kind in available_kinds():
        module = emulator_module(kind)
        demo = module.DEMO_ACCOUNT
        setups.append(ProviderSetup(
            kind=kind, emulator=module.make_demo_emulator(), credentials=dict(demo["credentials"]),
            token_path=demo["auth_path"], settings=dict(demo["settings"]),
        ))
    return setups


def ledger_emails(emulator: EmulatorBase) -> list[str]:
    """The recipient of every card an emulator created (one entry per card). Every order of
    a fault run has its own recipient, and not every provider carries our reference."""
    return [entry.recipient_email or "" for entry in emulator.ledger]


class Workers:
    """Real `manage.py run_worker` processes on the given database."""

    def __init__(self, database_url: str, log_dir: Path, *, processes: int = 1) -> None:
        # `processes`: GIFTDESK_WORKERS of each cluster (each a worker process of its own).
        self.env = {**os.environ, **WORKER_ENV, "DATABASE_URL": database_url, "GIFTDESK_WORKERS": str(processes),
                    "DJANGO_SETTINGS_MODULE": "giftdesk.settings"}
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []
        self.killed = 0

    def start(self) -> subprocess.Popen:
        log = open(self.log_dir / f"worker-{len(self.processes)}.log", "wb")
        process = subprocess.Popen([sys.executable, "manage.py", "run_worker"], cwd=ROOT, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def kill(self, process: subprocess.Popen) -> None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        self.killed += 1

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


@dataclass
class FaultRunResult:
    orders: int
    by_status: Counter
    faults: Counter
    duplicates: int
    lost: list[str]
    cards_for_undelivered: list[str]
    failed_without_reason: list[str]
    seconds: float
    workers_killed: int
    per_provider: dict[str, Counter]
    # Requests a provider refused because its own documented rate limit was exceeded
    # (Gifty: 120/min): GiftDesk's limiter must keep this at zero.
    rate_limit_refusals: int = 0

    def summary(self) -> str:
        faults = ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items())) or "none"
        statuses = ", ".join(f"{count} {status}" for status, count in sorted(self.by_status.items()))
        return (f"orders: {self.orders} ({statuses}); faults injected: {sum(self.faults.values())} ({faults}); "
                f"workers killed: {self.workers_killed}; duplicates: {self.duplicates}; lost: {len(self.lost)}; "
                f"cards for undelivered orders: {len(self.cards_for_undelivered)}; failed without a reason: "
                f"{len(self.failed_without_reason)}; provider rate limit exceeded: {self.rate_limit_refusals} times; "
                f"time to drain: {self.seconds:.1f} s")


def run(*, database_url: str, orders_per_provider: int, workers: int, fault_rate: float, seed: int,
        kill_after_fraction: float | None = 0.3, timeout: float = 600, log_dir: Path | None = None,
        progress=None) -> FaultRunResult:
    """One whole fault run on an already-migrated database that the caller owns."""
    log_dir = log_dir or ROOT / "var" / "faults"
    log_dir.mkdir(parents=True, exist_ok=True)
    setups = provider_setups()
    with ExitStack() as stack:
        servers = {setup.kind: stack.enter_context(LoopbackServer(setup.emulator)) for setup in setups}
        batches = {setup.kind: _batch(setup, servers[setup.kind].base_url, orders_per_provider, seed)
                   for setup in setups}
        for setup in setups:
            setup.emulator.faults.random(fault_rate, seed, FAULT_KINDS, delay=FAULT_DELAY_SECONDS, retry_after=1)
        # A worker process per account in all, as README's sizing advises: each account's sending
        # is paced by its provider, so one process would send the accounts one after another.
        pool = Workers(database_url, log_dir, processes=math.ceil(len(setups) / workers))
        stack.callback(pool.stop_all)
        for _ in range(workers):
            pool.start()
        total = sum(batch.orders.count() for batch in batches.values())
        started = time.monotonic()
        victim_killed = kill_after_fraction is None
        last_sweep = 0.0
        while True:
            if time.monotonic() - last_sweep >= SWEEP_SECONDS:
                tasks.sweep()  # What the minutely schedule does, at test speed.
                last_sweep = time.monotonic()
            done = Order.objects.filter(status__in=TERMINAL_STATUSES).count()
            if progress:
                progress(done, total)
            if not victim_killed and done >= total * kill_after_fraction:
                in_flight = Order.objects.filter(status=OrderStatus.SENDING).exists()
                if in_flight or done >= total * 0.9:
                    pool.kill(pool.processes[0])  # mid-send: no clean-up runs
                    pool.start()
                    victim_killed = True
            if done == total or time.monotonic() - started > timeout:
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        return _verify(setups, batches, pool, seconds)


def _batch(setup: ProviderSetup, base_url: str, count: int, seed: int):
    account, _ = account_configure(
        name=f"{setup.kind} under faults", kind=setup.kind, environment="sandbox", api_base_url=base_url,
        auth_url=f"{base_url}{setup.token_path}" if setup.token_path else "",
        values={**setup.credentials, **setup.settings},
    )
    catalog_sync(account=account)  # Before faults are switched on.
    product, amounts = _product_and_amounts(account)
    rows = [
        ValidRow(row=index + 2, name=f"Recipient {setup.kind} {index}", email=f"{setup.kind}.{index}@example.com",
                 phone="", reference=f"F{index:05d}", message="Thank you!",
                 amount=amounts[(index * 7 + seed) % len(amounts)], currency=product.currency, product=product,
                 send_on=None)
        for index in range(count)
    ]
    batch = batch_create(account=account, rows=rows, source_filename=f"faults-{setup.kind}.csv")
    batch_send(batch=batch)
    return batch


def _product_and_amounts(account):
    """A product of the account's catalog and a few amounts it accepts."""
    for product in account.products.filter(is_active=True).order_by("id"):
        if product.pricing == "fixed":
            amounts = product.denomination_amounts
        else:
            low, high = product.min_amount or Decimal("1"), product.max_amount or Decimal("100")
            step = product.step or Decimal("1")
            amounts = [low, low + step, low + step * 2]
            amounts = [amount for amount in amounts if amount <= high]
        amounts = [amount for amount in amounts if product.amount_error(amount) is None]
        if amounts:
            return product, amounts
    raise RuntimeError(f"{account} has no product to test with")


def _verify(setups, batches, pool, seconds) -> FaultRunResult:
    by_status: Counter = Counter()
    faults: Counter = Counter()
    duplicates = 0
    lost: list[str] = []
    cards_for_undelivered: list[str] = []
    failed_without_reason: list[str] = []
    per_provider: dict[str, Counter] = {}
    for setup in setups:
        cards = Counter(email.lower() for email in ledger_emails(setup.emulator))
        faults.update(setup.emulator.faults.injected)
        statuses: Counter = Counter()
        for reference, email, status, error in Order.objects.filter(batch=batches[setup.kind]).values_list(
            "reference", "recipient__email", "status", "last_error"
        ):
            statuses[status] += 1
            bought = cards.get(email.lower(), 0)
            duplicates += max(bought - 1, 0)
            if status not in TERMINAL_STATUSES or (status == OrderStatus.DELIVERED and bought == 0):
                lost.append(f"{setup.kind} {reference} {status}")
            if status in (OrderStatus.FAILED, OrderStatus.CANCELLED) and bought:
                cards_for_undelivered.append(f"{setup.kind} {reference}")
            if status == OrderStatus.FAILED and not error.strip():
                failed_without_reason.append(f"{setup.kind} {reference}")
        by_status.update(statuses)
        per_provider[setup.kind] = statuses
    return FaultRunResult(
        orders=sum(by_status.values()), by_status=by_status, faults=faults, duplicates=duplicates, lost=lost,
        cards_for_undelivered=cards_for_undelivered, failed_without_reason=failed_without_reason,
        seconds=seconds, workers_killed=pool.killed, per_provider=per_provider,
        rate_limit_refusals=sum(getattr(setup.emulator, "rate_limit_refusals", 0) for setup in setups),
    )

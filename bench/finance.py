"""Issue 11's scale targets, measured at N orders: the order list (first page, a filtered page,
a sorted page, four searches) at 100 and 500 per page for an administrator and a Finance
user, the batch list, a month's totals (the page and `orders.reports.order_totals`), the
dashboard, `manage.py export_orders` (CSV and XLSX) beside a plain baseline (a raw
`values_list` + csv.writer of the same columns), and the admin's streamed export of a month.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/giftdesk_bench .venv/bin/python bench/finance.py
    .venv/bin/python bench/finance.py          # SQLite, var/bench/finance.sqlite3, 100,000 orders

N is --orders (1,000,000 on PostgreSQL, 100,000 on SQLite). The PostgreSQL database is
created if missing. The database is kept: a rerun with the same N measures at once, without
seeding again (--reseed starts over). A migration that changed since it was applied is
applied again when it was an empty placeholder then; otherwise the database is seeded anew.

Seeding: ~1,000 orders per batch, the batches spread over the 12 months before the seeding,
four accounts (one per provider kind), DKK, EUR and USD, 90% delivered and some failed,
processing and cancelled, one recipient per order (distinct email and spreadsheet
reference), provider order ids and costs. Rows go in with COPY on PostgreSQL (a plain
executemany on SQLite), then the batches' stored totals (orders.batch_totals, once built),
then (VACUUM) ANALYZE.

Each page: one request to warm up, then the median of 5 (django.test.Client, logged in), the
median of the time its queries took in the database ("sql ms": the rest is Python, mostly
rendering), and the most queries any of the 5 made. Each export runs in a process of its own, so its peak
memory is its own: the process's peak resident size (VmHWM) less its size just before (the
peak first set back to that size, so Django's start-up does not count).
A part of the issue not built yet prints "not built yet" on its line.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import chain, islice
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.export_orders import baseline_csv, resident_kib  # noqa: E402 (needs ROOT on the path)
from bench.fresh_django import BENCH_DIR  # noqa: E402

# Django is set up in main() or child(): project imports wait until then.
PG_ORDERS, SQLITE_ORDERS = 1_000_000, 100_000
ORDERS_PER_BATCH = 1000
PAGE_MS, TOTALS_MS, MAX_QUERIES, EXPORT_MB = 200, 500, 10, 150
PAGE_SIZES = (100, 500)
RUNS = 5
STATE_TABLE = "bench_finance_state"
MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
ADMIN, FINANCE = "bench-admin", "bench-finance"
UPLOADERS, APPROVERS = ["anna.hr", "bo.sales", "carla.care"], ["erik.approver", "freja.approver"]

# name, kind, [(product, currency)]: DKK, EUR and USD, one account per provider kind.
ACCOUNTS = [
    ("GoGift Nordics", "gogift", [("GoGift Global Gift Card", "DKK"), ("GoGift Europe", "EUR")]),
    ("Giftronaut US", "giftronaut", [("Amazon.com eGift", "USD")]),
    ("Gifty Denmark", "gifty", [("Gifty gavekort", "DKK")]),
    ("UGiftMe Europe", "ugiftme", [("Zalando", "EUR"), ("Apple Gift Card", "USD")]),
]
AMOUNTS = {"DKK": [Decimal(v) for v in ("100", "200", "250", "300", "500", "1000")],
           "EUR": [Decimal(v) for v in ("10", "20", "25", "50", "100")]}
AMOUNTS["USD"] = AMOUNTS["EUR"]
# What each provider charges per card: a fee, a discount, the face value, or nothing reported.
COSTS = {"gogift": lambda amount: amount + Decimal("2.50"),
         "giftronaut": lambda amount: (amount * Decimal("0.97")).quantize(Decimal("0.01")),
         "gifty": lambda amount: amount,
         "ugiftme": lambda amount: None}
PROVIDER_IDS = {"gogift": lambda i: f"GG-{40_000_000 + i}", "giftronaut": lambda i: f"GRN{i:010d}",
                "gifty": lambda i: f"{0xA000000000 + i:X}", "ugiftme": lambda i: f"UGM-{i:08d}"}
CAMPAIGNS = ["HR - Jubilees", "HR - Christmas", "Sales - Q1 kickoff", "Sales - Partner rewards",
             "Customer care - Apologies", "Marketing - Survey prizes", ""]
ERRORS = ["Refused: the product is out of stock", "The provider refused the recipient's email address",
          "The amount is outside the product's range"]
FIRST = ["Anna", "Bo", "Camilla", "Emil", "Freja", "Gustav", "Ida", "Jonas", "Karen", "Lars", "Mette",
         "Niels", "Olivia", "Peter", "Rasmus", "Sofie", "Thomas", "Ulla", "Viktor", "Zoe"]
LAST = ["Hansen", "Jensen", "Nielsen", "Pedersen", "Andersen", "Christensen", "Larsen", "Sørensen",
        "Rasmussen", "Jørgensen", "Petersen", "Madsen", "Kristensen", "Olsen", "Thomsen", "Poulsen",
        "Johansen", "Møller", "Mortensen", "Smith", "Müller", "García", "Rossi", "Dubois", "Kowalski"]
ASCII = str.maketrans({"ø": "oe", "æ": "ae", "å": "aa", "ü": "ue", "í": "i"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, help="default: 1,000,000 on PostgreSQL, 100,000 on SQLite")
    parser.add_argument("--reseed", action="store_true", help="seed anew even when the database holds N orders")
    parser.add_argument("--no-exports", action="store_true", help="measure the pages only")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)  # a child process: one export
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{BENCH_DIR / 'finance.sqlite3'}")
    if args.measure:
        return child(args.measure)
    django_start()
    from django.db import connection

    orders = args.orders or (PG_ORDERS if connection.vendor == "postgresql" else SQLITE_ORDERS)
    seeded = database_ready(orders, reseed=args.reseed)
    first, last = month_measured(seeded)
    print(f"{orders:,} orders in {seeded['batches']:,} batches, {connection.vendor} "
          f"{'.'.join(map(str, connection.get_database_version()))}, {os.cpu_count()} CPUs; "
          f"seeded {seeded['at'][:10]} in {seeded['seconds']:.0f} s; month measured {first:%Y-%m}", flush=True)
    month = measure_pages(orders, first, last)
    if not args.no_exports:
        measure_exports(orders, month)


def django_start() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "giftdesk.settings"
    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # django.test.Client's host
    # A part not built yet fails on its line of the table, not in a page of traceback.
    logging.getLogger("django.request").setLevel(logging.CRITICAL)
    logging.getLogger("axes").setLevel(logging.WARNING)  # a line per force_login


# --- The database: kept between runs, seeded when it does not hold N orders ---------------------

def database_ready(orders: int, *, reseed: bool) -> dict:
    """Reuse the database when it holds `orders` seeded orders, else seed it anew; return what
    the seeding recorded (orders, batches, when, how long)."""
    from django.db import connection

    database_create(drop=False)
    stale, why = migrations_changed()
    seeded = state_get("seeded")
    if reseed:
        why = "--reseed"
    elif seeded is None:
        why = why or "nothing seeded yet"
    elif seeded["orders"] != orders:
        why = why or f"it holds {seeded['orders']:,} orders, not {orders:,}"
    changed = False
    if why:
        print(f"Seeding {connection.settings_dict['NAME']} anew: {why}.", flush=True)
        database_create(drop=True)
        migrate()
        seeded = seed(orders)
        changed = True
    else:
        if stale:
            from django.db.migrations.recorder import MigrationRecorder

            print(f"Applying again the placeholder migrations that changed: {', '.join('.'.join(k) for k in stale)}")
            for app, name in stale:
                MigrationRecorder(connection).record_unapplied(app, name)
        changed = migrate()
    if not state_get("batch_totals"):
        changed = batch_totals_refresh_if_built() or changed
    state_set("migrations", migration_files()[1])
    if changed:
        analyze()
    return seeded


def database_create(*, drop: bool) -> None:
    """Create the database if missing (PostgreSQL), first dropping it if `drop`."""
    from django.db import connection

    connection.close()
    params = connection.settings_dict
    if connection.vendor == "sqlite":
        Path(params["NAME"]).parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm") if drop else ():
            Path(f"{params['NAME']}{suffix}").unlink(missing_ok=True)
        return
    import psycopg
    from psycopg import sql

    given = {key: params[name] for key, name in
             [("host", "HOST"), ("port", "PORT"), ("user", "USER"), ("password", "PASSWORD")] if params.get(name)}
    with psycopg.connect(dbname="postgres", autocommit=True, **given) as server:
        name = sql.Identifier(params["NAME"])
        exists = server.execute("SELECT 1 FROM pg_database WHERE datname = %s", [params["NAME"]]).fetchone()
        if exists and drop:
            server.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(name))
        if drop or not exists:
            server.execute(sql.SQL("CREATE DATABASE {}").format(name))


def migration_files():
    """The migration loader, and {"app.name": {sha, empty}} of every applied migration's file."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection)
    files = {}
    for key in loader.applied_migrations:
        migration = loader.disk_migrations.get(key)
        if migration is not None:
            source = Path(sys.modules[type(migration).__module__].__file__).read_bytes()
            files[".".join(key)] = {"sha": hashlib.sha256(source).hexdigest(), "empty": not migration.operations}
    return loader, files


def migrations_changed() -> tuple[list[tuple[str, str]], str]:
    """Applied migrations whose file changed since: (those to apply again, "") when they and
    what follows them were empty placeholders then, else ([], why the database is seeded anew)."""
    loader, files = migration_files()
    recorded = state_get("migrations") or {}
    changed = [name for name, file in files.items() if name in recorded and recorded[name]["sha"] != file["sha"]]
    stale = sorted({key for name in changed for key in loader.graph.backwards_plan(tuple(name.split(".", 1)))
                    if key in loader.applied_migrations})
    if all(recorded.get(".".join(key), {}).get("empty") for key in stale):
        return stale, ""
    return [], f"migration {', '.join(changed)} changed since it was applied"


def migrate() -> bool:
    """Apply what is not applied yet; say what and how long. True when anything was."""
    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return False
    began = time.perf_counter()
    call_command("migrate", verbosity=0)
    names = ", ".join(f"{m.app_label}.{m.name}" for m, _ in plan) if len(plan) <= 5 else f"{len(plan)} migrations"
    print(f"migrate: {names} in {time.perf_counter() - began:.1f} s", flush=True)
    return True


def state_get(key: str):
    from django.db import connection

    with connection.cursor() as cursor:
        if STATE_TABLE not in connection.introspection.table_names(cursor):
            return None
        cursor.execute(f"SELECT value FROM {STATE_TABLE} WHERE name = %s", [key])
        row = cursor.fetchone()
    return json.loads(row[0]) if row else None


def state_set(key: str, value) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {STATE_TABLE} (name varchar(100) PRIMARY KEY, value text)")
        cursor.execute(f"DELETE FROM {STATE_TABLE} WHERE name = %s", [key])
        cursor.execute(f"INSERT INTO {STATE_TABLE} (name, value) VALUES (%s, %s)", [key, json.dumps(value)])


def analyze() -> None:
    from django.db import connection

    began = time.perf_counter()
    statement = "VACUUM ANALYZE" if connection.vendor == "postgresql" else "ANALYZE"
    with connection.cursor() as cursor:
        cursor.execute(statement)
    print(f"{statement}: {time.perf_counter() - began:.1f} s", flush=True)


def batch_totals_refresh_if_built() -> bool:
    """The batches' stored totals (contracts.md), once orders.batch_totals exists."""
    try:
        from orders.batch_totals import batch_totals_refresh
    except ImportError:
        print("batch stored totals: not built yet (orders.batch_totals.batch_totals_refresh)", flush=True)
        return False
    from orders.models import Batch

    began = time.perf_counter()
    try:
        batch_totals_refresh(list(Batch.objects.values_list("id", flat=True)))
    except Exception as exc:  # built but not working yet: the pages still get measured
        print(f"batch stored totals: error {type(exc).__name__}: {exc}", flush=True)
        return False
    print(f"batch stored totals: refreshed in {time.perf_counter() - began:.1f} s", flush=True)
    state_set("batch_totals", True)
    return True


# --- Seeding ---------------------------------------------------------------------------------------

@dataclass
class SeedBatch:
    id: int
    kind: str
    account_id: int
    product_id: int
    currency: str
    created_at: datetime


def seed(count: int) -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    from orders.models import Batch, Order, Recipient

    began = time.perf_counter()
    now = timezone.now().replace(microsecond=0)
    batch_count = max(1, round(count / ORDERS_PER_BATCH))
    per_batch = math.ceil(count / batch_count)
    with transaction.atomic():
        users = people()
        products = accounts()
        batches = []
        for b in range(batch_count):
            name, kind, catalog = ACCOUNTS[b % len(ACCOUNTS)]
            account_id, catalog_ids = products[name]
            product_id, currency = catalog_ids[(b // len(ACCOUNTS)) % len(catalog)]
            created = now - timedelta(days=365) + timedelta(days=365) * (b + 0.5) / batch_count
            batches.append(SeedBatch(b + 1, kind, account_id, product_id, currency, created))
        insert_rows(Batch, batch_rows(batches, users))
        insert_rows(Recipient, recipient_rows(count, per_batch, batches))
        insert_rows(Order, order_rows(count, per_batch, batches))
        with connection.cursor() as cursor:
            from django.core.management.color import no_style

            for statement in connection.ops.sequence_reset_sql(no_style(), [Batch, Recipient, Order]):
                cursor.execute(statement)
    seconds = time.perf_counter() - began
    print(f"seeded {count:,} orders in {batch_count:,} batches: {seconds:.1f} s", flush=True)
    state_set("batch_totals", False)
    seeded = {"orders": count, "batches": batch_count, "at": now.isoformat(), "seconds": seconds}
    state_set("seeded", seeded)
    return seeded


def people() -> dict[str, int]:
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    User = get_user_model()
    User.objects.create_superuser(ADMIN, email="admin@example.com", password=None)
    finance = User.objects.create_user(FINANCE, is_staff=True)
    finance.groups.add(Group.objects.get(name="Finance"))
    return {name: User.objects.create_user(name, is_staff=True).pk for name in UPLOADERS + APPROVERS}


def accounts() -> dict[str, tuple[int, list[tuple[int, str]]]]:
    """Each account's id and its products' (id, currency)."""
    from providers.models import PricingKind, Product, ProviderAccount

    products = {}
    for name, kind, catalog in ACCOUNTS:
        account = ProviderAccount.objects.create(name=name, kind=kind, environment="production")
        products[name] = account.pk, [
            (Product.objects.create(account=account, provider_product_id=str(1000 + n), sku=f"SKU-{kind}-{n}",
                                    title=title, currency=currency, pricing=PricingKind.RANGE,
                                    min_amount=Decimal("10"), max_amount=Decimal("5000"), step=Decimal("1")).pk,
             currency)
            for n, (title, currency) in enumerate(catalog)
        ]
    return products


def batch_rows(batches: list[SeedBatch], users: dict[str, int]):
    for b, batch in enumerate(batches):
        campaign = CAMPAIGNS[(b * 3 // 2) % len(CAMPAIGNS)]
        uploader = users[UPLOADERS[b % len(UPLOADERS)]]
        sent = batch.created_at + timedelta(minutes=9)
        yield {"id": batch.id, "name": f"{campaign or 'Gifts'} {batch.created_at:%Y-%m} #{batch.id}",
               "created_by_id": uploader, "account_id": batch.account_id,
               "default_product_id": batch.product_id, "message": "Thank you for this year!",
               "sender_name": "GiftDesk", "campaign": campaign, "send_requested_by_id": uploader,
               "send_requested_at": sent, "approved_by_id": users[APPROVERS[b % len(APPROVERS)]],
               "approved_at": sent - timedelta(minutes=1), "state": "completed",
               "source_filename": f"gifts-{batch.id}.xlsx", "source_checksum": f"{batch.id:064x}",
               "created_at": batch.created_at, "updated_at": sent + timedelta(hours=1)}


def recipient_rows(count: int, per_batch: int, batches: list[SeedBatch]):
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        email = f"{first}.{last}.{i}@example.com".lower().translate(ASCII)
        yield {"id": i + 1, "name": f"{first} {last}", "email": email,
               "phone": "", "reference": f"E{i:07d}", "created_at": batches[i // per_batch].created_at}


def order_rows(count: int, per_batch: int, batches: list[SeedBatch]):
    for i in range(count):
        batch, row = batches[i // per_batch], i % per_batch
        spread = (i * 761) % 1000  # every 1,000 consecutive orders take each value once
        status = ("delivered" if spread < 900 else "failed" if spread < 950 else "processing" if spread < 975
                  else "cancelled")
        amounts = AMOUNTS[batch.currency]
        amount = amounts[(i * 7 + i // 13) % len(amounts)]
        created = batch.created_at + timedelta(microseconds=200 * row)
        sent = None if status == "cancelled" else created + timedelta(minutes=10, seconds=row // 2)
        completed = {"delivered": sent and sent + timedelta(seconds=20), "failed": sent and sent + timedelta(seconds=2),
                     "cancelled": created + timedelta(minutes=5)}.get(status)
        bought = status in ("processing", "delivered")
        cost = COSTS[batch.kind](amount) if bought else None
        yield {"id": i + 1, "batch_id": batch.id, "recipient_id": i + 1, "product_id": batch.product_id,
               "amount": amount, "currency": batch.currency, "message": "Thank you for this year!",
               # Looks like GiftDesk's own (GD- and 16 hex digits); distinct, as i -> i * odd is a bijection.
               "reference": f"GD-{(i * 0x9E3779B97F4A7C15) % 2**64:016X}", "source_row": row + 2,
               "status": status, "queued_at": sent and created + timedelta(minutes=5), "claimed_at": sent,
               "submitted_at": sent, "completed_at": completed,
               "provider_order_id": PROVIDER_IDS[batch.kind](i) if bought else "",
               "cost": cost, "cost_currency": batch.currency if cost is not None else "",
               "last_error": ERRORS[i % len(ERRORS)] if status == "failed" else "",
               "card_code_last4": f"{i % 10000:04d}" if batch.kind == "gifty" and status == "delivered" else "",
               "created_at": created, "updated_at": completed or sent or created}


def insert_rows(model, rows) -> None:
    """Insert dicts of column values (attnames); a column they leave out gets its field's
    default, so a field another part adds later needs nothing here unless it has none. Only
    the table's columns: a model may be ahead of its migration while the issue is built."""
    from django.db import connection
    from django.db.models import NOT_PROVIDED

    rows = iter(rows)
    first = next(rows)
    with connection.cursor() as cursor:
        table = {column.name for column in connection.introspection.get_table_description(cursor, model._meta.db_table)}
    fields = {field.attname: field for field in model._meta.concrete_fields if field.column in table}
    assert set(first) <= set(fields), f"not columns of {model._meta.db_table}: {set(first) - set(fields)}"
    given = [fields[name] for name in first]
    others = [field for field in fields.values() if field.attname not in first and field.db_default is NOT_PROVIDED]
    defaults = [field.get_default() for field in others]
    for field, default in zip(others, defaults):
        if default is None and not field.null:
            raise SystemExit(f"bench/finance.py: {model.__name__}.{field.name} has no default: give it one in seed()")
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in given + others)
    began, written = time.perf_counter(), 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            tail = "".join("\t" + copy_text(value) for value in defaults)
            with cursor.cursor.copy(f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
                for chunk in chunks(chain([first], rows)):
                    copy.write("".join("\t".join([copy_text(value) for value in row.values()]) + tail + "\n"
                                       for row in chunk))
                    written += len(chunk)
        else:
            tail = [field.get_db_prep_save(value, connection) for field, value in zip(others, defaults)]
            marks = ", ".join(["%s"] * (len(given) + len(others)))
            sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({marks})"
            for chunk in chunks(chain([first], rows)):
                cursor.executemany(sql, [[field.get_db_prep_save(value, connection)
                                          for field, value in zip(given, row.values())] + tail for row in chunk])
                written += len(chunk)
    print(f"  {model._meta.db_table}: {written:,} rows in {time.perf_counter() - began:.1f} s", flush=True)


def chunks(rows, size: int = 10_000):
    rows = iter(rows)
    while chunk := list(islice(rows, size)):
        yield chunk


COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# A value in COPY's text format, by its type (a dict lookup: a million rows of 25 values).
COPY_TEXT = {
    str: lambda value: value.translate(COPY_ESCAPES), int: str, Decimal: str, datetime: datetime.isoformat,
    date: date.isoformat, type(None): lambda value: r"\N", bool: lambda value: "t" if value else "f",
    dict: lambda value: json.dumps(value).translate(COPY_ESCAPES),
    list: lambda value: json.dumps(value).translate(COPY_ESCAPES),
}


def copy_text(value) -> str:
    return COPY_TEXT[type(value)](value)


# --- Pages -------------------------------------------------------------------------------------

def month_measured(seeded: dict) -> tuple[date, date]:
    """The last whole month before the seeding (server time zone): the month the totals,
    and the admin's export, take."""
    from django.utils import timezone

    this_month = timezone.localtime(datetime.fromisoformat(seeded["at"])).date().replace(day=1)
    last = this_month - timedelta(days=1)
    return last.replace(day=1), last


@dataclass
class Measure:
    name: str
    url: str | None  # None: not built yet
    expect: str = ""  # text the page must show (the order searched for)
    note: str = ""  # why url is None


def measure_pages(orders: int, first: date, last: date) -> str:
    """Print the pages' table; return the month's querystring (for the admin's export)."""
    from django.contrib import admin
    from django.contrib.auth import get_user_model
    from django.test import Client

    from orders.models import Order

    users = {label: get_user_model().objects.get(username=name) for label, name in
             [("admin", ADMIN), ("finance", FINANCE)]}
    clients = {}
    for label, user in users.items():
        clients[label] = Client()
        clients[label].force_login(user, backend=MODEL_BACKEND)
    target = (Order.objects.select_related("recipient").filter(pk__gte=orders // 2, status="delivered")
              .exclude(provider_order_id="").order_by("pk").first())
    discovered = {label: list_discovered(user, first, last) for label, user in users.items()}
    month = discovered["admin"]["month"]
    lists = {label: list_measures(found, target) for label, found in discovered.items()}

    print(f"\n{'page':<44}{'/page':>6}  {'user':<8}{'ms':>8}{'sql ms':>8}{'queries':>8}  {'target':<16}result")
    order_admin = admin.site._registry[Order]
    per_page = order_admin.list_per_page
    try:
        for size in PAGE_SIZES:
            order_admin.list_per_page = size  # not a URL parameter: the admin's own setting
            for label in users:
                for measure in lists[label]:
                    page_row(measure, clients[label], size, label, target_ms=PAGE_MS, max_queries=MAX_QUERIES)
    finally:
        order_admin.list_per_page = per_page
    for label in users:
        page_row(Measure("batch list", admin_url("admin:orders_batch_changelist")), clients[label], "", label,
                 target_ms=PAGE_MS)
    for label in users:
        totals = admin_url("admin:orders_order_totals")
        page_row(Measure(f"totals page, created {first:%Y-%m}", totals and f"{totals}?{month}"), clients[label], "",
                 label, target_ms=TOTALS_MS)
    totals_direct(first, last)
    for label in users:
        page_row(Measure("dashboard", admin_url("admin:orders_order_dashboard")), clients[label], "", label)
    return month


def admin_url(name: str) -> str | None:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(name)
    except NoReverseMatch:
        return None


def list_discovered(user, first: date, last: date) -> dict:
    """What the order list offers this user, read from its own filters and columns (other
    parts may change them): the filtered page's querystring, the index `?o=` sorts the last
    change by, and the month's querystring in the "Created" filter's own parameters."""
    from django.contrib import admin
    from django.test import RequestFactory
    from django.urls import reverse
    from django.utils import timezone

    from orders.models import Order

    request = RequestFactory().get(reverse("admin:orders_order_changelist"))
    request.user = user
    changelist = admin.site._registry[Order].get_changelist_instance(request)
    filtered, missing = {}, []
    for display in ["Delivered", "DKK", ACCOUNTS[0][0]]:
        found = filter_choice(changelist, display)
        if found is None:
            missing.append(display)
        filtered.update(found or {})
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    end = timezone.make_aware(datetime.combine(last + timedelta(days=1), datetime.min.time()))
    month = {"created_at__gte": str(start), "created_at__lt": str(end)}  # Django's own lookups
    for spec in changelist.filter_specs:
        names = set(spec.expected_parameters())
        if "created_at__range__gte" in names:  # django-admin-rangefilter's dates, both inclusive
            month = {"created_at__range__gte": first.isoformat(), "created_at__range__lte": last.isoformat()}
        elif "created_at__range__gte_0" in names:  # its date and time
            month = {"created_at__range__gte_0": first.isoformat(), "created_at__range__gte_1": "00:00:00",
                     "created_at__range__lte_0": last.isoformat(), "created_at__range__lte_1": "23:59:59"}
    columns = list(changelist.list_display)
    return {"filtered": urlencode(filtered), "missing": missing, "month": urlencode(month),
            "sort": columns.index("updated_at") if "updated_at" in columns else None}


def filter_choice(changelist, display: str) -> dict | None:
    """The querystring of the first filter choice shown as `display`."""
    for spec in changelist.filter_specs:
        try:
            for choice in spec.choices(changelist):
                if str(choice.get("display")) == display and choice.get("query_string"):
                    return dict(parse_qsl(choice["query_string"].lstrip("?")))
        except Exception:  # a filter that needs more than a bare request: not one of these
            continue
    return None


def list_measures(found: dict, order) -> list[Measure]:
    from django.urls import reverse

    url = reverse("admin:orders_order_changelist")
    sort = found["sort"]
    search = [("exact email", order.recipient.email), ("spreadsheet reference", order.recipient.reference),
              ("GiftDesk reference", order.reference), ("provider order id", order.provider_order_id)]
    return [
        Measure("order list, first page", url),
        Measure(f"filtered: delivered, DKK, {ACCOUNTS[0][0]}", f"{url}?{found['filtered']}" if not found["missing"]
                else None, note=f"no filter choice {', '.join(found['missing'])}"),
        Measure("sorted by last change, newest first", f"{url}?o=-{sort}" if sort is not None else None,
                note="no updated_at column"),
        *[Measure(f"search: {what}", f"{url}?{urlencode({'q': text})}", expect=order.reference)
          for what, text in search],
    ]


def page_row(measure: Measure, client, per_page, user: str, *, target_ms: int | None = None,
             max_queries: int | None = None) -> None:
    target = "-" if target_ms is None else f"<{target_ms} ms" + (f", <={max_queries} q" if max_queries else "")

    def line(ms="-", sql_ms="-", queries="-", result=""):
        print(f"{measure.name:<44}{per_page:>6}  {user:<8}{ms:>8}{sql_ms:>8}{queries:>8}  {target:<16}{result}",
              flush=True)

    if measure.url is None:
        return line(result=f"not built yet{': ' + measure.note if measure.note else ''}")
    try:
        ms, sql_ms, queries, response = timed_get(client, measure.url)
    except Exception as exc:
        return line(result=f"error {type(exc).__name__}: {str(exc)[:80]}")
    problem = ""
    if response.status_code != 200:
        problem = f"HTTP {response.status_code} {response.get('Location', '')}".strip()
    elif measure.expect and measure.expect not in response.content.decode():
        problem = "the order searched for is not on the page"
    passed = (not problem and (target_ms is None or ms < target_ms)
              and (max_queries is None or queries <= max_queries))
    result = "-" if target_ms is None and not problem else "PASS" if passed else "FAIL"
    line(f"{ms:,.0f}", f"{sql_ms:,.0f}", str(queries), f"{result} {problem}".strip())


def timed_get(client, url: str):
    """Warm up once, then of RUNS requests: the median time, the median time in the database
    (the queries' own), the most queries one made, and the last response."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)
    times, sql_times, queries = [], [], []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as captured:
            began = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - began) * 1000)
        queries.append(len(captured))
        sql_times.append(sum(float(query["time"]) for query in captured.captured_queries) * 1000)
    return statistics.median(times), statistics.median(sql_times), max(queries), response


def totals_direct(first: date, last: date) -> None:
    """orders.reports.order_totals of the month's orders, called directly."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from orders.models import Order

    name, target = f"order_totals(), created {first:%Y-%m}", f"<{TOTALS_MS} ms"
    try:
        from orders.reports import order_totals
    except ImportError:
        return print(f"{name:<44}{'':>6}  {'-':<8}{'-':>8}{'-':>8}{'-':>8}  {target:<16}not built yet", flush=True)
    start = timezone.make_aware(datetime.combine(first, datetime.min.time()))
    end = timezone.make_aware(datetime.combine(last + timedelta(days=1), datetime.min.time()))
    times, sql_times, queries = [], [], []
    try:
        for run in range(RUNS + 1):  # the first warms up
            with CaptureQueriesContext(connection) as captured:
                began = time.perf_counter()
                str(order_totals(Order.objects.filter(created_at__gte=start, created_at__lt=end)))
                elapsed = (time.perf_counter() - began) * 1000
            if run:
                times.append(elapsed)
                sql_times.append(sum(float(query["time"]) for query in captured.captured_queries) * 1000)
                queries.append(len(captured))
    except Exception as exc:
        return print(f"{name:<44}{'':>6}  {'-':<8}{'-':>8}{'-':>8}{'-':>8}  {target:<16}"
                     f"error {type(exc).__name__}: {exc}")
    ms = statistics.median(times)
    print(f"{name:<44}{'':>6}  {'-':<8}{ms:>8,.0f}{statistics.median(sql_times):>8,.0f}{max(queries):>8}  {target:<16}"
          f"{'PASS' if ms < TOTALS_MS else 'FAIL'}", flush=True)


# --- Exports, each in a process of its own ---------------------------------------------------------

def measure_exports(orders: int, month: str) -> None:
    print(f"\n{'export':<44}{'rows':>10}{'rows/s':>9}{'x base':>8}{'peak MB':>9}{'x base':>8}{'file MB':>8}"
          f"{'queries':>8}  {'target':<12}result", flush=True)
    base = None
    for label, argv, target in [
        ("baseline: values_list + csv.writer", ["baseline"], None),
        ("manage.py export_orders --format csv", ["export_orders", "csv"], EXPORT_MB),
        ("manage.py export_orders --format xlsx", ["export_orders", "xlsx"], EXPORT_MB),
        ("admin export of the month, POST format=csv", ["admin_export", "csv", month], None),
    ]:
        done = subprocess.run([sys.executable, __file__, "--measure", *argv], capture_output=True, text=True,
                              env=os.environ)
        lines = done.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if done.returncode == 0 and lines else {
            "error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]}
        target_text = f"<{target} MB" if target else "-"
        if "rows" not in result:
            print(f"{label:<44}{'-':>10}{'-':>9}{'-':>8}{'-':>9}{'-':>8}{'-':>8}{'-':>8}  {target_text:<12}"
                  f"{result.get('missing') or 'error ' + result['error'][:100]}", flush=True)
            continue
        base = base or result
        rate = result["rows"] / result["seconds"]
        problem = ""
        if argv[0] == "export_orders" and result["rows"] != orders:
            problem = f"wrote {result['rows']:,} rows, not {orders:,}"
        verdict = "-" if target is None else "PASS" if result["peak_mb"] < target and not problem else "FAIL"
        print(f"{label:<44}{result['rows']:>10,}{rate:>9,.0f}{rate / (base['rows'] / base['seconds']):>8.2f}"
              f"{result['peak_mb']:>9.1f}{result['peak_mb'] / max(base['peak_mb'], 0.1):>8.2f}"
              f"{result['bytes'] / 1e6:>8.1f}{result['queries']:>8}  {target_text:<12}{verdict} {problem}".rstrip(),
              flush=True)


class QueryCounter:
    """Counts statements without keeping them (a kept list would weigh on the memory measured)."""

    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def child(argv: list[str]) -> None:
    """In a fresh process: one export; prints one JSON line (rows, seconds, peak_mb, bytes,
    queries), or {"missing": why} when that export is not built yet."""
    django_start()
    from django.core.management import call_command
    from django.db import connection

    import orders.management.commands.export_orders  # noqa: F401 (loaded before measuring)
    from orders.models import Order

    what = argv[0]
    Order.objects.exists()  # connect before measuring
    output = BENCH_DIR / f"finance-export.{argv[1] if len(argv) > 1 else 'csv'}"
    counter, began = QueryCounter(), None
    if what == "admin_export":
        return print(json.dumps(admin_export(argv[1], argv[2], counter)))
    before_kib = peak_reset()
    began = time.perf_counter()
    with connection.execute_wrapper(counter):
        if what == "baseline":
            rows = baseline_csv(output)
        else:
            said = io.StringIO()
            call_command("export_orders", "--format", argv[1], "--output", str(output), stdout=said)
            found = re.search(r"Exported ([\d,]+)", said.getvalue())
            rows = int(found.group(1).replace(",", "")) if found else -1
    seconds = time.perf_counter() - began
    peak_mb = (resource_peak_kib() - before_kib) * 1024 / 1e6
    size = output.stat().st_size
    output.unlink()
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak_mb, "bytes": size, "queries": counter.count}))


def admin_export(file_format: str, query: str, counter: QueryCounter) -> dict:
    """POST the admin's export of the list filtered by `query`, as the export helper's page
    does (format=csv), and read the file it streams."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    url = admin_url("admin:orders_order_export")
    if url is None:
        return {"missing": "not built yet (no admin:orders_order_export)"}
    client = Client()
    client.force_login(get_user_model().objects.get(username=ADMIN), backend=MODEL_BACKEND)
    page = client.get(f"{url}?{query}")  # warms up: the URLconf, the admin, the page before the file
    if b'name="resource"' in page.content:
        return {"missing": "not built yet (django-import-export's form answers, not issue 11's export)"}
    before_kib = peak_reset()
    began = time.perf_counter()
    with connection.execute_wrapper(counter):
        response = client.post(f"{url}?{query}", {"format": file_format})
        if response.status_code != 200 or response.get("Content-Type", "").startswith("text/html"):
            return {"missing": f"not built yet (HTTP {response.status_code}, {response.get('Content-Type')})"}
        size = lines = 0
        for chunk in (response.streaming_content if response.streaming else [response.content]):
            size += len(chunk)
            lines += chunk.count(b"\n")
    seconds = time.perf_counter() - began
    return {"rows": lines - 1, "seconds": seconds, "peak_mb": (resource_peak_kib() - before_kib) * 1024 / 1e6,
            "bytes": size, "queries": counter.count}


def peak_reset() -> int:
    """The resident size now (KiB), and the process's peak set back to it: Django's start-up
    may have peaked higher than it stays, which would hide the export's own growth."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: reset the peak resident size
    except OSError:
        pass
    return resident_kib()


def resource_peak_kib() -> int:
    """The peak resident size (KiB) of this process's own memory: VmHWM, not ru_maxrss, which
    after exec keeps the parent's peak (Linux), here that of the process that measured the pages."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


if __name__ == "__main__":
    main()

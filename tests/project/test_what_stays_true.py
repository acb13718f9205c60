"""What the security probe found sound, kept sound (issue 8, "What stays true").

- No credential appears in any admin page, log, order event, provider call, webhook
  event, export, or in the database file itself.
- Every admin page refuses a POST without the CSRF token, and changes nothing.
- Oversize files are refused in well under a second; external-entity and billion-laughs
  workbooks are refused; hostile file names are escaped wherever they are shown.

The world these run in: one account of every provider, each with distinctive credentials
and a webhook secret, served by its emulator over HTTP; one card sent through each, a
connection test of each, a signed webhook received. A leak is then found by a plain search.
"""

from __future__ import annotations

import base64
import logging
import re
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test import Client
from django.urls import URLPattern, reverse
from django.utils import timezone

from emulators.giftronaut import TOKEN_PATH as GIFTRONAUT_TOKEN_PATH, GiftronautEmulator
from emulators.gifty import GiftyEmulator
from emulators.gogift import TOKEN_PATH as GOGIFT_TOKEN_PATH, GoGiftEmulator, signed_webhook
from emulators.ugiftme import UGiftMeEmulator
from orders import dispatch
from orders.batches import batch_create, batch_send
from orders.models import Batch, Order, OrderEvent, ProviderCall
from orders.spreadsheet import ValidRow
from providers.models import PricingKind, ProviderAccount, WebhookEvent
from tests.commands import send_csv
from tests.emulated import emulated_account, served
from tests.hostile import workbooks
from tests.hostile.checks import page_text
from tests.hostile.corpus import HOSTILE_NAME
from tests.hostile.exports import admin_export, command_export, xlsx_text
from tests.hostile.upload import confirm, upload

# Distinctive values: each occurs nowhere but where it is stored, encrypted.
GOGIFT_ID, GOGIFT_SECRET = "wst-gogift-client", "wst-gogift-secret-R8vK2q"
GIFTRONAUT_ID, GIFTRONAUT_SECRET = "wst-giftronaut-client", "wst-giftronaut-secret-M3xP9z"
GIFTY_TOKEN = "wst-gifty-token-T6wQ1c"
UGIFTME_KEY = "wst-ugiftme-key-L5nB7d"
WEBHOOK_SECRET_BYTES = b"wst-webhook-secret-H4jY8s"
WEBHOOK_SECRET = base64.b64encode(WEBHOOK_SECRET_BYTES).decode()
CREDENTIALS = [GOGIFT_SECRET, GIFTRONAUT_SECRET, GIFTY_TOKEN, UGIFTME_KEY, WEBHOOK_SECRET,
               WEBHOOK_SECRET_BYTES.decode()]
BUYER_NAME = "Wst Buyer A/S"  # a setting, not a secret: proves a search would find a stored value


@pytest.fixture(scope="module")
def servers():
    """The four emulators for the whole module, each knowing only our distinctive credentials."""
    emulators = {
        "gogift": GoGiftEmulator(environment="sandbox", clients={GOGIFT_ID: GOGIFT_SECRET}),
        "giftronaut": GiftronautEmulator(environment="sandbox", clients={GIFTRONAUT_ID: GIFTRONAUT_SECRET}),
        "gifty": GiftyEmulator(tokens=[GIFTY_TOKEN], processing_after=0.0, complete_after=0.0),
        "ugiftme": UGiftMeEmulator(api_keys=[UGIFTME_KEY]),
    }
    generators = {kind: served(emulator) for kind, emulator in emulators.items()}
    running = {kind: next(generator) for kind, generator in generators.items()}
    yield {kind: (emulators[kind], running[kind]) for kind in emulators}
    for generator in generators.values():
        next(generator, None)


@dataclass
class World:
    accounts: dict[str, ProviderAccount]
    batches: list[Batch]


def build_world(servers, admin_client) -> World:
    """Every account configured, tested, sending one card; a signed webhook received."""
    for emulator, _ in servers.values():
        emulator.reset()
    values = {
        "gogift": ({"client_id": GOGIFT_ID, "client_secret": GOGIFT_SECRET, "buyer_account_id": "328685355341950976",
                    "buyer_name": BUYER_NAME, "buyer_email": "finance@acme.example", "buyer_phone": "+4500000000"},
                   GOGIFT_TOKEN_PATH, "sandbox"),
        "giftronaut": ({"client_id": GIFTRONAUT_ID, "client_secret": GIFTRONAUT_SECRET, "sender_name": "Acme"},
                       GIFTRONAUT_TOKEN_PATH, "sandbox"),
        "gifty": ({"api_token": GIFTY_TOKEN, "language": "en"}, "", "production"),
        "ugiftme": ({"api_key": UGIFTME_KEY}, "", "production"),
    }
    accounts = {}
    for kind, (kind_values, token_path, environment) in values.items():
        accounts[kind] = emulated_account(servers[kind][1], kind=kind, environment=environment, token_path=token_path,
                                          values={**kind_values, "webhook_secret": WEBHOOK_SECRET})
    admin_client.post(reverse("admin:providers_provideraccount_changelist"),
                      {"action": "test_connection", "_selected_action": [a.pk for a in accounts.values()]})
    batches = [send_one_card(account) for account in accounts.values()]
    for account in accounts.values():
        dispatch.account_pump(account.pk, budget_seconds=3)
    receive_a_delivery_webhook(admin_client, accounts["gogift"])
    return World(accounts=accounts, batches=batches)


def send_one_card(account: ProviderAccount) -> Batch:
    product = account.products.filter(is_active=True).order_by("pk").first()
    amount = (Decimal(product.denominations[0]) if product.pricing == PricingKind.FIXED
              else max(product.min_amount, Decimal("10")))
    row = ValidRow(row=2, name="Wst Recipient", email="wst.recipient@example.com", phone="", reference="WST1",
                   message="Thanks", amount=amount, currency=product.currency, product=product, send_on=None)
    batch = batch_create(account=account, rows=[row], source_filename="wst.csv")
    batch_send(batch=batch)
    return batch


def receive_a_delivery_webhook(client, account: ProviderAccount) -> None:
    order = Order.objects.filter(batch__account=account).first()
    headers, body = signed_webhook(
        secret=WEBHOOK_SECRET, client_id=GOGIFT_ID, request_id="wst-delivery-1",
        sent_at=timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        content=[{"orderId": order.provider_order_id or "1", "deliveryId": "d1", "amountInDecimal": "100"}],
    )
    response = client.generic("POST", reverse("provider-webhook", args=[account.pk]), body,
                              content_type="application/json",
                              headers={name: value for name, value in headers.items() if name != "Content-Type"})
    assert response.status_code == 200, response.content


@pytest.fixture
def world(db, servers, admin_client) -> World:
    return build_world(servers, admin_client)


def leaks(text: str) -> list[str]:
    return [secret for secret in [*CREDENTIALS, settings.SECRET_KEY] if secret in text]


# --- Admin pages ----------------------------------------------------------------------------


def url_parameters(pattern: URLPattern) -> list[str]:
    return list(pattern.pattern.regex.groupindex)  # path() and re_path() patterns alike


def admin_urls(objects_per_model: int = 3) -> list[str]:
    """Every named admin URL: the site's own pages, and each model's pages, for its first objects."""
    urls = []
    batch_type = ContentType.objects.get_for_model(Batch)
    for pattern in admin.site.get_urls():
        if isinstance(pattern, URLPattern) and pattern.name:
            fill = {"app_label": "orders", "content_type_id": batch_type.pk, "object_id": "1", "url": "x"}
            kwargs = {name: fill.get(name, "1") for name in url_parameters(pattern)}
            urls.append(reverse(f"admin:{pattern.name}", kwargs=kwargs))
    for model, model_admin in admin.site._registry.items():
        pks = [str(pk) for pk in model._default_manager.order_by("pk").values_list("pk", flat=True)[:objects_per_model]]
        for pattern in model_admin.get_urls():
            if not isinstance(pattern, URLPattern) or not pattern.name:
                continue
            parameters = url_parameters(pattern)
            for pk in (pks or ["1"]) if parameters else [None]:
                urls.append(reverse(f"admin:{pattern.name}", kwargs={name: pk for name in parameters}))
    return sorted(set(urls))


def test_no_credential_appears_in_any_admin_page(world, admin_client):
    seen = 0
    for url in admin_urls():
        if url.endswith("/logout/"):
            continue
        response = admin_client.get(url, follow=True)
        assert response.status_code < 500, url
        body = response.content if not response.streaming else b"".join(response.streaming_content)
        assert leaks(body.decode(errors="replace")) == [], url
        seen += 1
    assert seen > 40  # every changelist, add, change, history and delete page, and the site's


# --- Logs -----------------------------------------------------------------------------------


def test_no_credential_appears_in_the_logs(db, servers, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="urllib3")  # every HTTP request line, query strings included
    world = build_world(servers, admin_client)
    accounts = list(world.accounts.values())
    admin_client.post(reverse("admin:providers_provideraccount_changelist"),
                      {"action": "test_connection", "_selected_action": [a.pk for a in accounts]})
    # Refusals are what gets logged: a webhook with a wrong signature, one of an odd shape.
    gogift = world.accounts["gogift"]
    for secret, body in ((base64.b64encode(b"wrong").decode(), [{"orderId": 1}]), (WEBHOOK_SECRET, [1])):
        headers, payload = signed_webhook(secret=secret, client_id=GOGIFT_ID, content=body, request_id=f"wst-{secret[:4]}",
                                          sent_at=timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"))
        admin_client.generic("POST", reverse("provider-webhook", args=[gogift.pk]), payload,
                             content_type="application/json",
                             headers={name: value for name, value in headers.items() if name != "Content-Type"})

    logged = caplog.text + "\n".join(repr(record.args) for record in caplog.records)
    assert any(record.name.startswith("urllib3") for record in caplog.records), "no HTTP call was logged"
    assert any(record.name == "orders.webhooks" for record in caplog.records), "no refusal was logged"
    assert leaks(logged) == []


# --- History rows ---------------------------------------------------------------------------


def test_no_credential_appears_in_order_events_provider_calls_or_webhook_events(world):
    rows = [*OrderEvent.objects.values(), *ProviderCall.objects.values(), *WebhookEvent.objects.values()]
    assert ProviderCall.objects.exists() and WebhookEvent.objects.exists() and OrderEvent.objects.exists()
    assert leaks(repr(rows)) == []


# --- Exports --------------------------------------------------------------------------------


def test_no_credential_appears_in_any_export(world, admin_client, tmp_path):
    csv_export = admin_export(admin_client, "CSV").decode()
    xlsx_export = xlsx_text(admin_export(admin_client, "XLSX"))
    assert "wst.recipient@example.com" in csv_export and "wst.recipient@example.com" in xlsx_export
    command_exports = [command_export("csv", tmp_path).decode(), xlsx_text(command_export("xlsx", tmp_path))]

    for text in (csv_export, xlsx_export, *command_exports):
        assert leaks(text) == []


# --- The database file ----------------------------------------------------------------------


def database_text() -> str:
    """Everything the database holds, as text: on SQLite the bytes of the database file
    (free pages too: a value once written in clear stays there until overwritten); on
    PostgreSQL every row of every table."""
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        copy = sqlite3.connect(":memory:")
        connection.connection.backup(copy)
        data = copy.serialize()
        copy.close()
        return data.decode("latin-1")
    parts = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT t::text FROM {connection.ops.quote_name(table)} t")
            parts.extend(row[0] for row in cursor.fetchall())
    return "\n".join(parts)


def table_rows() -> str:
    """Every row of every table, for comparing before and after (inside a test's transaction)."""
    parts = []
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            parts.append(f"{table}: {sorted(map(repr, cursor.fetchall()))}")
    return "\n".join(parts)


def test_no_credential_is_stored_in_clear_in_the_database(transactional_db, servers, admin_client):
    build_world(servers, admin_client)

    text = database_text()

    assert BUYER_NAME in text and "wst.recipient@example.com" in text  # the search does find stored values
    assert leaks(text) == []


# --- CSRF -----------------------------------------------------------------------------------


def test_every_admin_page_refuses_a_post_without_the_csrf_token(world, admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = table_rows()
    urls = admin_urls()
    assert any("/send/" in url for url in urls) and any("process_import" in url for url in urls)

    answers = {url: client.post(url, {"action": "delete_selected", "_selected_action": ["1"], "post": "yes"})
               for url in urls}

    assert {url: response.status_code for url, response in answers.items() if response.status_code != 403} == {}
    assert table_rows() == before


def test_every_admin_list_action_refuses_a_post_without_the_csrf_token(world, admin_user, rf):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    request = rf.get("/")
    request.user = admin_user
    before = table_rows()
    posted = 0
    for model, model_admin in admin.site._registry.items():
        pks = list(model._default_manager.values_list("pk", flat=True)[:2])
        changelist = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for action in model_admin.get_actions(request):
            response = client.post(changelist, {"action": action, "_selected_action": pks, "post": "yes"})
            assert response.status_code == 403, (changelist, action)
            posted += 1
    assert posted >= 8  # send, cancel, test connection, sync, balance, webhook, resume, refresh, export...
    assert table_rows() == before


# --- Files ----------------------------------------------------------------------------------


def test_an_oversize_upload_is_refused_in_well_under_a_second(sender, hostile_account, hostile_emulator):
    content = workbooks.oversize_csv(settings.GIFTDESK_IMPORT_MAX_BYTES + 1)

    response = upload(sender, hostile_account, "big.csv", content)

    assert response.seconds < 1.0, f"answered in {response.seconds:.2f} s"
    assert "the limit is 20 MB" in page_text(response)
    assert not Batch.objects.exists() and hostile_emulator.ledger == []


@pytest.mark.parametrize("size", [settings.GIFTDESK_IMPORT_MAX_BYTES + 1, 8 * 1024 ** 3], ids=["20mb", "8gb-sparse"])
def test_send_csv_refuses_an_oversize_file_without_reading_it(size, hostile_account, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("wb") as file:
        file.truncate(size)  # sparse: no disk used; reading it would take 8 GB of memory

    started = time.monotonic()
    code, output = send_csv(path, "--account", hostile_account.name, "--amount", "100")
    elapsed = time.monotonic() - started

    assert code == 2 and "the limit is 20 MB" in output, output
    assert elapsed < 1.0, f"answered in {elapsed:.2f} s"
    assert not Batch.objects.exists()


def test_send_csv_refuses_an_endless_device_in_well_under_a_second(hostile_account):
    started = time.monotonic()
    code, output = send_csv("/dev/zero", "--account", hostile_account.name, "--amount", "100")
    assert code == 2 and "limit is 20 MB" in output, output
    assert time.monotonic() - started < 1.0
    assert not Batch.objects.exists()


@pytest.mark.parametrize("workbook", [workbooks.xxe_xlsx, workbooks.billion_laughs_xlsx], ids=["xxe", "billion-laughs"])
def test_entity_workbooks_are_refused_through_the_admin_and_send_csv(workbook, sender, hostile_account,
                                                                     hostile_emulator, tmp_path):
    response = upload(sender, hostile_account, "entities.xlsx", workbook())
    path = tmp_path / "entities.xlsx"
    path.write_bytes(workbook())
    code, output = send_csv(path, "--account", hostile_account.name, "--amount", "100")

    for text in (page_text(response), output):
        assert "Save the spreadsheet as CSV" in text
        assert "root:x:0:0" not in text and "lollollol" not in text
    assert code == 2 and "confirm-import" not in response.content.decode()
    assert not Batch.objects.exists() and hostile_emulator.ledger == []


RAW_MARKUP = re.compile(r"<script>alert\('name'\)|<img src=x onerror")


def test_a_hostile_file_name_is_escaped_on_every_page_that_shows_it(sender, admin_client, hostile_account):
    preview = upload(sender, hostile_account, f"{HOSTILE_NAME}.csv",
                     b"name,email,amount\nAna Hansen,ana@example.com,100\n")
    assert RAW_MARKUP.search(preview.content.decode()) is None
    assert confirm(sender, preview).status_code == 302
    batch = Batch.objects.get()
    assert batch.source_filename == f"{HOSTILE_NAME}.csv"
    order = batch.orders.get()

    pages = [reverse("admin:orders_batch_change", args=[batch.pk]), reverse("admin:orders_batch_changelist"),
             reverse("admin:orders_order_change", args=[order.pk]), reverse("admin:orders_order_changelist"),
             reverse("admin:orders_batch_history", args=[batch.pk]), reverse("admin:index")]
    for client in (sender, admin_client):
        for url in pages:
            response = client.get(url)
            if response.status_code == 403:
                continue  # a page this user may not see shows nothing
            html = response.content.decode()
            assert RAW_MARKUP.search(html) is None, url
    batch_page = page_text(admin_client.get(reverse("admin:orders_batch_change", args=[batch.pk])))
    assert HOSTILE_NAME in batch_page  # shown, as text

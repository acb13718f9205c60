"""Creating a batch at the database's pace (issue 12): one creation event per batch, not one per
order, still the first line of each order's history; the orders inserted in chunks are the rows
the ORM would have written; the batch's stored totals exact; and the admin's confirm step uses
the preview's checked rows instead of reading and checking the file again, unless something
they depend on changed."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction, AuditEntry
from orders import batches, events, spreadsheet
from orders.models import (Batch, BatchEvent, BatchEventKind, EventKind, Order, OrderEvent, OrderStatus,
                           Recipient)
from orders.spreadsheet import ValidRow
from providers.models import Product
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch
from tests.orders.test_admin import confirm, upload
from tests.orders.test_batch_totals import assert_batch_totals_match
from tests.orders.test_order_page import order_page

CONFIRM_URL = reverse("admin:orders_batch_process_import")


def rows_for(product: Product, count: int, **overrides) -> list[ValidRow]:
    return [ValidRow(row=index + 2, name=f"Person {index}", email=f"p{index}@example.com", phone=f"+45 {index:08}",
                     reference=f"EMP{index:04}", message=f"Thanks {index}", amount=Decimal(50 + 10 * index),
                     currency=product.currency, product=product, send_on=None, **overrides)
            for index in range(count)]


# --- One event for the batch's creation -------------------------------------------------------


def test_a_batch_is_created_with_one_creation_event_whatever_its_size(global_gift_card, monkeypatch):
    monkeypatch.setattr(batches, "CREATE_CHUNK_ROWS", 3)  # 10 rows: four chunks
    batch = batches.batch_create(account=global_gift_card.account, rows=rows_for(global_gift_card, 10),
                                 source_filename="staff.csv")

    assert batch.orders.count() == 10
    assert OrderEvent.objects.filter(order__batch=batch).count() == 0
    [created] = BatchEvent.objects.filter(batch=batch)
    assert (created.kind, created.to_status, created.order_count, created.actor, created.message) == (
        BatchEventKind.CREATED, OrderStatus.PENDING, 10, "system", "Imported from staff.csv.")
    # Twice as many rows, still one event.
    bigger = batches.batch_create(account=global_gift_card.account, rows=rows_for(global_gift_card, 20))
    assert BatchEvent.objects.filter(batch=bigger).count() == 1 and BatchEvent.objects.count() == 2


def test_every_row_becomes_its_own_order_and_recipient_across_chunks(global_gift_card, monkeypatch):
    monkeypatch.setattr(batches, "CREATE_CHUNK_ROWS", 4)
    rows = rows_for(global_gift_card, 11)
    batch = batches.batch_create(account=global_gift_card.account, rows=rows)

    got = list(batch.orders.select_related("recipient").order_by("source_row")
               .values_list("source_row", "recipient__name", "recipient__email", "recipient__phone",
                            "recipient__reference", "amount", "currency", "message", "product_id", "status"))
    assert got == [(row.row, row.name, row.email, row.phone, row.reference, row.amount, row.currency, row.message,
                    global_gift_card.pk, OrderStatus.PENDING) for row in rows]
    assert len(set(batch.orders.values_list("reference", flat=True))) == 11
    assert Recipient.objects.count() == 11


def test_the_stored_totals_and_the_audit_entry_are_exact(global_gift_card, monkeypatch):
    monkeypatch.setattr(batches, "CREATE_CHUNK_ROWS", 3)
    batch = batches.batch_create(account=global_gift_card.account, rows=rows_for(global_gift_card, 8))

    assert_batch_totals_match(batch)
    assert batch.pending_count == 8 and batch.face_value_totals == {"DKK": "680.00"}
    entry = AuditEntry.objects.get(action=AuditAction.UPLOAD)
    assert "8 orders on" in entry.summary


def test_an_order_inserted_by_the_batch_holds_what_the_orm_would_have_written(global_gift_card):
    """Every column, whatever fields Order gains: the defaults and the creation time included."""
    [row] = rows_for(global_gift_card, 1)
    row.send_on = timezone.localdate() + timedelta(days=5)  # a date, sent through its field
    batch = batches.batch_create(account=global_gift_card.account, rows=[row])
    inserted = batch.orders.get()
    by_orm = Order.objects.create(batch=batch, recipient=inserted.recipient, product=row.product, amount=row.amount,
                                  currency=row.currency, message=row.message, send_on=row.send_on,
                                  reference="GD-ORM", source_row=row.row)
    by_orm.refresh_from_db()
    differing = {field.name for field in Order._meta.concrete_fields
                 if getattr(inserted, field.attname) != getattr(by_orm, field.attname)}
    assert differing <= {"id", "reference", "created_at", "updated_at"}
    assert abs(by_orm.created_at - inserted.created_at).total_seconds() < 60 and inserted.created_at.tzinfo
    assert inserted.updated_at >= inserted.created_at


def test_a_column_the_batch_cannot_share_goes_the_orms_way(global_gift_card, monkeypatch):
    """E.g. a field whose default is made anew per order (a uuid4): then bulk_create, as before."""
    real_init = batches._OrderColumns.__init__

    def not_plain(self, batch):
        real_init(self, batch)
        self.plain = False

    monkeypatch.setattr(batches._OrderColumns, "__init__", not_plain)
    monkeypatch.setattr(batches, "CREATE_CHUNK_ROWS", 2)
    rows = rows_for(global_gift_card, 5)
    batch = batches.batch_create(account=global_gift_card.account, rows=rows)

    assert sorted(batch.orders.values_list("source_row", "recipient__email", "amount")) == [
        (row.row, row.email, row.amount) for row in rows]
    assert_batch_totals_match(batch)


# --- The order's history still starts with its creation --------------------------------------


def test_an_orders_history_starts_with_the_batchs_creation(gogift_account, global_gift_card):
    batch = make_batch(gogift_account, ["100", "250"])
    order = batch.orders.order_by("id").first()
    events.record_note([order], actor="staff", message="Checked.")

    history = events.order_history(order)

    first = history[0]
    assert first.pk is None  # the batch's event, shown: not a row of the order's own
    assert (first.kind, first.from_status, first.to_status, first.actor) == (EventKind.STATUS, "", "pending", "system")
    assert first.message == "Imported from test.csv (one event for the batch's 2 orders)."
    assert first.created_at == BatchEvent.objects.get(batch=batch).created_at
    assert [event.message for event in history[1:]] == ["Checked."]


def test_an_order_created_later_in_the_batch_shows_its_own_creation_not_the_batchs(gogift_account,
                                                                                  global_gift_card):
    batch = make_batch(gogift_account, ["100"])
    original = batch.orders.get()
    # As a resend makes one (orders.order_actions.order_resend): its own creation event.
    later = Order.objects.create(batch=batch, recipient=original.recipient, product=original.product,
                                 amount=original.amount, currency="DKK", reference="GD-LATER", resend_of=original)
    events.record_transition([later], from_status="", to_status=OrderStatus.PENDING, actor="staff",
                             message="Resend of the original.")

    assert [event.message for event in events.order_history(later)] == ["Resend of the original."]
    assert events.order_history(original)[0].message.startswith("Imported from test.csv (one event")
    assert_batch_totals_match(batch)


def test_the_order_page_shows_the_creation_as_the_first_line_of_its_history(admin_client, gogift_account,
                                                                            global_gift_card):
    batch = make_batch(gogift_account, ["100", "250", "300"])
    order = batch.orders.order_by("id").last()
    events.record_note([order], actor="staff", message="Looked at it.")

    html = order_page(admin_client, order)

    history = html.split('id="events-group"')[1] if 'id="events-group"' in html else html
    created = "Imported from test.csv (one event for the batch&#x27;s 3 orders)."
    assert created in history and "Looked at it." in history
    assert history.index(created) < history.index("Looked at it.")


# --- The confirm step uses the preview's checked rows ------------------------------------------


def csv_of(*rows: tuple[str, str, str]) -> bytes:
    return ("name,email,amount\n" + "".join(f"{name},{email},{amount}\n" for name, email, amount in rows)).encode()


FILE = csv_of(("Ana", "ana@example.com", "100"), ("Bo", "bo@example.com", "200"), ("Cy", "cy@example", "300"))


@pytest.fixture
def staff(admin_client, settings, tmp_path):
    settings.GIFTDESK_UPLOAD_DIR = tmp_path / "uploads"
    return admin_client


@pytest.fixture
def counted(monkeypatch) -> dict[str, int]:
    """How many times the file was read and checked."""
    calls = {"read": 0, "validate": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(spreadsheet, "read_table", counting("read", spreadsheet.read_table))
    monkeypatch.setattr(spreadsheet, "validate", counting("validate", spreadsheet.validate))
    return calls


def confirm_data(preview) -> dict:
    return {name: ("" if value is None else value) for name, value in preview.context["confirm_form"].initial.items()}


def test_the_confirm_uses_the_previews_rows_and_reads_the_file_once(staff, emulated_gogift_account, counted):
    preview = upload(staff, emulated_gogift_account, FILE, message="Tak!")
    assert counted == {"read": 1, "validate": 1}

    response = confirm(staff, preview)

    assert counted == {"read": 1, "validate": 1}  # not read, nor checked, a second time
    batch = Batch.objects.get()
    assert response.status_code == 302 and response.url == reverse("admin:orders_batch_change", args=[batch.pk])
    assert sorted(batch.orders.values_list("source_row", "recipient__email", "amount", "message")) == [
        (2, "ana@example.com", Decimal("100.00"), "Tak!"), (3, "bo@example.com", Decimal("200.00"), "Tak!")]
    assert batch.rejected_row_count == 1 and batch.rejected_rows[0]["row"] == 4
    assert len(batch.source_checksum) == 64 and batch.source_filename == "recipients.csv"
    assert_batch_totals_match(batch)


def test_a_changed_choice_reads_and_checks_the_file_again(staff, emulated_gogift_account, counted):
    data = confirm_data(upload(staff, emulated_gogift_account, FILE, message="Tak!"))
    data["message"] = "Thank you, all!"  # the hidden choice posted back differs from the preview's

    staff.post(CONFIRM_URL, data)

    assert counted == {"read": 2, "validate": 2}
    batch = Batch.objects.get()
    assert set(batch.orders.values_list("message", flat=True)) == {"Thank you, all!"}


def test_a_catalog_changed_since_the_preview_checks_the_rows_again(staff, emulated_gogift_account, counted):
    data = confirm_data(upload(staff, emulated_gogift_account, FILE))
    # 200 DKK is no longer sold: Bo's row is now invalid.
    Product.objects.filter(sku=GLOBAL_GIFT_CARD_SKU).update(max_amount=Decimal("150"))

    staff.post(CONFIRM_URL, data)

    assert counted == {"read": 2, "validate": 2}
    batch = Batch.objects.get()
    assert list(batch.orders.values_list("recipient__email", flat=True)) == ["ana@example.com"]
    assert batch.rejected_row_count == 2


def test_a_file_changed_since_the_preview_is_read_again(staff, emulated_gogift_account, counted, settings):
    data = confirm_data(upload(staff, emulated_gogift_account, FILE))
    [token] = [path for path in settings.GIFTDESK_UPLOAD_DIR.iterdir()]
    token.write_bytes(csv_of(("Di", "di@example.com", "500")))

    staff.post(CONFIRM_URL, data)

    assert counted == {"read": 2, "validate": 2}
    assert list(Order.objects.values_list("recipient__email", flat=True)) == ["di@example.com"]


def test_without_a_kept_preview_the_confirm_reads_the_file_as_before(staff, emulated_gogift_account, counted):
    data = confirm_data(upload(staff, emulated_gogift_account, FILE))
    cache.clear()  # e.g. another web process, without a shared cache

    response = staff.post(CONFIRM_URL, data)

    assert response.status_code == 302 and counted == {"read": 2, "validate": 2}
    assert Batch.objects.get().orders.count() == 2


def test_the_kept_preview_is_used_once_and_holds_no_browser_value(staff, emulated_gogift_account, counted):
    preview = upload(staff, emulated_gogift_account, FILE)
    data = confirm_data(preview)
    html = preview.content.decode()
    # The page carries the signed ticket only; the token naming the kept rows never leaves the server.
    assert not re.search(r"kept-preview", html)

    staff.post(CONFIRM_URL, data)
    again = staff.post(CONFIRM_URL, data, follow=True)

    assert Batch.objects.count() == 1 and "already imported or has expired" in again.content.decode()
    assert counted == {"read": 1, "validate": 1}

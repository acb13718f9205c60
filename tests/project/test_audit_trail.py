"""The audit trail (issue 9): every upload, send, approval request, approval, rejection,
cancel, export and account change is recorded with who, from where, what and the amounts;
the trail is filterable by user, action and date; nobody, administrators included, can add,
change or delete an entry; Finance and administrators read it, no one else. Field history
(django-auditlog) of accounts and batches is read-only too."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.context import COMMAND_LINE
from audit.models import AppendOnly, AuditAction, AuditEntry
from audit.services import record
from orders.models import Batch, BatchState, Order, OrderStatus
from providers.models import Product, ProviderAccount
from tests.admin_client import confirm_send, form_data
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, make_batch

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "recipients.csv"
TRAIL = reverse("admin:audit_auditentry_changelist")
ORDERS = reverse("admin:orders_order_changelist")
EXPORT_URL = reverse("admin:orders_order_export")
WEB = "127.0.0.1"  # the test client's REMOTE_ADDR


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=1000"


def member(username: str, group: str | None = None, *, superuser: bool = False) -> User:
    user = User.objects.create_user(username, is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)  # axes needs a request for a real login
    return client


@pytest.fixture
def sender(db) -> User:
    return member("sam", "Senders")


@pytest.fixture
def approver(db) -> User:
    return member("ada", "Approvers")


@pytest.fixture
def finance(db) -> User:
    return member("fiona", "Finance")


@pytest.fixture
def administrator(db) -> User:
    return member("root", superuser=True)


def batch_of(account, amounts: list[str], uploader: User) -> Batch:
    batch = make_batch(account, amounts)
    Batch.objects.filter(pk=batch.pk).update(created_by=uploader)
    batch.refresh_from_db()
    return batch


def only_entry(action: str) -> AuditEntry:
    entries = list(AuditEntry.objects.filter(action=action))
    assert len(entries) == 1, [entry.summary for entry in entries]
    return entries[0]


# --- What is recorded -----------------------------------------------------------------------------


def test_an_upload_in_the_admin_is_recorded_with_the_uploader_address_and_total(sender, emulated_gogift_account):
    client = signed_in(sender)
    product = Product.objects.get(account=emulated_gogift_account, sku=GLOBAL_GIFT_CARD_SKU)
    preview = client.post(reverse("admin:orders_batch_import"), {
        "import_file": SimpleUploadedFile("recipients.csv", EXAMPLE.read_bytes()), "format": "0", "resource": "0",
        "account": emulated_gogift_account.pk, "default_product": product.pk, "message": "Thank you!",
    })
    confirm = preview.context["confirm_form"]
    client.post(reverse("admin:orders_batch_process_import"),
                {name: ("" if value is None else value) for name, value in confirm.initial.items()})

    batch = Batch.objects.get()
    entry = only_entry(AuditAction.UPLOAD)
    total = sum(batch.orders.values_list("amount", flat=True))
    assert (entry.user, entry.username, entry.address) == (sender, "sam", WEB)
    assert (entry.target_kind, entry.target_id) == ("batch", str(batch.pk))
    assert entry.amounts == {"DKK": f"{total:.2f}"} and total > 0
    assert "recipients.csv: 10 orders" in entry.summary and "2 invalid rows left out" in entry.summary


def test_a_send_under_the_threshold_is_recorded_as_a_send(sender, global_gift_card):
    batch = batch_of(global_gift_card.account, ["100", "250"], sender)

    confirm_send(signed_in(sender), batch)

    assert set(batch.orders.values_list("status", flat=True)) == {OrderStatus.QUEUED}
    entry = only_entry(AuditAction.SEND)
    assert (entry.user, entry.address, entry.amounts) == (sender, WEB, {"DKK": "350.00"})
    assert "350.00 DKK" in entry.summary
    assert not AuditEntry.objects.filter(action=AuditAction.APPROVAL_REQUESTED).exists()


def test_a_send_over_the_threshold_is_recorded_as_an_approval_request(sender, global_gift_card):
    batch = batch_of(global_gift_card.account, ["600", "500"], sender)

    confirm_send(signed_in(sender), batch)

    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL
    entry = only_entry(AuditAction.APPROVAL_REQUESTED)
    assert (entry.user, entry.address, entry.amounts) == (sender, WEB, {"DKK": "1100.00"})
    assert "1,100.00 DKK" in entry.summary
    assert not AuditEntry.objects.filter(action=AuditAction.SEND).exists()


def awaiting_approval(account, sender: User) -> Batch:
    batch = batch_of(account, ["600", "500"], sender)
    confirm_send(signed_in(sender), batch)
    batch.refresh_from_db()
    assert batch.state == BatchState.AWAITING_APPROVAL
    return batch


def test_an_approval_from_the_shell_is_recorded_with_the_approver(sender, approver, global_gift_card):
    batch = awaiting_approval(global_gift_card.account, sender)

    call_command("approve_batch", str(batch.pk), "--user", "ada", stdout=io.StringIO())

    entry = only_entry(AuditAction.APPROVE)
    assert (entry.user, entry.username, entry.address) == (approver, "ada", COMMAND_LINE)
    assert entry.amounts == {"DKK": "1100.00"} and entry.target_id == str(batch.pk)
    assert "uploaded by sam" in entry.summary


def test_a_rejection_is_recorded_with_its_reason(sender, approver, global_gift_card):
    batch = awaiting_approval(global_gift_card.account, sender)

    call_command("approve_batch", str(batch.pk), "--user", "ada", "--reject", "--reason", "Wrong cost center",
                 stdout=io.StringIO())

    entry = only_entry(AuditAction.REJECT)
    assert (entry.user, entry.address, entry.amounts) == (approver, COMMAND_LINE, {"DKK": "1100.00"})
    assert entry.summary.endswith("Wrong cost center")


def test_a_refused_approval_records_nothing(sender, global_gift_card):
    batch = awaiting_approval(global_gift_card.account, sender)

    with pytest.raises(SystemExit):  # nobody approves their own batch
        call_command("approve_batch", str(batch.pk), "--user", "sam", stdout=io.StringIO(), stderr=io.StringIO())

    assert not AuditEntry.objects.filter(action__in=[AuditAction.APPROVE, AuditAction.REJECT]).exists()


def test_a_cancel_is_recorded_with_what_it_stopped(sender, global_gift_card):
    batch = batch_of(global_gift_card.account, ["100", "250"], sender)

    signed_in(sender).post(reverse("admin:orders_batch_cancel", args=[batch.pk]), {"post": "yes"})  # confirmed

    entry = only_entry(AuditAction.CANCEL)
    assert (entry.user, entry.address, entry.amounts) == (sender, WEB, {"DKK": "350.00"})
    assert "Cancelled 2 orders" in entry.summary


def test_an_admin_export_of_a_selection_is_recorded_with_format_count_and_amounts(finance, global_gift_card):
    orders = list(batch_of(global_gift_card.account, ["100", "250", "40"], finance).orders.order_by("pk"))
    chosen = [order.pk for order in orders[:2]]
    client = signed_in(finance)
    export_page = client.post(ORDERS, {"action": "export_selected_orders", "_selected_action": chosen})

    response = client.post(export_page["Location"], {"format": "csv"})

    assert response.status_code == 200 and "text/csv" in response["Content-Type"]
    entry = only_entry(AuditAction.EXPORT)
    assert (entry.user, entry.address, entry.amounts) == (finance, WEB, {"DKK": "350.00"})
    assert "Exported 2 orders (350.00 DKK) as CSV from the admin" in entry.summary
    assert "2 selected in the list" in entry.summary


def test_an_admin_export_of_a_filtered_list_names_the_filter(finance, global_gift_card):
    batch = batch_of(global_gift_card.account, ["100", "250", "40"], finance)
    Order.objects.filter(pk=batch.orders.order_by("pk").first().pk).update(status=OrderStatus.FAILED)

    response = signed_in(finance).post(f"{EXPORT_URL}?status__exact=pending", {"format": "xlsx"})

    assert response.status_code == 200
    entry = only_entry(AuditAction.EXPORT)
    assert entry.amounts == {"DKK": "290.00"}
    assert "Exported 2 orders (290.00 DKK) as XLSX" in entry.summary
    assert "filtered by status__exact=pending" in entry.summary


def test_a_refused_admin_export_records_nothing(sender, global_gift_card):
    order = make_batch(global_gift_card.account, ["100"]).orders.get()

    response = signed_in(sender).post(f"{EXPORT_URL}?id__in={order.pk}", {"format": "csv"})

    assert response.status_code == 403
    assert not AuditEntry.objects.filter(action=AuditAction.EXPORT).exists()


def test_export_orders_is_recorded_after_the_file_is_written(global_gift_card, tmp_path):
    batch = make_batch(global_gift_card.account, ["100", "250"])
    Order.objects.filter(pk=batch.orders.order_by("pk").first().pk).update(status=OrderStatus.DELIVERED)
    output = tmp_path / "orders.csv"

    call_command("export_orders", "--format", "csv", "--output", str(output), "--status", "delivered",
                 stdout=io.StringIO())

    assert output.exists()
    entry = only_entry(AuditAction.EXPORT)
    assert (entry.user, entry.username, entry.address) == (None, "", COMMAND_LINE)
    assert entry.amounts == {"DKK": "100.00"}
    assert f"Exported 1 order (100.00 DKK) as CSV with export_orders to {output.resolve()}" in entry.summary
    assert "--status delivered" in entry.summary and "run by the OS user" in entry.summary


def test_a_refused_export_orders_records_nothing(db, tmp_path):
    with pytest.raises(Exception, match="not a date"):
        call_command("export_orders", "--format", "csv", "--output", str(tmp_path / "x.csv"), "--from", "yesterday")

    assert not AuditEntry.objects.exists()


def test_an_account_saved_in_the_admin_names_the_changed_fields_never_a_secret(administrator, gogift_account):
    client = signed_in(administrator)
    url = reverse("admin:providers_provideraccount_change", args=[gogift_account.pk])
    data = {**form_data(client.get(url)), "rate_limit_per_minute": 30, "credential_client_secret": "n3w-s3cret"}

    response = client.post(url, data)

    assert response.status_code == 302
    entry = only_entry(AuditAction.ACCOUNT_CHANGE)
    assert (entry.user, entry.address, entry.target_id) == (administrator, WEB, str(gogift_account.pk))
    assert "rate_limit_per_minute" in entry.summary and "credentials entered (client_secret)" in entry.summary
    assert "n3w-s3cret" not in entry.summary and "s3cret" not in entry.summary
    assert "max_cards_per_request" not in entry.summary  # unchanged fields are not named
    assert entry.amounts == {}


def test_an_account_saved_unchanged_or_refused_records_nothing(administrator, gogift_account):
    client = signed_in(administrator)
    url = reverse("admin:providers_provideraccount_change", args=[gogift_account.pk])
    unchanged = form_data(client.get(url))

    assert client.post(url, unchanged).status_code == 302
    refused = client.post(url, {**unchanged, "rate_limit_per_minute": "many"})

    assert refused.status_code == 200 and refused.context["adminform"].form.errors
    assert not AuditEntry.objects.exists()


def configure(*extra) -> None:
    call_command("configure_account", "Wallet", "--kind", "ugiftme", "--environment", "sandbox", *extra,
                 stdout=io.StringIO(), stderr=io.StringIO())


def test_configure_account_records_the_creation_then_each_change(db):
    configure("--set", "api_key=k3y-one")
    configure("--set", "max_cards_per_request=5", "--set", "api_key=k3y-two")

    created, changed = AuditEntry.objects.filter(action=AuditAction.ACCOUNT_CHANGE).order_by("id")
    account = ProviderAccount.objects.get(name="Wallet")
    for entry in (created, changed):
        assert (entry.user, entry.address, entry.target_id) == (None, COMMAND_LINE, str(account.pk))
        assert "with configure_account (run by the OS user" in entry.summary
        assert "k3y" not in entry.summary
    assert created.summary.startswith("Created the UGiftMe account “Wallet” (sandbox)")
    assert "max_cards_per_request" in changed.summary and "credentials entered (api_key)" in changed.summary


def test_configure_account_refused_records_nothing(db):
    with pytest.raises(Exception, match="whole number"):
        configure("--set", "max_cards_per_request=many")
    assert not AuditEntry.objects.exists()


def test_testing_an_accounts_connection_is_recorded(administrator, emulated_ugiftme_account):
    signed_in(administrator).post(reverse("admin:providers_provideraccount_changelist"), {
        "action": "test_connection", "_selected_action": [emulated_ugiftme_account.pk]})

    entry = only_entry(AuditAction.ACCOUNT_CHANGE)
    assert (entry.user, entry.address, entry.target_id) == (administrator, WEB, str(emulated_ugiftme_account.pk))
    assert entry.summary.startswith("Tested the connection: Connected.")


# --- Reading the trail ------------------------------------------------------------------------------


@pytest.fixture
def trail(sender, approver, monkeypatch):
    """Three entries on three days, by two users and the system."""
    made = {}
    for key, (day, user, action) in {
        "upload": (datetime(2026, 11, 2, 9), sender, AuditAction.UPLOAD),
        "approve": (datetime(2026, 11, 20, 9), approver, AuditAction.APPROVE),
        "system": (datetime(2026, 12, 1, 9), None, AuditAction.CANCEL),
    }.items():
        at = timezone.make_aware(day)
        monkeypatch.setattr(timezone, "now", lambda at=at: at)
        made[key] = record(action, user=user, summary=f"{key} entry", amounts={"DKK": Decimal("1000")})
    monkeypatch.undo()
    return made


def listed(client: Client, **params) -> set[str]:
    response = client.get(TRAIL, params)
    assert response.status_code == 200
    return {entry.summary for entry in response.context["cl"].result_list}


def test_the_trail_lists_who_where_what_and_amounts(administrator, trail):
    html = signed_in(administrator).get(TRAIL).content.decode()
    assert "1,000.00 DKK" in html and "sam" in html and "ada" in html and "no user (the system" in html
    assert "Upload" in html and "Approve" in html and COMMAND_LINE in html


def test_the_trail_filters_by_user_action_and_date(administrator, sender, trail):
    client = signed_in(administrator)
    assert listed(client) == {"upload entry", "approve entry", "system entry"}
    assert listed(client, user__id__exact=sender.pk) == {"upload entry"}
    assert listed(client, user__isnull="True") == {"system entry"}
    assert listed(client, action__exact="approve") == {"approve entry"}
    assert listed(client, created_at__year=2026, created_at__month=11) == {"upload entry", "approve entry"}
    assert listed(client, created_at__year=2026, created_at__month=11, created_at__day=20) == {"approve entry"}
    # A date range, as the date filter's own links write it: from 10 November up to 1 December.
    start, end = (str(timezone.make_aware(datetime(2026, month, day))) for month, day in [(11, 10), (12, 1)])
    assert listed(client, created_at__gte=start, created_at__lt=end) == {"approve entry"}
    assert listed(client, q="sam") == {"upload entry"}


def test_the_trail_offers_the_filters(administrator, trail):
    page = signed_in(administrator).get(TRAIL)
    titles = {spec.title for spec in page.context["cl"].filter_specs}
    assert titles == {"user", "action", "when"}
    assert page.context["cl"].date_hierarchy == "created_at"


def test_no_one_can_add_change_or_delete_an_entry_in_the_admin_not_even_an_administrator(administrator, trail):
    client = signed_in(administrator)
    entry = trail["upload"]
    change = reverse("admin:audit_auditentry_change", args=[entry.pk])

    page = client.get(change)
    assert page.status_code == 200 and 'name="summary"' not in page.content.decode()  # a read-only view
    assert "upload entry" in page.content.decode()
    assert client.get(reverse("admin:audit_auditentry_add")).status_code == 403
    assert client.post(change, {"summary": "rewritten", "action": "send"}).status_code == 403
    assert client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    listing = client.get(TRAIL)
    assert "delete_selected" not in listing.content.decode()
    client.post(TRAIL, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})

    entry.refresh_from_db()
    assert entry.summary == "upload entry" and AuditEntry.objects.count() == 3


def test_entries_cannot_be_changed_or_deleted_in_code(trail):
    entry = trail["upload"]
    with pytest.raises(AppendOnly):
        AuditEntry.objects.update(summary="rewritten")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.filter(pk=entry.pk).update(summary="rewritten")
    with pytest.raises(AppendOnly):
        AuditEntry.objects.all().delete()
    entry.summary = "rewritten"
    with pytest.raises(AppendOnly):
        entry.save()
    with pytest.raises(AppendOnly):
        entry.delete()
    assert AuditEntry.objects.get(pk=entry.pk).summary == "upload entry" and AuditEntry.objects.count() == 3


def test_an_entry_outlives_the_user_who_made_it(sender, trail):
    sender.delete()

    entry = AuditEntry.objects.get(pk=trail["upload"].pk)
    assert (entry.user, entry.username) == (None, "sam")


def test_finance_reads_the_trail(finance, trail):
    client = signed_in(finance)
    assert listed(client) == {"upload entry", "approve entry", "system entry"}
    assert client.get(reverse("admin:audit_auditentry_change", args=[trail["upload"].pk])).status_code == 200
    assert TRAIL in client.get(reverse("admin:index")).content.decode()
    assert client.post(reverse("admin:audit_auditentry_delete", args=[trail["upload"].pk]),
                       {"post": "yes"}).status_code == 403


@pytest.mark.parametrize("group", ["Senders", "Approvers", None])
def test_no_one_else_reads_the_trail(db, trail, group):
    client = signed_in(member("reader", group))
    assert client.get(TRAIL).status_code == 403
    assert client.get(reverse("admin:audit_auditentry_change", args=[trail["upload"].pk])).status_code == 403
    assert TRAIL not in client.get(reverse("admin:index")).content.decode()


def test_the_migration_gives_finance_alone_the_trail(db):
    holders = Group.objects.filter(permissions__codename="view_auditentry", permissions__content_type__app_label="audit")
    assert list(holders.values_list("name", flat=True)) == ["Finance"]


# --- Field history (django-auditlog) ----------------------------------------------------------------


def test_a_batch_edit_is_in_its_field_history_with_who(sender, global_gift_card):
    batch = batch_of(global_gift_card.account, ["100"], sender)
    client = signed_in(sender)
    url = reverse("admin:orders_batch_change", args=[batch.pk])

    client.post(url, {**form_data(client.get(url)), "name": "Christmas 2026"})

    entry = LogEntry.objects.get_for_object(batch).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.actor == sender and entry.changes_dict["name"][1] == "Christmas 2026"
    assert "updated_at" not in entry.changes_dict and "rejected_rows" not in entry.changes_dict


def test_no_one_can_delete_or_change_field_history_not_even_an_administrator(administrator, gogift_account):
    gogift_account.rate_limit_per_minute = 30
    gogift_account.save()
    entry = LogEntry.objects.get_for_object(gogift_account).latest("timestamp")
    client = signed_in(administrator)
    listing = client.get(reverse("admin:auditlog_logentry_changelist"))

    assert listing.status_code == 200 and "delete_selected" not in listing.content.decode()
    assert client.get(reverse("admin:auditlog_logentry_change", args=[entry.pk])).status_code == 200
    assert client.post(reverse("admin:auditlog_logentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert client.post(reverse("admin:auditlog_logentry_change", args=[entry.pk]), {}).status_code == 403
    client.post(reverse("admin:auditlog_logentry_changelist"),
                {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})
    assert LogEntry.objects.filter(pk=entry.pk).exists()

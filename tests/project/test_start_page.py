"""The start page (issue 10, finding 3): a way in for each role, what needs attention, and
Django's app list below with GiftDesk's own apps first.

Roles as in tests/project/test_permission_matrix.py: a Sender, an Approver, Finance, a staff
user in no group, an administrator. Each attention item is made the way the application
makes it (a send over the approval threshold, a paused account, a failed order, an order a
monthly limit holds back), then read on the page and followed.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import attention
from orders.batches import batch_send
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.spending import WAIT_REASON_START
from providers.models import ProviderAccount
from tests.fixtures.data import make_batch, person

GROUP_OF = {"sender": "Senders", "approver": "Approvers", "finance": "Finance"}
READERS = ("sender", "approver", "finance", "admin")
ALL_CLEAR = "Nothing needs your attention."
ATTENTION = re.compile(r'<div class="module giftdesk-attention" id="needs-attention">(.*?)</div>', re.S)
ENTRIES = re.compile(r'<a href="([^"]*)" id="([a-z-]+)" class="button')


def make_user(role: str, username: str | None = None) -> User:
    return person(username or f"{role}-user", GROUP_OF.get(role), superuser=role == "admin")


def logged_in(role: str, username: str | None = None) -> tuple[Client, User]:
    user = make_user(role, username)
    client = Client()
    client.force_login(user)
    return client, user


def start_page(client: Client) -> str:
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    return response.content.decode()


def entries(page: str) -> dict[str, str]:
    """{element id: link} of the start page's buttons."""
    return {element_id: url.replace("&amp;", "&") for url, element_id in ENTRIES.findall(page)}


def attention_section(page: str) -> str:
    found = ATTENTION.search(page)
    assert found, "no #needs-attention section"
    return found.group(1)


def attention_links(page: str) -> dict[str, str]:
    """{link text: link} of what needs attention."""
    return {text.strip(): url.replace("&amp;", "&")
            for url, text in re.findall(r'<a href="([^"]*)">([^<]*)</a>', attention_section(page))}


@pytest.fixture
def account(gogift_account, global_gift_card) -> ProviderAccount:
    return gogift_account


def uploaded_by(account: ProviderAccount, user: User, amounts=("100", "250")) -> Batch:
    batch = make_batch(account, list(amounts))
    Batch.objects.filter(pk=batch.pk).update(created_by=user)
    batch.refresh_from_db()
    return batch


def awaiting_approval(account: ProviderAccount, uploader: User, settings) -> Batch:
    """A batch its uploader pressed Send on, over the approval threshold (as in tests/orders/test_approvals.py)."""
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0"  # every DKK send needs an approver
    batch = uploaded_by(account, uploader)
    outcome = batch_send(batch=batch, user=uploader)
    assert outcome.state == BatchState.AWAITING_APPROVAL
    return batch


def failed(order: Order, *, when=None) -> None:
    """As orders.dispatch records a card the provider refused."""
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.FAILED, last_error="Refused by the provider.",
                                             completed_at=when or timezone.now())


# --- A way in -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["sender", "approver", "admin"])
def test_whoever_may_import_finds_send_gift_cards_at_the_top_leading_to_the_import_page(db, role):
    client, _ = logged_in(role)
    page = start_page(client)

    found = entries(page)
    assert list(found)[0] == "send-gift-cards"
    assert found["send-gift-cards"] == reverse("admin:orders_batch_import")
    assert "Upload a spreadsheet of recipients (CSV or XLSX), check the preview, then send." in page
    assert page.index('id="send-gift-cards"') < page.index('id="needs-attention"') < page.index("app-orders")
    assert client.get(found["send-gift-cards"]).status_code == 200


def test_finance_who_may_not_import_is_offered_the_orders_and_their_export_instead(db):
    client, _ = logged_in("finance")
    page = start_page(client)

    found = entries(page)
    assert "send-gift-cards" not in found and "batches-to-approve" not in found
    assert found == {"see-orders": reverse("admin:orders_order_changelist")}
    assert "Filter the list: its totals follow; then “Export these orders” (CSV or XLSX)." in page
    assert client.get(found["see-orders"]).status_code == 200


@pytest.mark.parametrize("role", ["approver", "admin"])
def test_who_may_approve_is_also_offered_the_batches_awaiting_their_approval(db, role):
    client, _ = logged_in(role)
    found = entries(start_page(client))

    assert found["batches-to-approve"] == f"{reverse('admin:orders_batch_changelist')}?state__exact=awaiting_approval"
    assert client.get(found["batches-to-approve"]).status_code == 200


def test_the_approval_entry_says_the_list_holds_ones_own_batches_too(db, account, settings):
    client, approver = logged_in("approver")
    own = awaiting_approval(account, approver, settings)  # not theirs to decide, yet in the list
    page = start_page(client)

    assert ">Batches awaiting approval<" in page and "Batches awaiting your approval" not in page
    assert "Those you uploaded or asked to send are for another approver." in page
    listed = client.get(entries(page)["batches-to-approve"])
    assert [row.pk for row in listed.context["cl"].result_list] == [own.pk]


def test_a_sender_is_not_offered_approvals(db):
    client, _ = logged_in("sender")
    assert set(entries(start_page(client))) == {"send-gift-cards"}


def test_staff_in_no_group_get_neither_a_way_in_nor_an_attention_list(db):
    client, _ = logged_in("staff")
    page = start_page(client)

    assert entries(page) == {}
    assert 'id="needs-attention"' not in page
    assert "permission to view or edit anything" in page


# --- What needs attention -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", READERS)
def test_when_nothing_needs_attention_the_page_says_so(db, account, role):
    uploaded_by(account, make_user("sender", "uploader"))  # a pending batch needs nothing
    client, _ = logged_in(role)

    section = attention_section(start_page(client))

    assert ALL_CLEAR in section
    assert "<li" not in section


def test_a_batch_awaiting_approval_is_counted_and_linked_to_the_filtered_batch_list(db, account, settings):
    uploader = make_user("sender", "uploader")
    batch = awaiting_approval(account, uploader, settings)
    uploaded_by(account, uploader)  # pending: not counted

    for role, text in [("sender", "1 batch awaits approval"), ("finance", "1 batch awaits approval"),
                       ("approver", "1 batch awaits your approval"), ("admin", "1 batch awaits your approval")]:
        client, _ = logged_in(role)
        links = attention_links(start_page(client))
        assert text in links, (role, links)
        url = links[text]
        assert url == f"{reverse('admin:orders_batch_changelist')}?state__exact=awaiting_approval"
        listed = client.get(url)
        assert listed.status_code == 200
        assert [row.pk for row in listed.context["cl"].result_list] == [batch.pk]


def test_approvers_count_only_the_batches_they_may_decide(db, account, settings):
    approver_client, approver = logged_in("approver")
    admin_client, administrator = logged_in("admin")
    awaiting_approval(account, approver, settings)  # the approver's own: nobody approves their own
    awaiting_approval(account, administrator, settings)

    assert "1 batch awaits your approval" in attention_links(start_page(approver_client))  # the administrator's
    assert "1 batch awaits your approval" in attention_links(start_page(admin_client))  # the approver's

    awaiting_approval(account, make_user("sender", "uploader"), settings)
    page = start_page(approver_client)
    assert "2 batches await your approval" in attention_links(page)
    # The link lists all three: the entry says which one is not counted.
    assert ("the list also shows 1 batch you uploaded or asked to send; another approver decides it."
            in attention_section(page))
    listed = approver_client.get(attention_links(page)["2 batches await your approval"])
    assert len(listed.context["cl"].result_list) == 3


def test_an_approver_who_asked_to_send_a_batch_does_not_count_it_as_theirs_to_decide(db, account, settings):
    client, approver = logged_in("approver")
    batch = uploaded_by(account, make_user("sender", "uploader"))
    settings.GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0"
    batch_send(batch=batch, user=approver)  # an approver may send another's batch: then another approver decides

    assert ALL_CLEAR in attention_section(start_page(client))


@pytest.mark.parametrize("role", READERS)
def test_a_paused_account_is_named_with_its_reason_and_linked(db, account, role):
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="GoGift refused the client credentials.",
                                                         blocked_at=timezone.now())
    ProviderAccount.objects.create(name="Working account", kind="gifty")
    client, _ = logged_in(role)

    page = start_page(client)
    links = attention_links(page)

    assert links == {"Sending is paused on GoGift sandbox":
                     reverse("admin:providers_provideraccount_change", args=[account.pk])}
    assert ("GoGift refused the client credentials. Fix it, then use “Resume sending” on the account."
            in attention_section(page))
    assert client.get(links["Sending is paused on GoGift sandbox"]).status_code == 200


@pytest.mark.parametrize("role", READERS)
def test_failed_orders_are_counted_and_linked_to_the_order_list_showing_exactly_them(db, account, role):
    batch = uploaded_by(account, make_user("sender", "uploader"), ["100", "200", "300", "400"])
    first, second, third, _ = batch.orders.order_by("id")
    failed(first)
    failed(second)
    failed(third, when=timezone.now() - timedelta(days=attention.RECENT_FAILURE_DAYS + 2))  # long ago
    client, _ = logged_in(role)

    page = start_page(client)
    links = attention_links(page)

    text = f"2 orders failed in the past {attention.RECENT_FAILURE_DAYS} days"
    assert list(links) == [text]
    assert "retry or resend them from the order list." in attention_section(page)
    assert links[text].startswith(f"{reverse('admin:orders_order_changelist')}?status__exact=failed&")
    listed = client.get(links[text])
    assert listed.status_code == 200
    assert sorted(order.pk for order in listed.context["cl"].result_list) == [first.pk, second.pk]


def test_one_failed_order_reads_in_the_singular(db, account):
    failed(make_batch(account, ["100"]).orders.get())
    client, _ = logged_in("sender")
    assert f"1 order failed in the past {attention.RECENT_FAILURE_DAYS} days" in attention_links(start_page(client))


def test_orders_a_monthly_limit_holds_back_are_counted_and_linked(db, account):
    batch = make_batch(account, ["100", "200", "300"])
    first, second, third = batch.orders.order_by("id")
    held = f"{WAIT_REASON_START}DKK limit of GoGift sandbox: 9,950.00 of 10,000.00 DKK spent."
    Order.objects.filter(pk__in=[first.pk, second.pk]).update(status=OrderStatus.QUEUED, waiting_reason=held)
    Order.objects.filter(pk=third.pk).update(status=OrderStatus.QUEUED,  # the account's pause, not a limit
                                             waiting_reason="Sending is paused for the account: refused.")
    client, _ = logged_in("sender")

    links = attention_links(start_page(client))

    assert list(links) == ["2 orders wait for a monthly spending limit"]
    listed = client.get(links["2 orders wait for a monthly spending limit"])
    assert listed.status_code == 200
    assert sorted(order.pk for order in listed.context["cl"].result_list) == [first.pk, second.pk]


def test_everything_at_once_in_one_list(db, account, settings):
    awaiting_approval(account, make_user("sender", "uploader"), settings)
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="Insufficient funds.")
    failed(make_batch(account, ["100"]).orders.get())
    client, _ = logged_in("approver")

    page = start_page(client)

    assert ALL_CLEAR not in attention_section(page)
    assert list(attention_links(page)) == [
        "1 batch awaits your approval", "Sending is paused on GoGift sandbox",
        f"1 order failed in the past {attention.RECENT_FAILURE_DAYS} days"]


# --- Cheap at a million orders ----------------------------------------------------------------------------------


def fill(account: ProviderAccount, settings, uploader: User, times: int) -> None:
    """`times` of each thing that needs attention."""
    for index in range(times):
        awaiting_approval(account, uploader, settings)
        ProviderAccount.objects.create(name=f"Paused {ProviderAccount.objects.count()}", kind="gifty",
                                       blocked_reason="Refused.")
        batch = make_batch(account, ["100", "200"])
        failed(batch.orders.order_by("id").first())
        Order.objects.filter(pk=batch.orders.order_by("id").last().pk).update(
            status=OrderStatus.QUEUED, waiting_reason=f"{WAIT_REASON_START}DKK limit.")


def index_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        start_page(client)
    return len(queries)


# Session, user, the user's permissions (two; none for an administrator), Django's "Recent
# actions", and one each for approvals, paused accounts, failed and held-back orders.
MAX_QUERIES = 9


@pytest.mark.parametrize("role", ["sender", "admin"])
def test_the_start_page_takes_a_handful_of_queries_however_much_needs_attention(
        db, account, settings, django_assert_max_num_queries, role):
    client, _ = logged_in(role)
    uploader = make_user("sender", "uploader")
    fill(account, settings, uploader, 1)
    few = index_queries(client)
    fill(account, settings, uploader, 6)

    with django_assert_max_num_queries(MAX_QUERIES):
        page = start_page(client)

    assert index_queries(client) == few  # no query per batch, account or order
    assert "7 batches await" in page and "Sending is paused on Paused 7" in page
    assert f"7 orders failed in the past {attention.RECENT_FAILURE_DAYS} days" in page
    assert "7 orders wait for a monthly spending limit" in page


@pytest.mark.skipif(connection.vendor != "sqlite", reason="reads SQLite's query plan")
def test_no_attention_query_scans_the_whole_order_or_batch_table(db, account, settings):
    fill(account, settings, make_user("sender", "uploader"), 1)
    approver = make_user("approver")
    with CaptureQueriesContext(connection) as queries:
        attention.batches_awaiting_approval()
        attention.batches_awaiting_approval(decider=approver)
        attention.failed_orders_since(attention.recent_failures_start())
        attention.orders_waiting_for_a_limit()
    plans = []
    with connection.cursor() as cursor:
        for query in queries:
            if query["sql"].startswith("SELECT COUNT"):
                cursor.execute(f"EXPLAIN QUERY PLAN {query['sql']}")
                plans.append(" | ".join(row[-1] for row in cursor.fetchall()))
    assert len(plans) == 4
    for plan in plans:
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
        assert not re.search(r"\bSCAN (orders_order|orders_batch)\b", plan), plan
    # Recent failures: the search narrows on completed_at too, not only on the status.
    assert re.search(r"USING (COVERING )?INDEX \w+ \(status=\? AND completed_at>\?\)", plans[2]), plans[2]


# --- Django's app list, below ---------------------------------------------------------------------------------


def test_the_app_list_puts_giftdesks_own_apps_first(db):
    client, _ = logged_in("admin")
    page = start_page(client)

    order = re.findall(r'<div class="app-([a-z_]+) module', page)
    assert order[:3] == ["orders", "providers", "audit"]
    assert set(order[3:]) >= {"auth", "django_q"}
    app_list = page[page.index('<div class="app-orders'):]
    assert app_list.index(">Batches<") < app_list.index(">Orders<") < app_list.index(">Provider accounts<")


ADMINISTRATORS_PAGES = ["django_q_success", "django_q_failure", "django_q_schedule", "orders_submission",
                        "providers_webhookevent"]


def test_a_senders_start_page_lists_no_task_queue_submissions_or_webhook_events(db):
    client, _ = logged_in("sender")
    page = start_page(client)

    assert [model for model in ADMINISTRATORS_PAGES if reverse(f"admin:{model}_changelist") in page] == []
    assert "app-django_q" not in page and "Task queue" not in page
    assert reverse("admin:orders_batch_changelist") in page  # the list is there, just without those


def test_an_administrators_start_page_still_lists_them(db):
    client, _ = logged_in("admin")
    page = start_page(client)

    assert [model for model in ADMINISTRATORS_PAGES if reverse(f"admin:{model}_changelist") not in page] == []

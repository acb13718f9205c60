"""An order's page and list (issue 10, findings 1 and 2): the spreadsheet's own reference is
shown, searchable and exported; an order's page shows its own card's part of each provider
call, never the basket's other recipients."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from orders import dispatch, events
from orders.batches import batch_create, batch_send
from orders.models import Order, OrderStatus, Recipient
from orders.spreadsheet import ValidRow
from providers.models import Product, ProviderAccount
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU

CHANGELIST = reverse("admin:orders_order_changelist")
PEOPLE = [("Mette Frederiksen Holm", "mette.holm@example.com"), ("Lars Østergaard", "lars.ostergaard@example.com"),
          ("Sofie Nørgaard", "sofie.norgaard@example.com"), ("Anders Bech", "anders.bech@example.com"),
          ("Ida Kjær", "ida.kjaer@example.com"), ("Jonas Vestergaard", "jonas.vestergaard@example.com")]
# What GoGift refuses (it has no dot after the @) but quotes back in its refusal: the basket's
# refusal, stored once for every card, then names this recipient on everyone's page.
BAD_EMAIL = "jonas.vestergaard@example"


pytestmark = pytest.mark.usefixtures("fast_retries")  # tests/fixtures/engine.py


def spreadsheet_batch(account, people=PEOPLE):
    """A batch as an upload of examples/recipients.csv makes it: each row with its reference."""
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    rows = [ValidRow(row=index + 2, name=name, email=email, phone="", reference=f"EMP-{1001 + index}",
                     message="Tak!", amount=Decimal(100 + 10 * index), currency="DKK", product=product, send_on=None)
            for index, (name, email) in enumerate(people)]
    return batch_create(account=account, rows=rows, source_filename="recipients.csv")


def sent_basket(account):
    """One GoGift basket for six cards, refused for one bad email, then each card alone."""
    ProviderAccount.objects.filter(pk=account.pk).update(max_cards_per_request=len(PEOPLE))
    batch = spreadsheet_batch(account)
    Recipient.objects.filter(orders__batch=batch, email=PEOPLE[-1][1]).update(email=BAD_EMAIL)
    batch_send(batch=batch)
    dispatch.account_pump(account.pk, budget_seconds=30)
    return batch


def order_page(client, order) -> str:
    response = client.get(reverse("admin:orders_order_change", args=[order.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_an_order_page_shows_its_own_card_of_a_basket_and_no_other_recipient(admin_client, emulated_gogift_account):
    batch = sent_basket(emulated_gogift_account)
    orders = list(batch.orders.select_related("recipient").order_by("id"))
    mette = orders[0]
    refusal = mette.provider_calls.get(http_status__gte=400)
    assert refusal.orders.count() == 6 and BAD_EMAIL in refusal.response_body  # what the page must not show
    assert mette.status == OrderStatus.DELIVERED

    html = order_page(admin_client, mette)

    others = [order.recipient for order in orders[1:]]
    assert [person.email for person in others if person.email in html] == []
    assert [person.name for person in others if person.name in html] == []
    assert "[another recipient]" in html  # the refusal's text, its email replaced
    assert mette.reference in html and "EMP-1001" in html
    assert [order.reference for order in orders[1:] if order.reference in html] == []
    assert "5 other cards of this call hidden" in html  # the basket's lines, each call once
    assert 'id="provider-calls"' in html
    calls = list(mette.provider_calls.all())
    assert html.count('<details class="provider-call') == len(calls)
    for call in calls:
        assert f'id="call-{call.pk}"' in html


def test_the_card_that_failed_alone_shows_its_own_email_only(admin_client, emulated_gogift_account):
    batch = sent_basket(emulated_gogift_account)
    jonas = batch.orders.get(recipient__email=BAD_EMAIL)
    assert jonas.status == OrderStatus.FAILED

    html = order_page(admin_client, jonas)

    assert BAD_EMAIL in html
    assert [email for _, email in PEOPLE[:-1] if email in html] == []


def test_every_call_is_collapsed_and_summarised_by_method_path_status_and_duration(admin_client, emulated_gogift_account):
    batch = sent_basket(emulated_gogift_account)
    order = batch.orders.order_by("id").first()
    finalize = order.provider_calls.filter(url__endswith="/baskets/finalize").first()

    html = order_page(admin_client, order)

    block = html[html.index(f'id="call-{finalize.pk}"'):]
    block = block[:block.index("</details>")]
    summary = block[block.index("<summary>"):block.index("</summary>")]
    assert "POST" in summary and "/baskets/finalize" in summary and f"{finalize.http_status}" in summary
    assert f"{finalize.duration_ms} ms" in summary and "<time datetime=" in summary
    assert "<details class=\"provider-call\" open" not in html and " open>" not in html
    assert '<pre class="provider-call-body">{\n  &quot;' in block  # pretty-printed, indent 2


def test_the_list_shows_and_searches_the_spreadsheet_reference(admin_client, emulated_gogift_account):
    batch = spreadsheet_batch(emulated_gogift_account)
    sofie = batch.orders.get(recipient__reference="EMP-1003")

    html = admin_client.get(CHANGELIST, {"q": "EMP-1003"}).content.decode()

    assert "column-spreadsheet_reference" in html and 'class="field-spreadsheet_reference">EMP-1003<' in html
    assert "Reference (spreadsheet)" in html
    assert "GiftDesk reference" in html
    assert sofie.reference in html and "EMP-1003" in html
    assert [order.reference for order in batch.orders.exclude(pk=sofie.pk) if order.reference in html] == []
    found = admin_client.get(CHANGELIST, {"q": "emp-1003"}).context["cl"].result_list
    assert list(found) == [sofie]


def test_the_order_page_labels_both_references(admin_client, emulated_gogift_account):
    order = spreadsheet_batch(emulated_gogift_account).orders.order_by("id").first()

    html = order_page(admin_client, order)

    assert "GiftDesk reference" in html and "Reference (spreadsheet)" in html
    assert html.index("Reference (spreadsheet)") < html.index("GiftDesk reference")  # next to the recipient
    assert "field-spreadsheet_reference" in html and "EMP-1001" in html


def test_both_exports_carry_the_spreadsheet_reference(admin_client, emulated_gogift_account, tmp_path):
    batch = spreadsheet_batch(emulated_gogift_account)
    ids = list(batch.orders.order_by("id").values_list("pk", flat=True))

    export_page = admin_client.post(CHANGELIST, {"action": "export_selected_orders", "_selected_action": ids})
    admin_file = admin_client.post(export_page["Location"], {"format": "csv"})
    call_command("export_orders", "--format", "csv", "--output", str(tmp_path / "orders.csv"), stdout=io.StringIO())

    admin_text = b"".join(admin_file.streaming_content).decode()
    admin_rows = list(csv.DictReader(io.StringIO(admin_text.removeprefix("\ufeff"))))
    command_rows = list(csv.DictReader(io.StringIO((tmp_path / "orders.csv").read_text("utf-8-sig"))))
    expected = {order.reference: order.recipient.reference for order in Order.objects.filter(pk__in=ids)}
    for rows in (admin_rows, command_rows):
        assert {row["reference"]: row["recipient_reference"] for row in rows} == expected
    assert sorted(expected.values()) == [f"EMP-{1001 + index}" for index in range(len(PEOPLE))]


def test_a_provider_whose_lines_name_no_card_is_narrowed_by_position(admin_client, emulated_giftronaut_account):
    # Giftronaut's `recipients` carry only redacted names and an amount, in the request's
    # order (its client's cards_in_order_lists); its refusal quotes the recipient's email.
    product = Product.objects.get(account=emulated_giftronaut_account, sku="GC-AMAZON-USD")
    rows = [ValidRow(row=index + 2, name=name, email=email, phone="", reference=f"EMP-{1001 + index}", message="Tak!",
                     amount=Decimal(amount), currency="USD", product=product, send_on=None)
            for index, ((name, email), amount) in enumerate(zip(PEOPLE, ["50", "60", "25"]))]
    batch = batch_create(account=emulated_giftronaut_account, rows=rows, source_filename="recipients.csv")
    batch_send(batch=batch)
    dispatch.account_pump(emulated_giftronaut_account.pk, budget_seconds=5)  # the refusal comes first
    first = batch.orders.select_related("recipient").order_by("id").first()
    refusal = first.provider_calls.get(http_status__gte=400)
    assert refusal.orders.count() == 3 and PEOPLE[1][1] in refusal.response_body

    html = order_page(admin_client, first)

    assert [email for _, email in PEOPLE[1:] if email in html] == []
    assert "[another recipient]" in html
    request = html[html.index(f'id="call-{refusal.pk}"'):]
    request = request[:request.index("Response body")]
    assert "… 2 other cards of this call hidden" in request and "&quot;amount&quot;: 50" in request
    assert "&quot;amount&quot;: 60" not in request and "&quot;amount&quot;: 25" not in request


def failed_basket(account, gogift_emulator):
    """One GoGift basket for six cards that fails as a whole: a 500 first, then (the second
    attempt, not split) the refusal of one bad email, copied onto every card's last error."""
    ProviderAccount.objects.filter(pk=account.pk).update(max_cards_per_request=len(PEOPLE))
    batch = spreadsheet_batch(account)
    Recipient.objects.filter(orders__batch=batch, email=PEOPLE[-1][1]).update(email=BAD_EMAIL)
    gogift_emulator.faults.add("http_500", path="/baskets", times=1)
    batch_send(batch=batch)
    dispatch.account_pump(account.pk, budget_seconds=30)
    return batch


def test_a_basket_refused_as_a_whole_names_no_other_recipient_anywhere_on_a_cards_page(
        admin_client, emulated_gogift_account, gogift_emulator):
    batch = failed_basket(emulated_gogift_account, gogift_emulator)
    orders = list(batch.orders.select_related("recipient").order_by("id"))
    mette = orders[0]
    assert {order.status for order in orders} == {OrderStatus.FAILED}
    assert BAD_EMAIL in mette.last_error and len({order.last_error for order in orders}) == 1  # shared
    # A note naming no call (as a rate limit's does) in the provider's words, and a wait.
    events.record_note([mette], actor="worker", message=f"GoGift said: {PEOPLE[1][0]} <{PEOPLE[1][1]}> is busy.")
    Order.objects.filter(pk=mette.pk).update(waiting_reason=f"Held back for {PEOPLE[2][0]}.",
                                             provider_details={"note": f"sent with {PEOPLE[3][1]}"})

    html = order_page(admin_client, mette)

    assert [email for _, email in PEOPLE[1:-1] if email in html] == [] and BAD_EMAIL not in html
    assert [name for name, _ in PEOPLE[1:] if name in html] == []
    for field in ("last_error_shown", "waiting_reason_shown", "provider_details_shown"):
        assert f"field-{field}" in html, field
        shown = html[html.index(f"field-{field}"):]
        assert "[another recipient]" in shown[:shown.index("</div>\n")], field
    assert "Last error" in html and "Waiting for" in html
    assert 'class="field-last_error"' not in html and 'class="field-waiting_reason"' not in html
    assert "GoGift said: [another recipient] &lt;[another recipient]&gt; is busy." in html
    assert PEOPLE[0][1] in html  # its own recipient stays


def test_the_order_list_shows_a_basket_refusal_with_another_recipients_email_on_that_row_only(
        admin_client, emulated_gogift_account, gogift_emulator):
    batch = failed_basket(emulated_gogift_account, gogift_emulator)

    html = admin_client.get(CHANGELIST, {"batch__id__exact": batch.pk}).content.decode()

    rows = {row.split("</tr>")[0] for row in html.split("<tr")[1:]}
    errors = {order.reference: [row for row in rows if order.reference in row][0].split('class="field-short_error">')[1]
              for order in batch.orders.select_related("recipient")}
    jonas = batch.orders.get(recipient__email=BAD_EMAIL).reference
    assert BAD_EMAIL in errors.pop(jonas)
    assert [reference for reference, error in errors.items() if BAD_EMAIL in error] == []
    assert all("[another recipient]" in error for error in errors.values()), errors


def test_the_order_page_reads_as_many_queries_with_many_calls_as_with_few(
        admin_client, emulated_gogift_account, django_assert_max_num_queries):
    batch = sent_basket(emulated_gogift_account)
    mette = batch.orders.order_by("id").first()
    with CaptureQueriesContext(connection) as first:
        order_page(admin_client, mette)
    calls = list(mette.provider_calls.all())
    for call in calls * 3:  # three times the calls, each with its cards and a history event
        carried = list(call.orders.all())
        call.pk = None
        call.save()
        call.orders.set(carried)
        events.record_note([mette], actor="worker", message="Again.", provider_call=call)
    assert mette.provider_calls.count() == 4 * len(calls)

    with django_assert_max_num_queries(len(first)):
        html = order_page(admin_client, mette)
    assert html.count('<details class="provider-call') == 4 * len(calls)


def test_the_batch_page_and_the_resend_page_show_a_basket_refusal_without_other_recipients(
        admin_client, emulated_gogift_account, gogift_emulator):
    batch = failed_basket(emulated_gogift_account, gogift_emulator)
    mette = batch.orders.select_related("recipient").get(recipient__email=PEOPLE[0][1])

    batch_page = admin_client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    rows = {row.split("</tr>")[0] for row in batch_page.split('<div class="giftdesk-orders">')[1].split("<tr")[2:]}
    # Each row keeps its own recipient; the refusal quoting Jonas's email reads only on his row.
    assert len([row for row in rows if BAD_EMAIL in row]) == 1
    assert sum("[another recipient]" in row for row in rows) == len(PEOPLE) - 1

    resend_page = admin_client.post(CHANGELIST, {"action": "resend_order", "_selected_action": [mette.pk]})
    html = resend_page.content.decode()
    assert resend_page.status_code == 200 and "Resend to a corrected email" in html
    assert BAD_EMAIL not in html and "[another recipient]" in html
    assert [name for name, _ in PEOPLE[1:] if name in html] == []

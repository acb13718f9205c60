"""A batch's progress (issue 10, finding 10): proportions per status, the expected finish at
the account's rate limit (Gifty: 120 requests a minute, one card each), the bar on the batch
page and in the list, and the JSON the page's script reads while the batch sends."""

from __future__ import annotations

import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from orders.batch_confirmation import send_summary
from orders.batch_totals import batch_totals_refresh
from orders.models import Batch, BatchState, Order, OrderStatus
from orders.progress import batch_progress, duration_text, progress_of, sending_seconds
from orders.spending import WAIT_REASON_START
from providers.models import PricingKind, Product, ProviderAccount
from tests.fixtures.data import make_batch, person

NOW = datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def gifty(db) -> ProviderAccount:
    """A Gifty account at its documented 120 requests a minute (one card per request)."""
    account = ProviderAccount.objects.create(name="Gifty", kind="gifty", environment="production",
                                             rate_limit_per_minute=120, max_cards_per_request=10)
    Product.objects.create(account=account, provider_product_id="gc_co_giftdesk_standard", sku="GIFTY-STD",
                           title="Gift card", currency="EUR", pricing=PricingKind.RANGE,
                           min_amount=Decimal("5"), max_amount=Decimal("500"))
    return account


def sending(account, cards: int) -> Batch:
    """A batch whose `cards` orders are all queued: sent, waiting for the workers."""
    batch = make_batch(account, ["25"] * cards, sku="GIFTY-STD")
    batch.orders.update(status=OrderStatus.QUEUED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)
    return Batch.objects.select_related("account").get(pk=batch.pk)


# --- The computation ------------------------------------------------------------------------------


def test_the_segments_are_proportions_of_all_orders_in_the_bars_order():
    progress = progress_of({"delivered": 5, "processing": 2, "queued": 1, "sending": 1, "failed": 1},
                           state=BatchState.SENDING)

    assert [(s.key, s.count, s.percent, s.offset) for s in progress.segments] == [
        ("delivered", 5, 50.0, 0.0), ("processing", 2, 20.0, 50.0), ("waiting", 2, 20.0, 70.0),
        ("failed", 1, 10.0, 90.0), ("cancelled", 0, 0.0, 100.0)]
    assert progress.total == 10 and progress.finished == 6 and progress.finished_percent == 60
    assert progress.summary == "6 of 10 orders finished (60%)"
    assert progress.counts_text == "5 delivered, 2 processing, 2 waiting, 1 failed"


def test_pending_queued_and_sending_all_count_as_waiting_and_the_finished_percent_rounds_down():
    progress = progress_of({"pending": 1, "queued": 1, "sending": 1, "delivered": 2, "cancelled": 1,
                            "failed": 0, "processing": 0}, state=BatchState.SENDING)

    assert {s.key: s.count for s in progress.segments}["waiting"] == 3
    assert progress.finished_percent == 50  # 3 of 6
    assert progress_of({"delivered": 2, "queued": 1}, state=BatchState.SENDING).finished_percent == 66
    assert progress_of({"delivered": 3}, state=BatchState.COMPLETED).finished_percent == 100
    assert progress_of({}, state=BatchState.PENDING).finished_percent == 0


def test_the_rate_limit_makes_a_thousand_gifty_cards_take_eight_minutes_twenty(gifty):
    assert sending_seconds(cards=1000, cards_per_request=1, requests_per_minute=120) == pytest.approx(1000 * 61 / 120)  # the limiter's 61 s a limit
    assert sending_seconds(cards=1000, cards_per_request=3, requests_per_minute=60) == pytest.approx(334 * 61 / 60)
    assert sending_seconds(cards=0, cards_per_request=1, requests_per_minute=120) == 0
    assert duration_text(500) == "8 minutes" and duration_text(25_000) == "6 hours 57 minutes"
    assert duration_text(60) == "1 minute" and duration_text(3600 * 2) == "2 hours"


def test_a_sending_gifty_batch_of_a_thousand_cards_expects_to_finish_in_about_eight_minutes(gifty):
    batch = sending(gifty, 1000)

    progress = batch_progress(batch, now=NOW)

    assert progress.remaining_seconds == pytest.approx(500 * 61 / 60)  # one card per request: Gifty's cap, not the account's 10
    assert progress.finish_at == NOW + datetime.timedelta(seconds=1000 * 61 / 120)
    expected_at = timezone.localtime(NOW + datetime.timedelta(seconds=1000 * 61 / 120))
    assert progress.eta_text.startswith("About 8 minutes left at the account's rate limit, finishing around ")
    assert f"{expected_at:%H:%M}" in progress.eta_text
    assert progress.as_json()["remaining_seconds"] == 508


def test_cards_of_other_batches_queued_first_on_the_account_count_towards_the_wait(gifty):
    sending(gifty, 200)
    batch = sending(gifty, 1000)

    assert batch_progress(batch).remaining_seconds == pytest.approx(600 * 61 / 60)


def test_under_a_minute_and_a_half_no_estimate_is_given(gifty):
    batch = sending(gifty, 100)  # 50 seconds

    progress = batch_progress(batch)

    assert progress.remaining_seconds == pytest.approx(50 * 61 / 60) and progress.eta_text == ""


def test_a_paused_account_or_a_batch_not_sending_gives_no_estimate(gifty):
    batch = sending(gifty, 1000)
    ProviderAccount.objects.filter(pk=gifty.pk).update(blocked_reason="Gifty refused the API token.")
    batch = Batch.objects.select_related("account").get(pk=batch.pk)

    paused = batch_progress(batch)

    assert paused.remaining_seconds is None and paused.eta_text == ""
    assert paused.note == "Sending on Gifty is paused: Gifty refused the API token."
    pending = make_batch(gifty, ["25"] * 10, sku="GIFTY-STD")
    assert batch_progress(pending).remaining_seconds is None


def test_cards_held_by_a_spending_limit_are_said_not_timed(gifty):
    batch = sending(gifty, 1000)
    held = list(batch.orders.order_by("id").values_list("pk", flat=True)[:400])
    Order.objects.filter(pk__in=held).update(waiting_reason=WAIT_REASON_START + "EUR limit of “Gifty”: …")

    progress = batch_progress(batch)

    assert progress.remaining_seconds == pytest.approx(300 * 61 / 60)  # the other 600
    assert progress.note.startswith("400 orders wait for a monthly spending limit of Gifty")


def test_the_send_page_waits_behind_the_cards_the_bar_counts_not_those_a_limit_holds(gifty):
    earlier = sending(gifty, 200)
    Order.objects.filter(pk__in=list(earlier.orders.order_by("id").values_list("pk", flat=True)[:100])).update(
        waiting_reason=WAIT_REASON_START + "EUR limit of “Gifty”: …")
    batch = sending(gifty, 1000)
    about_to_send = make_batch(gifty, ["25"] * 1000, sku="GIFTY-STD")

    assert batch_progress(batch).remaining_seconds == pytest.approx(550 * 61 / 60)  # its 1,000 after the 100 of `earlier` not held

    summary = send_summary(about_to_send)
    assert summary.ahead == 1100  # the same rule: all of `batch` and the 100 not held, never the held ones
    assert summary.duration_seconds == pytest.approx(1050 * 61 / 60)
    assert summary.duration_text == ("About 18 minutes at the account's limit of 120 requests a minute, "
                                     "after 1,100 cards already queued on the account.")


# --- On the pages ------------------------------------------------------------------------------------------


def bar_of(html: str) -> str:
    match = re.search(r'<div id="batch-progress".*?</div>', html, re.S)
    assert match, "no #batch-progress on the page"
    return match.group(0)


def test_the_batch_page_draws_the_bar_with_its_attributes_and_no_inline_style(
    admin_client, emulated_gogift_account
):
    batch = make_batch(emulated_gogift_account, ["100"] * 4)
    first, second, *_ = batch.orders.order_by("id")
    Order.objects.filter(pk=first.pk).update(status=OrderStatus.DELIVERED)
    Order.objects.filter(pk=second.pk).update(status=OrderStatus.FAILED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)

    html = admin_client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()

    bar = bar_of(html)
    assert 'role="progressbar"' in bar and 'aria-valuenow="50"' in bar and 'aria-valuemax="100"' in bar
    assert 'data-finished-percent="50"' in bar and 'data-state="sending"' in bar
    assert f'data-progress-url="{reverse("admin:orders_batch_progress", args=[batch.pk])}"' in bar
    assert '<rect class="segment-delivered" data-segment="delivered" x="0.00%" y="0" width="25.00%"' in bar
    assert '<rect class="segment-waiting" data-segment="waiting" x="25.00%" y="0" width="50.00%"' in bar
    assert '<rect class="segment-failed" data-segment="failed" x="75.00%" y="0" width="25.00%"' in bar
    assert "2 of 4 orders finished (50%)" in bar and 'data-count="waiting">2<' in bar
    assert " style=" not in html and "giftdesk/follow_send.js" in html


def test_a_finished_batch_page_loads_no_follow_script(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    batch.orders.update(status=OrderStatus.DELIVERED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.COMPLETED)

    html = admin_client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()

    assert 'data-finished-percent="100"' in bar_of(html) and "follow_send.js" not in html


def test_the_batch_list_shows_a_small_bar_per_batch(admin_client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "100", "100"])
    Order.objects.filter(pk=batch.orders.order_by("id").first().pk).update(status=OrderStatus.FAILED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand

    html = admin_client.get(reverse("admin:orders_batch_changelist")).content.decode()

    assert 'class="giftdesk-bar giftdesk-bar-compact"' in html
    assert 'aria-label="1 of 3 orders finished (33%): 2 waiting, 1 failed"' in html
    assert "1/3 finished" in html and "1 failed</span>" in html


# --- The JSON the script reads -----------------------------------------------------------------------------


def test_the_progress_endpoint_answers_json_to_whoever_may_view_the_batch(client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100", "100"])
    Order.objects.filter(pk=batch.orders.order_by("id").first().pk).update(status=OrderStatus.DELIVERED)
    batch_totals_refresh([batch.pk])  # the stored counts follow statuses set by hand
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)
    url = reverse("admin:orders_batch_progress", args=[batch.pk])
    client.force_login(person("fin", "Finance"))  # reads batches; sends nothing

    response = client.get(url)

    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert (data["state"], data["finished_percent"], data["total"], data["finished"]) == ("sending", 50, 2, 1)
    assert data["segments"][0] == {"key": "delivered", "label": "Delivered", "count": 1, "percent": 50.0,
                                   "offset": 0.0}
    assert data["summary"] == "1 of 2 orders finished (50%)" and data["eta_text"] == ""
    assert client.post(url).status_code == 405


def test_the_progress_endpoint_refuses_those_who_may_not_view_batches(client, emulated_gogift_account):
    batch = make_batch(emulated_gogift_account, ["100"])
    url = reverse("admin:orders_batch_progress", args=[batch.pk])
    client.force_login(person("nobody"))  # staff, in no group

    assert client.get(url).status_code == 403
    client.logout()
    assert client.get(url).status_code == 302  # to the login page

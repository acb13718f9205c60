"""Provider calls' bodies (orders.call_retention, issue 12): stored compact and cut at a size,
the cut marked; blanked after GIFTDESK_CALL_BODY_RETENTION_DAYS by a daily task in short
statements, the call itself kept; the order page says when they were removed."""

from __future__ import annotations

import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from orders import call_retention, tasks
from orders.call_excerpts import Card, CallCards, body_excerpt
from orders.call_retention import body_cut_at, body_stored, bodies_blank
from orders.events import record_call
from orders.models import ProviderCall, Submission
from providers.clients.base import MAX_RECORDED_BODY, CallRecord
from tests.fixtures.data import make_batch

BASKET = {"reference": "gd-key", "addProducts": [
    {"recipientName": "[redacted]", "reference": f"GD-{index:04d}AAAABBBB", "giftcardValue": 100 + index}
    for index in range(40)]}


# --- Stored compact, cut at a size ----------------------------------------------------------------


def test_a_json_body_is_stored_compact_and_means_the_same():
    spaced = json.dumps(BASKET, indent=2)

    stored = body_stored(spaced, limit=0)

    assert json.loads(stored) == BASKET and list(json.loads(stored)) == list(BASKET)
    assert stored == json.dumps(BASKET, separators=(",", ":")) and len(stored) < len(json.dumps(BASKET))


def test_a_body_that_is_not_json_is_stored_as_it_came():
    assert body_stored("[not JSON: 512 characters, not recorded]") == "[not JSON: 512 characters, not recorded]"
    assert body_stored("") == ""


def test_a_long_body_is_cut_at_the_limit_and_says_so():
    whole = json.dumps(BASKET, separators=(",", ":"))

    stored = body_stored(whole, limit=600)

    assert len(stored.encode()) <= 600 and stored.endswith("\n… cut at 600 bytes")
    assert whole.startswith(stored.removesuffix("\n… cut at 600 bytes"))
    assert body_cut_at(stored) == 600 and body_cut_at(whole) is None


def test_the_limit_comes_from_the_setting_and_zero_keeps_bodies_whole(settings):
    whole = json.dumps(BASKET, separators=(",", ":"))
    settings.GIFTDESK_CALL_BODY_MAX_BYTES = 500
    assert body_cut_at(body_stored(whole)) == 500
    settings.GIFTDESK_CALL_BODY_MAX_BYTES = 0
    assert body_stored(whole) == whole


def test_a_cut_never_splits_a_letter():
    body = json.dumps({"name": "Ø" * 400}, ensure_ascii=False)

    stored = body_stored(body, limit=101)

    assert len(stored.encode()) <= 101
    stored.encode().decode()  # whole characters only
    assert stored.startswith('{"name":"ØØ') and stored.endswith("… cut at 101 bytes")


def test_an_answer_the_client_already_cut_is_marked_as_cut():
    # providers.clients.base keeps MAX_RECORDED_BODY characters of an answer, unmarked.
    answer = json.dumps({"deliveries": [BASKET] * 20})[:MAX_RECORDED_BODY]

    stored = body_stored(answer, limit=0)

    assert stored.startswith(answer) and body_cut_at(stored) == MAX_RECORDED_BODY


def test_a_lone_surrogate_stays_escaped():
    assert body_stored('{"a": "\\ud800"}', limit=0) == '{"a":"\\ud800"}'


def test_a_cut_body_of_a_basket_is_withheld_and_the_note_says_where_it_was_cut():
    cards = CallCards(cards=(Card(frozenset({"gd-0001aaaabbbb"}), frozenset({"Ann"})),
                             Card(frozenset({"gd-0002aaaabbbb"}), frozenset({"Bob"}))), this=0)
    cut = body_stored(json.dumps(BASKET), limit=300)

    excerpt = body_excerpt(cut, cards)

    assert excerpt.text == "" and "cut at 300 bytes when it was stored" in excerpt.note
    alone = CallCards(cards=cards.cards[:1], this=0)
    assert body_excerpt(cut, alone).text == cut  # one card's own call: shown, the marker with it


# --- Recorded once per call ----------------------------------------------------------------------


@pytest.fixture
def submission(gogift_account, global_gift_card):
    batch = make_batch(gogift_account, ["100", "200"])
    submission = Submission.objects.create(account=gogift_account, idempotency_key="gd-retention")
    batch.orders.update(submission=submission)
    return submission


def call(submission, *, days_old: float = 0, request: str = '{"a": 1}', response: str = '{"ok": true}',
         status: int | None = 200, error: str = "") -> ProviderCall:
    stored = record_call(
        CallRecord(method="PUT", url="https://api.example/baskets", status=status, request_body=request,
                   response_body=response, duration_ms=120, error=error),
        order_ids=list(submission.orders.values_list("id", flat=True)), actor="worker test",
        submission_id=submission.pk)
    ProviderCall.objects.filter(pk=stored.pk).update(created_at=timezone.now() - timedelta(days=days_old))
    return stored


def test_record_call_stores_the_bodies_compact_and_cut(submission, settings):
    settings.GIFTDESK_CALL_BODY_MAX_BYTES = 400

    stored = call(submission, request=json.dumps(BASKET, indent=2), response='{"id": "330000000000000001"}')

    stored.refresh_from_db()
    assert body_cut_at(stored.request_body) == 400 and len(stored.request_body.encode()) <= 400
    assert stored.response_body == '{"id":"330000000000000001"}'


# --- Blanked after the retention days ------------------------------------------------------------


def test_bodies_older_than_the_days_are_blanked_and_the_call_kept(submission):
    old = call(submission, days_old=91, status=None, error="timed out")
    recent = call(submission, days_old=89)
    linked = set(old.orders.values_list("id", flat=True))

    assert bodies_blank(older_than_days=90) == (1, False)

    old.refresh_from_db()
    recent.refresh_from_db()
    assert (old.request_body, old.response_body, old.bodies_kept_days) == ("", "", 90)
    assert (old.method, old.url, old.http_status, old.duration_ms, old.error) == (
        "PUT", "https://api.example/baskets", None, 120, "timed out")
    assert set(old.orders.values_list("id", flat=True)) == linked and len(linked) == 2
    assert recent.request_body == '{"a":1}' and recent.bodies_kept_days is None
    assert bodies_blank(older_than_days=30) == (1, False)  # the recent one; the old one once only
    old.refresh_from_db()
    assert old.bodies_kept_days == 90


def test_blanking_goes_in_chunks_of_short_statements(submission):
    for _ in range(5):
        call(submission, days_old=100)

    with CaptureQueriesContext(connection) as queries:
        assert bodies_blank(older_than_days=90, chunk=2) == (5, False)

    updates = [query["sql"] for query in queries if query["sql"].startswith("UPDATE")]
    assert len(updates) == 3  # 2 + 2 + 1 rows
    assert not any("BEGIN" in query["sql"] or "SAVEPOINT" in query["sql"] for query in queries)  # no long transaction


def test_a_run_out_of_time_says_more_is_left(submission):
    for _ in range(3):
        call(submission, days_old=100)

    assert bodies_blank(older_than_days=90, chunk=2, budget_seconds=0) == (2, True)
    assert bodies_blank(older_than_days=90, chunk=2, budget_seconds=0) == (1, False)


def test_the_daily_task_uses_the_setting_and_zero_keeps_bodies_for_ever(submission, settings):
    old = call(submission, days_old=40)

    settings.GIFTDESK_CALL_BODY_RETENTION_DAYS = 0
    assert "kept for ever" in tasks.call_bodies_purge()
    old.refresh_from_db()
    assert old.bodies_kept_days is None

    settings.GIFTDESK_CALL_BODY_RETENTION_DAYS = 30
    assert tasks.call_bodies_purge() == "bodies of 1 call older than 30 days removed"
    old.refresh_from_db()
    assert old.request_body == "" and old.bodies_kept_days is not None


def test_the_task_queues_itself_again_while_a_backlog_is_left(monkeypatch, settings):
    settings.GIFTDESK_CALL_BODY_RETENTION_DAYS = 90
    queued = []
    monkeypatch.setattr(call_retention, "bodies_blank", lambda **options: (5000, True))
    monkeypatch.setattr("django_q.tasks.async_task", lambda *args, **options: queued.append(args))

    assert tasks.call_bodies_purge().endswith("more to remove: queued again")
    assert queued == [("orders.tasks.call_bodies_purge",)]


def test_the_daily_schedule_is_created_once_by_the_migration(db):
    migration = importlib.import_module("orders.migrations.0022_call_body_retention")
    migration.create_schedule(django_apps, None)  # again: still one

    schedule = Schedule.objects.get(name="giftdesk-call-body-retention")
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "orders.tasks.call_bodies_purge", Schedule.DAILY, -1)
    migration.remove_schedule(django_apps, None)
    assert not Schedule.objects.filter(name="giftdesk-call-body-retention").exists()


def test_the_order_page_says_when_the_bodies_were_removed(admin_client, submission):
    old = call(submission, days_old=95, request='{"secretless": "request"}')
    bodies_blank(older_than_days=90)
    order = submission.orders.order_by("id").first()

    html = admin_client.get(reverse("admin:orders_order_change", args=[order.pk])).content.decode()

    assert f'id="call-{old.pk}"' in html and "https://api.example/baskets" in html  # still listed
    assert "Request and response body removed after 90 days" in html
    assert "secretless" not in html and "Request body</h3>" not in html


# --- The command ---------------------------------------------------------------------------------


def test_the_command_blanks_calls_older_than_the_days_given(submission, settings, capsys):
    settings.GIFTDESK_CALL_BODY_RETENTION_DAYS = 0
    old, recent = call(submission, days_old=10), call(submission, days_old=2)

    call_command("purge_call_bodies", "--older-than-days", "7")

    assert "Bodies of 1 provider call older than 7 days removed." in capsys.readouterr().out
    assert ProviderCall.objects.get(pk=old.pk).bodies_kept_days is not None
    assert ProviderCall.objects.get(pk=recent.pk).bodies_kept_days is None


def test_the_command_without_days_follows_the_setting(submission, settings, capsys):
    old = call(submission, days_old=10)
    settings.GIFTDESK_CALL_BODY_RETENTION_DAYS = 0

    call_command("purge_call_bodies")

    assert "kept for ever" in capsys.readouterr().out
    assert ProviderCall.objects.get(pk=old.pk).bodies_kept_days is None
    settings.GIFTDESK_CALL_BODY_RETENTION_DAYS = 5
    call_command("purge_call_bodies")
    assert ProviderCall.objects.get(pk=old.pk).bodies_kept_days is not None


def test_the_command_refuses_negative_days_with_status_2(submission):
    old = call(submission, days_old=10)

    with pytest.raises(CommandError) as refused:
        call_command("purge_call_bodies", "--older-than-days", "-1")

    assert refused.value.returncode == 2
    assert ProviderCall.objects.get(pk=old.pk).bodies_kept_days is None

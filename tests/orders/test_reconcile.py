"""`manage.py reconcile` and the admin's "Reconcile with the provider", against the emulators
over real HTTP: every card bought through the real engine, then changed on one side only."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone
from django_q.brokers import get_broker

from audit.models import AuditEntry
from emulators.ugiftme import BOL_CARD
from orders import dispatch, tasks
from orders.batches import batch_create, batch_send
from orders.models import Order, OrderStatus, ProviderCall, Reconciliation, ReconciliationState
from orders.reconciliation import reconciliation_request, reconciliation_run, reconciliation_start
from orders.spreadsheet import ValidRow
from providers.models import AccountPace, Product
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU, person
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD

GIFTRONAUT_AMAZON = "GC-AMAZON-USD"  # fixed 10, 25, 50, 100 USD


@pytest.fixture(autouse=True)
def fast_engine(settings):
    settings.GIFTDESK_POLL_SECONDS = 0.1
    settings.GIFTDESK_POLL_MAX_SECONDS = 0.2
    settings.GIFTDESK_RETRY_BASE_SECONDS = 0.05
    settings.GIFTDESK_RETRY_MAX_SECONDS = 0.2


def bought(account, amounts: list[str], *, product: Product, first: int = 0) -> list[Order]:
    """Cards bought through the real engine and followed until the provider finished them."""
    orders = sent(account, amounts, product=product, first=first)
    assert {order.status for order in orders} == {OrderStatus.DELIVERED}, [o.last_error for o in orders]
    return orders


def sent(account, amounts: list[str], *, product: Product, first: int = 0) -> list[Order]:
    """Cards sent through the real engine (one batch) until each is delivered or failed."""
    rows = [ValidRow(row=index + 2, name=f"Recipient {number}", email=f"r{number}@example.com", phone="",
                     reference=f"E{number:04d}", message="", amount=Decimal(amount), currency=product.currency,
                     product=product, send_on=None)
            for index, (number, amount) in enumerate(enumerate(amounts, start=first))]
    batch = batch_create(account=account, rows=rows, source_filename="test.csv")
    batch_send(batch=batch)
    deadline = time.monotonic() + 30
    while batch.orders.exclude(status__in=[OrderStatus.DELIVERED, OrderStatus.FAILED]).exists():
        assert time.monotonic() < deadline, list(batch.orders.values_list("status", "last_error"))
        dispatch.account_pump(account.pk, budget_seconds=1)
    return list(batch.orders.select_related("recipient").order_by("id"))


def gifty_cards(account, amounts=("25",), **kwargs) -> list[Order]:
    return bought(account, list(amounts),
                  product=Product.objects.get(account=account, provider_product_id=GIFTY_VARIABLE_CARD), **kwargs)


def ugiftme_cards(account, amounts=("25",), **kwargs) -> list[Order]:
    return bought(account, list(amounts), product=Product.objects.get(account=account, provider_product_id=BOL_CARD),
                  **kwargs)


def giftronaut_cards(account, amounts=("25",), **kwargs) -> list[Order]:
    return bought(account, list(amounts),
                  product=Product.objects.get(account=account, provider_product_id=GIFTRONAUT_AMAZON), **kwargs)


def reconcile(*args) -> tuple[int, str]:
    """Run the command as a shell would: its exit status and everything it printed."""
    out = StringIO()
    try:
        call_command("reconcile", *[str(arg) for arg in args], stdout=out, stderr=out)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


def unchanged(order: Order) -> None:
    """A reconciliation only reports: the order is exactly as it was."""
    again = Order.objects.get(pk=order.pk)
    assert (again.status, again.cost, again.updated_at, again.last_error) == (
        order.status, order.cost, order.updated_at, order.last_error)


# --- Everything agrees ------------------------------------------------------------------------------


def test_when_every_provider_agrees_it_says_so_and_exits_0(
        emulated_gifty_account, emulated_ugiftme_account, emulated_giftronaut_account):
    orders = [*gifty_cards(emulated_gifty_account, ["25", "40"]),
              *ugiftme_cards(emulated_ugiftme_account, ["25", "50"], first=10),
              *giftronaut_cards(emulated_giftronaut_account, ["25", "50", "100"], first=20)]
    orders = [Order.objects.get(pk=order.pk) for order in orders]

    code, output = reconcile()

    assert code == 0, output
    assert "Checked 7 orders on 3 accounts: everything agrees." in output
    assert "Nothing is changed" in output
    reconciliation = Reconciliation.objects.get()
    assert reconciliation.state == ReconciliationState.AGREED and reconciliation.lines == []
    assert (reconciliation.orders_checked, reconciliation.differences_count) == (7, 0)
    assert reconciliation.requested_by is None and reconciliation.finished_at
    for order in orders:
        unchanged(order)
    # Each lookup is recorded on its orders, by the reconciliation.
    lookups = ProviderCall.objects.filter(actor=str(reconciliation))
    assert lookups.filter(method="GET").count() == 4  # 2 Gifty orders, 1 UGiftMe request, 1 Giftronaut order
    assert {order.pk for call in lookups for order in call.orders.all()} == {order.pk for order in orders}
    entry = AuditEntry.objects.get(target_kind="reconciliation")
    assert entry.action == "reconcile" and "no order is changed" in entry.summary and entry.address == "command line"


# --- Differences ------------------------------------------------------------------------------------


def test_a_card_the_provider_has_but_giftdesk_marked_failed_is_a_difference(emulated_gifty_account):
    [kept, lost] = gifty_cards(emulated_gifty_account, ["25", "40"])
    Order.objects.filter(pk=lost.pk).update(status=OrderStatus.FAILED, last_error="No answer from Gifty.")

    code, output = reconcile()

    assert code == 1, output
    reconciliation = Reconciliation.objects.get()
    [line] = reconciliation.lines
    assert line == {
        "order_id": lost.pk, "reference": lost.reference, "email": "r1@example.com", "spreadsheet_reference": "E0001",
        "kind": "status", "ours": "failed", "theirs": "delivered",
        "message": "Gifty has this card as delivered, but GiftDesk marked it failed: it was bought and is "
                   "probably charged for.",
    }
    assert (f"Order {lost.pk} ({lost.reference}, r1@example.com, spreadsheet reference E0001): Gifty has this "
            "card as delivered, but GiftDesk marked it failed") in output
    assert "Checked 2 orders on 1 account: 1 difference." in output
    assert reconciliation.state == ReconciliationState.DIFFERENCES
    assert Order.objects.get(pk=lost.pk).status == OrderStatus.FAILED  # reported, not changed


def test_a_card_giftdesk_marked_delivered_that_the_provider_lacks_is_not_known(emulated_gifty_account, gifty_emulator):
    [order] = gifty_cards(emulated_gifty_account)
    refused = gifty_cards(emulated_gifty_account, ["30"], first=1)[0]
    Order.objects.filter(pk=refused.pk).update(status=OrderStatus.FAILED)
    gifty_emulator.reset()  # Gifty knows neither card now

    code, output = reconcile("--account", emulated_gifty_account.name)

    assert code == 1, output
    # The failed card the provider does not have agrees: neither has it.
    [line] = Reconciliation.objects.get().lines
    assert (line["order_id"], line["kind"], line["ours"], line["theirs"]) == (order.pk, "unknown", "delivered",
                                                                               "not known")
    assert "the provider does not know this card" in line["message"]
    assert f"Order {order.pk} ({order.reference}, r0@example.com, spreadsheet reference E0000): the provider " \
           "does not know this card" in output


def test_a_status_that_disagrees_is_a_difference(emulated_gifty_account, gifty_emulator):
    [order] = gifty_cards(emulated_gifty_account)
    gifty_emulator.set_order_status(order.provider_order_id, "cancelled")

    code, output = reconcile()

    assert code == 1, output
    [line] = Reconciliation.objects.get().lines
    assert (line["kind"], line["ours"], line["theirs"]) == ("status", "delivered", "failed")
    assert line["message"].startswith(
        f"Gifty has this card as failed (Gifty cancelled the order {order.provider_order_id}")


def test_a_cost_that_differs_is_a_difference(emulated_gifty_account):
    [order, other] = gifty_cards(emulated_gifty_account, ["25", "40"])
    assert order.cost == Decimal("25.00") and order.cost_currency == "EUR"
    Order.objects.filter(pk=order.pk).update(cost=Decimal("24.50"))

    code, output = reconcile()

    assert code == 1, output
    [line] = Reconciliation.objects.get().lines
    assert (line["order_id"], line["kind"], line["ours"], line["theirs"]) == (order.pk, "cost", "24.50 EUR",
                                                                               "25.00 EUR")
    assert "the cost differs: Gifty charged 25.00 EUR, GiftDesk recorded 24.50 EUR." in output


def test_ugiftme_differences_are_found_through_its_order_requests(emulated_ugiftme_account, ugiftme_emulator):
    agreeing = ugiftme_cards(emulated_ugiftme_account, ["25", "50"])
    costly = ugiftme_cards(emulated_ugiftme_account, ["100"], first=5)[0]
    Order.objects.filter(pk=costly.pk).update(cost=Decimal("99.00"))
    failed = ugiftme_cards(emulated_ugiftme_account, ["25"], first=6)[0]
    Order.objects.filter(pk=failed.pk).update(status=OrderStatus.FAILED)

    code, output = reconcile()

    assert code == 1, output
    lines = {line["order_id"]: line for line in Reconciliation.objects.get().lines}
    assert set(lines) == {costly.pk, failed.pk}
    assert (lines[costly.pk]["kind"], lines[costly.pk]["ours"], lines[costly.pk]["theirs"]) == (
        "cost", "99.00 EUR", "100.00 EUR")
    assert (lines[failed.pk]["kind"], lines[failed.pk]["theirs"]) == ("status", "delivered")
    assert "Checked 4 orders on 1 account: 2 differences." in output
    for order in agreeing:
        assert order.pk not in lines

    ugiftme_emulator.reset()  # UGiftMe forgets every order request
    code, output = reconcile()

    assert code == 1
    lines = Reconciliation.objects.first().lines
    assert {line["order_id"]: line["kind"] for line in lines} == {
        agreeing[0].pk: "unknown", agreeing[1].pk: "unknown", costly.pk: "unknown"}  # the failed one agrees


def test_ugiftme_in_synchronous_mode_is_asked_about_every_order_it_created(
        emulated_ugiftme_account, ugiftme_emulator):
    ugiftme_emulator.async_orders = False  # 201 with the created orders: no order request to follow
    cards = ugiftme_cards(emulated_ugiftme_account, ["25", "50", "100"])
    [agreeing, costly, failed] = cards
    submission = agreeing.submission
    assert {order.submission_id for order in cards} == {submission.pk}  # one bulk request
    assert sorted(submission.provider_reference.removeprefix("order:").split(",")) == sorted(
        order.provider_order_id for order in cards)
    Order.objects.filter(pk=costly.pk).update(cost=Decimal("49.00"))
    Order.objects.filter(pk=failed.pk).update(status=OrderStatus.FAILED)

    code, output = reconcile()

    assert code == 1, output
    reconciliation = Reconciliation.objects.get()
    assert {line["order_id"]: (line["kind"], line["ours"], line["theirs"]) for line in reconciliation.lines} == {
        costly.pk: ("cost", "49.00 EUR", "50.00 EUR"), failed.pk: ("status", "failed", "delivered")}
    assert "Checked 3 orders on 1 account: 2 differences." in output
    lookups = ProviderCall.objects.filter(actor=str(reconciliation), method="GET")
    assert sorted(call.url.rsplit("/", 1)[-1] for call in lookups) == sorted(order.provider_order_id for order in cards)

    ugiftme_emulator.reset()  # UGiftMe forgets every order
    code, output = reconcile()
    assert code == 1 and output.count("the provider does not know this card") == 2  # the failed one agrees


def test_giftronaut_differences_are_found_per_recipient_of_one_order(
        emulated_giftronaut_account, giftronaut_emulator):
    cards = giftronaut_cards(emulated_giftronaut_account, ["25", "50", "100"])
    assert len({order.provider_order_id for order in cards}) == 1  # one Giftronaut order for the three
    # Marked delivered by GiftDesk while Giftronaut is still sending it.
    giftronaut_emulator.steps_per_poll = 0
    still = bought_without_waiting(emulated_giftronaut_account, GIFTRONAUT_AMAZON, "10", number=9)
    Order.objects.filter(pk=still.pk).update(status=OrderStatus.DELIVERED)
    Order.objects.filter(pk=cards[1].pk).update(cost=Decimal("55.00"))

    code, output = reconcile()

    assert code == 1, output
    lines = {line["order_id"]: line for line in Reconciliation.objects.get().lines}
    assert set(lines) == {still.pk, cards[1].pk}
    assert (lines[still.pk]["kind"], lines[still.pk]["ours"], lines[still.pk]["theirs"]) == (
        "status", "delivered", "processing")
    assert lines[still.pk]["message"] == "Giftronaut is still fulfilling this card, GiftDesk has it as delivered."
    assert (lines[cards[1].pk]["ours"], lines[cards[1].pk]["theirs"]) == ("55.00 USD", "50.00 USD")

    giftronaut_emulator.reset()
    code, output = reconcile()
    assert code == 1 and output.count("the provider does not know this card") == 4


def bought_without_waiting(account, product_id: str, amount: str, *, number: int) -> Order:
    """One card submitted once: accepted, still processing at the provider."""
    product = Product.objects.get(account=account, provider_product_id=product_id)
    batch = batch_create(account=account, source_filename="test.csv", rows=[ValidRow(
        row=2, name=f"Recipient {number}", email=f"r{number}@example.com", phone="", reference=f"E{number:04d}",
        message="", amount=Decimal(amount), currency=product.currency, product=product, send_on=None)])
    batch_send(batch=batch)
    dispatch.account_pump(account.pk, budget_seconds=0)
    order = batch.orders.select_related("recipient").get()
    assert order.status == OrderStatus.PROCESSING, order.last_error
    return order


# --- GoGift: no lookup ------------------------------------------------------------------------------


def test_gogift_orders_are_listed_as_not_checked_and_agreement_still_exits_0(
        emulated_gogift_account, emulated_gifty_account, gogift_emulator):
    product = Product.objects.get(account=emulated_gogift_account, sku=GLOBAL_GIFT_CARD_SKU)
    bought(emulated_gogift_account, ["100", "250"], product=product)
    gifty_cards(emulated_gifty_account, first=5)
    requests_before = len(gogift_emulator.requests)

    code, output = reconcile()

    assert code == 0, output
    assert ("Checked 1 order on 1 account: everything agrees; 2 GoGift orders not checked: GoGift documents "
            "no order lookup.") in output
    reconciliation = Reconciliation.objects.get()
    assert (reconciliation.orders_checked, reconciliation.orders_not_checkable) == (1, 2)
    assert len(gogift_emulator.requests) == requests_before  # nothing asked, nothing guessed

    code, output = reconcile("--account", emulated_gogift_account.name)
    assert code == 0
    assert "Checked 0 orders on 0 accounts: nothing to compare; 2 GoGift orders not checked" in output


def test_only_orders_the_provider_accepted_or_was_sent_are_asked_about(emulated_gifty_account, gifty_emulator):
    [delivered] = gifty_cards(emulated_gifty_account)
    product = Product.objects.get(account=emulated_gifty_account, provider_product_id=GIFTY_VARIABLE_CARD)
    [refused] = sent(emulated_gifty_account, ["900"], product=product, first=1)  # Gifty takes 5..500 EUR
    assert refused.status == OrderStatus.FAILED and not refused.provider_order_id, refused.last_error
    batch_create(account=emulated_gifty_account, source_filename="later.csv", rows=[ValidRow(
        row=2, name="Not sent", email="later@example.com", phone="", reference="E0009", message="",
        amount=Decimal("30"), currency="EUR", product=product, send_on=None)])  # pending: never sent
    gifty_emulator.reset()  # had it been asked about, the delivered card would now be unknown

    code, output = reconcile()

    assert code == 1, output
    [line] = Reconciliation.objects.get().lines
    assert (line["order_id"], line["kind"]) == (delivered.pk, "unknown")
    assert "Checked 1 order on 1 account: 1 difference." in output
    assert [r.path for r in gifty_emulator.requests] == [f"/v1/external-orders/{delivered.provider_order_id}"]


# --- Narrowing and bad options ----------------------------------------------------------------------


def test_account_and_since_narrow_what_is_asked(emulated_gifty_account, emulated_ugiftme_account, ugiftme_emulator):
    gifty_cards(emulated_gifty_account)
    [old] = ugiftme_cards(emulated_ugiftme_account, first=3)
    ugiftme_emulator.reset()  # UGiftMe no longer knows the UGiftMe card
    Order.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=40))

    assert reconcile()[0] == 0  # the default window (30 days) leaves the old card out
    code, output = reconcile("--since", (timezone.localdate() - timedelta(days=41)).isoformat())
    assert code == 1 and f"Order {old.pk} " in output and "Checked 2 orders on 2 accounts: 1 difference." in output
    code, output = reconcile("--since", (timezone.localdate() - timedelta(days=41)).isoformat(),
                             "--account", emulated_gifty_account.name)
    assert code == 0 and "Checked 1 order on 1 account: everything agrees." in output
    assert Reconciliation.objects.filter(account=emulated_gifty_account).count() == 1


@pytest.mark.parametrize(("arguments", "message"), [
    (["--account", "Nobody"], "No account named 'Nobody'. Accounts: Gifty emulated."),
    (["--since", "31/12/2025"], "--since '31/12/2025' is not a date: write it as YYYY-MM-DD"),
    (["--since", "2999-01-01"], "--since 2999-01-01 is in the future"),
])
def test_a_bad_option_exits_2_and_asks_nothing(emulated_gifty_account, gifty_emulator, arguments, message):
    requests_before = len(gifty_emulator.requests)

    code, output = reconcile(*arguments)

    assert code == 2 and message in output
    assert not Reconciliation.objects.exists() and len(gifty_emulator.requests) == requests_before


# --- The provider down --------------------------------------------------------------------------------


def test_a_provider_that_cannot_be_asked_is_a_difference(emulated_gifty_account, gifty_emulator):
    [order] = gifty_cards(emulated_gifty_account)
    gifty_emulator.faults.add("http_503", method="GET", path="/v1/external-orders/", times=None)

    code, output = reconcile()

    assert code == 1, output
    [line] = Reconciliation.objects.get().lines
    assert (line["order_id"], line["kind"]) == (order.pk, "unchecked")
    assert line["message"].startswith("could not ask: Gifty is unavailable right now (HTTP 503")
    assert "retried" not in line["message"]  # the engine's promise; a reconciliation makes none


def test_a_provider_that_is_down_is_a_difference(emulated_gifty_account, gifty_server):
    [order] = gifty_cards(emulated_gifty_account)
    gifty_server.stop()

    code, output = reconcile()

    assert code == 1, output
    assert f"Order {order.pk} " in output and "could not ask: Could not reach Gifty (connection failed)" in output
    unchanged(order)


def test_a_provider_rate_limit_answer_is_waited_for_and_asked_again(emulated_gifty_account, gifty_emulator):
    [order] = gifty_cards(emulated_gifty_account)
    gifty_emulator.faults.add("http_429", method="GET", path="/v1/external-orders/", times=1, retry_after=1)

    code, output = reconcile()

    assert code == 0, output
    assert [call.http_status for call in ProviderCall.objects.filter(actor=str(Reconciliation.objects.get()))] == [
        429, 200]


def test_the_accounts_rate_limit_holds_the_lookups_back_and_nothing_is_sent(emulated_gifty_account, gifty_emulator):
    gifty_cards(emulated_gifty_account, ["25", "30"])
    account = emulated_gifty_account
    account.rate_limit_per_minute = 120
    account.save(update_fields=["rate_limit_per_minute"])
    # Orders hold the account's next minute of slots (their workers reserved them): a lookup
    # takes only a slot no order waits for.
    AccountPace.objects.update_or_create(account=account, defaults={
        "tat_us": time.time_ns() // 1000 + 60_000_000, "burst_until_us": 0})
    gifty_emulator.requests.clear()
    reconciliation = reconciliation_start(account=account)

    # The queue clears in about a minute: longer than this slice may wait.
    assert reconciliation_run(reconciliation.pk, budget_seconds=5) is False

    assert gifty_emulator.requests == []
    reconciliation.refresh_from_db()
    assert (reconciliation.state, reconciliation.orders_checked, reconciliation.cursor) == (
        ReconciliationState.RUNNING, 0, 0)
    AccountPace.objects.filter(account=account).delete()  # the orders have gone
    assert reconciliation_run(reconciliation.pk) is True
    reconciliation.refresh_from_db()
    assert (reconciliation.state, reconciliation.orders_checked) == (ReconciliationState.AGREED, 2)
    assert len(gifty_emulator.requests) == 2


# --- Slices ---------------------------------------------------------------------------------------------


def test_a_run_in_slices_asks_each_provider_order_once_and_resumes(emulated_gifty_account, gifty_emulator):
    gifty_cards(emulated_gifty_account, ["25", "30", "35"])  # three Gifty orders
    lookups_before = sum(1 for r in gifty_emulator.requests if r.method == "GET")
    reconciliation = reconciliation_start(since=timezone.localdate())

    outcomes = []
    while (done := reconciliation_run(reconciliation.pk, budget_seconds=0)) is False:
        outcomes.append(done)

    assert done is True and len(outcomes) == 2  # one submission per slice, however small the budget
    reconciliation.refresh_from_db()
    assert reconciliation.state == ReconciliationState.AGREED and reconciliation.orders_checked == 3
    assert sum(1 for r in gifty_emulator.requests if r.method == "GET") - lookups_before == 3
    assert reconciliation_run(reconciliation.pk) is None  # finished: a second delivery does nothing


def test_a_run_between_slices_is_neither_taken_twice_nor_taken_for_a_dead_one(emulated_gifty_account, gifty_emulator):
    gifty_cards(emulated_gifty_account, ["25", "30"])
    finance = person("fiona", "Finance")
    reconciliation, started = reconciliation_request(user=finance, account=emulated_gifty_account)
    assert started and reconciliation_run(reconciliation.pk, budget_seconds=0) is False  # one of two asked
    # A long run: started a day ago, its last slice just let go.
    Reconciliation.objects.filter(pk=reconciliation.pk).update(created_at=timezone.now() - timedelta(days=1))

    assert reconciliation_request(user=finance, account=emulated_gifty_account) == (reconciliation, False)

    # Another worker holds the next slice: this one asks nothing.
    Reconciliation.objects.filter(pk=reconciliation.pk).update(claimed_until=timezone.now() + timedelta(minutes=1))
    gifty_emulator.requests.clear()
    assert reconciliation_run(reconciliation.pk) is None and gifty_emulator.requests == []


def test_a_run_whose_process_died_is_marked_failed_and_a_new_one_starts(emulated_gifty_account):
    gifty_cards(emulated_gifty_account)
    finance = person("fiona", "Finance")
    dead = reconciliation_start(user=finance, account=emulated_gifty_account)
    # Its slice was killed with the worker: the claim ran out an hour ago, nobody took it up.
    Reconciliation.objects.filter(pk=dead.pk).update(claimed_until=timezone.now() - timedelta(hours=1))
    from_the_shell = reconciliation_start()  # a `manage.py reconcile` killed before its first slice
    Reconciliation.objects.filter(pk=from_the_shell.pk).update(created_at=timezone.now() - timedelta(hours=1))

    fresh, started = reconciliation_request(user=finance, account=emulated_gifty_account)

    assert started and fresh.pk not in (dead.pk, from_the_shell.pk)
    for stopped in (dead, from_the_shell):
        stopped.refresh_from_db()
        assert stopped.state == ReconciliationState.FAILED and stopped.finished_at
        assert stopped.error.startswith("Stopped: the process running it ended before it finished")
    assert reconciliation_run(dead.pk) is None  # a late slice of the dead run does nothing
    assert reconcile()[0] == 0  # the command stops stale runs too, and runs


# --- The admin ------------------------------------------------------------------------------------------


def reconcile_action(client, account):
    return client.post(reverse("admin:providers_provideraccount_changelist"),
                       {"action": "reconcile_with_provider", "_selected_action": [account.pk]}, follow=True)


def test_finance_runs_a_reconciliation_from_the_account_list_and_reads_its_report(
        client, emulated_gifty_account, django_capture_on_commit_callbacks):
    [kept, lost] = gifty_cards(emulated_gifty_account, ["25", "40"])
    Order.objects.filter(pk=lost.pk).update(status=OrderStatus.FAILED)
    finance = person("fiona", "Finance")
    client.force_login(finance)
    broker = get_broker()  # the ORM or Redis broker, whichever this run uses
    queued_before = broker.queue_size()

    with django_capture_on_commit_callbacks(execute=True):
        response = reconcile_action(client, emulated_gifty_account)

    reconciliation = Reconciliation.objects.get()
    assert reconciliation.state == ReconciliationState.RUNNING and reconciliation.requested_by == finance
    page_url = reverse("admin:orders_reconciliation_change", args=[reconciliation.pk])
    assert f'<a href="{page_url}">{reconciliation}</a> started' in response.content.decode()
    assert broker.queue_size() == queued_before + 1
    broker.purge_queue()  # run below by hand: no worker of a later test may take it up
    assert AuditEntry.objects.get(target_kind="reconciliation").username == "fiona"

    assert tasks.reconcile(reconciliation.pk) == "finished"  # the worker's task, run here

    reconciliation.refresh_from_db()
    assert reconciliation.state == ReconciliationState.DIFFERENCES and reconciliation.differences_count == 1
    page = client.get(page_url)
    assert page.status_code == 200
    text = page.content.decode()
    order_url = reverse("admin:orders_order_change", args=[lost.pk])
    assert f'<a href="{order_url}">{lost.reference}</a>' in text
    assert "r1@example.com" in text and "E0001" in text and "it changed no order" in text
    listing = client.get(reverse("admin:orders_reconciliation_changelist"))
    assert listing.status_code == 200 and "Differences found" in listing.content.decode()
    # Pressed again while one runs: not started twice.
    Reconciliation.objects.filter(pk=reconciliation.pk).update(state=ReconciliationState.RUNNING)
    again = reconcile_action(client, emulated_gifty_account)
    assert "is already running" in again.content.decode() and Reconciliation.objects.count() == 1


def test_without_the_permission_nobody_reconciles_nor_reads_reports(client, emulated_gifty_account, gifty_emulator):
    gifty_cards(emulated_gifty_account)
    report = reconciliation_start(account=emulated_gifty_account)
    sender = person("sam", "Senders")
    client.force_login(sender)
    requests_before = len(gifty_emulator.requests)

    listing = client.get(reverse("admin:providers_provideraccount_changelist"))
    response = reconcile_action(client, emulated_gifty_account)

    assert "reconcile_with_provider" not in listing.content.decode()
    assert response.status_code == 200 and Reconciliation.objects.count() == 1
    assert len(gifty_emulator.requests) == requests_before
    assert client.get(reverse("admin:orders_reconciliation_change", args=[report.pk])).status_code == 403
    assert client.get(reverse("admin:orders_reconciliation_changelist")).status_code == 403

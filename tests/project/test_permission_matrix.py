"""Who may do what (issue 8, finding 6; DESIGN.md "Roles"), through the admin over HTTP.

`MATRIX` is the whole policy: each action, the roles allowed to do it. Every (action, role)
cell is one test that does the action as a user of that role and checks what happened:
allowed means the page answered 200/302 *and* the effect is there (the batch renamed, the
orders queued, the emulator called...); denied means 403, or the action is not offered and
nothing changed (no row written, no request reached the provider's emulator).

Approving and rejecting (issue 9, four eyes) go through the approval screen
(`admin:orders_batch_approval`) with the fingerprint of what the page showed; "own" is a
batch the user uploaded, which nobody approves, administrators included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission, User
from django.test import Client
from django.urls import reverse

from audit.models import AuditAction, AuditEntry
from audit.services import record
from orders.approvals import batch_fingerprint
from orders.batches import batch_send
from orders.models import Batch, BatchState, Order, OrderStatus, Reconciliation, Submission
from providers.models import ProviderAccount, WebhookEvent
from tests.admin_client import form_data
from tests.fixtures.data import make_batch
from tests.fixtures.emulators_gifty import GIFTY_VARIABLE_CARD

ROLES = ("sender", "approver", "finance", "staff", "admin")
GROUP_OF = {"sender": "Senders", "approver": "Approvers", "finance": "Finance"}
READERS = {"sender", "approver", "finance", "admin"}
UPLOADERS = {"sender", "approver", "admin"}

MATRIX: dict[str, set[str]] = {
    "view batches": READERS,
    "view orders": READERS,
    "view accounts": READERS,
    "add account": {"admin"},
    "change own pending batch": UPLOADERS,
    "change another's pending batch": {"approver", "admin"},
    "change a sent batch": set(),  # part of the books: nobody, administrators included
    "change account": {"admin"},
    "delete batch": set(),  # cancelled, never deleted
    "delete order": set(),
    "delete account": {"admin"},
    "import": UPLOADERS,
    "send own batch": UPLOADERS,
    "send another's batch": {"approver", "admin"},
    "cancel own batch": UPLOADERS,
    "cancel another's batch": {"approver", "admin"},
    "approve another's batch": {"approver", "admin"},
    "approve own batch": set(),  # four eyes: nobody, administrators included
    "reject another's batch": {"approver", "admin"},
    "reject own batch": set(),
    "export orders": {"finance", "admin"},
    "view order totals": READERS,
    "view spending dashboard": READERS,
    # It asks the providers about bought cards and changes nothing: Finance's one provider call.
    "reconcile with the providers": {"finance", "admin"},
    "view reconciliations": {"finance", "admin"},
    "view audit trail": {"finance", "admin"},
    "retry own batch's failed orders": UPLOADERS,
    "retry another's batch's failed orders": {"approver", "admin"},
    "retry own batch's failed orders (batch button)": UPLOADERS,
    "retry another's batch's failed orders (batch button)": {"approver", "admin"},
    "resend own batch's failed order": UPLOADERS,
    "resend another's batch's failed order": {"approver", "admin"},
    "cancel own batch's orders": UPLOADERS,
    "cancel another's batch's orders": {"approver", "admin"},
    "change audit entry": set(),  # append-only: nobody, administrators included
    "delete audit entry": set(),
    "refresh card details": {"sender", "admin"},
    "test connection": {"admin"},
    "sync catalog": {"admin"},
    "refresh balance": {"admin"},
    "register webhook": {"admin"},
    "resume sending": {"admin"},
    "view task queue": {"admin"},
    "view submissions": {"admin"},
    "view webhook events": {"admin"},
}

ALLOWED, DENIED = "allowed", "denied"


# --- The world one cell acts in -----------------------------------------------------------------------


@dataclass
class World:
    client: Client
    user: User
    admin: Client  # an administrator's session, to read forms the user may not see
    request: pytest.FixtureRequest
    other: User  # another Sender, the uploader of "another's" batch
    cache: dict = field(default_factory=dict)

    def account(self) -> ProviderAccount:
        """A database-only account with a catalog (no provider is called)."""
        if "account" not in self.cache:
            self.request.getfixturevalue("global_gift_card")
            self.cache["account"] = self.request.getfixturevalue("gogift_account")
        return self.cache["account"]

    def batch(self, *, uploader: User) -> Batch:
        batch = make_batch(self.account(), ["100", "250"])
        Batch.objects.filter(pk=batch.pk).update(created_by=uploader)
        batch.refresh_from_db()
        return batch

    def emulated(self, kind: str):
        """(account, emulator) for a provider emulated over HTTP on loopback."""
        return self.request.getfixturevalue(f"emulated_{kind}_account"), self.request.getfixturevalue(f"{kind}_emulator")


def make_user(role: str) -> User:
    user = User.objects.create_user(f"{role}-user", is_staff=True, is_superuser=role == "admin")  # no password: fast
    if role in GROUP_OF:
        user.groups.add(Group.objects.get(name=GROUP_OF[role]))
    return user


@pytest.fixture
def world(db, request, client, settings):
    settings.GIFTDESK_PUBLIC_URL = "https://giftdesk.example/"  # providers register HTTPS webhooks only
    role = request.node.callspec.params["role"]
    user = make_user(role)
    client.force_login(user)
    admin = Client()
    admin.force_login(user if role == "admin" else make_user("admin"))
    other = User.objects.create_user("another-sender", is_staff=True)
    other.groups.add(Group.objects.get(name="Senders"))
    return World(client=client, user=user, admin=admin, request=request, other=other)


def outcome(response, *, done: bool, untouched: bool) -> str:
    """ALLOWED when the page answered and the effect is there; DENIED when refused (403, or
    the action not offered) and nothing changed. Anything else is a defect of its own."""
    assert response.status_code in (200, 302, 403), response.status_code
    if response.status_code != 403 and done:
        return ALLOWED
    assert untouched, f"refused ({response.status_code}) but something changed"
    return DENIED


def changelist_action(world: World, model: str, action: str, ids: list[int]):
    return world.client.post(reverse(f"admin:{model}_changelist"), {"action": action, "_selected_action": ids})


# --- The actions ---------------------------------------------------------------------------------------


def view_pages(world: World, model: str, obj) -> str:
    listing = world.client.get(reverse(f"admin:{model}_changelist"))
    page = world.client.get(reverse(f"admin:{model}_change", args=[obj.pk]))
    if {listing.status_code, page.status_code} == {200}:
        return ALLOWED
    assert listing.status_code == page.status_code == 403, (listing.status_code, page.status_code)
    return DENIED


def view_batches(world):
    return view_pages(world, "orders_batch", world.batch(uploader=world.other))


def view_orders(world):
    return view_pages(world, "orders_order", world.batch(uploader=world.other).orders.first())


def view_accounts(world):
    return view_pages(world, "providers_provideraccount", world.account())


def add_account(world):
    data = form_data(world.admin.get(reverse("admin:providers_provideraccount_add")))
    data.update(name="Added by the matrix", kind="ugiftme", environment="sandbox", is_active="on")
    response = world.client.post(reverse("admin:providers_provideraccount_add"), data)
    exists = ProviderAccount.objects.filter(name="Added by the matrix").exists()
    return outcome(response, done=exists, untouched=not exists)


def change_batch(world, batch: Batch):
    url = reverse("admin:orders_batch_change", args=[batch.pk])
    data = {**(form_data(world.admin.get(url)) if batch.state == BatchState.PENDING else {}),
            "name": "Renamed", "campaign": "Another campaign", "message": "", "sender_name": ""}
    response = world.client.post(url, data)
    batch.refresh_from_db()
    return outcome(response, done=batch.name == "Renamed", untouched=batch.name != "Renamed")


def change_own_pending_batch(world):
    return change_batch(world, world.batch(uploader=world.user))


def change_anothers_pending_batch(world):
    return change_batch(world, world.batch(uploader=world.other))


def change_a_sent_batch(world):
    batch = world.batch(uploader=world.user)
    batch.orders.update(status=OrderStatus.QUEUED)
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.SENDING)
    # Even an administrator sees it read-only: no name field to type in.
    page = world.admin.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    assert page.count('name="name"') == 0
    return change_batch(world, batch)


def change_account(world):
    account = world.account()
    url = reverse("admin:providers_provideraccount_change", args=[account.pk])
    data = {**form_data(world.admin.get(url)), "name": "Renamed account"}
    response = world.client.post(url, data)
    account.refresh_from_db()
    return outcome(response, done=account.name == "Renamed account", untouched=account.name != "Renamed account")


def delete(world, model_class, model: str, obj):
    response = world.client.post(reverse(f"admin:{model}_delete", args=[obj.pk]), {"post": "yes"})
    exists = model_class.objects.filter(pk=obj.pk).exists()
    return outcome(response, done=not exists, untouched=exists)


def delete_batch(world):
    return delete(world, Batch, "orders_batch", world.batch(uploader=world.user))


def delete_order(world):
    return delete(world, Order, "orders_order", world.batch(uploader=world.user).orders.first())


def delete_account(world):
    spare = ProviderAccount.objects.create(name="Spare", kind="gogift", environment="sandbox")
    return delete(world, ProviderAccount, "providers_provideraccount", spare)


def import_page(world):
    world.account()
    response = world.client.get(reverse("admin:orders_batch_import"))
    return outcome(response, done=response.status_code == 200 and 'name="import_file"' in response.content.decode(),
                   untouched=not Batch.objects.exists())


def batch_button(world, uploader_is_user: bool, verb: str, to_status: str):
    batch = world.batch(uploader=world.user if uploader_is_user else world.other)
    # The confirmation page's POST (post=yes, and the fingerprint of the batch it showed).
    response = world.client.post(reverse(f"admin:orders_batch_{verb}", args=[batch.pk]),
                                 {"post": "yes", "shown": batch_fingerprint(batch)})
    statuses = set(batch.orders.values_list("status", flat=True))
    return outcome(response, done=statuses == {to_status}, untouched=statuses == {OrderStatus.PENDING})


def send_own_batch(world):
    return batch_button(world, True, "send", OrderStatus.QUEUED)


def send_anothers_batch(world):
    return batch_button(world, False, "send", OrderStatus.QUEUED)


def cancel_own_batch(world):
    return batch_button(world, True, "cancel", OrderStatus.CANCELLED)


def cancel_anothers_batch(world):
    return batch_button(world, False, "cancel", OrderStatus.CANCELLED)


def awaiting_approval(world: World, *, own: bool) -> Batch:
    """A batch its uploader asked to send, waiting for an approver (every batch needs one here)."""
    world.request.getfixturevalue("settings").GIFTDESK_APPROVAL_THRESHOLDS = "DKK=0"
    uploader = world.user if own else world.other
    batch = world.batch(uploader=uploader)
    assert batch_send(batch=batch, user=uploader).awaiting_approval
    return batch


def decide(world: World, *, own: bool, decision: str) -> str:
    """Open the approval screen and approve or reject with the fingerprint it shows; a user not
    offered the decision forges the same POST (with the right fingerprint) to prove it refused."""
    batch = awaiting_approval(world, own=own)
    url = reverse("admin:orders_batch_approval", args=[batch.pk])
    page = world.client.get(url)
    offered = page.status_code == 200 and f'id="{decision}-form"' in page.content.decode()
    fingerprint = page.context["review"].fingerprint if offered else batch_fingerprint(batch)
    response = world.client.post(url, {"decision": decision, f"{decision}-fingerprint": fingerprint,
                                       "reject-reason": "Over the Q4 budget."})
    batch.refresh_from_db()
    statuses = set(batch.orders.values_list("status", flat=True))
    if decision == "approve":
        done = batch.approved_by == world.user and statuses == {OrderStatus.QUEUED}
    else:
        done = (batch.rejected_by == world.user and batch.rejection_reason == "Over the Q4 budget."
                and statuses == {OrderStatus.CANCELLED})
    untouched = (batch.state == BatchState.AWAITING_APPROVAL and statuses == {OrderStatus.PENDING}
                 and batch.approved_by is None and batch.rejected_by is None)
    assert offered == done or response.status_code == 403, (offered, done)  # offered exactly where allowed
    return outcome(response, done=done, untouched=untouched)


def approve_anothers_batch(world):
    return decide(world, own=False, decision="approve")


def approve_own_batch(world):
    return decide(world, own=True, decision="approve")


def reject_anothers_batch(world):
    return decide(world, own=False, decision="reject")


def reject_own_batch(world):
    return decide(world, own=True, decision="reject")


def view_audit_trail(world):
    world.batch(uploader=world.other)  # its upload is an entry
    return view_pages(world, "audit_auditentry", AuditEntry.objects.first())


def failed_orders(world, *, own: bool) -> list[Order]:
    """A batch whose orders the provider definitely refused (so a retry is safe)."""
    batch = world.batch(uploader=world.user if own else world.other)
    batch.orders.update(status=OrderStatus.FAILED, definitely_refused=True, last_error="Refused.")
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.COMPLETED)
    return list(batch.orders.all())


def confirmed_action(world, action: str, orders: list[Order], **fields):
    """An order action as the admin does it: the confirmation page, then its POST."""
    ids = [order.pk for order in orders]
    page = changelist_action(world, "orders_order", action, ids)
    plan = (getattr(page, "context", None) or {}).get("plan")
    data = {"action": action, "_selected_action": ids, "post": "yes", **fields}
    if plan is not None and getattr(plan, "digest", None):
        data["plan"] = plan.digest
    return world.client.post(reverse("admin:orders_order_changelist"), data)


def retry_orders(world, *, own: bool):
    orders = failed_orders(world, own=own)
    response = confirmed_action(world, "retry_orders", orders)
    retried = Order.objects.filter(pk__in=[o.pk for o in orders], retries=1).exclude(status=OrderStatus.FAILED)
    return outcome(response, done=retried.count() == len(orders), untouched=not retried.exists())


def retry_with_batch_button(world, *, own: bool):
    orders = failed_orders(world, own=own)
    url = reverse("admin:orders_batch_retry_failed", args=[orders[0].batch_id])
    page = world.client.get(url)
    plan = (getattr(page, "context", None) or {}).get("plan")
    response = world.client.post(url, {"post": "yes", "plan": plan.digest if plan is not None else ""})
    retried = Order.objects.filter(pk__in=[o.pk for o in orders]).exclude(status=OrderStatus.FAILED)
    return outcome(response, done=retried.count() == len(orders), untouched=not retried.exists())


def resend_order(world, *, own: bool):
    order = failed_orders(world, own=own)[0]
    response = confirmed_action(world, "resend_order", [order], email="corrected@example.com", name="")
    resent = Order.objects.filter(resend_of=order, recipient__email="corrected@example.com").exists()
    return outcome(response, done=resent, untouched=not Order.objects.filter(resend_of=order).exists())


def cancel_orders(world, *, own: bool):
    orders = list(world.batch(uploader=world.user if own else world.other).orders.all())
    response = confirmed_action(world, "cancel_orders", orders)
    cancelled = Order.objects.filter(pk__in=[o.pk for o in orders], status=OrderStatus.CANCELLED)
    return outcome(response, done=cancelled.count() == len(orders), untouched=not cancelled.exists())


def an_audit_entry(world) -> AuditEntry:
    return record(AuditAction.UPLOAD, user=world.other, summary="Uploaded by the matrix")


def change_audit_entry(world):
    entry = an_audit_entry(world)
    response = world.client.post(reverse("admin:audit_auditentry_change", args=[entry.pk]),
                                 {"summary": "Rewritten", "action": "send"})
    rewritten = AuditEntry.objects.filter(pk=entry.pk, summary="Rewritten").exists()
    return outcome(response, done=rewritten, untouched=not rewritten)


def delete_audit_entry(world):
    return delete(world, AuditEntry, "audit_auditentry", an_audit_entry(world))


def export_orders(world):
    order_ids = list(world.batch(uploader=world.other).orders.values_list("pk", flat=True))
    action = changelist_action(world, "orders_order", "export_selected_orders", order_ids)
    export_url = reverse("admin:orders_order_export")
    led_there = action.status_code == 302 and action["Location"].startswith(export_url)
    page = world.client.get(export_url)
    export = world.client.post(export_url, {"format": "csv"})
    is_file = export.status_code == 200 and "text/csv" in export.get("Content-Type", "")
    if led_there and page.status_code == 200 and 'name="format"' in page.content.decode() and is_file:
        return ALLOWED
    assert not led_there and (page.status_code, export.status_code) == (403, 403), export.status_code
    return DENIED


def view_order_totals(world):
    world.batch(uploader=world.other)
    response = world.client.get(reverse("admin:orders_order_totals"), {"status__exact": "pending"})
    if response.status_code == 200 and "350.00" in response.content.decode():  # the batch's 100 + 250
        return ALLOWED
    assert response.status_code == 403, response.status_code
    return DENIED


def view_spending_dashboard(world):
    world.batch(uploader=world.other)
    response = world.client.get(reverse("admin:orders_order_dashboard"))
    if response.status_code == 200 and 'id="dashboard-definitions"' in response.content.decode():
        return ALLOWED
    assert response.status_code == 403, response.status_code
    return DENIED


def reconcile_with_the_providers(world):
    account = world.account()
    response = changelist_action(world, "providers_provideraccount", "reconcile_with_provider", [account.pk])
    started = Reconciliation.objects.filter(account=account).exists()
    return outcome(response, done=started, untouched=not started)


def view_reconciliations(world):
    return view_pages(world, "orders_reconciliation",
                      Reconciliation.objects.create(account=world.account(), since=date(2026, 11, 1)))


def provider_called(world, kind: str, do: Callable) -> str:
    """Do `do(account)`; the effect looked for is a request reaching the provider's emulator."""
    account, emulator = world.emulated(kind)
    before = len(emulator.requests)
    response = do(account)
    called = len(emulator.requests) > before
    return outcome(response, done=called, untouched=not called)


def refresh_card_details(world):
    def do(account):
        order = make_batch(account, ["25"], sku=GIFTY_VARIABLE_CARD).orders.get()
        order.status = OrderStatus.DELIVERED
        order.set_card_code("ABCD2345EFGH6789")
        order.save()
        return changelist_action(world, "orders_order", "refresh_card_details", [order.pk])
    return provider_called(world, "gifty", do)


def account_action(action: str) -> Callable[[World], str]:
    def act(world):
        return provider_called(world, "ugiftme", lambda account: changelist_action(
            world, "providers_provideraccount", action, [account.pk]))
    return act


def resume_sending(world):
    # Resume checks the connection first (issue 9): an account its emulator answers.
    account, _ = world.emulated("ugiftme")
    ProviderAccount.objects.filter(pk=account.pk).update(blocked_reason="UGiftMe refused the API key.")
    response = changelist_action(world, "providers_provideraccount", "resume_sending", [account.pk])
    account.refresh_from_db()
    return outcome(response, done=account.blocked_reason == "", untouched=account.blocked_reason != "")


# django-q2 shows its queue (OrmQ) only with the ORM broker; with Redis the queue lives there.
QUEUE_PAGES = ["django_q_success", "django_q_failure", "django_q_schedule",
               *(["django_q_ormq"] if "orm" in settings.Q_CLUSTER else [])]


def view_changelists(world, models: list[str]) -> str:
    codes = {model: world.client.get(reverse(f"admin:{model}_changelist")).status_code for model in models}
    index = world.client.get(reverse("admin:index")).content.decode()
    listed = [model for model in models if reverse(f"admin:{model}_changelist") in index]
    if set(codes.values()) == {200} and listed == models:
        return ALLOWED
    assert set(codes.values()) == {403} and listed == [], (codes, listed)  # hidden and refused
    return DENIED


def view_task_queue(world):
    return view_changelists(world, QUEUE_PAGES)


def view_submissions(world):
    Submission.objects.create(account=world.account(), idempotency_key="matrix-key")
    return view_changelists(world, ["orders_submission"])


def view_webhook_events(world):
    WebhookEvent.objects.create(account=world.account(), event_id="evt_matrix")
    return view_changelists(world, ["providers_webhookevent"])


ACTIONS: dict[str, Callable[[World], str]] = {
    "view batches": view_batches,
    "view orders": view_orders,
    "view accounts": view_accounts,
    "add account": add_account,
    "change own pending batch": change_own_pending_batch,
    "change another's pending batch": change_anothers_pending_batch,
    "change a sent batch": change_a_sent_batch,
    "change account": change_account,
    "delete batch": delete_batch,
    "delete order": delete_order,
    "delete account": delete_account,
    "import": import_page,
    "send own batch": send_own_batch,
    "send another's batch": send_anothers_batch,
    "cancel own batch": cancel_own_batch,
    "cancel another's batch": cancel_anothers_batch,
    "approve another's batch": approve_anothers_batch,
    "approve own batch": approve_own_batch,
    "reject another's batch": reject_anothers_batch,
    "reject own batch": reject_own_batch,
    "export orders": export_orders,
    "view order totals": view_order_totals,
    "view spending dashboard": view_spending_dashboard,
    "reconcile with the providers": reconcile_with_the_providers,
    "view reconciliations": view_reconciliations,
    "view audit trail": view_audit_trail,
    "retry own batch's failed orders": lambda world: retry_orders(world, own=True),
    "retry another's batch's failed orders": lambda world: retry_orders(world, own=False),
    "retry own batch's failed orders (batch button)": lambda world: retry_with_batch_button(world, own=True),
    "retry another's batch's failed orders (batch button)": lambda world: retry_with_batch_button(world, own=False),
    "resend own batch's failed order": lambda world: resend_order(world, own=True),
    "resend another's batch's failed order": lambda world: resend_order(world, own=False),
    "cancel own batch's orders": lambda world: cancel_orders(world, own=True),
    "cancel another's batch's orders": lambda world: cancel_orders(world, own=False),
    "change audit entry": change_audit_entry,
    "delete audit entry": delete_audit_entry,
    "refresh card details": refresh_card_details,
    "test connection": account_action("test_connection"),
    "sync catalog": account_action("sync_catalog"),
    "refresh balance": account_action("refresh_balance"),
    "register webhook": account_action("register_webhook"),
    "resume sending": resume_sending,
    "view task queue": view_task_queue,
    "view submissions": view_submissions,
    "view webhook events": view_webhook_events,
}
CELLS = [(action, role) for action in MATRIX for role in ROLES]


def test_every_action_in_the_matrix_is_performed():
    assert set(ACTIONS) == set(MATRIX)


@pytest.mark.parametrize("action, role", CELLS, ids=[f"{action}-{role}" for action, role in CELLS])
def test_the_permission_matrix(world, action, role):
    expected = ALLOWED if role in MATRIX[action] else DENIED
    assert ACTIONS[action](world) == expected


# --- What the matrix alone would not show ---------------------------------------------------------------


def test_the_administrators_pages_stay_closed_to_staff_granted_their_permissions(db, client):
    """Hidden and refused by role, not by which permissions a group happens to hold."""
    user = User.objects.create_user("granted", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_q")
                              | Permission.objects.filter(codename__in=["view_submission", "change_submission",
                                                                        "view_webhookevent", "delete_webhookevent"]))
    client.force_login(user)
    for model in [*QUEUE_PAGES, "orders_submission", "providers_webhookevent"]:
        assert client.get(reverse(f"admin:{model}_changelist")).status_code == 403, model
    assert "django_q" not in client.get(reverse("admin:index")).content.decode()


def test_a_forged_change_of_a_sent_batch_is_refused_even_for_an_administrator(db, admin_client, gogift_account,
                                                                              global_gift_card):
    batch = make_batch(gogift_account, ["100"])
    batch.orders.update(status=OrderStatus.DELIVERED)
    Batch.objects.filter(pk=batch.pk).update(state=BatchState.COMPLETED, name="Christmas", campaign="HR-2026")

    response = admin_client.post(reverse("admin:orders_batch_change", args=[batch.pk]),
                                 {"name": "Renamed", "campaign": "Other", "message": "", "sender_name": ""})

    assert response.status_code == 403
    batch.refresh_from_db()
    assert (batch.name, batch.campaign) == ("Christmas", "HR-2026")


def test_a_batch_with_an_order_past_pending_counts_as_sent(db, admin_client, gogift_account, global_gift_card):
    batch = make_batch(gogift_account, ["100", "200"])
    first = batch.orders.first()
    Order.objects.filter(pk=first.pk).update(status=OrderStatus.FAILED)  # the batch itself still says pending

    response = admin_client.post(reverse("admin:orders_batch_change", args=[batch.pk]),
                                 {"name": "Renamed", "campaign": "", "message": "", "sender_name": ""})

    assert response.status_code == 403


def test_a_sender_sees_anothers_batch_without_the_send_and_cancel_buttons(db, client, gogift_account,
                                                                          global_gift_card):
    owner, viewer = make_user("sender"), User.objects.create_user("second-sender", is_staff=True)
    viewer.groups.add(Group.objects.get(name="Senders"))
    batch = make_batch(gogift_account, ["100"])
    Batch.objects.filter(pk=batch.pk).update(created_by=owner)
    client.force_login(viewer)

    page = client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()

    assert 'id="send-batch"' not in page and 'id="cancel-batch"' not in page
    assert 'name="name"' not in page  # read-only
    client.force_login(owner)
    page = client.get(reverse("admin:orders_batch_change", args=[batch.pk])).content.decode()
    assert 'id="send-batch"' in page and 'name="name"' in page


def test_finance_is_offered_no_action_that_buys_or_writes(db, client, gogift_account, global_gift_card):
    make_batch(gogift_account, ["100"])
    client.force_login(make_user("finance"))
    for model in ("orders_order", "orders_batch", "providers_provideraccount"):
        page = client.get(reverse(f"admin:{model}_changelist"))
        offered = {value for value, _ in page.context["action_form"].fields["action"].choices if value} \
            if page.context.get("action_form") else set()
        # Exporting, and asking the providers what became of bought cards (it changes nothing).
        assert offered <= {"export_selected_orders", "reconcile_with_provider"}, (model, offered)

"""Recipients, batches, orders, provider submissions, provider calls and the order event log."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from providers import crypto
from providers.models import Product, ProviderAccount


class Recipient(models.Model):
    name = models.CharField(max_length=200)
    email = models.EmailField(max_length=254)
    phone = models.CharField(max_length=40, blank=True)
    reference = models.CharField(max_length=100, blank=True, help_text="E.g. an employee number.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["email"]),
            # The order list's search (orders.order_search): an exact email whatever its case,
            # and the spreadsheet's reference as typed.
            models.Index(Lower("email"), name="recipient_email_lower_idx"),
            models.Index(fields=["reference"], name="recipient_reference_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>"


class BatchState(models.TextChoices):
    PENDING = "pending", "Pending (not sent)"
    AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
    APPROVED = "approved", "Approved"
    SENDING = "sending", "Sending"
    COMPLETED = "completed", "Completed"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class Batch(models.Model):
    """One upload: a spreadsheet's valid rows, sent together through one account."""

    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    account = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT, related_name="batches")
    default_product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    default_amount = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    message = models.TextField(blank=True)
    sender_name = models.CharField(max_length=200, blank=True)
    campaign = models.CharField("cost center / campaign", max_length=100, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    # Who pressed Send, and when: an approval or a schedule may stand between that and queueing.
    send_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    send_requested_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    # What the approver signed (orders.approvals.batch_fingerprint): a batch that no longer
    # matches it is not the batch that was approved.
    approved_fingerprint = models.CharField(max_length=64, blank=True, editable=False)
    rejected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    rejected_at = models.DateTimeField(null=True, blank=True)
    rejection_reason = models.TextField(blank=True)
    state = models.CharField(max_length=20, choices=BatchState.choices, default=BatchState.PENDING)
    source_filename = models.CharField(max_length=255, blank=True)
    source_checksum = models.CharField("source SHA-256", max_length=64, blank=True)
    # The upload's invalid rows, left out of the batch: shown to the approver. Capped
    # (REJECTED_ROWS_KEPT); the count is exact.
    rejected_rows = models.JSONField(default=list, blank=True, editable=False,
                                     help_text="[{row, column, message}] of the upload's invalid rows.")
    rejected_row_count = models.PositiveIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Totals of its orders kept on the batch (orders.batch_totals), so the batch list reads
    # them instead of counting every order on every page. Written only through
    # orders.events.record_transition and batch_totals_refresh, never by save() (below).
    pending_count = models.PositiveIntegerField(default=0, editable=False)
    queued_count = models.PositiveIntegerField(default=0, editable=False)
    sending_count = models.PositiveIntegerField(default=0, editable=False)
    processing_count = models.PositiveIntegerField(default=0, editable=False)
    delivered_count = models.PositiveIntegerField(default=0, editable=False)
    failed_count = models.PositiveIntegerField(default=0, editable=False)
    cancelled_count = models.PositiveIntegerField(default=0, editable=False)
    face_value_totals = models.JSONField(default=dict, blank=True, editable=False,
                                         help_text='Face value of all its orders per currency, e.g. {"DKK": "1500.00"}.')

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "batches"
        # source_checksum: the preview's "this file was uploaded before" (orders.same_file).
        # created_at: the batch list's order and its date drill-down (an index scan, not a sort).
        indexes = [models.Index(fields=["state"]), models.Index(fields=["source_checksum"]),
                   models.Index(fields=["created_at"], name="batch_created_at_idx")]
        # Four eyes: the Approvers group (orders/migrations/0014); nobody approves their own.
        permissions = [("approve_batch", "Can approve or reject others' batches")]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        # The stored totals move by deltas as orders change (orders.batch_totals): a batch
        # loaded a moment ago and saved whole would put back the counts it read.
        if not self._state.adding and kwargs.get("update_fields") is None:
            kwargs["update_fields"] = [field.name for field in self._meta.concrete_fields
                                       if not field.primary_key and field.name not in BATCH_TOTALS_FIELDS]
        super().save(*args, **kwargs)


# Batch fields only orders.batch_totals writes.
BATCH_TOTALS_FIELDS = frozenset({"pending_count", "queued_count", "sending_count", "processing_count",
                                 "delivered_count", "failed_count", "cancelled_count", "face_value_totals"})


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    PROCESSING = "processing", "Processing"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = (OrderStatus.DELIVERED, OrderStatus.FAILED, OrderStatus.CANCELLED)
# Orders the provider accepted: what was bought (the spend in totals, the dashboard and a
# reconciliation).
BOUGHT_STATUSES = (OrderStatus.PROCESSING, OrderStatus.DELIVERED)


class SubmissionState(models.TextChoices):
    # The key is stored; the request may not have gone out yet.
    PREPARED = "prepared", "Prepared"
    # A request is (or was) in flight: the outcome is not known.
    IN_FLIGHT = "in_flight", "In flight"
    # Waiting to be retried with the same key.
    RETRY = "retry", "Waiting to retry"
    ACCEPTED = "accepted", "Accepted by the provider"
    REJECTED = "rejected", "Rejected by the provider"


class Submission(models.Model):
    """One provider request carrying one or more orders, under one idempotency key."""

    account = models.ForeignKey(ProviderAccount, on_delete=models.PROTECT, related_name="submissions")
    idempotency_key = models.CharField(max_length=80, unique=True)
    # Text: a synchronous bulk order can carry many provider order ids.
    provider_reference = models.TextField(blank=True, help_text="Basket id, order id(s) or order request id.")
    state = models.CharField(
        max_length=20, choices=SubmissionState.choices, default=SubmissionState.PREPARED
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # An attempt may have been committed by the provider: from then on the submission is
    # only ever reconciled (same key, or a lookup), never failed for lack of an answer.
    outcome_unknown = models.BooleanField(default=False)
    # Accepted, with cards the provider is still fulfilling: when to ask again.
    next_poll_at = models.DateTimeField(null=True, blank=True, db_index=True)
    polls = models.PositiveIntegerField(default=0, help_text="Status lookups so far (they back off).")
    # Set on the single-card submissions made from a multi-card one the provider refused.
    split_from = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="splits"
    )
    last_error = models.TextField(blank=True)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # Fencing token of the attempt in flight: only its holder may record the outcome, so an
    # attempt given up as dead (and taken over) can never overwrite its successor's state.
    attempt_token = models.CharField(max_length=32, blank=True)
    # While in flight: until when the attempt's worker is presumed alive. It renews this every
    # third of GIFTDESK_LEASE_SECONDS (orders.leases); run out, the submission is taken over.
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["state", "next_attempt_at"]),
            # The sweep's and each pump's search for leases run out: only rows in flight, few.
            models.Index(fields=["lease_until"], condition=models.Q(state="in_flight"),
                         name="orders_sub_inflight_lease_idx"),
        ]

    def __str__(self) -> str:
        return f"Submission {self.idempotency_key}"


class Order(models.Model):
    """One card for one recipient."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="orders")
    recipient = models.ForeignKey(Recipient, on_delete=models.PROTECT, related_name="orders")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="orders")
    amount = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    message = models.TextField(blank=True)
    send_on = models.DateField(null=True, blank=True)
    # Our reference, sent to the provider so an order can be found again.
    reference = models.CharField(max_length=64, unique=True)
    source_row = models.PositiveIntegerField(null=True, blank=True, help_text="Spreadsheet row.")

    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING)
    # Why a queued order is not being sent now (a monthly spending limit, a paused
    # account); blank when nothing holds it back.
    waiting_reason = models.TextField("waiting for", blank=True)
    # When the engine last took it to send: the month its amount counts against the
    # account's spending limit (orders.spending).
    claimed_at = models.DateTimeField(null=True, blank=True)
    # The provider answered that it did not create this card: nothing was bought, so a
    # retry under a new idempotency key is safe. Never set for an unknown outcome.
    definitely_refused = models.BooleanField(default=False)
    retries = models.PositiveIntegerField(default=0, help_text="Times staff retried it after a refusal.")
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="resends",
        help_text="The failed order this one resends, to a corrected email.",
    )
    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )
    provider_order_id = models.CharField(max_length=100, blank=True)
    # The provider's own card (e.g. a Gifty gift card code) is cash: stored only encrypted,
    # kept because the balance lookup needs it; staff see its last 4 characters.
    card_code_encrypted = models.TextField(blank=True, editable=False)
    card_code_last4 = models.CharField("card code (last 4)", max_length=4, blank=True, editable=False)
    provider_details = models.JSONField(
        default=dict, blank=True, help_text="What the provider reports of the card (balance, expiry…)."
    )
    cost = models.DecimalField(
        "cost as charged", max_digits=12, decimal_places=2, null=True, blank=True
    )
    cost_currency = models.CharField(max_length=3, blank=True)
    last_error = models.TextField(blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "source_row", "id"]
        indexes = [
            models.Index(fields=["status", "batch"]),
            # Orders that failed lately, for the start page (orders.attention).
            models.Index(fields=["status", "completed_at"]),
            models.Index(fields=["created_at"]),
            # The month's spend of an account in a currency (orders.spending); claimed_at
            # first, so a lookup of queued orders by currency never picks it over (status, batch).
            models.Index(fields=["claimed_at", "currency"]),
            # The order list (orders/admin_order_filters.py, orders/order_search.py): its order (newest
            # batch first, then newest order) read from an index, alone, in one batch or one
            # currency; "last change" sorted; a provider order id searched.
            models.Index(fields=["batch", "id"], name="order_batch_id_idx"),
            models.Index(fields=["currency", "batch", "id"], name="order_currency_batch_id_idx"),
            models.Index(fields=["updated_at", "id"], name="order_updated_at_id_idx"),
            models.Index(fields=["provider_order_id"], name="order_provider_order_id_idx"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="order_amount_positive"),
        ]
        # Exporting takes every recipient's data out of GiftDesk: a permission of its own,
        # not a side effect of "view" (Finance and administrators).
        # Asking a provider about bought cards is for Senders and administrators, not Finance
        # (read-only) nor Approvers: a permission of its own (orders/migrations/0012).
        permissions = [("export_order", "Can export orders"),
                       ("refresh_card_details", "Can ask the provider for bought cards' details")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} {self.currency} to {self.recipient.email}"

    @staticmethod
    def card_code_columns(code: str) -> dict[str, str]:
        """The stored form of a card code: encrypted, and its last 4 characters to show."""
        code = (code or "").strip()
        return {"card_code_encrypted": crypto.encrypt_text(code) if code else "", "card_code_last4": code[-4:]}

    def set_card_code(self, code: str) -> None:
        for name, value in self.card_code_columns(code).items():
            setattr(self, name, value)

    def card_code(self) -> str:
        """The clear card code ("" when none): only for asking the provider about the card."""
        return crypto.decrypt_text(self.card_code_encrypted)

    @property
    def card_code_masked(self) -> str:
        """What staff and exports may see of the card code: "••••WXYZ", or "" when none."""
        return f"••••{self.card_code_last4}" if self.card_code_last4 else ""


class ProviderCall(models.Model):
    """One HTTP call to a provider, stored once however many orders it carried."""

    submission = models.ForeignKey(Submission, on_delete=models.PROTECT, related_name="calls")
    orders = models.ManyToManyField(Order, related_name="provider_calls", help_text="The orders it carried.")
    # Not auto_now_add: the data migration keeps the time of the events it replaces.
    created_at = models.DateTimeField(default=timezone.now)
    actor = models.CharField(max_length=150, help_text="The worker that made the call.")
    method = models.CharField(max_length=10)
    url = models.CharField("URL", max_length=500)
    http_status = models.PositiveIntegerField("HTTP status", null=True, blank=True, help_text="Empty: no answer.")
    duration_ms = models.PositiveIntegerField("duration (ms)")
    request_body = models.TextField(blank=True, help_text="Secrets redacted.")
    response_body = models.TextField(blank=True, help_text="Secrets redacted.")
    error = models.TextField(blank=True, help_text="Why there was no answer, e.g. “timed out”.")
    # A small number, not a time: a blanked row keeps it for good (a time takes 26 bytes on SQLite).
    bodies_kept_days = models.PositiveSmallIntegerField(
        null=True, blank=True, editable=False,
        help_text="Set when the bodies were blanked: the days they were kept (GIFTDESK_CALL_BODY_RETENTION_DAYS).",
    )

    class Meta:
        # Read by submission (the foreign key's index) and by order (the link table's index).
        ordering = ["created_at", "id"]
        indexes = [
            # The retention task's way to the oldest calls still holding bodies (orders.call_retention);
            # a blanked call leaves it, so it stays as small as the bodies kept.
            models.Index(fields=["created_at"], condition=Q(bodies_kept_days__isnull=True),
                         name="providercall_bodies_kept_idx"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.method} {self.url} → {self.http_status or self.error or 'no answer'}"


class EventKind(models.TextChoices):
    STATUS = "status", "Status change"
    NOTE = "note", "Note"


class OrderEvent(models.Model):
    """Append-only history of an order: state changes and notes, each with its cause."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="events")
    submission = models.ForeignKey(
        Submission, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.CharField(max_length=150, help_text="A user name or a worker.")
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20, blank=True)
    message = models.TextField(blank=True)
    provider_call = models.ForeignKey(
        ProviderCall, null=True, blank=True, on_delete=models.SET_NULL, related_name="events",
        help_text="The provider call that caused it.",
    )

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:60]}"


class BatchEventKind(models.TextChoices):
    CREATED = "created", "Orders created"


class BatchEvent(models.Model):
    """An event of a whole batch, recorded once instead of once per order (issue 12: an upload
    of 50,000 rows wrote 50,000 creation events). `CREATED`: the upload created its orders,
    pending; each order it created shows it as the first line of its history
    (`orders.events.order_history`). An order created later in the batch (a resend) has a
    creation event of its own instead. Append-only."""

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="events")
    created_at = models.DateTimeField(auto_now_add=True)
    actor = models.CharField(max_length=150, help_text="A user name, or “system”.")
    kind = models.CharField(max_length=20, choices=BatchEventKind.choices)
    to_status = models.CharField(max_length=20, blank=True, help_text="The status the orders were given.")
    order_count = models.PositiveIntegerField(default=0, help_text="How many orders it concerned.")
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["batch"], condition=Q(kind="created"), name="batch_created_once"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.message[:60]}"


class ReconciliationState(models.TextChoices):
    RUNNING = "running", "Running"
    AGREED = "agreed", "Everything agrees"
    DIFFERENCES = "differences", "Differences found"
    FAILED = "failed", "Failed"


class Reconciliation(models.Model):
    """One run of "ask each provider what became of the orders it accepted" (orders.reconciliation).
    It only reports: no order is changed by it."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="Empty: run by `manage.py reconcile`.",
    )
    # PROTECT: "all accounts" must never be what a deleted account's reconciliation turns into.
    account = models.ForeignKey(ProviderAccount, null=True, blank=True, on_delete=models.PROTECT,
                                related_name="reconciliations", help_text="Empty: every active account.")
    since = models.DateField(help_text="Orders created on or after this day (server time zone).")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=20, choices=ReconciliationState.choices, default=ReconciliationState.RUNNING)
    orders_checked = models.PositiveIntegerField(default=0, help_text="Orders their provider was asked about.")
    orders_not_checkable = models.PositiveIntegerField(
        default=0, help_text="Orders of providers that document no order lookup (GoGift).")
    differences_count = models.PositiveIntegerField("differences", default=0)
    # [{order_id, reference, email, spreadsheet_reference, kind, ours, theirs, message}]; capped
    # (orders.reconciliation.REPORT_LINES_KEPT), the count above is exact.
    lines = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)
    error = models.TextField(blank=True, help_text="Why the run itself failed.")
    # Progress of a run done in several task slices: the last submission asked about, the
    # accounts whose orders were checked, and the uncheckable orders per provider.
    cursor = models.PositiveBigIntegerField(default=0, editable=False)
    checked_account_ids = models.JSONField(default=list, blank=True, editable=False)
    not_checkable_by_provider = models.JSONField(default=dict, blank=True, editable=False)
    # A running slice holds the run until then (a slice whose worker died is taken over
    # after it); between slices, when the last one let go. Long past: nobody runs it any
    # more (orders.reconciliation.stale_reconciliations_stop).
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        # Asking providers buys nothing: Finance may (orders/migrations/0019).
        permissions = [("reconcile_orders", "Can reconcile orders with the providers")]

    def __str__(self) -> str:
        return f"Reconciliation #{self.pk}"

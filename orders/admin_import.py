"""django-import-export's upload -> preview -> confirm flow, driven by our spreadsheet contract.

import-export owns the screens, the temporary file between preview and confirm, and the
result shown; `orders.spreadsheet` owns reading and checking the file (tablib would drop
blank rows and shift row numbers); `orders.uploads` stores the file and names it in the
confirm form by a ticket bound to the uploader. Two deviations from import-export's defaults:
- invalid rows do not block the confirm button: they are reported as skipped rows, listed
  with their reasons, and left out;
- nothing is written per row: on confirm, the valid rows become a Batch and its Orders in
  one transaction through `orders.batches.batch_create` (the dry run writes nothing).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from decimal import Decimal

import tablib
from django import forms
from django.conf import settings
from django.utils import timezone
from import_export.fields import Field
from import_export.forms import ConfirmImportForm, ImportForm
from import_export.formats.base_formats import Format
from import_export.resources import Resource
from import_export.results import Error, Result, RowResult

from orders import spreadsheet, uploads
from orders.batches import BatchActionRefused, batch_create
from orders.funds import funds_check
from orders.import_preview import (KeptPreview, context_fingerprint, recent_recipients, rows_kept,
                                   rows_with_warnings)
from orders.money import amount_text
from orders.product_choices import (CHOOSE_ACCOUNT_FIRST, account_products, active_account, empty_label,
                                    product_label, product_options, raw_id)
from orders.provider_queries import rows_quote
from orders.same_file import same_file_batches
from orders.spending import limit_remaining
from orders.spreadsheet.read import too_large_message
from providers.models import Product, ProviderAccount

# "This importer will import the following fields": the contract's columns.
SPREADSHEET_COLUMNS = [("name (or first_name + last_name)" if name == "name" else name)
                       for name in spreadsheet.COLUMNS]
# A 50,000-row file previews its first rows; the counts, totals and download cover all.
PREVIEW_ROWS_SHOWN = 500
PREVIEW_HEADERS = ["Row", "Name", "Email", "Amount", "Product", "Message", "Send on", "Warnings"]


class SpreadsheetFormat(Format):
    """One format for every upload: what the file is decides how it is read."""

    def __init__(self, encoding: str | None = None) -> None:
        self.encoding = encoding  # import-export passes one; the contract detects its own.

    def get_title(self) -> str:
        return "Spreadsheet (CSV or XLSX)"

    def can_import(self) -> bool:
        return True

    def is_binary(self) -> bool:
        return True

    def create_dataset(self, in_stream: bytes) -> tablib.Dataset:
        table = spreadsheet.read_table(bytes(in_stream))
        # import-export only needs to see that there are rows; the parsed table travels
        # with the dataset to the resource, which does the real work.
        dataset = tablib.Dataset(*[(row.number,) for row in table.rows], headers=["row"])
        dataset.giftdesk_table = table
        dataset.giftdesk_checksum = hashlib.sha256(bytes(in_stream)).hexdigest()
        return dataset

    def confirm_dataset(self, data: bytes, kept: KeptPreview | None) -> tablib.Dataset:
        """The confirm step's dataset: the preview kept for these very bytes, if any, and the
        bytes, read only if the resource needs them (dataset_table): the kept preview is used
        only while the choices and the database are as they were (BatchImportResource)."""
        dataset = tablib.Dataset(headers=["row"])
        dataset.giftdesk_checksum = hashlib.sha256(data).hexdigest()
        dataset.giftdesk_kept = kept if kept is not None and kept.checksum == dataset.giftdesk_checksum else None
        dataset.giftdesk_data = data
        dataset.giftdesk_table = None
        return dataset


def dataset_table(dataset: tablib.Dataset) -> spreadsheet.Table:
    """The dataset's table: read by create_dataset, or now (a confirm without a usable kept preview)."""
    if getattr(dataset, "giftdesk_table", None) is None:
        dataset.giftdesk_table = spreadsheet.read_table(dataset.giftdesk_data)
    return dataset.giftdesk_table


class AccountProductField(forms.ModelChoiceField):
    """A product of one account (set with `for_account`); another account's product is
    refused naming the account it belongs to, an inactive one saying so."""

    def __init__(self, **kwargs) -> None:
        super().__init__(queryset=Product.objects.none(), empty_label=CHOOSE_ACCOUNT_FIRST, **kwargs)
        self.account: ProviderAccount | None = None
        self.labels: dict[int, str] = {}

    def for_account(self, account: ProviderAccount | None) -> None:
        self.account = account
        self.queryset = account_products(account).select_related("account")
        self.labels = dict(product_options(account))
        self.empty_label = empty_label(account, bool(self.labels))

    def label_from_instance(self, product: Product) -> str:
        return self.labels.get(product.pk) or product_label(product)

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError as refusal:
            if refusal.code != "invalid_choice":
                raise
            raise forms.ValidationError(self.refusal_reason(value), code="invalid_choice") from None

    def refusal_reason(self, value) -> str:
        pk = raw_id(value)
        product = None if pk is None else Product.objects.select_related("account").filter(pk=pk).first()
        if self.account is None:
            return "Choose an account first, then one of its products."
        if product is None:
            return "That product does not exist (any more). Choose one from the list."
        if product.account_id != self.account.pk:
            return (f"“{product.title}” belongs to {product.account}, not to {self.account}. "
                    "Choose a product of the selected account.")
        return f"“{product.title}” is no longer offered by {self.account}. Choose an active product."


class AmountField(forms.DecimalField):
    """An amount read as the spreadsheet's amount column reads it (`spreadsheet.parse_amount`:
    the digits 0-9 only, refused in the same words); Django's own reading would take "٥٠",
    "５０" and "1e2"."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return spreadsheet.parse_amount(str(value).strip())
        except spreadsheet.NotAnAmount as refusal:
            raise forms.ValidationError(str(refusal), code="invalid") from None


class BatchOptionsMixin(forms.Form):
    """What the user chooses beside the file; carried from preview to confirm."""

    account = forms.ModelChoiceField(
        queryset=ProviderAccount.objects.filter(is_active=True),
        help_text="The provider account that sends the cards.",
    )
    # Only the chosen account's active products (`orders.product_choices`); the browser
    # refills the list when the account changes (static/giftdesk/import_form.js).
    default_product = AccountProductField(
        required=False,
        help_text="Used for rows without a product column. Must belong to the account.",
    )
    default_amount = AmountField(
        max_digits=12, decimal_places=2, min_value=Decimal("0.01"), required=False,
        help_text="Used for rows without an amount.",
    )
    message = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False,
        help_text="The greeting on every card, unless a row has its own message.",
    )
    batch_name = forms.CharField(max_length=200, required=False, help_text="Default: the file's name.")
    sender_name = forms.CharField(max_length=200, required=False)
    campaign = forms.CharField(label="Cost center / campaign", max_length=100, required=False)
    scheduled_for = forms.DateTimeField(
        label="Send at", required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text="Optional, in GiftDesk's time zone: the batch is queued at this time, not when Send is "
                  "pressed (it still needs Send, and approval where its total asks for one).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # The account posted (a bound form, also after an error) or offered (?account=, the
        # only active one): its products are the only ones offered and accepted.
        chosen = self.data.get(self.add_prefix("account")) if self.is_bound else self.initial.get("account")
        self.chosen_account = active_account(chosen)
        self.fields["default_product"].for_account(self.chosen_account)

    def clean_scheduled_for(self):
        when = self.cleaned_data.get("scheduled_for")
        if when is not None and when <= timezone.now():
            now = timezone.localtime()
            raise forms.ValidationError(
                f"“Send at” must be in the future: {timezone.localtime(when):%Y-%m-%d %H:%M} has passed (it is "
                f"{now:%Y-%m-%d %H:%M} {now.tzname()} now). Choose a later time, or leave it empty to send "
                "when you press Send."
            )
        return when

    def clean(self):
        cleaned = super().clean()
        account, product = cleaned.get("account"), cleaned.get("default_product")
        if account and product and product.account_id != account.pk:
            self.add_error(
                "default_product",
                f"“{product.title}” belongs to {product.account}, not to {account}. "
                "Choose a product of the selected account.",
            )
        return cleaned

    def batch_options(self) -> dict:
        data = self.cleaned_data
        return {
            "account": data["account"],
            "default_product": data.get("default_product"),
            "default_amount": data.get("default_amount"),
            "message": data.get("message") or "",
            "name": data.get("batch_name") or "",
            "sender_name": data.get("sender_name") or "",
            "campaign": data.get("campaign") or "",
            "scheduled_for": data.get("scheduled_for"),
        }


class SpreadsheetImportForm(BatchOptionsMixin, ImportForm):
    field_order = ["import_file", "account", "default_product", "default_amount", "message",
                   "batch_name", "sender_name", "campaign", "scheduled_for"]

    def clean_import_file(self):
        upload = self.cleaned_data["import_file"]
        limit = settings.GIFTDESK_IMPORT_MAX_BYTES
        # Refused before it is read, so a huge file fails at once with the limit named.
        if upload.size > limit:
            # The same wording and units as send_csv and read_table (1 MB = 1024 KB, as the README).
            raise forms.ValidationError(f"{too_large_message(upload.size, limit)} Split it into smaller files.")
        return upload


class SpreadsheetConfirmForm(BatchOptionsMixin, ConfirmImportForm):
    """`import_file_name` carries a ticket (`orders.uploads`), not a file name."""

    leave_out_recent = forms.BooleanField(required=False, label="Leave out recent recipients")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        for name in BatchOptionsMixin.base_fields:
            self.fields[name].widget = forms.HiddenInput()

    def offer_leave_out(self, result) -> None:
        """On the preview: the choice shows only when some valid rows are recent recipients,
        labelled with their count, and is ticked when this same file was uploaded before."""
        recent = getattr(result, "giftdesk_recent", None)
        if not recent:
            del self.fields["leave_out_recent"]
            return
        self.fields["leave_out_recent"].label = recent.label
        self.fields["leave_out_recent"].initial = getattr(result, "giftdesk_same_file", None) is not None

    def clean_import_file_name(self):
        # Replaces import-export's basename() of whatever was posted: only a ticket issued
        # for this user's own, still kept upload gets through, as the file's token.
        try:
            return uploads.upload_claim(self.cleaned_data["import_file_name"],
                                        user_id=getattr(self.user, "pk", None))
        except uploads.UploadRefused as exc:
            raise forms.ValidationError(str(exc)) from None


class BatchImportResource(Resource):
    """Validates a parsed spreadsheet; on confirm, creates the batch from its valid rows."""

    def __init__(self, *, options: dict | None = None, leave_out_recent: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.options = options or {}
        self.leave_out_recent = leave_out_recent  # the confirm form's choice

    @classmethod
    def get_display_name(cls) -> str:
        return "Recipients"

    def get_user_visible_fields(self):
        # Shown above the upload form as "This importer will import the following fields".
        return [Field(column_name=name) for name in SPREADSHEET_COLUMNS]

    def import_data(self, dataset, dry_run=False, raise_errors=False, **kwargs) -> Result:
        context = spreadsheet.ImportContext.for_account(
            self.options["account"],
            default_product=self.options.get("default_product"),
            default_amount=self.options.get("default_amount"),
            default_message=self.options.get("message", ""),
        )
        fingerprint = context_fingerprint(context)
        kept: KeptPreview | None = getattr(dataset, "giftdesk_kept", None)
        result = Result()
        try:
            if kept is not None and kept.fingerprint == fingerprint:
                preview = kept.preview_for(context)  # the confirm of an unchanged preview: nothing read again
            else:
                preview = spreadsheet.validate(dataset_table(dataset), context)
        except spreadsheet.FileRefused as exc:
            result.append_base_error(Error(exc))
            return result
        dataset.giftdesk_table = None  # read and checked: its rows are the preview's now
        result.diff_headers = PREVIEW_HEADERS
        result.giftdesk_preview = preview
        # Kept for the confirm step by the admin (orders.admin_kept_upload), under the file's token.
        result.giftdesk_kept = KeptPreview(checksum=getattr(dataset, "giftdesk_checksum", ""),
                                           fingerprint=fingerprint, preview=preview) if dry_run else None
        result.giftdesk_invalid_csv = _data_uri(spreadsheet.invalid_rows_csv(preview))
        # The page shows the first rows; every row is checked and counted all the same.
        result.giftdesk_errors_shown = preview.errors[:PREVIEW_ROWS_SHOWN]
        result.giftdesk_rows_shown = min(len(preview.valid_rows), PREVIEW_ROWS_SHOWN)
        result.giftdesk_warning_rows = rows_with_warnings(preview)
        result.giftdesk_recent = recent_recipients(preview, context)
        for row in preview.valid_rows[:PREVIEW_ROWS_SHOWN]:
            result.append_row_result(_row_result(RowResult.IMPORT_TYPE_NEW, [
                row.row, row.name, row.email, f"{row.amount:f} {row.currency}", row.product.title,
                row.message, row.send_on.isoformat() if row.send_on else "—", " ".join(row.warnings),
            ], warning=bool(row.warnings)))
        for row in preview.invalid_rows[:PREVIEW_ROWS_SHOWN]:
            # Skipped, not "invalid": import-export would otherwise refuse the confirm step.
            result.append_row_result(_row_result(RowResult.IMPORT_TYPE_SKIP, [row.row]))
        if dry_run:
            # Shown beside the confirm button where the provider prices orders up front.
            result.giftdesk_quote, result.giftdesk_quote_problem = rows_quote(
                account=self.options["account"], rows=preview.valid_rows)
            # Beside the totals: the month's spending limit and the wallet; warnings, not errors.
            result.giftdesk_limits = limit_lines(self.options["account"], preview.totals)
            result.giftdesk_funds = funds_check(self.options["account"], preview.totals) if preview.totals else None
            result.giftdesk_scheduled_for = self.options.get("scheduled_for")
            # At the top: this very file (by checksum) made an earlier batch.
            result.giftdesk_same_file = same_file_batches(getattr(dataset, "giftdesk_checksum", ""))
        result.totals[RowResult.IMPORT_TYPE_NEW] = len(preview.valid_rows)
        result.totals[RowResult.IMPORT_TYPE_SKIP] = len(preview.invalid_rows)
        result.total_rows = len(preview.valid_rows) + len(preview.invalid_rows)
        if not dry_run:
            # Recent recipients the uploader chose to leave out: not created, and not invalid.
            result.giftdesk_left_out = list(result.giftdesk_recent.rows) if self.leave_out_recent else []
            rows = rows_kept(preview, result.giftdesk_left_out)
            if not rows and preview.valid_rows:
                result.append_base_error(Error(
                    "Every valid row is a recent recipient, and you chose to leave them out, so nothing was "
                    "created. Upload the file again and untick “Leave out” to send to them all the same."))
                return result
            try:
                result.giftdesk_batch = batch_create(
                    rows=rows,
                    user=kwargs.get("user"),
                    source_filename=kwargs.get("file_name") or "",
                    source_checksum=getattr(dataset, "giftdesk_checksum", ""),
                    rejected_rows=preview.errors,
                    left_out_rows=result.giftdesk_left_out,
                    **self.options,
                )
            except BatchActionRefused as exc:
                result.append_base_error(Error(exc))
        return result


@dataclass(frozen=True)
class LimitLine:
    """One currency of the preview's totals against the account's monthly spending limit."""

    currency: str
    text: str
    over: bool


def limit_lines(account: ProviderAccount, totals: dict[str, Decimal]) -> list[LimitLine]:
    """What is left of each currency's monthly limit for these totals; none without a limit."""
    lines = []
    for currency, total in sorted(totals.items()):
        remaining = limit_remaining(account, currency)
        if remaining is None:
            continue
        if total > remaining:
            text = (f"This batch's {amount_text(total, currency)} is over the monthly spending limit of {account} "
                    f"by {amount_text(total - remaining, currency)} ({amount_text(remaining, currency)} left this "
                    "month): the orders over it wait, with the reason, until the limit allows them.")
        else:
            text = (f"{amount_text(remaining, currency)} left of the monthly spending limit this month; this batch "
                    f"uses {amount_text(total, currency)}.")
        lines.append(LimitLine(currency=currency, text=text, over=total > remaining))
    return lines


def _row_result(import_type: str, values: list, *, warning: bool = False) -> RowResult:
    row_result = RowResult()
    row_result.import_type = import_type
    row_result.diff = [str(value) for value in values]
    row_result.giftdesk_warning = warning  # shown apart from the plain valid rows
    return row_result


def _data_uri(text: str) -> str:
    # With a BOM, so Excel reads the file as UTF-8.
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(text.encode("utf-8-sig")).decode()

"""The upload form keeps its file after an error, and always lists the importer's fields.

When the upload form comes back with an error (no account chosen, "Send at" in the past, a
product of another account, a file without amounts and no default amount), the person
should not have to choose the file again. The file stays server-side, by token, exactly as a
preview's file does (`orders.uploads`: 0600 in GIFTDESK_UPLOAD_DIR, swept after
GIFTDESK_UPLOAD_MAX_AGE_HOURS); the form carries a signed ticket bound to the uploader and
says "Kept from your last try: recipients.csv (2 KB)". The next submit without a new file
uses it; a new file replaces it. A file that cannot be read is never kept (it is deleted
at once), nor is one whose rows are all invalid: those need a new file anyway. So a kept
file was read fine once; another form error keeps it again without reading it again (an
XLSX would go through the bounded child process each time).

The preview's checked rows are kept with its file, under the same token (`preview_keep`), and
the confirm step uses them instead of reading and checking the file again (`process_import`;
orders/import_preview.py says when they are not used).

import-export lists "This importer will import the following fields" only on some branches
of its `import_action` (not when the file could not be read); the list is filled in here.
"""

from __future__ import annotations

from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils.datastructures import MultiValueDict
from django.utils.html import format_html

from orders import spreadsheet, uploads
from orders.import_preview import preview_keep, preview_take
from orders.spreadsheet.read import format_size

KEPT_FIELD = "kept_upload"


class KeptFile(SimpleUploadedFile):
    """The kept file as the form's upload: read fine when it was kept."""


class KeptUploadField(forms.CharField):
    """A hidden field that shows the ticket the view sets now, never the one posted before
    (the view reads the posted one itself, before the form is built)."""

    widget = forms.HiddenInput

    def __init__(self, **kwargs) -> None:
        super().__init__(required=False, **kwargs)

    def bound_data(self, data, initial):
        return initial


class KeptUploadMixin:
    """For BatchAdmin, before import-export's ImportMixin in the bases."""

    def import_action(self, request, **kwargs):
        kept_file, kept_problem = self.kept_file_take(request) if request.method == "POST" else (None, None)
        request.giftdesk_kept_file = kept_file  # read by get_import_form_kwargs
        response = super().import_action(request, **kwargs)
        context = getattr(response, "context_data", None)
        if context is None:
            return response
        form = context.get("form")
        if kept_problem and form is not None:
            # Instead of "This field is required": why the kept file was not used.
            form.errors["import_file"] = form.error_class([kept_problem])
        if request.method == "POST" and form is not None:
            self.kept_file_keep_or_discard(request, context, form)
        if not context.get("fields_list"):
            context["fields_list"] = self.import_fields_list(request)
        return response

    def process_import(self, request, **kwargs):
        """The confirm step, as import-export's, but with the preview's checked rows when they
        were kept for this file (orders.import_preview): the file is then not read and checked
        a second time. The token comes from the confirm form's signed ticket, never from
        the browser as such; the resource re-reads the file if anything changed since."""
        if request.method != "POST" or not self.has_import_permission(request):
            return super().process_import(request, **kwargs)
        confirm_form = self.create_confirm_form(request)
        if not confirm_form.is_valid():
            return super().process_import(request, **kwargs)  # import-export's page with the errors
        input_format = self.get_import_formats()[int(confirm_form.cleaned_data["format"])](
            encoding=self.from_encoding)
        token = confirm_form.cleaned_data["import_file_name"]
        storage = self.get_tmp_storage_class()(name=token, encoding=None, read_mode=input_format.get_read_mode(),
                                               **self.get_tmp_storage_class_kwargs())
        dataset = input_format.confirm_dataset(storage.read(), preview_take(token))
        result = self.process_dataset(dataset, confirm_form, request, **kwargs)
        storage.remove()
        return self.process_result(result, request)

    def get_import_form_kwargs(self, request):
        kwargs = super().get_import_form_kwargs(request)
        kept_file = getattr(request, "giftdesk_kept_file", None)
        if kept_file is not None:  # only when no new file was posted
            kwargs["files"] = MultiValueDict({"import_file": [kept_file]})
        return kwargs

    def create_import_form(self, request):
        form = super().create_import_form(request)
        form.fields[KEPT_FIELD] = KeptUploadField()
        return form

    @staticmethod
    def kept_file_take(request):
        """The kept file as an upload, when the form names one and brings no new file; and
        why a named one was not used (shown on the file field), if it was not."""
        ticket = request.POST.get(KEPT_FIELD)
        if not ticket:
            return None, None
        new_file = request.FILES.get("import_file") is not None
        try:
            kept = uploads.kept_upload_claim(ticket, user_id=request.user.pk)
        except uploads.UploadRefused as exc:
            return None, (None if new_file else str(exc))
        try:
            data = None if new_file else kept.read()
        except FileNotFoundError:  # swept since the claim
            return None, uploads.KEPT_GONE
        finally:
            uploads.upload_discard(kept.token)  # Used now (stored again if needed), or replaced.
        return (None if new_file else KeptFile(kept.name, data)), None

    def kept_file_keep_or_discard(self, request, context, form) -> None:
        upload = form.files.get("import_file") if form.files else None  # the new file, or the kept one
        if upload is None:
            return
        token = getattr(upload, "tmp_storage_name", None)  # set by import-export once it stored the file
        if context.get("confirm_form") is not None:
            result = context.get("result")
            preview = getattr(result, "giftdesk_preview", None)
            if token and (preview is None or not preview.valid_rows):
                uploads.upload_discard(token)  # No valid row: only a corrected file can go on.
            elif token and getattr(result, "giftdesk_kept", None) is not None:
                preview_keep(token, result.giftdesk_kept)  # its checked rows too, for the confirm
            return  # Otherwise kept for the confirm step.
        if "import_file" in form.errors:
            if token:
                uploads.upload_discard(token)  # Unreadable (or over the size limit, never stored): never kept.
            return
        if token is None:
            # The form stopped before the file was read: read it now, so an unreadable file
            # is said at once, beside the other errors, and never kept. A file kept from the
            # last try was read fine then.
            data = b"".join(upload.chunks())
            if not isinstance(upload, KeptFile):
                try:
                    spreadsheet.read_table(data, upload.name)
                except spreadsheet.FileRefused as exc:
                    form.add_error("import_file", str(exc))
                    return
            token = uploads.upload_store(data)
        kept = uploads.KeptUpload(token=token, name=upload.name, size=upload.size)
        self.kept_file_offer(request, context, form, kept)

    @staticmethod
    def kept_file_offer(request, context, form, kept: uploads.KeptUpload) -> None:
        ticket = uploads.kept_upload_ticket(kept.token, user_id=request.user.pk, name=kept.name)
        form.fields[KEPT_FIELD].initial = ticket
        file_field = form.fields["import_file"]
        file_field.required = False  # The browser would otherwise insist on a new file.
        file_field.help_text = format_html(
            '<span id="kept-upload" class="giftdesk-kept-upload">Kept from your last try: <strong>{}</strong> ({}). '
            "Choose another file to replace it.</span>", kept.name, format_size(kept.size))
        context["kept_upload"] = kept

    def import_fields_list(self, request) -> list:
        resource_kwargs = self.get_import_resource_kwargs(request)
        return [
            (resource_class.get_display_name(),
             [field.column_name for field in resource_class(**resource_kwargs).get_user_visible_fields()])
            for resource_class in self.get_import_resource_classes(request)
        ]

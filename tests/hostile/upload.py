"""Uploading through the admin exactly as a browser would, file name included.

Django's test client keeps only the base name of an uploaded file; a hostile browser
sends any name it likes, so the multipart body is built here by hand.
"""

from __future__ import annotations

import time
import uuid

from django.urls import reverse

from providers.models import Product
from tests.fixtures.data import GLOBAL_GIFT_CARD_SKU

IMPORT_URL = reverse("admin:orders_batch_import")
CONFIRM_URL = reverse("admin:orders_batch_process_import")


def multipart(fields: dict[str, str], file_field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    quoted = filename.replace('"', "%22")
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{quoted}"\r\n'
        f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(client, account, filename: str, content: bytes, **fields):
    """POST the import form: the file, the account, its Global Gift Card as the default.
    The response's `seconds` is the time the server took (the body is built beforehand)."""
    product = Product.objects.get(account=account, sku=GLOBAL_GIFT_CARD_SKU)
    data = {"format": "0", "resource": "0", "account": str(account.pk), "default_product": str(product.pk),
            "message": "Thank you!", **fields}
    body, content_type = multipart(data, "import_file", filename, content)
    started = time.monotonic()
    response = client.post(IMPORT_URL, data=body, content_type=content_type)
    response.seconds = time.monotonic() - started
    return response


def confirm(client, preview_response):
    """Press "Confirm" on a preview: post back what its confirm form carries."""
    form = preview_response.context["confirm_form"]
    data = {name: ("" if value is None else value) for name, value in form.initial.items()}
    return client.post(CONFIRM_URL, data)

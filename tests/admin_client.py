"""Driving the admin with Django's test client the way a browser posts its forms."""

from django.forms import CheckboxInput
from django.urls import reverse


def confirm_send(client, batch, **fields):
    """Send as the admin asks it: the confirmation page, then its POST (post=yes, and the
    fingerprint of what the page showed); the page it ends on."""
    url = reverse("admin:orders_batch_send", args=[batch.pk])
    shown = client.get(url).context["shown"]
    return client.post(url, {"post": "yes", "shown": shown, **fields}, follow=True)


def form_data(page) -> dict:
    """What the admin's change (or add) form on `page` would post back unchanged."""
    form = page.context["adminform"].form
    data = {}
    for name in form.fields:
        value = form[name].value()
        if isinstance(form.fields[name].widget, CheckboxInput):
            if value:
                data[name] = "on"
            continue
        data[name] = "" if value is None else value
    return data

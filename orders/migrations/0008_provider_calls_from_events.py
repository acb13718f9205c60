"""Each old call event becomes part of one ProviderCall row, linked to the orders it carried.

A call was stored as one event per order it carried, all made by one bulk insert: within a
submission, consecutive events (by id) that agree on everything the call was are one call,
unless an order comes back (then it is the next, identical call: a repeated status lookup).
Ordered by submission first, so calls of other submissions written at the same time cannot
cut one call in two. Reversible: each call becomes one event per order again.
"""

from collections.abc import Iterator

from django.db import migrations

# What the events of one call have in common, as the event fields that held it.
CALL_FIELDS = ("submission_id", "actor", "http_method", "url", "http_status", "duration_ms",
               "request_body", "response_body", "message")


def calls_in(events) -> Iterator[tuple[dict, list[int]]]:
    """(the first event of a call, the orders it carried), in order."""
    first, order_ids = None, []
    for event in events:
        same_call = first is not None and all(event[name] == first[name] for name in CALL_FIELDS)
        if same_call and event["order_id"] not in order_ids:
            order_ids.append(event["order_id"])
            continue
        if first is not None:
            yield first, order_ids
        first, order_ids = event, [event["order_id"]]
    if first is not None:
        yield first, order_ids


def events_to_calls(apps, schema_editor):
    OrderEvent = apps.get_model("orders", "OrderEvent")
    ProviderCall = apps.get_model("orders", "ProviderCall")
    Link = ProviderCall.orders.through
    call_events = OrderEvent.objects.filter(kind="provider_call")
    if call_events.filter(submission__isnull=True).exists():
        # Never written so (every call had its submission): refuse rather than lose one.
        raise RuntimeError("Some provider-call events have no submission; they cannot become calls.")
    rows = call_events.order_by("submission_id", "id").values("order_id", "created_at", *CALL_FIELDS)
    for event, order_ids in calls_in(rows.iterator(chunk_size=2000)):
        call = ProviderCall.objects.create(
            submission_id=event["submission_id"], created_at=event["created_at"], actor=event["actor"],
            method=event["http_method"], url=event["url"], http_status=event["http_status"],
            duration_ms=event["duration_ms"] or 0, request_body=event["request_body"],
            response_body=event["response_body"], error=event["message"],
        )
        Link.objects.bulk_create(Link(providercall_id=call.pk, order_id=order_id) for order_id in order_ids)
    call_events.delete()


def calls_to_events(apps, schema_editor):
    OrderEvent = apps.get_model("orders", "OrderEvent")
    ProviderCall = apps.get_model("orders", "ProviderCall")
    for call in ProviderCall.objects.order_by("id").prefetch_related("orders").iterator(chunk_size=500):
        created = OrderEvent.objects.bulk_create(
            OrderEvent(
                order_id=order.pk, submission_id=call.submission_id, actor=call.actor, kind="provider_call",
                message=call.error, http_method=call.method, url=call.url, http_status=call.http_status,
                request_body=call.request_body, response_body=call.response_body, duration_ms=call.duration_ms,
            )
            for order in call.orders.all()
        )
        # created_at is set on insert (auto_now_add): give the events back the call's time.
        OrderEvent.objects.filter(pk__in=[event.pk for event in created]).update(created_at=call.created_at)
    ProviderCall.objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0007_provider_call'),
    ]

    operations = [
        migrations.RunPython(events_to_calls, calls_to_events),
    ]

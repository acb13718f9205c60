"""The order list's search (issue 11): a term that names orders exactly finds them through
indexes, at once whatever the number of orders; only a term that names none falls back to
"contains", which reads every recipient (the slow search, kept for parts of names).

Exact, case as typed unless said: a recipient's email (any case), GiftDesk's reference (any
case), the spreadsheet's reference, the provider's order id, a batch's name (any case).
Contains: the admin's own search over OrderAdmin.search_fields (the recipient's name, email
and spreadsheet reference, the batch's name), every word of the term in one of them. Kept
as Django writes it, a join: written as "IN (subquery) OR ..." PostgreSQL may run the
subquery once per order (minutes at a million orders).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet, Value
from django.db.models.functions import Lower

from orders.models import Batch, Order, Recipient

IDS_LISTED = 1000  # recipients an exact term names, listed by id in the list's query

SEARCH_HELP = ("An exact email, GiftDesk reference, spreadsheet reference, provider order id or batch name finds "
               "its orders at once; anything else searches parts of names, emails, spreadsheet references and "
               "batch names, which takes longer.")


def exact_orders(term: str) -> Q | None:
    """The condition on the order table for the orders `term` names exactly, or None when it
    names none. One query finds, each through its index, the recipients (by email or
    spreadsheet reference), the batches (by name: a small table) and the orders (by either
    reference) it names; the condition then reads only indexes of the order table, where an
    OR across the joined tables would read every order."""
    term = term.strip()
    if not term:
        return None
    recipient_match = Q(reference=term)
    if "@" in term:
        # The expression index recipient_email_lower_idx serves exactly LOWER(email) = ...
        recipient_match |= Q(email_lower=term.lower())
    # No more ids than the list takes (below): a term shared by a million recipients reads 1,001.
    recipients = Recipient.objects.filter(pk__in=Recipient.objects.alias(email_lower=Lower("email"))
                                          .filter(recipient_match).values("pk")[:IDS_LISTED + 1])
    batches = Batch.objects.filter(name__iexact=term)
    order_match = Q(reference__in={term, term.upper()}) | Q(provider_order_id=term)
    found: dict[str, list[int]] = {"recipient": [], "batch": [], "order": []}
    named = [matches.order_by().annotate(kind=Value(kind)).values_list("kind", "pk")
             for kind, matches in (("recipient", recipients), ("batch", batches),
                                   ("order", Order.objects.filter(order_match)))]
    for kind, pk in named[0].union(*named[1:], all=True):
        found[kind].append(pk)
    if not any(found.values()):
        return None
    # Recipients and batches always have orders (made with them, never deleted). Ids listed
    # read the order table's indexes; a term shared by more recipients than that (a reference
    # like "1") is asked through the join instead: it reads every order, but never sends a list
    # too long, nor an "IN (subquery) OR" PostgreSQL may run once per order.
    condition = order_match if found["order"] else Q(pk__in=[])
    if len(found["recipient"]) > IDS_LISTED:
        condition |= Q(recipient__reference=term) | (Q(recipient__email__iexact=term) if "@" in term else Q(pk__in=[]))
    elif found["recipient"]:
        condition |= Q(recipient_id__in=found["recipient"])
    if found["batch"]:
        condition |= Q(batch_id__in=found["batch"])
    return condition


class OrderSearchMixin:
    """For OrderAdmin: the exact search first, the admin's own "contains" search (a join per
    order, every recipient read) only when it finds nothing."""

    search_help_text = SEARCH_HELP

    def get_search_results(self, request, queryset: QuerySet, search_term: str):
        condition = exact_orders(search_term)
        if condition is not None:
            return queryset.filter(condition), False
        return super().get_search_results(request, queryset, search_term)

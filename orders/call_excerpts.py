"""An order's part of each provider call that carried it, for the order's page.

One call may carry a whole basket (50 cards in one request), and its stored bodies then name
every card of it. An order's page shows only what concerns its own card:

- JSON bodies keep their structure, but in every list (and every map keyed by card) the
  entries that belong to another card of the call give way to one marker,
  "… 49 other cards of this call hidden". An entry belongs to a card when a value anywhere
  inside it is one of the card's identifiers: our order reference, the provider's order
  id, the recipient's email. An entry naming no card (a fee, a total, an error about the
  whole call) stays. A provider whose lists carry one entry per card with nothing in it to
  tell which (only redacted names and an amount) says so in its client module
  (`cards_in_order_lists`), and those entries are matched by position.
- Another recipient's name or email is never shown: wherever it is left (a provider's
  error text quoting it), it is replaced by "[another recipient]".
- A body that is not JSON (or was cut short when stored) is shown only when it mentions no
  other card of the call; otherwise a note says why it is not.

Secrets were already redacted when the call was stored (providers.clients.base); this only
narrows what is left to the one card.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from django.db.models import Prefetch

from giftdesk.text import plural
from orders.models import Order, ProviderCall
from providers.clients import client_class

ANOTHER_RECIPIENT = "[another recipient]"
# Shorter identifiers must equal a whole value: "12" inside a price or a date is no card.
CONTAINED_FROM = 6


@dataclass(frozen=True)
class Card:
    """One card a call carried, as its bodies may name it (all casefolded)."""

    identifiers: frozenset[str]  # our reference, the provider's order id, the recipient's email
    people: frozenset[str]  # what another order's page must never show: the name and the email

    @classmethod
    def of(cls, order: Order) -> Card:
        recipient = order.recipient
        values = (order.reference, order.provider_order_id, recipient.email)
        return cls(identifiers=_folded(values), people=_folded((recipient.name, recipient.email)))


@dataclass(frozen=True)
class CallCards:
    """The cards one call carried, in the order of the request's cards, and which is ours."""

    cards: tuple[Card, ...]
    this: int
    # From the provider's client: lists holding one entry per card, in the request's order.
    cards_in_order_lists: frozenset[str] = frozenset()

    @cached_property
    def ours(self) -> frozenset[str]:
        # An identifier two cards share (one person's two cards, one provider order id for a
        # whole basket) tells nothing apart.
        return self.cards[self.this].identifiers - self._others_union("identifiers")

    @cached_property
    def theirs(self) -> frozenset[str]:
        return self._others_union("identifiers") - self.cards[self.this].identifiers

    @cached_property
    def other_people(self) -> re.Pattern | None:
        return _people_pattern(self._others_union("people") - self.cards[self.this].people)

    def _others_union(self, name: str) -> frozenset[str]:
        return frozenset().union(*(getattr(card, name) for index, card in enumerate(self.cards) if index != self.this))


@dataclass
class BodyExcerpt:
    """What the page shows of one body: `text` (pretty-printed JSON, or the body as stored),
    how many other cards' entries were hidden, and `note` when the body is not shown."""

    text: str = ""
    hidden: int = 0
    note: str = ""

    @property
    def hidden_text(self) -> str:
        return f"Hidden: {plural(self.hidden, 'entry', 'entries')} about other cards of this call."


@dataclass
class CallExcerpt:
    call: ProviderCall
    request: BodyExcerpt
    response: BodyExcerpt
    cards_carried: int

    @property
    def path(self) -> str:
        return urlsplit(self.call.url).path or self.call.url

    @property
    def failed(self) -> bool:
        return not self.call.http_status or self.call.http_status >= 400

    @property
    def carried(self) -> str:
        others = self.cards_carried - 1
        return f"this card and {plural(others, 'other')}" if others else "this card only"

    @property
    def bodies(self) -> list[tuple[str, BodyExcerpt]]:
        return [("Request body", self.request), ("Response body", self.response)]


def body_excerpt(body: str, cards: CallCards) -> BodyExcerpt:
    """This card's part of one stored request or response body."""
    if not body.strip():
        return BodyExcerpt()
    try:
        data = json.loads(body)
    except ValueError:
        return _text_excerpt(body, cards)
    walk = _Walk(cards)
    kept = walk.value(data, parent="")
    return BodyExcerpt(text=json.dumps(kept, indent=2, ensure_ascii=False), hidden=walk.hidden)


def order_call_excerpts(order: Order) -> list[CallExcerpt]:
    """Every call that carried the order, once each, oldest first, narrowed to its card."""
    carried = Order.objects.select_related("recipient").only(
        "id", "reference", "provider_order_id", "recipient__name", "recipient__email").order_by("id")
    calls = order.provider_calls.select_related("submission__account").prefetch_related(
        Prefetch("orders", queryset=carried)).order_by("created_at", "id")
    excerpts = []
    for call in calls:
        orders = list(call.orders.all())
        this = next((index for index, other in enumerate(orders) if other.pk == order.pk), None)
        if this is None:  # not linked to it after all: show nothing of it as ours
            continue
        cards = CallCards(cards=tuple(Card.of(other) for other in orders), this=this,
                          cards_in_order_lists=_cards_in_order_lists(call.submission.account.kind))
        excerpts.append(CallExcerpt(call=call, request=body_excerpt(call.request_body, cards),
                                    response=body_excerpt(call.response_body, cards), cards_carried=len(orders)))
    return excerpts


def call_summary(call: ProviderCall) -> str:
    """“#12 PUT /baskets → 400”: a call named by its path (the host is the account's)."""
    return f"#{call.pk} {call.method} {urlsplit(call.url).path or call.url} → {call.http_status or 'no answer'}"


def without_other_recipients(text: str, *, order: Order, call: ProviderCall | None) -> str:
    """`text` (an event of the order, caused by `call`) with the other cards' recipients of
    that call replaced: the engine notes a basket's refusal on every card it carried, in the
    provider's words, which may quote one recipient's email."""
    if call is None or not text:
        return text
    own = Card.of(order).people
    others = frozenset().union(*(Card.of(other).people for other in call.orders.all() if other.pk != order.pk))
    pattern = _people_pattern(others - own)
    return pattern.sub(ANOTHER_RECIPIENT, text) if pattern else text


# --- Inside -------------------------------------------------------------------------------------


def _people_pattern(people: frozenset[str]) -> re.Pattern | None:
    if not people:
        return None
    # Whole words only ("Recipient 1" is not inside "Recipient 10"); longest first.
    words = sorted(people, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.IGNORECASE)


def _folded(values) -> frozenset[str]:
    return frozenset(str(value).strip().casefold() for value in values if value and str(value).strip())


def _cards_in_order_lists(kind: str) -> frozenset[str]:
    # The hook of a provider whose per-card entries carry nothing naming the card.
    try:
        names = client_class(kind).cards_in_order_lists
    except LookupError:
        return frozenset()
    return frozenset(name.lower() for name in names)


def _text_excerpt(body: str, cards: CallCards) -> BodyExcerpt:
    folded = body.casefold()
    if any(_contains(folded, identifier) for identifier in cards.theirs) or (
            cards.other_people and cards.other_people.search(body)):
        # A long answer is cut when stored (providers.clients.base), and is then JSON no more.
        why = "was cut short when it was stored" if body.lstrip()[:1] in ("{", "[") else "is not JSON"
        return BodyExcerpt(note=f"Not shown: this body ({plural(len(body), 'character')}) {why}, so this card's "
                                "part cannot be picked out, and it mentions other cards of this call.")
    return BodyExcerpt(text=body)


def _contains(text: str, identifier: str) -> bool:
    return text == identifier or (len(identifier) >= CONTAINED_FROM and identifier in text)


@dataclass
class _Walk:
    cards: CallCards
    hidden: int = 0

    def value(self, value: Any, *, parent: str) -> Any:
        if isinstance(value, dict):
            return self._object(value)
        if isinstance(value, list):
            return self._list(value, parent=parent)
        if isinstance(value, str):
            return self._scrubbed(value)
        return value

    def _object(self, value: dict) -> dict:
        kept, hidden = {}, 0
        for key, item in value.items():
            # A map keyed by card ({"GD-…": {...}}): another card's key goes like a list entry.
            if self._names(str(key)) == (False, True):
                hidden += 1
                continue
            kept[self._scrubbed(str(key))] = self.value(item, parent=str(key).lower())
        if hidden:
            self.hidden += hidden
            kept["…"] = self._marker(hidden)
        return kept

    def _list(self, items: list, *, parent: str) -> list:
        cards = self.cards
        marker = self._marker
        if parent in cards.cards_in_order_lists and items and all(isinstance(item, dict) for item in items):
            # One entry per card, in the request's order. A list of another length (a status
            # lookup of fewer cards than the provider's order holds) cannot be matched to the
            # cards: none of it is shown as this card's.
            if len(items) == len(cards.cards):
                keep = [index == cards.this for index in range(len(items))]
            else:
                keep, marker = [False] * len(items), self._unmatched_marker
        else:
            # Hidden: an entry naming another card of the call and not this one.
            keep = [self._names(item) != (False, True) for item in items]
        result: list[Any] = []
        run = 0
        for item, kept in zip(items, keep):
            if kept:
                if run:
                    result.append(marker(run))
                    run = 0
                result.append(self.value(item, parent=parent))
            else:
                run += 1
        if run:
            result.append(marker(run))
        self.hidden += keep.count(False)
        return result

    def _names(self, value: Any) -> tuple[bool, bool]:
        """Whether `value` (anywhere inside) names this card, and whether it names another."""
        if isinstance(value, (dict, list)):
            ours = theirs = False
            for item in (value.values() if isinstance(value, dict) else value):
                item_ours, item_theirs = self._names(item)
                ours, theirs = ours or item_ours, theirs or item_theirs
                if ours and theirs:
                    break
            return ours, theirs
        if value is None or isinstance(value, bool):
            return False, False
        text = str(value).strip().casefold()
        return (any(_contains(text, identifier) for identifier in self.cards.ours),
                any(_contains(text, identifier) for identifier in self.cards.theirs))

    def _scrubbed(self, text: str) -> str:
        pattern = self.cards.other_people
        return pattern.sub(ANOTHER_RECIPIENT, text) if pattern else text

    @staticmethod
    def _marker(count: int) -> str:
        return f"… {plural(count, 'other card')} of this call hidden"

    @staticmethod
    def _unmatched_marker(count: int) -> str:
        return f"… {plural(count, 'card')} of this call hidden: which is this card's cannot be told"

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
  error text quoting it), it is replaced by "[another recipient]". The same replacement,
  built from every call that carried the order, cleans the order's own fields and history
  (`OrderCalls.replaced`): the engine copies a basket's refusal onto each of its cards.
- A body that is not JSON (or was cut short when stored: it ends "… cut at 32,000 bytes",
  orders.call_retention) cannot be narrowed, so of a call that carried other cards it is not
  shown; a note says why. (The recorder's own "[not JSON: 512 characters, not recorded]"
  names nobody and is shown.)
- Bodies older than GIFTDESK_CALL_BODY_RETENTION_DAYS were blanked (orders.call_retention):
  a note says when, instead of empty bodies; the call itself is still listed.

Secrets were already redacted when the call was stored (providers.clients.base); this only
narrows what is left to the one card.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from django.db.models import Prefetch

from giftdesk.text import plural
from orders.call_retention import body_cut_at
from orders.models import Order, ProviderCall
from providers.clients import client_class

ANOTHER_RECIPIENT = "[another recipient]"
# Shorter identifiers must equal a whole value: "12" inside a price or a date is no card.
CONTAINED_FROM = 6
# What the recorder stores instead of an answer that is not JSON (providers.clients.base):
# our own words, naming nobody.
UNRECORDED = re.compile(r"\[not JSON: [\d,]+ characters?, not recorded\]")
# An email in free text, as loose as the ones a provider quotes back ("jonas@example").
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*")


@dataclass(frozen=True)
class Card:
    """One card a call carried, as its bodies may name it."""

    identifiers: frozenset[str]  # casefolded: our reference, the provider's order id, the recipient's email
    people: frozenset[str]  # as spelled (matched ignoring case): the recipient's name and email

    @classmethod
    def of(cls, order: Order) -> Card:
        recipient = order.recipient
        values = (order.reference, order.provider_order_id, recipient.email)
        return cls(identifiers=frozenset(value.casefold() for value in _stripped(values)),
                   people=frozenset(_stripped((recipient.name, recipient.email))))


@dataclass(frozen=True)
class OtherRecipients:
    """Replaces other recipients' names and emails, whole words only, in any text."""

    pattern: re.Pattern | None = None
    own: frozenset[str] = frozenset()  # casefolded: this card's own, kept where a shorter name would match inside

    @classmethod
    def of(cls, people: Iterable[str], *, own: Iterable[str]) -> OtherRecipients:
        own = set(own)
        folded = frozenset(person.casefold() for person in own)
        # A name or email two cards share (one person's two cards) is this card's too.
        others = {person for person in people if person.casefold() not in folded}
        if not others:
            return cls()
        # Longest first, this card's own included: "Lars" (another's) stays in "Lars Østergaard" (ours).
        words = sorted(others | own, key=len, reverse=True)
        return cls(re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, words)) + r")(?!\w)", re.IGNORECASE), folded)

    def replaced(self, text: str) -> str:
        if not self.pattern or not text:
            return text
        return self.pattern.sub(lambda found: found[0] if found[0].casefold() in self.own else ANOTHER_RECIPIENT, text)


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
    def other_people(self) -> frozenset[str]:
        return self._others_union("people")

    @cached_property
    def others(self) -> OtherRecipients:
        return OtherRecipients.of(self.other_people, own=self.cards[self.this].people)

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
    cards: CallCards
    request: BodyExcerpt
    response: BodyExcerpt

    @property
    def path(self) -> str:
        return _path(self.call.url)

    @property
    def failed(self) -> bool:
        return not self.call.http_status or self.call.http_status >= 400

    @property
    def cards_carried(self) -> int:
        return len(self.cards.cards)

    @property
    def carried(self) -> str:
        others = self.cards_carried - 1
        return f"this card and {plural(others, 'other')}" if others else "this card only"

    @property
    def bodies(self) -> list[tuple[str, BodyExcerpt]]:
        return [("Request body", self.request), ("Response body", self.response)]

    @property
    def bodies_removed(self) -> str:
        """Why the bodies are not shown once the retention task blanked them, else ""."""
        days = self.call.bodies_kept_days
        if days is None:
            return ""
        after = f" after {plural(days, 'day')}" if days else ""  # 0: all of them, by manage.py purge_call_bodies
        return (f"Request and response body removed{after}: bodies are kept only for a while, to diagnose "
                "problems. The call itself stays in the order's history.")


@dataclass
class OrderCalls:
    """Every call that carried one order, narrowed to its card, and the other recipients
    any of them carried: what the order's page must not show, wherever it is quoted."""

    excerpts: list[CallExcerpt]
    others: OtherRecipients

    def replaced(self, text: str) -> str:
        """`text` (a field or event of the order) with the other recipients replaced."""
        return self.others.replaced(text)


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


def order_calls(order: Order) -> OrderCalls:
    """Every call that carried the order, once each, oldest first, narrowed to its card; two
    queries however many calls (the calls, then the orders each carried)."""
    carried = Order.objects.select_related("recipient").only(
        "id", "reference", "provider_order_id", "recipient__name", "recipient__email").order_by("id")
    calls = order.provider_calls.select_related("submission__account").prefetch_related(
        Prefetch("orders", queryset=carried)).order_by("created_at", "id")
    excerpts = []
    for call in calls:
        orders = list(call.orders.all())  # ours among them: the calls are the order's own
        cards = CallCards(cards=tuple(Card.of(other) for other in orders),
                          this=[other.pk for other in orders].index(order.pk),
                          cards_in_order_lists=_cards_in_order_lists(call.submission.account.kind))
        if call.bodies_kept_days is not None:  # blanked: nothing to narrow
            excerpts.append(CallExcerpt(call=call, cards=cards, request=BodyExcerpt(), response=BodyExcerpt()))
        else:
            excerpts.append(CallExcerpt(call=call, cards=cards, request=body_excerpt(call.request_body, cards),
                                        response=body_excerpt(call.response_body, cards)))
    others = OtherRecipients.of(frozenset().union(*(excerpt.cards.other_people for excerpt in excerpts)),
                                own=Card.of(order).people)
    return OrderCalls(excerpts=excerpts, others=others)


def call_summary(call: ProviderCall) -> str:
    """“#12 PUT /baskets → 400”: a call named by its path (the host is the account's)."""
    return f"#{call.pk} {call.method} {_path(call.url)} → {call.http_status or 'no answer'}"


def other_emails_replaced(text: str, *, own_email: str) -> str:
    """`text` with every email but `own_email` replaced: for a list of orders, where each
    row's error would need its own calls to name the other recipients. A basket's refusal
    copied onto every card then quotes another's email on no row but that one's."""
    own = own_email.strip().casefold()
    return EMAIL.sub(lambda found: found[0] if found[0].casefold() == own else ANOTHER_RECIPIENT, text or "")


# --- Inside -------------------------------------------------------------------------------------


def _stripped(values) -> list[str]:
    return [str(value).strip() for value in values if value and str(value).strip()]


def _path(url: str) -> str:
    return urlsplit(url).path or url


def _cards_in_order_lists(kind: str) -> frozenset[str]:
    # The hook of a provider whose per-card entries carry nothing naming the card.
    try:
        names = client_class(kind).cards_in_order_lists
    except LookupError:
        return frozenset()
    return frozenset(name.lower() for name in names)


def _text_excerpt(body: str, cards: CallCards) -> BodyExcerpt:
    others = len(cards.cards) - 1
    if not others or UNRECORDED.fullmatch(body.strip()):
        return BodyExcerpt(text=body)
    # Not searched for the other cards: stored bodies may escape letters ("\u00d8stergaard"), and
    # a body cut short may end inside a name. A long body is cut when stored (orders.call_retention).
    cut_at = body_cut_at(body)
    if cut_at is not None:
        why = f"was cut at {plural(cut_at, 'byte')} when it was stored"
    else:
        why = "was cut short when it was stored" if body.lstrip()[:1] in ("{", "[") else "is not JSON"
    return BodyExcerpt(note=f"Not shown: this body ({plural(len(body), 'character')}) {why}, so this card's part "
                            f"cannot be picked out from the {plural(others, 'other card')} of this call; it is "
                            "withheld to protect their recipients.")


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
        return self.cards.others.replaced(text)

    @staticmethod
    def _marker(count: int) -> str:
        return f"… {plural(count, 'other card')} of this call hidden"

    @staticmethod
    def _unmatched_marker(count: int) -> str:
        return f"… {plural(count, 'card')} of this call hidden: which is this card's cannot be told"

"""Words for people: counts with the right plural, so no message says "1 orders"."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """“1 order”, “2 orders”, “1,200 orders”; `plural_form` for irregular words
    (“1 batch” / “2 batches”)."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count:,} {word}"


def verb(count: int, singular: str, plural_form: str) -> str:
    """The verb that agrees with a count: verb(1, "waits", "wait") -> “waits”."""
    return singular if count == 1 else plural_form

"""Amounts as people write them, and a user's value quoted back in a message.

One reader for every amount GiftDesk takes: the amount column, ``send_csv --amount`` and
the import form's default amount, so all three accept the same text and refuse the rest
in the same words. The digits 0-9 only: a regex ``\\d`` and ``Decimal`` also take
Arabic-Indic or full-width digits ("٥٠" would be 50), and ``Decimal`` alone takes "1e2",
"NaN" and "Infinity".

No Django here, like ``headers``: nothing to set up to read a number.
"""

from __future__ import annotations

import re
from decimal import Decimal

# [0-9], not \d: \d matches every Unicode digit ("٥٠", "５０").
AMOUNT_PATTERN = re.compile(r"^([0-9]{1,10})(?:[.,]([0-9]+))?$")
ONLY_ASCII_DIGITS = "only the digits 0-9 are accepted"
AMOUNT_EXAMPLE = "write it like 50 or 50.00, without a currency sign or thousands separator"


class NotAnAmount(ValueError):
    """The text is not an amount; the message says why and how to write one."""


def parse_amount(text: str) -> Decimal:
    """ "50", "50.00" and "50,00" (comma as the decimal separator) -> Decimal("50.00").

    Raises ``NotAnAmount`` for anything else: other digits, signs, exponents, NaN, more
    than two decimals or ten digits before the point.
    """
    if has_other_digits(text):
        raise NotAnAmount(f"{show(text)} is not an amount: {ONLY_ASCII_DIGITS}; {AMOUNT_EXAMPLE}.")
    match = AMOUNT_PATTERN.match(text)
    if not match:
        raise NotAnAmount(f"{show(text)} is not an amount; {AMOUNT_EXAMPLE}.")
    if match.group(2) is not None and len(match.group(2)) > 2:
        raise NotAnAmount(f"{show(text)} has more than two decimals; {AMOUNT_EXAMPLE}.")
    # The pattern admits digits and one separator only, so Decimal cannot fail here.
    return Decimal(text.replace(",", ".")).quantize(Decimal("0.01"))


def has_other_digits(text: str) -> bool:
    """A digit other than 0-9: Arabic-Indic, full-width, Devanagari, superscripts and the like."""
    return any(char.isdigit() and not char.isascii() for char in text)


def show(value: str, limit: int = 60) -> str:
    """A user's value quoted for a message: shortened, invisible characters made visible."""
    shortened = value if len(value) <= limit else value[:limit] + "…"
    visible = "".join(char if char.isprintable() else char_name(char) for char in shortened)
    return f"'{visible}'"


def char_name(char: str) -> str:
    return f"U+{ord(char):04X}"

"""Reading and writing the values in emulator requests and answers: money as Decimal,
JSON numbers, blank fields, email addresses, and the amounts a product is sold in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def json_number(value: Decimal | None) -> int | float | None:
    """A Decimal as a JSON number: integral values as ints, others as floats."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def decimal_text(value: Decimal | int) -> str:
    """A Decimal for messages: 55, 12.5 (no exponent, no trailing zeros)."""
    return format(Decimal(value).normalize(), "f")


@dataclass(frozen=True)
class Pricing:
    """The amounts a product is sold in: one of `denominations` (fixed), or `minimum` to
    `maximum`, in steps of `step` counted from the minimum where there is one (a range)."""

    denominations: tuple[Decimal, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    step: Decimal | None = None

    @classmethod
    def fixed_at(cls, *values: int | str) -> Pricing:
        return cls(denominations=tuple(Decimal(value) for value in values))

    @classmethod
    def between(cls, minimum: int | str, maximum: int | str, step: int | str | None = None) -> Pricing:
        return cls(minimum=Decimal(minimum), maximum=Decimal(maximum), step=None if step is None else Decimal(step))

    @property
    def fixed(self) -> bool:
        return bool(self.denominations)

    def in_range(self, amount: Decimal) -> bool:
        assert self.minimum is not None and self.maximum is not None
        return self.minimum <= amount <= self.maximum

    def accepts(self, amount: Decimal) -> bool:
        if self.fixed:
            return amount in self.denominations
        on_step = self.step is None or (amount - self.minimum) % self.step == 0
        return self.in_range(amount) and on_step

    def describe(self, currency: str) -> str:
        """For messages: "25, 50, 100 EUR" or "10 to 500 EUR"."""
        if self.fixed:
            return f"{', '.join(decimal_text(value) for value in self.denominations)} {currency}"
        assert self.minimum is not None and self.maximum is not None
        return f"{decimal_text(self.minimum)} to {decimal_text(self.maximum)} {currency}"

    def json_fields(self) -> dict[str, Any]:
        """As Giftronaut and UGiftMe catalogs list it: `denominations`, or `minAmount` and
        `maxAmount` (and `stepAmount` where there is a step)."""
        if self.fixed:
            return {"denominations": [json_number(value) for value in self.denominations]}
        fields = {"minAmount": json_number(self.minimum), "maxAmount": json_number(self.maximum)}
        if self.step is not None:
            fields["stepAmount"] = json_number(self.step)
        return fields

"""The order list's active filters and search in words ("Status: Failed", "Search: “anna@”"),
for the pages that act on what the list shows: its totals (orders/admin_totals.py) and its
export (orders/admin_export.py). Presentation only: it reads a built ChangeList."""

from __future__ import annotations

from django.utils.text import capfirst


def filters_in_words(changelist) -> list[str]:
    """Each sidebar filter in use, with what it is set to, as the sidebar shows it."""
    said = []
    for spec in changelist.filter_specs:
        used = getattr(spec, "used_parameters", None)
        if not used:
            continue
        title = capfirst(str(getattr(spec, "title", ""))) or ", ".join(used)
        picked = [str(choice["display"]) for choice in spec.choices(changelist)
                  if choice.get("selected") and choice.get("display") is not None]
        # A filter without choices to pick (a date range) says its values as given.
        picked = [text for text in picked if text.casefold() != "all"] or [_values(used)]
        said.append(f"{title}: {', '.join(picked)}")
    return said


def search_in_words(changelist) -> list[str]:
    return [f"Search: “{changelist.query}”"] if changelist.query else []


def chosen_in_words(changelist) -> list[str]:
    """The filters, then the search."""
    return filters_in_words(changelist) + search_in_words(changelist)


def _values(used: dict) -> str:
    values = [value for given in used.values() for value in (given if isinstance(given, list) else [given])]
    return ", ".join(str(value) for value in values)

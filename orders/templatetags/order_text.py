"""Template filters for an order's provider text in lists of orders."""

from django import template

from orders.call_excerpts import other_emails_replaced

register = template.Library()


@register.filter
def own_error(order) -> str:
    """The order's last error with any email but its own recipient's replaced: a basket's
    refusal is copied onto every card it carried, in the provider's words (as the order
    list's "Last error" column shows it)."""
    return other_emails_replaced(order.last_error, own_email=order.recipient.email)

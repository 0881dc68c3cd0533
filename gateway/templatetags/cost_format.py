from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def plain(value) -> str:
    """A stored price as typed: 0.1500 -> 0.15, 15.0000 -> 15 (never 1.5E+1)."""
    if not isinstance(value, Decimal):
        return "" if value is None else str(value)
    text = f"{value.normalize():f}"
    return text


@register.filter
def usd(value) -> str:
    """Money as the page shows it: $4,500.00, -$1.35."""
    if value is None:
        return ""
    amount = Decimal(value).quantize(Decimal("0.01"))
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"

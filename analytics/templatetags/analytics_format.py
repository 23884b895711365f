"""Number formats of the analytics pages: counts with thousands separators, rates as
percentages, money with two decimals."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.contrib.humanize.templatetags.humanize import intcomma

register = template.Library()


@register.filter
def metric(value, unit: str = ""):
    """`value` as the chart unit shows it: "%" for a rate stored as a fraction (0.125 ->
    12.5%), "money" for an amount, else a count. Empty for None."""
    if value is None or value == "":
        return "—"
    if unit == "%":
        return f"{float(value) * 100:.1f}%"
    if unit == "money":
        return intcomma(f"{Decimal(str(value)):.2f}")
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.2f}"
    return intcomma(int(value)) if isinstance(value, int | float | Decimal) else value

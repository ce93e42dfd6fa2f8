"""An order's money as the lines people read: on the cart, the checkout, the
order page, the emails, the packing slip and the console."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from broker.money import format_money
from broker.tax import rules as tax_rules

# Where the tax on a sale is called VAT or GST (what a customer expects to read).
_VAT = frozenset("AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK GB NO CH IS "
                 "LI ZA AE SA MX".split())
_GST = frozenset("AU NZ CA SG IN MY".split())


def _same(message: str) -> str:
    return message


def tax_name(jurisdiction: str, translate: Callable[[str], str] = _same) -> str:
    _ = translate  # the name `pybabel extract` looks for: these are in the customer's catalogs (web/translations)
    country = (jurisdiction or "")[:2]
    if country in _VAT:
        return _("VAT")
    if country in _GST:
        return _("GST")
    if country == "US":
        return _("Sales tax")
    return _("Tax")


@dataclasses.dataclass(frozen=True)
class TotalLine:
    label: str
    amount: str
    total: bool = False  # the line that is the total (shown strong)


def order_totals(order, locale: str | None = "en_US",
                 fmt: Callable[[int, str, str | None], str] = format_money,
                 translate: Callable[..., str] = _same) -> list[TotalLine]:
    """Subtotal, shipping, tax and total; an order from before shipping and tax
    (goods only) is its total alone. Where prices include the tax it follows the
    total as "incl. VAT (19 %)". `translate`: gettext of the reader's language
    (the customer's pages and emails); English without it."""
    _ = translate  # see tax_name
    currency = order.currency
    if not order.shipping and not order.tax and not order.tax_jurisdiction and not order.shipping_method:
        return [TotalLine(_("Total"), fmt(order.total, currency, locale), True)]
    rate = f" ({tax_rules.format_rate(order.tax_rate)} %)" if order.tax_rate else ""
    name = tax_name(order.tax_jurisdiction, translate) + rate
    lines = [TotalLine(_("Subtotal"), fmt(order.subtotal, currency, locale))]
    if order.shipping_method or order.shipping:
        label = (_("Shipping (%(method)s)") % {"method": order.shipping_method_name} if order.shipping_method_name
                 else _("Shipping"))
        lines.append(TotalLine(label, fmt(order.shipping, currency, locale) if order.shipping else _("Free")))
    if order.tax_included:
        lines.append(TotalLine(_("Total"), fmt(order.total, currency, locale), True))
        lines.append(TotalLine(_("incl. %(tax)s") % {"tax": name}, fmt(order.tax, currency, locale)))
    else:
        lines.append(TotalLine(name, fmt(order.tax, currency, locale)))
        lines.append(TotalLine(_("Total"), fmt(order.total, currency, locale), True))
    return lines

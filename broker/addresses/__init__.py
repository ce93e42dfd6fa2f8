"""Postal addresses worldwide: the value type, its rules per country, the forms
the pages build from them, and printing in the country's format."""

from broker.addresses.formats import AddressForm, Choice, CountryFormat, FormField, address_form, countries
from broker.addresses.printing import address_lines, address_text, ship_to_address
from broker.addresses.rules import PostalAddress, check_address, derive_region

__all__ = [
    "AddressForm",
    "Choice",
    "CountryFormat",
    "FormField",
    "PostalAddress",
    "address_form",
    "address_lines",
    "address_text",
    "check_address",
    "countries",
    "derive_region",
    "ship_to_address",
]

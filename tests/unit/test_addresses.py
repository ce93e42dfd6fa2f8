"""Addresses by their country's rules (broker.addresses): what is required, how
postal codes and regions are normalised, and how an address is printed."""

from __future__ import annotations

import pytest

from broker.addresses import PostalAddress, address_form, address_lines, check_address
from broker.errors import Invalid


def refused(address: PostalAddress, **kwargs) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as raised:
        check_address(address, **kwargs)
    assert raised.value.status == 422
    return raised.value.errors


# What each country's form requires, and what it calls its postal code and region,
# written out here from the countries' own postal rules, not read from the data.
REQUIRED = {
    "US": ({"line1", "city", "region", "postal_code"}, "Enter the ZIP code", "Choose the state"),
    "CA": ({"line1", "city", "region", "postal_code"}, "Enter the postal code", "Choose the province"),
    "JP": ({"line1", "city", "region", "postal_code"}, "Enter the postal code", "Choose the prefecture"),
    "BR": ({"line1", "city", "region", "postal_code"}, "Enter the postal code", "Choose the state"),
    "DE": ({"line1", "city", "postal_code"}, "Enter the postal code", None),
    "GB": ({"line1", "city", "postal_code"}, "Enter the postal code", None),
    "SG": ({"line1", "city", "postal_code"}, "Enter the postal code", None),
    "IE": ({"line1", "city"}, None, None),  # an Eircode is optional
    "HK": ({"line1", "city", "region"}, None, "Choose the area"),  # Hong Kong has no postal codes
    "AE": ({"line1", "city", "region"}, None, "Choose the emirate"),
}


@pytest.mark.parametrize("country", sorted(REQUIRED))
def test_required_fields_follow_the_country(country):
    required, postal_message, region_message = REQUIRED[country]
    errors = refused(PostalAddress(country))
    assert {name.removeprefix("ship_to.") for name in errors} == required
    assert errors["ship_to.line1"] == ["Enter the street address"]
    if postal_message:
        assert errors["ship_to.postal_code"] == [postal_message]
    if region_message:
        assert errors["ship_to.region"] == [region_message]
    # The form the pages build says the same.
    form = address_form(country)
    assert {f.name for f in form.fields if f.required} == required
    # A place rather than somewhere to deliver (a pickup) needs nothing more than the country.
    assert check_address(PostalAddress(country), street=False).country == country


@pytest.mark.parametrize("country, typed, kept", [
    ("CA", "m5v2t6", "M5V 2T6"),
    ("CA", "M5V 2T6", "M5V 2T6"),
    ("JP", "1000005", "100-0005"),
    ("GB", "sw1a2aa", "SW1A 2AA"),
    ("GB", "m2 5bq", "M2 5BQ"),
    ("BR", "01001000", "01001-000"),
    ("NL", "1012ab", "1012 AB"),
    ("US", "94103", "94103"),
    ("DE", " 10115 ", "10115"),
])
def test_postal_codes_are_kept_as_the_country_writes_them(country, typed, kept):
    address = check_address(PostalAddress(country, postal_code=typed), street=False)
    assert address.postal_code == kept


@pytest.mark.parametrize("country, postal_code, message", [
    ("DE", "1011", "Enter a postal code like 26133"),
    ("US", "9410", "Enter a ZIP code like 95014"),
    ("CA", "12345", "Enter a postal code like H3Z 2Y7"),
    ("IE", "nope", "Enter an Eircode like A65 F4E2"),
    ("GB", "12345", "Enter a postal code like EC1Y 8SY"),
])
def test_a_postal_code_in_the_wrong_shape_names_the_shape(country, postal_code, message):
    errors = refused(PostalAddress(country, "1 Main St", city="Somewhere", postal_code=postal_code, region=""),
                     street=False)
    assert errors == {"ship_to.postal_code": [message]}


def test_regions_are_kept_as_their_codes_whatever_was_typed():
    def region(country, typed, postal_code):
        return check_address(PostalAddress(country, region=typed, postal_code=postal_code), street=False).region

    assert region("US", "california", "94103") == "CA"
    assert region("US", "CA", "94103") == "CA"
    assert region("CA", "Ontario", "M5V 2T6") == "ON"
    assert region("CA", "on", "M5V 2T6") == "ON"
    assert region("JP", "Tokyo", "100-0005") == "東京都"
    assert region("JP", "東京都", "100-0005") == "東京都"


def test_a_region_left_out_is_derived_from_a_postal_code_that_tells():
    def derived(country, postal_code):
        return check_address(PostalAddress(country, "1 Main", city="X", postal_code=postal_code)).region

    assert derived("US", "10001") == "NY"
    assert derived("US", "94103") == "CA"
    assert derived("CA", "M5V 2T6") == "ON"  # M: Toronto
    assert derived("CA", "V6B 1A1") == "BC"  # V: British Columbia
    assert derived("CA", "H3Z 2Y7") == "QC"
    assert derived("JP", "100-0005") == "東京都"
    assert derived("JP", "530-0001") == "大阪府"


def test_a_postal_code_of_another_region_is_refused():
    errors = refused(PostalAddress("CA", "290 Bremner Blvd", city="Toronto", region="BC", postal_code="M5V 2T6"))
    assert errors == {"ship_to.postal_code": ["M5V 2T6 is not a postal code in British Columbia"]}


def test_an_unknown_region_and_an_unknown_country_are_refused_in_words():
    assert refused(PostalAddress("US", "1 Main", city="X", region="Narnia", postal_code="94103")) == {
        "ship_to.region": ["“Narnia” is not a state in the United States: choose one from the list"]}
    assert refused(PostalAddress("USA", "1 Main", city="X")) == {
        "ship_to.country": ["“USA” is not a country we know: use its two-letter code, like DE"]}
    assert refused(PostalAddress("", "1 Main", city="X")) == {"ship_to.country": ["Choose the country"]}


def test_a_district_must_be_one_the_data_lists_where_it_lists_them():
    # Hong Kong's districts are listed per area.
    assert check_address(PostalAddress("HK", "1 Nathan Rd", city="mong kok", region="kowloon")).city == "Mong Kok"
    errors = refused(PostalAddress("HK", "1 Nathan Rd", city="Atlantis", region="Kowloon"))
    assert list(errors) == ["ship_to.city"] and errors["ship_to.city"][0].startswith("Choose the district")


def test_fields_longer_than_their_columns_are_refused_not_cut():
    errors = refused(PostalAddress("DE", "x" * 201, city="Berlin", postal_code="10115"))
    assert errors == {"ship_to.line1": ["Use at most 200 characters"]}


def test_a_field_the_country_does_not_have_is_dropped():
    kept = check_address(PostalAddress("DE", "Invalidenstraße 117", city="Berlin", region="Berlin",
                                       postal_code="10115"))
    assert kept.region == ""


# --- printing -----------------------------------------------------------------

@pytest.mark.parametrize("address, name, lines", [
    (PostalAddress("US", "1 Main St", "Apt 2", "San Francisco", region="CA", postal_code="94103"), "Ada Lovelace",
     ["Ada Lovelace", "1 Main St", "Apt 2", "San Francisco, CA 94103", "UNITED STATES"]),
    (PostalAddress("DE", "Invalidenstraße 117", city="Berlin", postal_code="10115"), "Max Mustermann",
     ["Max Mustermann", "Invalidenstraße 117", "10115 Berlin", "GERMANY"]),
    (PostalAddress("GB", "10 Downing Street", city="London", postal_code="SW1A 2AA"), "Jane Doe",
     ["Jane Doe", "10 Downing Street", "London", "SW1A 2AA", "UNITED KINGDOM"]),
    # Japan in Latin letters: the ward after the street, then the prefecture's Latin name.
    (PostalAddress("JP", "1-1 Marunouchi", city="Chiyoda-ku", region="東京都", postal_code="100-0005"),
     "Taro Yamada", ["Taro Yamada", "1-1 Marunouchi", "Chiyoda-ku, Tokyo", "100-0005", "JAPAN"]),
    # Japan in Japanese: postal mark and code first, prefecture, ward, street, then the name.
    (PostalAddress("JP", "丸の内1-1", city="千代田区", region="東京都", postal_code="100-0005"), "山田太郎",
     ["〒100-0005", "東京都", "千代田区", "丸の内1-1", "山田太郎", "JAPAN"]),
    (PostalAddress("CA", "290 Bremner Blvd", city="Toronto", region="ON", postal_code="M5V 2T6"), "Jo Smith",
     ["Jo Smith", "290 Bremner Blvd", "Toronto ON M5V 2T6", "CANADA"]),
])
def test_addresses_print_in_the_countrys_format(address, name, lines):
    assert address_lines(address, name=name) == lines


def test_a_missing_field_leaves_no_stray_punctuation():
    # A pickup's "where I am": only a ZIP code, in the US's "City, ST ZIP" line.
    assert address_lines(PostalAddress("US", region="CA", postal_code="94103"), country_line=False) == ["CA 94103"]
    assert address_lines(PostalAddress("US", city="San Francisco", postal_code="94103"), country_line=False) == [
        "San Francisco 94103"]
    # Japan's "〒" goes with the postal code it marks.
    assert address_lines(PostalAddress("JP", "丸の内1-1", city="千代田区", region="東京都"), country_line=False) == [
        "東京都", "千代田区", "丸の内1-1"]


# --- the form's description ---------------------------------------------------

def test_the_form_follows_the_countrys_order_and_names():
    jp = address_form("JP")
    assert [f.name for f in jp.fields] == ["postal_code", "region", "city", "line1", "line2"]
    assert jp.field("region").label == "Prefecture"
    assert jp.field("postal_code").example == "154-0023"
    regions = {c.value: c.label for c in jp.field("region").choices}
    assert regions["東京都"] == "Tokyo" and len(regions) == 47

    us = address_form("US")
    assert [f.name for f in us.fields] == ["line1", "line2", "city", "region", "postal_code"]
    assert (us.field("postal_code").label, us.field("region").label) == ("ZIP code", "State")
    assert us.rows[-1] == ("city", "region", "postal_code")
    assert us.field("line2").required is False and us.field("line1").autocomplete == "address-line1"

    de = address_form("DE", locale="de")
    assert de.country_name == "Deutschland" and de.field("region") is None
    assert [f.name for f in de.fields] == ["line1", "line2", "postal_code", "city"]

    assert address_form("XX") is None

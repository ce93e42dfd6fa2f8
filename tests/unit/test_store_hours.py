"""A store's opening hours: read from the API and the form, written for people,
and open now on the store's own wall clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from broker.accounts import hours
from broker.accounts import addresses as store_addresses
from broker.accounts.addresses import check_address
from broker.errors import Invalid
from broker.geo.timezones import parse_timezone, timezone_at

WEEKDAYS = {day: [{"opens": "09:00", "closes": "18:00"}] for day in ("mon", "tue", "wed", "thu", "fri")}
SHOP = hours.parse({**WEEKDAYS, "sat": [{"opens": "10:00", "closes": "16:00"}], "note": "Closed on public holidays"})


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def test_hours_are_formatted_grouping_equal_days():
    assert hours.describe(SHOP) == ("Mon–Fri 9:00\u202fAM – 6:00\u202fPM · Sat 10:00\u202fAM – 4:00\u202fPM · "
                                    "Sun closed. Closed on public holidays")
    # Days and times as the store's locale writes them.
    assert hours.describe(SHOP, "de_DE").startswith("Mo.–Fr. 09:00 – 18:00 · Sa. 10:00 – 16:00 · So. geschlossen")
    split = hours.parse({"mon": [{"opens": "14:00", "closes": "18:00"}, {"opens": "09:00", "closes": "12:30"}],
                         "tue": [{"opens": "09:00", "closes": "12:30"}, {"opens": "14:00", "closes": "18:00"}]})
    # Ranges are kept in order, so equal days are equal however they were typed.
    assert hours.describe(split, "en_GB") == "Mon–Tue 09:00 – 12:30, 14:00 – 18:00 · Wed–Sun closed"
    assert hours.describe(None) == ""


def test_open_now_is_decided_in_the_stores_time_zone():
    # Monday 2026-03-02 17:30 in Los Angeles is 01:30 UTC on Tuesday.
    monday_evening = utc(2026, 3, 3, 1, 30)
    state = hours.state_at(SHOP, "America/Los_Angeles", monday_evening)
    assert state.open and state.closes_at == datetime(2026, 3, 2, 18, 0).replace(
        tzinfo=state.closes_at.tzinfo) and state.closes_at.utcoffset().total_seconds() == -8 * 3600
    # The same moment in Berlin is 02:30 on Tuesday: closed, opens at 09:00 Berlin time.
    state = hours.state_at(SHOP, "Europe/Berlin", monday_evening)
    assert not state.open and state.opens_at.astimezone(timezone.utc) == utc(2026, 3, 3, 8, 0)
    # Saturday 16:30 in LA: closed until Monday 09:00 (Sunday is closed).
    state = hours.state_at(SHOP, "America/Los_Angeles", utc(2026, 3, 8, 0, 30))
    assert not state.open and state.opens_at.astimezone(timezone.utc) == utc(2026, 3, 9, 16, 0)


def test_opening_hours_keep_to_the_wall_clock_across_a_daylight_saving_change():
    # US clocks go forward on Sunday 2026-03-08: Monday opens at 09:00 PDT, 16:00 UTC.
    state = hours.state_at(SHOP, "America/Los_Angeles", utc(2026, 3, 8, 20, 0))
    assert state.opens_at.astimezone(timezone.utc) == utc(2026, 3, 9, 16, 0)
    state = hours.state_at(SHOP, "America/Los_Angeles", utc(2026, 3, 9, 16, 30))
    assert state.open


def test_a_night_that_runs_past_midnight_is_one_opening():
    bar = hours.parse({"fri": [{"opens": "20:00", "closes": "24:00"}], "sat": [{"opens": "00:00", "closes": "02:00"}]})
    state = hours.state_at(bar, "UTC", utc(2026, 3, 6, 23, 0))  # Friday 23:00
    assert state.open and state.closes_at == datetime(2026, 3, 7, 2, 0, tzinfo=state.closes_at.tzinfo)


def test_no_hours_is_no_answer_and_a_shop_never_open_has_no_next_opening():
    assert hours.state_at(None, "UTC", utc(2026, 3, 2, 12)) is None
    closed = hours.parse({})
    assert hours.state_at(closed, "UTC", utc(2026, 3, 2, 12)) == hours.OpenState(False)


@pytest.mark.parametrize("data, field", [
    ({"mon": [{"opens": "9:00", "closes": "18:00"}]}, "hours.mon.0.opens"),
    ({"mon": [{"opens": "09:00", "closes": "25:00"}]}, "hours.mon.0.closes"),
    ({"mon": [{"opens": "24:00", "closes": "24:00"}]}, "hours.mon.0.opens"),
    ({"mon": [{"opens": "18:00", "closes": "09:00"}]}, "hours.mon.0.closes"),
    ({"tue": [{"opens": "09:00", "closes": "13:00"}, {"opens": "12:00", "closes": "18:00"}]}, "hours.tue"),
    ({"wed": [{"opens": "08:00", "closes": "09:00"}] * 3}, "hours.wed"),
    ({"funday": []}, "hours.funday"),
    ({"thu": "09:00-18:00"}, "hours.thu"),
    ({"fri": [{"opens": 9, "closes": 18}]}, "hours.fri.0.opens"),
    ({"note": "x" * 201}, "hours.note"),
])
def test_bad_hours_name_their_field(data, field):
    with pytest.raises(Invalid) as refused:
        hours.parse(data)
    assert list(refused.value.errors) == [field]


def test_the_form_takes_what_people_type_and_names_each_wrong_day():
    read = hours.parse_form({"hours_mon": "9-18", "hours_tue": "9:00 – 13:00, 14:00-18:00", "hours_wed": "closed",
                             "hours_thu": "9.30-17", "hours_note": "  Ring the\nbell  "})
    assert read.days["mon"] == (("09:00", "18:00"),) and read.days["wed"] == ()
    assert read.days["tue"] == (("09:00", "13:00"), ("14:00", "18:00")) and read.days["thu"] == (("09:30", "17:00"),)
    assert read.note == "Ring the bell"
    assert hours.form_text(read, "tue") == "09:00-13:00, 14:00-18:00" and hours.form_text(read, "sun") == "closed"
    assert hours.parse_form({"hours_mon": " ", "hours_note": ""}) is None
    with pytest.raises(Invalid) as refused:
        hours.parse_form({"hours_mon": "9-", "hours_tue": "18-9", "hours_fri": "9-12, 13-15, 16-18"})
    assert sorted(refused.value.errors) == ["hours.fri", "hours.mon", "hours.tue"]


def test_hours_read_back_from_the_database_as_they_were_stored():
    assert hours.Hours.from_json(SHOP.to_json()) == SHOP
    assert hours.Hours.from_json({"mon": [["nonsense"]]}) is None and hours.Hours.from_json(None) is None


def test_a_us_address_takes_its_state_from_the_zip_and_refuses_another():
    address = check_address({"line1": "1 Valencia St", "city": "San Francisco", "postal_code": "94110",
                             "country": "us"})
    assert (address.region, address.country) == ("CA", "US")
    with pytest.raises(Invalid) as refused:
        check_address({"line1": "1 Valencia St", "city": "San Francisco", "postal_code": "94110", "country": "US",
                       "region": "NY"})
    assert refused.value.errors == {"address.region": ["94110 is a ZIP code in California, not New York"]}
    with pytest.raises(Invalid) as refused:
        check_address({"line1": "1 Main St", "postal_code": "00000", "country": "US"})
    assert sorted(refused.value.errors) == ["address.city", "address.postal_code"]
    # Only the postal code and country, as a sign-up gives them, is an address too.
    only_code = check_address({"postal_code": "10115", "country": "DE"})
    assert store_addresses.lines(only_code) == ["10115", "GERMANY"]
    with pytest.raises(Invalid) as refused:
        check_address({"country": "DE"})
    assert refused.value.errors == {"address.postal_code": ["Enter the postal code"]}


@pytest.mark.parametrize("values, errors", [
    # The country's own postal format, as at checkout: a German code has five digits,
    # a Canadian one is "A1A 1A1", a Japanese one "100-0001".
    ({"line1": "Invalidenstraße 1", "city": "Berlin", "postal_code": "1011", "country": "DE"},
     ["address.postal_code"]),
    ({"line1": "1 King St W", "city": "Toronto", "postal_code": "12345", "country": "CA"}, ["address.postal_code"]),
    ({"line1": "1 King St W", "city": "Toronto", "postal_code": "M5V 2T6", "region": "QC", "country": "CA"},
     ["address.postal_code"]),  # "M5V 2T6 is not a postal code in Quebec"
    ({"line1": "1 Main St", "city": "Springfield", "postal_code": "10115", "country": "ZZ"}, ["address.country"]),
    ({"line1": ["not", "text"], "postal_code": "10115", "country": "DE"}, ["address.line1"]),
])
def test_a_store_address_follows_its_countrys_rules(values, errors):
    with pytest.raises(Invalid) as refused:
        check_address(values)
    assert sorted(refused.value.errors) == errors


def test_a_store_address_is_normalised_as_its_country_writes_it():
    canada = check_address({"line1": "1 King St W", "city": "Toronto", "postal_code": "m5v2t6", "country": "ca"})
    assert (canada.postal_code, canada.region, canada.country) == ("M5V 2T6", "ON", "CA")
    assert store_addresses.lines(canada) == ["1 King St W", "Toronto ON M5V 2T6", "CANADA"]
    berlin = check_address({"line1": "Invalidenstraße 1", "city": "Berlin", "postal_code": "10115", "country": "DE"})
    assert store_addresses.lines(berlin) == ["Invalidenstraße 1", "10115 Berlin", "GERMANY"]
    assert store_addresses.to_json(berlin) == {"line1": "Invalidenstraße 1", "line2": "", "city": "Berlin",
                                               "region": "", "postal_code": "10115", "country": "DE"}


def test_a_time_zone_is_an_iana_name_and_defaults_from_the_point():
    assert parse_timezone("europe/berlin") == "Europe/Berlin"
    for bad in ("../../etc/passwd", "Mars/Olympus", "", "America/Los Angeles"):
        with pytest.raises(Invalid):
            parse_timezone(bad)
    assert timezone_at(37.7509, -122.4153, "UTC") == "America/Los_Angeles"
    assert timezone_at(52.52, 13.405, "UTC") == "Europe/Berlin"

"""Buying from anywhere through the API, with the default (offline) geocoder:
addresses checked by their country's rules, placed by postal code or city,
printed in their country's format, and listings that say how precisely their
point is known."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from broker.board.models import Listing
from broker.geo.distance import distance_km
from broker.models import Order
from broker.personal.models import PersonalRequest
from tests.conftest import ADMIN_TOKEN

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

# City centres written out from an atlas, independently of the data the geocoder reads.
CENTRES = {"Berlin": (52.5200, 13.4050), "Toronto": (43.6532, -79.3832), "Tokyo": (35.6762, 139.6503),
           "San Francisco": (37.7749, -122.4194)}


def ok(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def store(client, slug, currency, location, price=89900):
    maker = ok(client.post("/api/v1/manufacturers", headers=OPERATOR, json={
        "name": f"Shop {slug}", "slug": slug, "currency": currency, "location": location}), 201)
    ok(client.post("/api/v1/products", headers=bearer(maker["api_key"]),
                   json={"sku": "BIKE", "name": "City bike", "price": price}), 201)
    return maker


def order(client, slug, ship_to, name="Max Mustermann", status=201, **extra):
    response = client.post(f"/api/v1/storefronts/{slug}/orders", json={
        "items": [{"sku": "BIKE", "quantity": 1}], "customer": {"name": name, "email": "max@example.com"},
        "ship_to": ship_to, **extra})
    return ok(response, status)


def placed(session, order_id) -> Order:
    return session.scalar(select(Order).where(Order.id == order_id))


def listing_of(session, order_id) -> Listing:
    return session.scalar(select(Listing).where(Listing.order_id == order_id))


def mine(client, body):
    return ok(client.get(f"/api/v1/orders/{body['id']}", headers={"X-Access-Token": body["access_token"]}))


def counts(session):
    return session.scalar(select(func.count()).select_from(Order)), \
        session.scalar(select(func.count()).select_from(Listing))


def within_city(session, order_id, city, km=25):
    o = placed(session, order_id)
    return distance_km(o.ship_lat, o.ship_lon, *CENTRES[city]) <= km


def test_a_german_customer_buys_with_a_berlin_address_and_no_coordinates(client, session):
    store(client, "berliner-raeder", "EUR", {"city": "Berlin", "country": "DE"})
    body = order(client, "berliner-raeder", {"line1": "Invalidenstraße 117", "city": "Berlin",
                                             "postal_code": "10115", "country": "DE"})
    assert body["status"] == "open" and (body["total"], body["currency"]) == (89900, "EUR")
    assert within_city(session, body["id"], "Berlin")
    seen = mine(client, body)
    assert seen["ship_to"]["formatted"] == ["Max Mustermann", "Invalidenstraße 117", "10115 Berlin", "GERMANY"]
    assert seen["ship_to"]["region"] == "" and seen["area"] == "Berlin, DE 101xx"
    assert listing_of(session, body["id"]).precision == "city"


def test_a_canadian_customer_buys_with_m5v_2t6(client, session):
    store(client, "maple", "CAD", {"city": "Toronto", "country": "CA"})
    address = {"line1": "290 Bremner Blvd", "city": "Toronto", "region": "ON", "country": "CA"}
    # Canada's pattern decides what a postal code is: one letter short is refused, in words.
    wrong = order(client, "maple", {**address, "postal_code": "M5V 2T"}, status=422)
    assert wrong["errors"] == {"ship_to.postal_code": ["Enter a postal code like H3Z 2Y7"]}
    body = order(client, "maple", {**address, "postal_code": "m5v2t6"}, name="Jo Smith")
    assert within_city(session, body["id"], "Toronto")
    seen = mine(client, body)
    assert (seen["ship_to"]["postal_code"], seen["ship_to"]["region"]) == ("M5V 2T6", "ON")
    assert seen["ship_to"]["formatted"] == ["Jo Smith", "290 Bremner Blvd", "Toronto ON M5V 2T6", "CANADA"]
    assert seen["area"] == "Toronto, ON M5V"


def test_a_japanese_customer_buys_with_a_tokyo_address(client, session):
    store(client, "nihon", "JPY", {"city": "Tokyo", "country": "JP"}, price=120000)
    body = order(client, "nihon", {"line1": "1-1 Marunouchi", "city": "Chiyoda-ku", "region": "Tokyo",
                                   "postal_code": "1000005", "country": "JP"}, name="Taro Yamada")
    assert within_city(session, body["id"], "Tokyo")
    seen = mine(client, body)
    assert seen["ship_to"]["region"] == "東京都" and seen["ship_to"]["postal_code"] == "100-0005"
    assert seen["ship_to"]["formatted"] == ["Taro Yamada", "1-1 Marunouchi", "Chiyoda-ku, Tokyo", "100-0005", "JAPAN"]
    # The same, written in Japanese.
    native = order(client, "nihon", {"line1": "丸の内1-1", "city": "千代田区", "region": "東京都",
                                     "postal_code": "100-0005", "country": "JP"}, name="山田太郎")
    assert within_city(session, native["id"], "Tokyo")
    assert mine(client, native)["ship_to"]["formatted"] == ["〒100-0005", "東京都", "千代田区", "丸の内1-1", "山田太郎",
                                                            "JAPAN"]


def test_a_us_state_is_derived_from_the_zip(client, session):
    store(client, "acme", "USD", {"postal_code": "94107", "country": "US"})
    body = order(client, "acme", {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                                  "country": "US"}, name="Ada Lovelace")
    assert placed(session, body["id"]).ship_region == "CA"
    seen = mine(client, body)
    assert seen["ship_to"]["region"] == "CA"
    assert "San Francisco, CA 94103" in seen["ship_to"]["formatted"]


def test_a_wrong_state_for_the_zip_is_refused(client, session):
    store(client, "acme", "USD", {"postal_code": "94107", "country": "US"})
    before = counts(session)
    refused = order(client, "acme", {"line1": "1 Main St", "city": "San Francisco", "region": "NY",
                                     "postal_code": "94103", "country": "US"}, status=422)
    assert refused["errors"] == {"ship_to.region": ["94103 is a ZIP code in California, not New York"]}
    assert counts(session) == before


def test_an_unknown_city_is_refused_with_a_message_for_a_shopper(client, session):
    store(client, "berliner-raeder", "EUR", {"city": "Berlin", "country": "DE"})
    before = counts(session)
    refused = order(client, "berliner-raeder", {"line1": "Hauptstraße 1", "city": "Springfeld",
                                                "postal_code": "10115", "country": "DE"}, status=422)
    assert refused["errors"] == {
        "ship_to.city": ["We could not find Springfeld in Germany: check the city, or use your location"]}
    assert "lat" not in refused["detail"] and "lon" not in refused["detail"]
    assert counts(session) == before


def test_old_clients_without_region_still_get_an_order(client, session):
    """The bodies clients sent before regions existed: a US ship-to (README's
    own example), a Canadian one with coordinates, a pickup with only a ZIP."""
    store(client, "acme", "USD", {"postal_code": "94107", "country": "US"})
    us = order(client, "acme", {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                                "country": "US"})
    ca = order(client, "acme", {"line1": "290 Bremner Blvd", "city": "Toronto", "postal_code": "M5V 2T6",
                                "country": "CA", "lat": 43.6426, "lon": -79.3871})
    pickup = order(client, "acme", {"postal_code": "94103", "country": "US"}, delivery="pickup")
    assert {us["status"], ca["status"], pickup["status"]} == {"open"}
    assert placed(session, us["id"]).ship_region == "CA"
    assert placed(session, ca["id"]).ship_region == "ON"  # derived from the postal code
    assert (placed(session, ca["id"]).ship_lat, placed(session, ca["id"]).ship_lon) == (43.6426, -79.3871)
    assert placed(session, pickup["id"]).ship_region == "CA"


def test_a_region_a_country_requires_is_asked_for_when_nothing_tells_it(client, session):
    store(client, "acme", "USD", {"postal_code": "94107", "country": "US"})
    # Hong Kong has no postal codes, and its addresses name an area.
    refused = order(client, "acme", {"line1": "1 Nathan Rd", "city": "Mong Kok", "country": "HK",
                                     "lat": 22.3193, "lon": 114.1694}, status=422)
    assert refused["errors"] == {"ship_to.region": ["Choose the area"]}


def test_listings_record_how_precisely_the_point_is_known(client, session):
    maker = store(client, "acme", "EUR", {"city": "Berlin", "country": "DE"})
    shop = ok(client.post("/api/v1/retailers", headers=OPERATOR, json={
        "name": "Kiez Räder", "email": "kiez@shop.example", "location": {"city": "Berlin", "country": "DE"},
        "service_radius_km": 40}), 201)
    ok(client.post("/api/v1/dealers", headers=bearer(maker["api_key"]), json={"retailer_id": shop["id"]}), 201)
    by_city = order(client, "acme", {"line1": "Invalidenstraße 117", "city": "Berlin", "postal_code": "10115",
                                     "country": "DE"})
    by_device = order(client, "acme", {"line1": "Invalidenstraße 117", "city": "Berlin", "postal_code": "10115",
                                       "country": "DE", "lat": 52.5310, "lon": 13.3846})
    by_zip = order(client, "acme", {"line1": "1 Main St", "city": "San Francisco", "postal_code": "94103",
                                    "country": "US"})
    assert {tag: listing_of(session, body["id"]).precision
            for tag, body in (("city", by_city), ("device", by_device), ("zip", by_zip))} == {
        "city": "city", "device": "coordinates", "zip": "postal_code"}
    assert placed(session, by_city["id"]).location_precision == "city"
    # The retailer sees it on the board, beside the coarse area.
    board = {item["id"]: item for item in ok(client.get("/api/v1/board", headers=bearer(shop["api_key"])))}
    shown = {board[listing_of(session, b["id"]).id]["precision"] for b in (by_city, by_device)}
    assert shown == {"city", "coordinates"}
    assert all("Invalidenstraße" not in item["area"] for item in board.values())
    # A personal request too, placed by its city.
    request = ok(client.post("/api/v1/requests", json={
        "description": "A cargo bike", "max_price": 200000, "currency": "EUR",
        "location": {"city": "Berlin", "country": "DE"},
        "ship_to": {"name": "Max Mustermann", "line1": "Invalidenstraße 117", "city": "Berlin",
                    "postal_code": "10115", "country": "DE"}}), 201)
    row = session.get(PersonalRequest, request["id"])
    assert row.location_precision == "city" and row.area == "Berlin, DE"
    assert session.scalar(select(Listing.precision).where(Listing.request_id == request["id"])) == "city"


def test_a_request_ship_to_follows_its_countrys_rules(client, session):
    refused = client.post("/api/v1/requests", json={
        "description": "A cargo bike", "max_price": 200000, "currency": "EUR",
        "location": {"city": "Toronto", "country": "CA"},
        "ship_to": {"name": "Jo Smith", "line1": "290 Bremner Blvd", "city": "Toronto", "region": "BC",
                    "postal_code": "M5V 2T6", "country": "CA"}})
    assert refused.status_code == 422
    assert refused.get_json()["errors"] == {
        "ship_to.postal_code": ["M5V 2T6 is not a postal code in British Columbia"]}


class TestAddressFormats:
    def test_a_country_s_form_comes_in_its_order_with_its_names(self, client):
        jp = ok(client.get("/api/v1/address-formats/jp"))
        assert jp["country"] == "JP" and jp["country_name"] == "Japan"
        assert [f["name"] for f in jp["fields"]] == ["postal_code", "region", "city", "line1", "line2"]
        region = next(f for f in jp["fields"] if f["name"] == "region")
        assert region["label"] == "Prefecture" and region["required"] is True
        assert {"value": "東京都", "label": "Tokyo"} in region["choices"]
        us = ok(client.get("/api/v1/address-formats/US"))
        postal = next(f for f in us["fields"] if f["name"] == "postal_code")
        assert (postal["label"], postal["example"], postal["autocomplete"]) == ("ZIP code", "95014", "postal-code")
        assert us["rows"][-1] == ["city", "region", "postal_code"]
        de = ok(client.get("/api/v1/address-formats/DE?locale=de"))
        assert de["country_name"] == "Deutschland" and "region" not in [f["name"] for f in de["fields"]]

    def test_a_region_brings_its_cities_where_the_data_lists_them(self, client):
        for region in ("Kowloon", "kowloon", "九龍"):
            hk = ok(client.get(f"/api/v1/address-formats/HK?region={region}"))
            city = next(f for f in hk["fields"] if f["name"] == "city")
            assert city["label"] == "District" and {"value": "Mong Kok", "label": "Mong Kok"} in city["choices"]
        unknown = ok(client.get("/api/v1/address-formats/HK?region=Atlantis"))
        assert next(f for f in unknown["fields"] if f["name"] == "city")["choices"] == []

    def test_the_countries_come_named_in_the_locale(self, client):
        english = ok(client.get("/api/v1/address-formats"))
        assert {"code": "DE", "name": "Germany"} in english and len(english) > 240
        german = ok(client.get("/api/v1/address-formats?locale=de"))
        assert {"code": "DE", "name": "Deutschland"} in german
        assert [c["name"] for c in german] == sorted((c["name"] for c in german), key=str.casefold)

    @pytest.mark.parametrize("path, status", [
        ("/api/v1/address-formats/XX", 404), ("/api/v1/address-formats/Germany", 404),
        ("/api/v1/address-formats/DE?locale=%3Cscript%3E", 422),
    ])
    def test_what_is_not_a_country_or_a_locale_is_refused(self, client, path, status):
        response = client.get(path)
        assert response.status_code == status
        assert response.content_type == "application/problem+json"

"""The whole broker loop through HTTP, as an integration would drive it."""

from datetime import timedelta

from tests.conftest import ADMIN_TOKEN, START

OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(key):
    return {"Authorization": f"Bearer {key}"}


def ok(response, status=200):
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def test_the_whole_loop(client, clock):
    # The operator sets up a manufacturer in San Francisco and four retailers.
    maker = ok(client.post("/api/v1/manufacturers", headers=OPERATOR, json={
        "name": "Northwind Cycles", "slug": "northwind", "currency": "USD",
        "location": {"postal_code": "94107", "country": "US"},
    }), 201)
    m = bearer(maker["api_key"])

    def retailer(name, zip_code, radius):
        body = ok(client.post("/api/v1/retailers", headers=OPERATOR, json={
            "name": name, "email": f"{name.split()[0].lower()}@shop.example",
            "location": {"postal_code": zip_code, "country": "US"}, "service_radius_km": radius,
        }), 201)
        return body["id"], bearer(body["api_key"])

    mission, mission_h = retailer("Mission Bikes", "94110", 40)      # ~3 km from the customer
    oakland, oakland_h = retailer("Oakland Spokes", "94607", 40)     # ~12 km
    sanjose, sanjose_h = retailer("San Jose Cyclery", "95112", 40)   # authorised, but out of radius
    rogue, rogue_h = retailer("Unlisted Bikes", "94103", 40)         # near, but not a dealer
    for rid in (mission, oakland, sanjose):
        ok(client.post("/api/v1/dealers", headers=m, json={"retailer_id": rid}), 201)
    dealers = ok(client.get("/api/v1/dealers", headers=m))
    assert {d["retailer_id"] for d in dealers} == {mission, oakland, sanjose}

    ok(client.post("/api/v1/products", headers=m, json={"sku": "NW-ROAD", "name": "Road bike", "price": 189900}), 201)
    catalog = ok(client.get("/api/v1/storefronts/northwind/products"))
    assert catalog == [{"sku": "NW-ROAD", "name": "Road bike", "price": 189900, "currency": "USD",
                        "description": "", "image_url": None, "active": True, "in_stock": True}]

    # A customer orders; the offline provider authorises at once.
    placed = ok(client.post("/api/v1/storefronts/northwind/orders", json={
        "items": [{"sku": "NW-ROAD", "quantity": 1}],
        "customer": {"name": "Grace Hopper", "email": "grace@navy.example"},
        "ship_to": {"line1": "77 Cobol Court", "city": "San Francisco", "postal_code": "94103", "country": "US"},
    }), 201)
    assert placed["status"] == "open"
    assert (placed["total"], placed["currency"]) == (189900, "USD")
    assert placed["payment"]["status"] == "authorized" and placed["payment"]["test_mode"] is True
    order_id, token = placed["id"], {"X-Access-Token": placed["access_token"]}

    # The right retailers see it, without the customer's identity.
    boards = {name: client.get("/api/v1/board", headers=h)
              for name, h in [("mission", mission_h), ("oakland", oakland_h), ("sanjose", sanjose_h),
                              ("rogue", rogue_h)]}
    for name in ("mission", "oakland"):
        text = boards[name].get_data(as_text=True)
        [listing] = boards[name].get_json()
        assert listing["kind"] == "order" and listing["price"] == 189900
        assert listing["items"] == [{"line_id": listing["items"][0]["line_id"], "sku": "NW-ROAD", "name": "Road bike",
                                     "quantity": 1}]
        assert listing["area"].startswith("San Francisco")
        for secret in ("Grace", "Hopper", "grace@navy.example", "Cobol"):
            assert secret not in text
    assert boards["sanjose"].get_json() == [] and boards["rogue"].get_json() == []
    listing_id = boards["mission"].get_json()[0]["id"]

    # Two bid; the unauthorised and the out-of-radius retailers cannot.
    assert ok(client.post(f"/api/v1/board/{listing_id}/bids", headers=mission_h, json={}), 201)["status"] == "active"
    ok(client.post(f"/api/v1/board/{listing_id}/bids", headers=oakland_h, json={}), 201)
    assert client.post(f"/api/v1/board/{listing_id}/bids", headers=rogue_h, json={}).status_code == 404
    assert client.post(f"/api/v1/board/{listing_id}/bids", headers=sanjose_h, json={}).status_code == 404

    # An order nobody bids on.
    lonely = ok(client.post("/api/v1/storefronts/northwind/orders", json={
        "items": [{"sku": "NW-ROAD", "quantity": 2}],
        "customer": {"name": "Alan Turing", "email": "alan@bletchley.example"},
        "ship_to": {"line1": "1 Enigma Way", "city": "San Jose", "postal_code": "95112", "country": "US"},
    }), 201)

    # Settlement the next morning: the nearest bidder wins; the other goes to the manufacturer.
    as_of = (START + timedelta(hours=13)).isoformat()
    run = ok(client.post("/api/v1/settlements", headers=OPERATOR, json={"as_of": as_of}), 201)
    assert (run["settled"], run["to_retailers"], run["to_manufacturer"]) == (2, 1, 1)
    again = ok(client.post("/api/v1/settlements", headers=OPERATOR, json={"as_of": as_of}), 201)
    assert again["settled"] == 0

    assert ok(client.get("/api/v1/assignments", headers=oakland_h)) == []
    assert client.get(f"/api/v1/orders/{order_id}", headers=oakland_h).status_code == 404
    [mine] = ok(client.get("/api/v1/assignments", headers=mission_h))
    assert mine["order_id"] == order_id
    assert mine["ship_to"]["name"] == "Grace Hopper" and mine["ship_to"]["line1"] == "77 Cobol Court"
    seen = ok(client.get(f"/api/v1/orders/{order_id}", headers=mission_h))
    assert seen["ship_to"]["line1"] == "77 Cobol Court" and "email" not in seen["customer"]

    [fallback] = ok(client.get("/api/v1/assignments", headers=m))
    assert fallback["order_id"] == lonely["id"] and fallback["fulfiller"] == "manufacturer"

    # The winner ships; the payment is captured; the customer sees `shipped`.
    clock.advance(hours=20)
    shipped = ok(client.post(f"/api/v1/assignments/{mine['id']}/shipment", headers=mission_h,
                             json={"carrier": "UPS", "tracking_number": "1Z999"}))
    assert shipped["status"] == "shipped"
    view = ok(client.get(f"/api/v1/orders/{order_id}", headers=token))
    assert view["status"] == "shipped"
    assert view["fulfilment"]["carrier"] == "UPS" and view["fulfilment"]["tracking_number"] == "1Z999"
    assert view["payment"]["status"] == "captured"
    assert client.post(f"/api/v1/orders/{order_id}/cancel", headers=token).status_code == 409

    # The manufacturer sees both orders, and can filter them.
    assert {o["id"] for o in ok(client.get("/api/v1/orders", headers=m))} == {order_id, lonely["id"]}
    assert [o["id"] for o in ok(client.get("/api/v1/orders?status=shipped", headers=m))] == [order_id]
    assert [o["id"] for o in ok(client.get("/api/v1/orders?fulfiller=manufacturer", headers=m))] == [lonely["id"]]


def test_customer_cancels_before_settlement(client):
    maker = ok(client.post("/api/v1/manufacturers", headers=OPERATOR, json={
        "name": "Acme", "slug": "acme", "currency": "EUR", "location": {"lat": 52.52, "lon": 13.405},
    }), 201)
    ok(client.post("/api/v1/products", headers=bearer(maker["api_key"]),
                   json={"sku": "A1", "name": "Anvil", "price": 2500}), 201)
    placed = ok(client.post("/api/v1/storefronts/acme/orders", json={
        "items": [{"sku": "A1", "quantity": 3}],
        "customer": {"name": "Wile E.", "email": "wile@desert.example"},
        "ship_to": {"line1": "Mesa 1", "city": "Berlin", "postal_code": "10115", "country": "DE",
                    "lat": 52.53, "lon": 13.38},
    }), 201)
    assert placed["total"] == 7500 and placed["currency"] == "EUR"

    cancelled = ok(client.post(f"/api/v1/orders/{placed['id']}/cancel",
                               headers={"X-Access-Token": placed["access_token"]}))

    assert cancelled["status"] == "cancelled"
    assert cancelled["payment"]["status"] == "released"
    run = ok(client.post("/api/v1/settlements", headers=OPERATOR,
                         json={"as_of": (START + timedelta(days=2)).isoformat()}), 201)
    assert run["settled"] == 0


def test_lists_are_paginated(client, ctx):
    from tests.factories import World

    maker = World(ctx).manufacturer(products=[(f"SKU-{i:02d}", 100 + i) for i in range(25)])
    first = client.get(f"/api/v1/storefronts/{maker.slug}/products?page=1&page_size=10")
    third = client.get(f"/api/v1/storefronts/{maker.slug}/products?page=3&page_size=10")

    assert len(first.get_json()) == 10 and len(third.get_json()) == 5
    import json

    meta = json.loads(first.headers["X-Pagination"])
    assert meta["total"] == 25 and meta["total_pages"] == 3


def test_openapi_document_and_docs_are_served(client):
    spec = ok(client.get("/api/v1/openapi.json"))
    for path in ("/api/v1/manufacturers", "/api/v1/board", "/api/v1/board/{listing_id}/bids",
                 "/api/v1/assignments/{assignment_id}/shipment", "/api/v1/settlements"):
        assert path in spec["paths"]
    docs = client.get("/api/v1/docs")  # drawn in the browser from the document (tests/e2e/test_api_reference_browser.py)
    assert docs.status_code == 200 and b'data-spec-url="/api/v1/openapi.json"' in docs.data

"""The OpenAPI document's examples: one request body and one answer per operation,
given to the views' `@blp.arguments(..., example=...)` and `@blp.response(...,
example=...)`.

They tell one story, with the demo's names (`broker run`, broker/demo.py): Northwind
Cycles (storefront `northwind`, USD, San Francisco 94107) sells a commuter helmet and a
light set to Ada Park in 94103;
Mission Bike Shop (94110), an authorised dealer, bids, wins and ships; Ben Ortiz
posts a personal request that the same shop answers. Ids, times and amounts agree
across the examples (12800 = 7900 + 4900, shipped free by Standard over 100.00;
13904 with California's 8.625 % tax, which the fulfiller never earns; the fee is 10%). Every example is checked
against its schema, and every request body is loaded by the view's own schema
(tests/integration/test_api_reference.py). Keys and tokens are made up.
"""

from __future__ import annotations

MANUFACTURER_ID, RETAILER_ID, STORE_ID, VALENCIA_STORE_ID = 1, 3, 7, 8
ORDER_ID, LISTING_ID, BID_ID, ASSIGNMENT_ID = 1042, 311, 5150, 877
REQUEST_ID, REQUEST_LISTING_ID, OFFER_ID, REQUEST_ORDER_ID = 61, 312, 5170, 1043
PICKUP_LISTING_ID = 313
RUN_ID = 95

PLACED_AT, CLOSES_AT, ASSIGNED_AT = "2026-03-02T17:05:00+00:00", "2026-03-03T02:00:00+00:00", "2026-03-03T02:00:00+00:00"
DUE_AT, SHIPPED_AT = "2026-03-05T02:00:00+00:00", "2026-03-03T16:20:00+00:00"
AREA = "San Francisco, CA 941xx"

# --- accounts -------------------------------------------------------------------

MANUFACTURER_IN = {"name": "Northwind Cycles", "slug": "northwind", "currency": "USD",
                   "location": {"postal_code": "94107", "country": "US"}}
MANUFACTURER_CREATED = {"id": MANUFACTURER_ID, "slug": "northwind",
                        "api_key": "bk_m_vEuDeHBMKYYgcDF_uYo9hEiAUjTIEUHeTyXG7yoyd2U"}

RETAILER_IN = {"name": "Mission Bike Shop", "email": "hello@missionbikeshop.com",
               "location": {"postal_code": "94110", "country": "US"}, "service_radius_km": 25}
RETAILER_CREATED = {"id": RETAILER_ID, "store_id": STORE_ID,
                    "api_key": "bk_r_25G0Esop9HGb7nG6Qlo5YaLztTLN_5-6DqSX5kLwSeQ"}

STORE_ADDRESS = {"line1": "1011 Valencia St", "line2": "", "city": "San Francisco", "region": "CA",
                 "postal_code": "94110", "country": "US"}
STORE_HOURS = {"mon": [{"opens": "10:00", "closes": "19:00"}], "tue": [{"opens": "10:00", "closes": "19:00"}],
               "wed": [{"opens": "10:00", "closes": "19:00"}], "thu": [{"opens": "10:00", "closes": "19:00"}],
               "fri": [{"opens": "10:00", "closes": "19:00"}], "sat": [{"opens": "10:00", "closes": "17:00"}],
               "sun": [], "note": "Closed on public holidays"}
STORE_HOURS_TEXT = "Mon–Fri 10:00 AM – 7:00 PM · Sat 10:00 AM – 5:00 PM · Sun closed · Closed on public holidays"
STORE = {"id": STORE_ID, "name": "Mission Bike Shop", "lat": 37.7509, "lon": -122.4153, "area": AREA,
         "service_radius_km": 25.0, "is_open": True, "address": STORE_ADDRESS, "hours": STORE_HOURS,
         "hours_text": STORE_HOURS_TEXT, "timezone": "America/Los_Angeles",
         "open_now": {"open": True, "opens_at": None, "closes_at": "2026-03-02T03:00:00+00:00"}}
STORE_IN = {"name": "Mission Bike Shop, Valencia St", "location": {"postal_code": "94103", "country": "US"},
            "service_radius_km": 15,
            "address": {"line1": "455 Valencia St", "city": "San Francisco", "postal_code": "94103", "country": "US"},
            "hours": STORE_HOURS}
STORE_ADDED = {"id": VALENCIA_STORE_ID, "name": "Mission Bike Shop, Valencia St", "lat": 37.7725, "lon": -122.4147,
               "area": AREA, "service_radius_km": 15.0, "is_open": True,
               "address": {"line1": "455 Valencia St", "line2": "", "city": "San Francisco", "region": "CA",
                           "postal_code": "94103", "country": "US"},
               "hours": STORE_HOURS, "hours_text": STORE_HOURS_TEXT, "timezone": "America/Los_Angeles",
               "open_now": {"open": True, "opens_at": None, "closes_at": "2026-03-02T03:00:00+00:00"}}
STORE_PATCH = {"service_radius_km": 30, "is_open": False}
STORE_PATCHED = {**STORE, "service_radius_km": 30.0, "is_open": False}

DEALER_IN = {"retailer_id": RETAILER_ID}
DEALER = {"retailer_id": RETAILER_ID, "name": "Mission Bike Shop", "authorised_at": "2026-03-01T10:00:00+00:00"}

# --- catalog --------------------------------------------------------------------

PRODUCT_IN = {"sku": "NW-HELMET", "name": "Commuter helmet", "price": 7900,
              "description": "With a rear light built in.",
              "image_url": "https://www.northwind.example.com/img/helmet.jpg"}
PRODUCT = {"sku": "NW-HELMET", "name": "Commuter helmet", "price": 7900, "currency": "USD",
           "description": "With a rear light built in.",
           "image_url": "https://www.northwind.example.com/img/helmet.jpg", "active": True, "in_stock": True}
LIGHTS = {"sku": "NW-LIGHTS", "name": "Light set", "price": 4900, "currency": "USD",
          "description": "Front and rear, USB-C.", "image_url": None, "active": True, "in_stock": True}
PRODUCT_PATCH = {"price": 8400, "in_stock": False}
PRODUCT_PATCHED = {**PRODUCT, "price": 8400, "in_stock": False}

# --- orders ---------------------------------------------------------------------

ORDER_IN = {
    "items": [{"sku": "NW-HELMET", "quantity": 1}, {"sku": "NW-LIGHTS", "quantity": 1}],
    "customer": {"name": "Ada Park", "email": "ada.park@example.com"},
    "ship_to": {"line1": "500 Howard St", "line2": "Apt 4", "city": "San Francisco", "postal_code": "94103",
                "country": "US"},
    "delivery": "ship",
}
# Standard shipping is free over 100.00; California's 8.625 % on 128.00 is 11.04.
TOTALS = {"total": 13904, "subtotal": 12800, "shipping": 0, "tax": 1104, "tax_included": False,
          "tax_jurisdiction": "US-CA",
          "shipping_method": {"code": "standard", "name": "Standard", "ship_within_hours": 72}}
ORDER_CREATED = {
    "id": ORDER_ID, "status": "open", **TOTALS, "currency": "USD",
    "access_token": "0zJOsxxFeiRjKdkUmE4HW-AY40bVM_rfEwXnBsMD8vQ",
    "payment": {"provider": "offline", "status": "authorized", "test_mode": True, "amount": 13904,
                "client_secret": None},
}
LINES = [
    {"sku": "NW-HELMET", "name": "Commuter helmet", "quantity": 1, "unit_price": 7900, "line_total": 7900},
    {"sku": "NW-LIGHTS", "name": "Light set", "quantity": 1, "unit_price": 4900, "line_total": 4900},
]
SHIP_TO = {"name": "Ada Park", "line1": "500 Howard St", "line2": "Apt 4", "city": "San Francisco",
           "postal_code": "94103", "country": "US"}
ORDER_OPEN = {
    "id": ORDER_ID, "status": "open", **TOTALS, "currency": "USD", "delivery": "ship", "area": AREA,
    "created_at": PLACED_AT, "items": LINES, "customer": {"name": "Ada Park", "email": "ada.park@example.com"},
    "ship_to": SHIP_TO, "fulfilment": None,
    "payment": {"provider": "offline", "status": "authorized", "test_mode": True, "amount": 13904},
    "return_requested_at": None, "returns": [], "delivered_at": None, "delivered_how": None, "pickup_store": None,
    "parts": [],
}
FULFILMENT_SHIPPED = {"assignment_id": ASSIGNMENT_ID, "fulfiller": "retailer", "status": "shipped", "due_at": DUE_AT,
                      "shipped_at": SHIPPED_AT, "carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
ORDER_SHIPPED = {**ORDER_OPEN, "status": "shipped", "fulfilment": FULFILMENT_SHIPPED,
                 "payment": {**ORDER_OPEN["payment"], "status": "captured"},
                 "parts": [{**FULFILMENT_SHIPPED, "items": [
                     {"line_id": 901, "sku": "NW-HELMET", "name": "Commuter helmet", "quantity": 1},
                     {"line_id": 902, "sku": "NW-LIGHTS", "name": "Light set", "quantity": 1}]}]}
ORDER_DELIVERED = {**ORDER_SHIPPED, "status": "delivered", "delivered_at": "2026-03-05T18:10:00+00:00",
                   "delivered_how": "customer"}
RETURN_IN = {"reason": "The helmet is too small."}
RETURN_ASKED = {"id": 3, "assignment_id": ASSIGNMENT_ID, "status": "requested", "reason": "The helmet is too small.",
                "requested_at": "2026-03-06T09:30:00+00:00", "decided_at": None, "decided_by": None, "note": None,
                "refund_amount": None, "refund_reference": None}
ORDER_RETURN_ASKED = {**ORDER_DELIVERED, "return_requested_at": "2026-03-06T09:30:00+00:00",
                      "returns": [RETURN_ASKED]}
# The fulfiller sees the ship-to, never the email; the payment is the manufacturer's and the customer's business.
ORDER_RETURNED = {**ORDER_RETURN_ASKED, "status": "refunded", "customer": {"name": "Ada Park"}, "payment": None,
                  "returns": [{**RETURN_ASKED, "status": "accepted", "decided_at": "2026-03-07T11:00:00+00:00",
                               "decided_by": "retailer", "refund_amount": 13904, "refund_reference": "re_offline_3"}]}
RETURN_REFUSE_IN = {"note": "The helmet was worn outside: we can only take back unused items. Call us to talk it over."}
ORDER_RETURN_REFUSED = {**ORDER_RETURN_ASKED, "customer": {"name": "Ada Park"}, "payment": None,
                        "returns": [{**RETURN_ASKED, "status": "refused", "decided_at": "2026-03-07T11:00:00+00:00",
                                     "decided_by": "retailer", "note": RETURN_REFUSE_IN["note"]}]}
RETURN_ITEM = {**RETURN_ASKED, "order_id": ORDER_ID, "currency": "USD", "total": 13904, "refundable": 13904,
               "items": LINES}
ORDER_CANCELLED = {**ORDER_OPEN, "status": "cancelled",
                   "payment": {**ORDER_OPEN["payment"], "status": "released"}}

# --- board ----------------------------------------------------------------------

BOARD = [
    {"id": LISTING_ID, "kind": "order", "items": [
        {"line_id": 901, "sku": "NW-HELMET", "name": "Commuter helmet", "quantity": 1},
        {"line_id": 902, "sku": "NW-LIGHTS", "name": "Light set", "quantity": 1}],
     "price": 12800, "delivery": "ship", "currency": "USD", "distance_km": 2.0, "store_id": STORE_ID, "area": AREA,
     "closes_at": CLOSES_AT, "shipping_method": "Standard", "ship_within_hours": 72, "my_bid": None},
    {"id": PICKUP_LISTING_ID, "kind": "order",
     "items": [{"line_id": 903, "sku": "NW-LOCK", "name": "Folding lock", "quantity": 1}],
     "price": 5400, "delivery": "pickup", "currency": "USD", "distance_km": 4.0, "store_id": STORE_ID,
     "area": AREA, "closes_at": CLOSES_AT, "shipping_method": None, "ship_within_hours": 72, "my_bid": None},
    {"id": REQUEST_LISTING_ID, "kind": "request", "description": "A child's bike seat that fits a road bike",
     "quantity": 1, "pseudonym": "Customer 7F3A", "buyer_score": 0.9, "max_price": 12000, "currency": "USD",
     "distance_km": 3.0, "store_id": STORE_ID, "area": AREA, "closes_at": CLOSES_AT,
     "my_bid": {"id": OFFER_ID, "store_id": STORE_ID, "distance_km": 3.0, "price": 10900,
                "created_at": "2026-03-02T18:10:00+00:00", "items": None, "standing_bid_id": None}},
]
BID_IN_EXAMPLES = {
    "order": {"summary": "Bid on an order, from your nearest covering store", "value": {}},
    "store": {"summary": "Bid on an order, from a store you name", "value": {"store_id": STORE_ID}},
    "part": {"summary": "Bid on the lines of an order you can fill",
             "value": {"items": [{"sku": "NW-LIGHTS", "quantity": 1}]}},
    "request": {"summary": "Offer on a personal request (at most its max_price), in all: 100.00 for the seat, 9.00 "
                           "shipping, no tax", "value": {"price": 10900, "shipping": 900, "tax": 0}},
}
BID = {"id": BID_ID, "listing_id": LISTING_ID, "store_id": STORE_ID, "distance_km": 2.0, "price": None,
       "shipping": 0, "tax": 0, "status": "active", "created_at": "2026-03-02T17:40:00+00:00", "items": None,
       "standing_bid_id": None}

# --- fulfilment -----------------------------------------------------------------

ASSIGNMENT = {
    "id": ASSIGNMENT_ID, "order_id": ORDER_ID, "status": "active", "fulfiller": "retailer", "store_id": STORE_ID,
    "assigned_at": ASSIGNED_AT, "due_at": DUE_AT, "shipped_at": None, "carrier": None, "tracking_number": None,
    **TOTALS, "currency": "USD", "items": LINES, "delivery": "ship", "ship_to": SHIP_TO, "collected_by": None,
}
SHIPMENT_IN = {"carrier": "UPS", "tracking_number": "1Z999AA10123456784"}
ASSIGNMENT_SHIPPED = {**ASSIGNMENT, "status": "shipped", "shipped_at": SHIPPED_AT, "carrier": "UPS",
                      "tracking_number": "1Z999AA10123456784"}
PICKUP_IN = {"code": "152683"}
ASSIGNMENT_COLLECTED = {**ASSIGNMENT, "status": "shipped", "shipped_at": SHIPPED_AT, "carrier": "pickup",
                        "tracking_number": "collected in store",
                        "ship_to": {**SHIP_TO, "line1": "", "line2": "", "city": ""}}
ASSIGNMENT_RELEASED = {**ASSIGNMENT, "status": "released", "ship_to": None}

# --- settlement -----------------------------------------------------------------

SETTLE_IN = {"as_of": CLOSES_AT}
SETTLEMENT = {"id": RUN_ID, "as_of": CLOSES_AT, "settled": 2, "to_retailers": 2, "to_manufacturer": 0,
              "by_rule": {"nearest": 1, "only_eligible_bid": 1}, "seconds": 0.04}
RUN = {"id": RUN_ID, "as_of": CLOSES_AT, "trigger": "scheduled", "status": "completed", "started_at": CLOSES_AT,
       "finished_at": "2026-03-03T02:00:01+00:00", "seconds": 0.04, "settled": 2, "to_retailers": 2,
       "to_manufacturer": 0, "error": None, "scope": "everything"}
RUN_REPORT = {**RUN, "by_rule": {"nearest": 1, "only_eligible_bid": 1},
              "retailers": [{"retailer_id": RETAILER_ID, "name": "Mission Bike Shop", "listings": 2,
                             "average_distance_km": 2.5}]}
BID_OUTCOMES = [
    {"listing_id": LISTING_ID, "kind": "order", "area": AREA, "price": 12800, "currency": "USD",
     "bid_at": "2026-03-02T17:40:00+00:00", "my_distance_km": 2.0, "outcome": "won", "decided_at": CLOSES_AT,
     "rule": "nearest", "winner": "you", "winner_distance_band": "under 5 km", "my_eligibility": "",
     "won_round": 0, "label": "Won", "reason": "Won: you were the nearest eligible bidder."},
    {"listing_id": 298, "kind": "order", "area": "Oakland, CA 946xx", "price": 4900, "currency": "USD",
     "bid_at": "2026-03-01T11:02:00+00:00", "my_distance_km": 14.0, "outcome": "lost",
     "decided_at": "2026-03-02T02:00:00+00:00", "rule": "nearest", "winner": "another retailer",
     "winner_distance_band": "under 5 km", "my_eligibility": "", "won_round": None, "label": "Lost",
     "reason": "Lost: a nearer bidder won; the winner was under 5 km away."},
]

# --- money ----------------------------------------------------------------------

REFUND_IN = {"amount": 2000}
ORDER_REFUNDED_IN_PART = ORDER_SHIPPED  # a part refund leaves the order shipped and its payment captured
CONNECT_IN = {"email": "payouts@missionbikeshop.com", "country": "US"}
CONNECTED = {"account_ref": "acct_1PqR7sT2uVwXyZ3a", "provider": "stripe", "ready": False,
             "onboarding_url": "https://connect.stripe.com/setup/e/acct_1PqR7sT2uVwXyZ3a/Xk2fQ9"}
EARNINGS = [{"id": 3301, "order_id": ORDER_ID, "kind": "sale", "gross": 12800, "fee": 1280, "amount": 11520,
             "currency": "USD", "status": "accrued", "payout_id": None, "created_at": SHIPPED_AT}]
EARNINGS_SUMMARY = {"by_currency": [{"currency": "USD", "accrued": 11520, "frozen": 0, "paid": 98100}],
                    "currency": "USD", "accrued": 11520, "frozen": 0, "paid": 98100, "account_ready": True}
PAYOUTS = {"payouts": 4, "amount": {"USD": 41330}, "failed": 0}

# --- personal requests ----------------------------------------------------------

REQUEST_IN = {
    "description": "A child's bike seat that fits a road bike", "quantity": 1, "max_price": 12000,
    "currency": "USD", "location": {"postal_code": "94114", "country": "US"},
    "ship_to": {"name": "Ben Ortiz", "line1": "3900 24th St", "city": "San Francisco", "postal_code": "94114",
                "country": "US"},
    "prefer": "nearest", "expires_at": "2026-03-09T18:00:00+00:00",
    "callback_url": "https://agent.example.com/broker/notices", "contact": "ben.ortiz@example.com",
}
REQUEST_OPEN = {
    "id": REQUEST_ID, "status": "open", "pseudonym": "Customer 7F3A",
    "description": "A child's bike seat that fits a road bike", "sku": None, "quantity": 1, "max_price": 12000,
    "currency": "USD", "prefer": "nearest", "area": AREA, "expires_at": "2026-03-09T18:00:00+00:00",
    "closes_at": "2026-03-03T10:00:00+00:00", "offers": [], "order_id": None,
    "payment": {"provider": "offline", "status": "authorized", "test_mode": True, "amount": 12000},
}
REQUEST_CREATED = {**REQUEST_OPEN, "access_token": "OrdfdpR5WLvXi2bily9sUMW3_momHmk7Ym5lFXEhE8E",
                   "payment": {**REQUEST_OPEN["payment"], "client_secret": None}}
OFFER = {"bid_id": OFFER_ID, "price": 10900, "goods": 10000, "shipping": 900, "tax": 0, "distance_km": 1.8,
         "retailer": "Mission Bike Shop", "rating": 4.7, "ratings": 12, "rating_text": "4.7★ (12 ratings)",
         "offered_at": "2026-03-02T18:10:00+00:00"}
REQUEST_WITH_OFFERS = {**REQUEST_OPEN, "offers": [OFFER]}
ACCEPT_IN = {"bid_id": OFFER_ID}
REQUEST_AWARDED = {**REQUEST_WITH_OFFERS, "status": "awarded", "order_id": REQUEST_ORDER_ID}
REQUEST_CANCELLED = {**REQUEST_WITH_OFFERS, "status": "cancelled",
                     "payment": {**REQUEST_OPEN["payment"], "status": "released"}}

MESSAGE_IN = {"body": "Is the gate code still 4410?"}
MESSAGE = {"id": 901, "sender": "fulfiller", "body": "Is the gate code still 4410?", "created_at": ASSIGNED_AT,
           "mine": True, "assignment_id": ASSIGNMENT_ID, "fulfiller": "Mission Bike Shop"}
MESSAGES = [{**MESSAGE, "mine": False},
            {"id": 902, "sender": "customer", "body": "Yes, 4410. Thank you!", "created_at": "2026-03-03T08:12:00+00:00",
             "mine": True, "assignment_id": ASSIGNMENT_ID, "fulfiller": "Mission Bike Shop"}]

# --- reputation -----------------------------------------------------------------

REVIEW_IN = {"rating": 5, "comment": "Fast, and the helmet fits."}
REVIEW = {"order_id": ORDER_ID, "author": "customer", "rating": 5, "comment": "Fast, and the helmet fits.",
          "created_at": "2026-03-04T19:00:00+00:00"}
ORDER_REVIEWS = {"order_id": ORDER_ID, "party": "customer", "mine": REVIEW,
                 "theirs": {"order_id": ORDER_ID, "author": "fulfiller", "rating": 5, "comment": "",
                            "created_at": "2026-03-04T08:00:00+00:00"},
                 "reveal_pending": False}
REPUTATION = {"score": 0.92, "stars": 4.7, "ratings": 12}

# --- storefront -----------------------------------------------------------------

BRANDING_IN = {"name": "Northwind Cycles", "logo_url": "https://www.northwind.example.com/img/logo.png",
               "color_primary": "#0b5cad", "color_accent": "#f59e0b", "locale": "en_US",
               "custom_domain": "shop.northwind.example.com", "frame_origins": ["https://www.northwind.example.com"],
               "return_window_days": 30}
BRANDING = {
    "slug": "northwind", "name": "Northwind Cycles", "logo_url": "https://www.northwind.example.com/img/logo.png",
    "color_primary": "#0b5cad", "color_accent": "#f59e0b", "locale": "en_US",
    "custom_domain": "shop.northwind.example.com", "custom_domain_verified": False,
    "frame_origins": ["https://www.northwind.example.com"], "return_window_days": 30,
    "embed_snippet": '<script src="https://broker.example.com/s/northwind/embed.js" data-store="northwind"></script>',
}

# --- privacy --------------------------------------------------------------------

ORDER_DATA = {
    "kind": "order", "exported_at": "2026-03-06T10:00:00+00:00", "request": None,
    "order": {
        "id": ORDER_ID, "status": "shipped", "created_at": PLACED_AT, "currency": "USD", "total": 13904,
        "store": {"name": "Northwind Cycles", "slug": "northwind"},
        "customer": {"name": "Ada Park", "email": "ada.park@example.com"},
        "ship_to": {**{k: v for k, v in SHIP_TO.items() if k != "name"}, "area": AREA},
        "lines": LINES,
        "payment": {"provider": "offline", "status": "captured", "authorised_amount": 13904, "captured_amount": 13904,
                    "refunded_amount": 0, "currency": "USD",
                    "card": "Broker never sees or stores card details; the payment provider holds them."},
        "disclosures": [{"at": ASSIGNED_AT, "party": "retailer", "fields": ["address", "name"],
                         "purpose": "fulfiller listed what it must ship"}],
        "emails": [{"subject": "Your order 1042 has shipped", "written_at": SHIPPED_AT, "sent_at": SHIPPED_AT}],
    },
}
ORDER_ERASED = {"kind": "order", "id": ORDER_ID, "status": "shipped", "erased_at": "2026-03-06T10:05:00+00:00",
                "order_id": ORDER_ID}
REQUEST_DATA = {
    "kind": "request", "exported_at": "2026-03-06T10:00:00+00:00", "order": None,
    "request": {"id": REQUEST_ID, "status": "open", "description": "A child's bike seat that fits a road bike",
                "max_price": 12000, "currency": "USD", "contact_email": "ben.ortiz@example.com",
                "callback_url": "https://agent.example.com/broker/notices"},
}
REQUEST_ERASED = {"kind": "request", "id": REQUEST_ID, "status": "cancelled", "erased_at": "2026-03-06T10:05:00+00:00",
                  "order_id": None}

# --- address formats ----------------------------------------------------------------

COUNTRIES = [{"code": "CA", "name": "Canada"}, {"code": "DE", "name": "Germany"}, {"code": "US", "name": "United States"}]
ADDRESS_FORMAT = {
    "country": "DE", "country_name": "Germany",
    "fields": [
        {"name": "line1", "label": "Street address", "required": True, "autocomplete": "address-line1",
         "choices": [], "example": ""},
        {"name": "line2", "label": "Apartment, suite, building", "required": False, "autocomplete": "address-line2",
         "choices": [], "example": ""},
        {"name": "postal_code", "label": "Postal code", "required": True, "autocomplete": "postal-code",
         "choices": [], "example": "26133"},
        {"name": "city", "label": "City", "required": True, "autocomplete": "address-level2", "choices": [],
         "example": ""},
    ],
    "rows": [["line1"], ["line2"], ["postal_code", "city"]],
}

# --- shipping and tax -----------------------------------------------------------

SHIPPING_METHOD_IN = {"code": "express", "name": "Express", "price": 1500, "per_item": 0, "free_over": None,
                      "ship_within_hours": 24, "countries": ["US"], "default": False}
SHIPPING_METHOD = {"code": "express", "name": "Express", "price": 1500, "per_item": 0, "free_over": None,
                   "currency": "USD", "ship_within_hours": 24, "countries": ["US"], "default": False,
                   "active": True}
STANDARD = {"code": "standard", "name": "Standard", "price": 700, "per_item": 0, "free_over": 10000,
            "currency": "USD", "ship_within_hours": 72, "countries": [], "default": True, "active": True}
SHIPPING_METHODS = [STANDARD, SHIPPING_METHOD]
SHIPPING_METHOD_PATCH = {"price": 1200, "ship_within_hours": 36}
SHIPPING_METHOD_PATCHED = {**SHIPPING_METHOD, "price": 1200, "ship_within_hours": 36}
SHIPPING_OFFERED = [
    {"code": "standard", "name": "Standard", "charge": 0, "currency": "USD", "ship_within_hours": 72,
     "default": True},
    {"code": "express", "name": "Express", "charge": 1500, "currency": "USD", "ship_within_hours": 24,
     "default": False},
]
TAX_TABLE_IN = {"prices_include_tax": False, "shipping_taxed": True,
                "rates": [{"country": "US", "region": "NY", "rate": "8.875"},
                          {"country": "US", "region": "WA", "rate": "10.25"}]}
TAX_TABLE = {"prices_include_tax": False, "shipping_taxed": True, "provider": "table", "currency": "USD",
             "rates": [{"country": "US", "region": "NY", "rate": "8.875", "jurisdiction": "US-NY"},
                       {"country": "US", "region": "WA", "rate": "10.25", "jurisdiction": "US-WA"}]}

# --- stock and standing bids ---------------------------------------------------------

STOCK_IN = {"items": [{"sku": "NW-HELMET", "quantity": 4}, {"sku": "NW-LIGHTS", "quantity": 0}]}
STOCK = {"store_id": STORE_ID, "updated_at": "2026-03-02T08:00:00+00:00", "age_hours": 0.0, "fresh": True,
         "standing_bids_placed": 1,
         "items": [{"sku": "NW-HELMET", "quantity": 4, "reserved": 1, "available": 3},
                   {"sku": "NW-LIGHTS", "quantity": 0, "reserved": 0, "available": 0}]}
DEALER_STOCK = [{"retailer_id": 7, "retailer_name": "Mission Cycles", "store_id": STORE_ID, "store_name": "Mission",
                 "area": "San Francisco 941", "sku": "NW-HELMET", "quantity": 4, "available": 3,
                 "updated_at": "2026-03-02T08:00:00+00:00", "age_hours": 5.5, "fresh": True}]
STANDING_BID_IN = {"manufacturers": ["northwind"], "max_distance_km": 25, "partial": True}
STANDING_BID = {"id": 4, "store_id": None, "manufacturers": ["northwind"], "max_distance_km": 25.0, "partial": True,
                "created_at": "2026-03-02T08:00:00+00:00", "placed": 2}

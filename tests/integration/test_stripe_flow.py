"""The whole money story with Stripe: the real SDK against a fake Stripe over HTTP,
with webhooks signed by a test secret and posted to /webhooks/stripe."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.ledger import services as ledger
from broker.models import Base
from tests.conftest import ADMIN_TOKEN, START
from tests.factories import HERE, World, north_of
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.fakes.stripe_server import event, sign

SECRET = STRIPE_WEBHOOK_SECRET
OPERATOR = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def client(stripe_ctx):
    from web.app import create_app

    return create_app(context=stripe_ctx, test_config={"TESTING": True}).test_client()


def post_event(client, kind, obj, *, secret=SECRET, timestamp=None, tamper=False):
    body = json.dumps(event(kind, obj)).encode()
    signature = sign(body, secret, timestamp)
    if tamper:
        body = body.replace(b'"object"', b'"objekt"', 1)
    return client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": signature,
                                                               "Content-Type": "application/json"})


def rows(ctx):
    with ctx.uow() as uow:
        return {t.name: uow.session.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}


def test_checkout_to_payout_with_stripe(stripe_ctx, client, fake, clock):
    world = World(stripe_ctx)
    maker = world.manufacturer(products=[("SKU-1", 12500)])
    shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])

    placed = client.post(f"/api/v1/storefronts/{maker.slug}/orders", json={
        "items": [{"sku": "SKU-1", "quantity": 2}],
        "customer": {"name": "Ada", "email": "ada@example.com"},
        "ship_to": {"line1": "1 Main", "city": "San Francisco", "postal_code": "94103", "country": "US",
                    "lat": HERE[0], "lon": HERE[1]},
    }).get_json()
    # Stripe: the order waits for the customer to confirm the card in the browser.
    assert placed["status"] == "awaiting_payment"
    assert placed["payment"]["provider"] == "stripe" and placed["payment"]["client_secret"]
    [pi] = fake.payment_intents.values()
    assert (pi["amount"], pi["currency"], pi["capture_method"]) == (25000, "usd", "manual")
    assert client.get("/api/v1/board", headers={"Authorization": f"Bearer {shop.key}"}).get_json() == []

    fake.authorize(pi["id"])
    answer = post_event(client, "payment_intent.amount_capturable_updated", {"id": pi["id"], "object": "payment_intent"})
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "applied"
    token = {"X-Access-Token": placed["access_token"]}
    assert client.get(f"/api/v1/orders/{placed['id']}", headers=token).get_json()["status"] == "open"

    # The same event again, and an event type we do not handle: recorded, nothing moves.
    again = post_event(client, "payment_intent.amount_capturable_updated", {"id": pi["id"]})
    assert again.get_json()["outcome"] == "no_change"
    assert post_event(client, "invoice.created", {"id": "in_1"}).get_json()["outcome"] == "ignored"

    listing = client.get("/api/v1/board", headers={"Authorization": f"Bearer {shop.key}"}).get_json()[0]
    client.post(f"/api/v1/board/{listing['id']}/bids", headers={"Authorization": f"Bearer {shop.key}"}, json={})
    clock.now = START + timedelta(hours=13)
    client.post("/api/v1/settlements", headers=OPERATOR, json={})
    [assignment] = client.get("/api/v1/assignments", headers={"Authorization": f"Bearer {shop.key}"}).get_json()
    shipped = client.post(f"/api/v1/assignments/{assignment['id']}/shipment",
                          headers={"Authorization": f"Bearer {shop.key}"}, json={"carrier": "UPS", "tracking_number": "1Z"})
    assert shipped.status_code == 200
    assert fake.payment_intents[pi["id"]]["status"] == "succeeded"
    capture = fake.requests_to(f"/v1/payment_intents/{pi['id']}/capture")[0]
    assert capture.idempotency_key and capture.stripe_version

    # Connect: onboarding link, then Stripe says the account is ready.
    shop_auth = {"Authorization": f"Bearer {shop.key}"}
    connect = client.post("/api/v1/connect", headers=shop_auth, json={"email": "shop@example.com"}).get_json()
    assert connect["ready"] is False and connect["onboarding_url"].startswith("http")
    assert client.post("/api/v1/payouts", headers=OPERATOR).get_json()["payouts"] == 0  # not ready: it accrues
    account = fake.complete_onboarding(connect["account_ref"])
    assert post_event(client, "account.updated", account).get_json()["outcome"] == "applied"
    assert client.get("/api/v1/earnings/summary", headers=shop_auth).get_json() == {
        "by_currency": [{"currency": "USD", "accrued": 22500, "frozen": 0, "paid": 0}],
        "currency": "USD", "accrued": 22500, "frozen": 0, "paid": 0, "account_ready": True}

    run = client.post("/api/v1/payouts", headers=OPERATOR).get_json()
    assert run == {"payouts": 1, "amount": {"USD": 22500}, "failed": 0, "parked": 0}
    [transfer] = fake.transfers.values()
    assert (transfer["amount"], transfer["destination"], transfer["transfer_group"]) == \
        (22500, connect["account_ref"], f"order-{placed['id']}")
    assert transfer["source_transaction"] == fake.payment_intents[pi["id"]]["latest_charge"]

    # Stripe confirms the capture afterwards; it changes nothing, and the books balance.
    post_event(client, "payment_intent.succeeded", {"id": pi["id"]})
    with stripe_ctx.uow() as uow:
        check = ledger.check(uow.session)
    assert check.ok, check


def test_a_declined_card_then_a_retry_puts_the_order_on_the_board(stripe_ctx, client, fake):
    maker = World(stripe_ctx).manufacturer()
    placed = client.post(f"/api/v1/storefronts/{maker.slug}/orders", json={
        "items": [{"sku": "SKU-1", "quantity": 1}], "customer": {"name": "B", "email": "b@example.com"},
        "ship_to": {"line1": "2 Main", "city": "SF", "postal_code": "94103", "country": "US"},
    }).get_json()
    [pi] = fake.payment_intents
    fake.decline(pi)
    post_event(client, "payment_intent.payment_failed", {"id": pi})
    token = {"X-Access-Token": placed["access_token"]}
    assert client.get(f"/api/v1/orders/{placed['id']}", headers=token).get_json()["status"] == "payment_failed"
    fake.authorize(pi)
    post_event(client, "payment_intent.amount_capturable_updated", {"id": pi})
    assert client.get(f"/api/v1/orders/{placed['id']}", headers=token).get_json()["status"] == "open"


@pytest.mark.parametrize("how", ["missing", "wrong-secret", "stale", "tampered", "not-json"])
def test_webhooks_without_a_valid_signature_are_refused_and_write_nothing(stripe_ctx, client, how):
    before = rows(stripe_ctx)
    obj = {"id": "acct_1", "object": "account"}
    if how == "missing":
        response = client.post("/webhooks/stripe", data=json.dumps(event("account.updated", obj)),
                               content_type="application/json")
    elif how == "wrong-secret":
        response = post_event(client, "account.updated", obj, secret="whsec_other")
    elif how == "stale":
        response = post_event(client, "account.updated", obj, timestamp=int(START.timestamp()) - 3600 * 24 * 400)
    elif how == "tampered":
        response = post_event(client, "account.updated", obj, tamper=True)
    else:
        body = b"this is not json"
        response = client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": sign(body, SECRET)})
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert rows(stripe_ctx) == before


def test_storefront_checkout_with_stripe_shows_the_payment_element(stripe_ctx, fake):
    import dataclasses as dc

    from web.app import create_app

    ctx = dc.replace(stripe_ctx, settings=dc.replace(stripe_ctx.settings, stripe_publishable_key="pk_test_shop"))
    client = create_app(context=ctx, test_config={"TESTING": True}).test_client()
    World(ctx).manufacturer(slug="striped", products=[("SKU-1", 2500)])
    posted = client.post("/s/striped/checkout?cart=SKU-1:1", data={
        "name": "Ada", "email": "ada@example.com", "line1": "1 Main", "line2": "", "city": "San Francisco",
        "postal_code": "94103", "country": "US"})
    assert posted.status_code == 303  # post/redirect/get: the Payment Element is on a page of its own
    cookie = posted.headers["Set-Cookie"]
    response = client.get(posted.headers["Location"], follow_redirects=True)
    assert response.status_code == 200 and re.fullmatch(r"/s/striped/o/\d+/pay", response.request.path)
    [pi] = fake.payment_intents.values()
    page = response.get_data(as_text=True)
    assert f'data-client-secret="{pi["client_secret"]}"' in page and 'data-publishable-key="pk_test_shop"' in page
    assert "https://js.stripe.com/v3/" in page and "Test mode" not in page
    # Stripe sends the customer back to the order page without its token (the token
    # is not Stripe's to keep); the cookie that opens it is set here, with the order.
    return_url = re.search(r'data-return-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert re.fullmatch(r"http://localhost/s/striped/o/(\d+)\?new=1", return_url), return_url
    assert cookie.startswith("broker_order=") and "Path=/s/striped/o/" in cookie and "HttpOnly" in cookie
    assert client.get(return_url.removeprefix("http://localhost")).status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self' https://js.stripe.com" in csp and "frame-src https://js.stripe.com" in csp
    # Every other page keeps Stripe out.
    assert "stripe" not in client.get("/s/striped/").headers["Content-Security-Policy"]


def test_stripes_return_url_comes_from_the_public_url_not_the_host(stripe_ctx, fake):
    import dataclasses as dc

    from web.app import create_app

    ctx = dc.replace(stripe_ctx, settings=dc.replace(stripe_ctx.settings, stripe_publishable_key="pk_test_shop",
                                                     public_url="https://broker.example",
                                                     allowed_hosts=("internal.example",)))
    client = create_app(context=ctx, test_config={"TESTING": True}).test_client()
    World(ctx).manufacturer(slug="striped", products=[("SKU-1", 2500)])
    form = {"name": "Ada", "email": "ada@example.com", "line1": "1 Main", "line2": "", "city": "San Francisco",
            "postal_code": "94103", "country": "US"}
    # A name the balancer answers to, but not the one customers use: Stripe sends them back to the public one.
    posted = client.post("/s/striped/checkout?cart=SKU-1:1", data=form, headers={"Host": "internal.example"})
    assert posted.status_code == 303
    response = client.get(posted.headers["Location"], headers={"Host": "internal.example"}, follow_redirects=True)
    assert 'data-return-url="https://broker.example/s/striped/o/' in response.get_data(as_text=True)
    refused = client.post("/s/striped/checkout?cart=SKU-1:1", data=form, headers={"Host": "evil.example"})
    assert refused.status_code == 400 and len(fake.payment_intents) == 1


def test_payout_account_page_onboards_at_stripe_and_reads_it_back(stripe_ctx, client, fake):
    """The portal's payout-account page sends the retailer to Stripe's account link,
    which comes back to the page; the page asks Stripe again, so it reads "Ready"
    before the webhook arrives."""
    from broker.accounts.models import Role
    from tests.integration.test_console_pages import csrf, sign_in

    world = World(stripe_ctx)
    shop = world.retailer(north_of(HERE, 2))
    sign_in(client, stripe_ctx, Role.RETAILER, shop.id)
    assert "Not set up" in client.get("/portal/payout-account").get_data(as_text=True)
    started = client.post("/portal/payout-account", data={"csrf_token": csrf(client, "/portal/payout-account")})
    assert started.status_code == 302 and started.headers["Location"].startswith("http")
    [link] = fake.account_links
    assert link["return_url"] == link["refresh_url"] == "http://localhost/portal/payout-account"
    assert "Not finished" in client.get("/portal/payout-account").get_data(as_text=True)
    # No simulated onboarding page with Stripe configured.
    assert client.get(f"/portal/payout-account/offline/{link['account']}").status_code == 404

    fake.complete_onboarding(link["account"])
    assert "Ready: your earnings are paid out to it" in client.get("/portal/payout-account").get_data(as_text=True)
    auth = {"Authorization": f"Bearer {shop.key}"}
    assert client.get("/api/v1/earnings/summary", headers=auth).get_json()["account_ready"] is True
def test_a_request_posted_from_its_page_authorises_the_card_in_the_payment_element(stripe_ctx, fake):
    """The request form's card step with Stripe: post/redirect/get to a page of its
    own with the Payment Element; the webhook puts the request on the board."""
    import dataclasses as dc

    from web.app import create_app

    ctx = dc.replace(stripe_ctx, settings=dc.replace(stripe_ctx.settings, stripe_publishable_key="pk_test_shop"))
    client = create_app(context=ctx, test_config={"TESTING": True}).test_client()
    form = client.get("/requests/new").get_data(as_text=True)
    assert "Test mode" not in form and "Next you enter your card" in form
    posted = client.post("/requests/new", data={
        "description": "A copper kettle", "quantity": "1", "max_price": "120.00", "currency": "USD",
        "prefer": "nearest", "days": "7", "name": "Quinn", "line1": "5 Hidden Way", "line2": "",
        "city": "San Francisco", "postal_code": "94103", "country": "US", "contact": ""})
    assert posted.status_code == 303
    response = client.get(posted.headers["Location"], follow_redirects=True)
    assert response.status_code == 200 and re.fullmatch(r"/requests/\d+/pay", response.request.path)
    [pi] = fake.payment_intents.values()
    assert pi["amount"] == 12000
    page = response.get_data(as_text=True)
    assert f'data-client-secret="{pi["client_secret"]}"' in page and 'data-publishable-key="pk_test_shop"' in page
    follow = response.request.path.removesuffix("/pay")
    assert 'data-status="awaiting_payment"' in client.get(follow).get_data(as_text=True)
    fake.authorize(pi["id"])
    applied = post_event(client, "payment_intent.amount_capturable_updated", {"id": pi["id"], "object": "payment_intent"})
    assert applied.status_code == 200 and applied.get_json()["outcome"] == "applied"
    assert 'data-status="open"' in client.get(follow).get_data(as_text=True)
    # Once authorised, the payment page sends the customer to the request.
    assert client.get(f"{follow}/pay").status_code == 303

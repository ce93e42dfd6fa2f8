"""Email notifications, tested by what the outbox delivered: each flow runs through
the real services (or HTTP), `deliver_emails` sends the due emails through the
test's folder mailer, and the tests read the .eml files back with the email
package, as a mail client would."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import json
import re
import socketserver
import threading
from datetime import timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, update

from broker.accounts.models import Role
from broker.fulfilment import services as fulfilment
from broker.geo.geocoding import LocationQuery
from broker.identity import services as identity
from broker.notifications.delivery import deliver_emails
from broker.notifications.digest import send_digests
from broker.notifications.events import run_finished_emails
from broker.notifications.mailer import SmtpMailer
from broker.outbox.models import OutboxMessage
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, KM, World, north_of
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.fakes.stripe_server import event, sign
from tests.pages import sign_up_verified, user_for

SETTLED_AT = START + timedelta(hours=13)
CUSTOMER = ("Grace Hopper", "grace@navy.example", "77 Cobol Court")
SHIP_TO = {"line1": "77 Cobol Court", "city": "San Francisco", "postal_code": "94103", "country": "US",
           "lat": HERE[0], "lon": HERE[1]}


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def inbox(mail_dir) -> list[EmailMessage]:
    """Every email delivered so far, oldest first."""
    if not mail_dir.exists():
        return []
    paths = sorted(mail_dir.glob("*.eml"), key=lambda p: int(re.sub(r"\D", "", p.stem)))
    return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default) for p in paths]


def to(mail_dir, address: str, subject: str = "") -> list[EmailMessage]:
    return [m for m in inbox(mail_dir) if m["To"] == address and subject in m["Subject"]]


def text(message: EmailMessage) -> str:
    """The plain text (every email also has an HTML part)."""
    return message.get_body(preferencelist=("plain",)).get_content()


def deliver(ctx) -> int:
    report = deliver_emails(ctx)
    assert (report.failed, report.parked) == (0, 0)
    return report.sent


def place(client, slug, **over):
    body = {"items": [{"sku": "SKU-1", "quantity": 2}], "customer": {"name": CUSTOMER[0], "email": CUSTOMER[1]},
            "ship_to": SHIP_TO}
    body.update(over)
    response = client.post(f"/api/v1/storefronts/{slug}/orders", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def assert_no_customer_data(message: EmailMessage) -> None:
    raw = message.as_string()
    for secret in CUSTOMER:
        assert secret not in raw


def assert_not_optional(message: EmailMessage) -> None:
    assert message["List-Unsubscribe"] is None and "unsubscribe" not in text(message).lower()


@pytest.fixture
def maker(world, ctx):
    maker = world.manufacturer(products=[("SKU-1", 5000)])
    user_for(ctx, Role.MANUFACTURER, maker.id, "ops@maker.example", "Ops")
    return maker


@pytest.fixture
def near(world, maker):
    return world.retailer(north_of(HERE, 2), dealer_of=[maker], name="Near Cycles", email="near@shop.example")


@pytest.fixture
def far(world, maker):
    return world.retailer(north_of(HERE, 7), dealer_of=[maker], name="Far Cycles", email="far@shop.example")


def won(world, maker, near, far, clock, ctx):
    """An order both retailers bid on, settled: the near one wins it."""
    placed = world.order(maker, name=CUSTOMER[0], email=CUSTOMER[1])
    world.bid(near, placed.order.id)
    world.bid(far, placed.order.id)
    clock.now = SETTLED_AT
    report = settle(ctx)
    [assignment] = fulfilment.list_assignments(ctx, near.actor, _page()).items
    return placed, report, assignment.assignment


def _page():
    from broker.pagination import PageRequest

    return PageRequest(page=1, page_size=50)


# --- the customer ---------------------------------------------------------------


class TestOrderConfirmation:
    def test_the_customer_gets_the_status_link_once_the_order_is_on_the_board(self, client, ctx, maker, mail_dir):
        placed = place(client, maker.slug)
        assert placed["status"] == "open"

        assert deliver(ctx) >= 1
        [confirmation] = to(mail_dir, CUSTOMER[1])
        assert confirmation["Subject"] == f"Your order {placed['id']} at Maker {maker.slug} is confirmed"
        # From the store, at Broker's address.
        assert confirmation["From"] == f"Maker {maker.slug} via Broker <no-reply@broker.invalid>"
        body = text(confirmation)
        link = f"{ctx.settings.public_url}/s/{maker.slug}/o/{placed['id']}/{placed['access_token']}"
        assert link in body
        assert "2 x Product SKU-1" in body and "100.00 USD" in body
        assert_not_optional(confirmation)
        # The link is the customer's key to the order page (exchanged there for a cookie).
        assert client.get(link.removeprefix(ctx.settings.public_url), follow_redirects=True).status_code == 200

        assert deliver(ctx) == 0  # sent once

    def test_a_pickup_confirmation_carries_the_pickup_code(self, client, ctx, maker, mail_dir):
        placed = place(client, maker.slug, delivery="pickup")
        deliver(ctx)
        [confirmation] = to(mail_dir, CUSTOMER[1])
        assert placed["pickup_code"] in text(confirmation)

    @pytest.mark.parametrize("name", ["Acme\rBcc: attacker@evil.example", "Acme\nBcc: attacker@evil.example",
                                      "Acme\r\nBcc: attacker@evil.example", "Acme\u2028Bcc: attacker@evil.example"])
    def test_a_line_break_in_a_store_name_never_becomes_an_email_header(self, client, ctx, maker, mail_dir,
                                                                        session, name):
        from broker.accounts.models import Manufacturer

        # A name stored before names were one line (the API refuses it now, below).
        session.execute(update(Manufacturer).where(Manufacturer.id == maker.id).values(name=name))
        session.commit()
        placed = place(client, maker.slug)
        assert deliver(ctx) >= 1
        [confirmation] = to(mail_dir, CUSTOMER[1])
        assert confirmation["Bcc"] is None
        assert confirmation["Subject"] == f"Your order {placed['id']} at Acme Bcc: attacker@evil.example is confirmed"
        # The input boundary refuses a control character in a one-line field before any
        # view sees it (400); the name's grammar refuses the other line separators (422).
        refused = client.patch("/api/v1/storefront", headers=auth(maker.key), json={"name": name})
        if "\u2028" in name:
            assert refused.status_code == 422 and "one line" in str(refused.get_json()["errors"])
        else:
            assert refused.status_code == 400 and "line break" in refused.get_json()["detail"]


class TestConfirmationWithStripe:
    def test_the_confirmation_waits_for_the_authorisation_and_keeps_its_link(self, stripe_ctx, fake, mail_dir):
        from web.app import create_app

        client = create_app(context=stripe_ctx, test_config={"TESTING": True}).test_client()
        maker = World(stripe_ctx).manufacturer(products=[("SKU-1", 5000)])
        placed = place(client, maker.slug)
        unpaid = place(client, maker.slug, customer={"name": "Nobody", "email": "nobody@example.com"})
        assert placed["status"] == "awaiting_payment"

        deliver(stripe_ctx)
        assert to(mail_dir, CUSTOMER[1]) == []  # not confirmed until the card is authorised

        pi = next(p for p in fake.payment_intents.values() if p["metadata"]["order_id"] == str(placed["id"]))
        fake.authorize(pi["id"])
        body = json.dumps(event("payment_intent.amount_capturable_updated", {"id": pi["id"]})).encode()
        answer = client.post("/webhooks/stripe", data=body, headers={
            "Stripe-Signature": sign(body, STRIPE_WEBHOOK_SECRET, None), "Content-Type": "application/json"})
        assert answer.status_code == 200

        deliver(stripe_ctx)
        [confirmation] = to(mail_dir, CUSTOMER[1])
        # Rendered at placement, the only time the token was known.
        assert f"/s/{maker.slug}/o/{placed['id']}/{placed['access_token']}" in text(confirmation)
        assert to(mail_dir, "nobody@example.com") == []  # its payment never came
        assert unpaid["status"] == "awaiting_payment"


class TestShipment:
    def test_the_customer_gets_carrier_and_tracking_number(self, client, ctx, world, maker, near, far, clock,
                                                           mail_dir):
        placed, _, assignment = won(world, maker, near, far, clock, ctx)
        response = client.post(f"/api/v1/assignments/{assignment.id}/shipment", headers=auth(near.key),
                               json={"carrier": "UPS", "tracking_number": "1Z999AA10123456784"})
        assert response.status_code == 200

        deliver(ctx)
        [shipped] = to(mail_dir, CUSTOMER[1], "has shipped")
        assert shipped["Subject"] == f"Your order {placed.order.id} has shipped"
        body = text(shipped)
        assert "Near Cycles" in body and "UPS" in body and "1Z999AA10123456784" in body
        assert_not_optional(shipped)


# --- retailers and manufacturers --------------------------------------------------


class TestSettlementRunSummary:
    def test_one_summary_per_winner_and_per_manufacturer_with_fallbacks(self, ctx, world, maker, near, far, clock,
                                                                        mail_dir):
        first = world.order(maker, name=CUSTOMER[0], email=CUSTOMER[1])
        second = world.order(maker, name=CUSTOMER[0], email=CUSTOMER[1])
        nobody = world.order(maker, name=CUSTOMER[0], email=CUSTOMER[1])
        for placed in (first, second):
            world.bid(near, placed.order.id)
            world.bid(far, placed.order.id)
        clock.now = SETTLED_AT
        report = settle(ctx)
        assert (report.to_retailers, report.to_manufacturer) == (2, 1)

        # The run wrote its summaries as it closed; writing them again writes nothing.
        with ctx.uow() as uow:
            assert run_finished_emails(uow.session, ctx, report.run_id) == 0  # once per run
            uow.commit()
        deliver(ctx)

        # One summary, and no per-assignment email for a run's awards.
        [summary] = to(mail_dir, "near@shop.example")
        assert summary["Subject"] == "You won 2 orders"
        body = text(summary)
        assert f"order {first.order.id}" in body and f"order {second.order.id}" in body
        assert f"{ctx.settings.public_url}/portal/orders" in body
        assert_no_customer_data(summary)
        assert_not_optional(summary)
        assert to(mail_dir, "far@shop.example") == []

        [fallback] = to(mail_dir, "ops@maker.example", "fell back")
        assert fallback["Subject"] == "1 order fell back to you"
        assert f"order {nobody.order.id}" in text(fallback)
        assert f"{ctx.settings.public_url}/console/to-ship" in text(fallback)
        assert fallback["List-Unsubscribe"].startswith(f"<{ctx.settings.public_url}/unsubscribe/")
        assert "Unsubscribe:" in text(fallback)


    def test_the_summaries_take_as_many_statements_for_many_winners_as_for_few(self, ctx, world, maker, clock,
                                                                              monkeypatch):
        """A national run has thousands of winners: its summaries are written in a
        fixed number of statements, not a few per winner."""
        from sqlalchemy import event

        from broker.notifications import events

        counted = []
        real = events.run_finished_emails

        def counting(session, ctx, run_id):
            statements = []
            listener = lambda *args: statements.append(args[2])  # noqa: E731
            event.listen(ctx.engine, "before_cursor_execute", listener)
            try:
                return real(session, ctx, run_id)
            finally:
                event.remove(ctx.engine, "before_cursor_execute", listener)
                counted.append(len([s for s in statements if not s.lstrip().upper().startswith(
                    ("SAVEPOINT", "RELEASE"))]))

        monkeypatch.setattr(events, "run_finished_emails", counting)
        emails = []
        for winners in (2, 7):
            for i in range(winners):
                shop = world.retailer(north_of(HERE, 1 + i * 0.1), dealer_of=[maker], email=f"w{winners}-{i}@shop.example")
                if i % 2:  # some with users, some known only by the retailer's address
                    user_for(ctx, Role.RETAILER, shop.id, f"u{winners}-{i}@shop.example", "U")
                world.bid(shop, world.order(maker, to=north_of(HERE, 1 + i * 0.1)).order.id)
            clock.now = clock.now + timedelta(days=1)
            report = settle(ctx)
            assert report.to_retailers == winners
            with ctx.uow() as uow:
                emails.append(uow.session.scalar(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.topic == "email.run_awards")))
        assert emails == [2, 2 + 7]
        assert counted[0] == counted[1], f"{counted[0]} statements for 2 winners, {counted[1]} for 7"


class TestAwardsOutsideARun:
    def test_a_release_emails_the_next_bidder_and_then_the_manufacturer(self, client, ctx, world, maker, near, far,
                                                                        clock, mail_dir):
        placed, _, assignment = won(world, maker, near, far, clock, ctx)
        deliver(ctx)
        assert client.post(f"/api/v1/assignments/{assignment.id}/release", headers=auth(near.key)).status_code == 200

        deliver(ctx)
        [award] = to(mail_dir, "far@shop.example")
        assert award["Subject"].startswith(f"You won order {placed.order.id}: ship it by ")
        body = text(award)
        assert "1 x Product SKU-1" in body and "did not ship it" in body
        assert_no_customer_data(award)
        assert_not_optional(award)

        [second] = fulfilment.list_assignments(ctx, far.actor, _page()).items
        client.post(f"/api/v1/assignments/{second.assignment.id}/release", headers=auth(far.key))
        deliver(ctx)
        [fallback] = to(mail_dir, "ops@maker.example", "fell back")
        assert fallback["Subject"] == f"Order {placed.order.id} fell back to you"
        assert fallback["List-Unsubscribe"] is not None

    def test_the_winner_is_warned_once_and_told_of_a_lapse(self, ctx, world, maker, near, far, clock, mail_dir):
        placed, _, assignment = won(world, maker, near, far, clock, ctx)
        clock.now = SETTLED_AT + timedelta(hours=43)
        fulfilment.check_deadlines(ctx)
        clock.advance(hours=1)
        fulfilment.check_deadlines(ctx)
        deliver(ctx)
        [warning] = to(mail_dir, "near@shop.example", "Ship order")
        assert warning["Subject"] == f"Ship order {placed.order.id} by 2026-03-04 22:00 UTC"
        assert_not_optional(warning)

        clock.now = SETTLED_AT + timedelta(hours=48, minutes=1)
        assert fulfilment.check_deadlines(ctx).lapsed == 1
        deliver(ctx)
        [lapsed] = to(mail_dir, "near@shop.example", "taken from you")
        assert lapsed["Subject"] == f"Order {placed.order.id} was taken from you"
        assert "Your bid outcomes (Lapsed: You won it but did not ship in time" in " ".join(text(lapsed).split())
        [award] = to(mail_dir, "far@shop.example", "You won")
        assert award["Subject"].startswith(f"You won order {placed.order.id}")

    def test_every_user_of_the_company_gets_it(self, ctx, world, maker, near, far, clock, mail_dir):
        user_for(ctx, Role.RETAILER, far.id, "a@far.example", "A")
        user_for(ctx, Role.RETAILER, far.id, "b@far.example", "B")
        placed, _, assignment = won(world, maker, near, far, clock, ctx)
        fulfilment.release_assignment(ctx, near.actor, assignment.id)
        deliver(ctx)
        # A company with users is emailed at their addresses, not at the one it registered with.
        assert len(to(mail_dir, "a@far.example", "You won")) == len(to(mail_dir, "b@far.example", "You won")) == 1
        assert to(mail_dir, "far@shop.example") == []


# --- personal requests and the contact relay --------------------------------------------


def post_request(client, **over):
    body = {"description": "A blue 52 cm road bike frame", "quantity": 1, "max_price": 50000, "currency": "USD",
            "location": {"lat": HERE[0], "lon": HERE[1]},
            "ship_to": {"name": CUSTOMER[0], "line1": CUSTOMER[2], "city": "San Francisco", "postal_code": "94103",
                        "country": "US"},
            "contact": CUSTOMER[1]}
    body.update(over)
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post("/api/v1/requests", json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def request_listing(client, shop) -> int:
    [item] = client.get("/api/v1/board", headers=auth(shop.key)).get_json()
    return item["id"]


def make_offer(client, shop, listing_id, price):
    response = client.post(f"/api/v1/board/{listing_id}/bids", headers=auth(shop.key), json={"price": price})
    assert response.status_code in (200, 201), response.get_data(as_text=True)
    return response.get_json()


class TestRequestOffers:
    def test_at_most_one_email_per_request_per_hour_with_an_unsubscribe_link(self, client, ctx, world, clock,
                                                                           mail_dir):
        near = world.retailer(north_of(HERE, 2), name="Near Cycles", email="near@shop.example")
        far = world.retailer(north_of(HERE, 9), name="Far Cycles", email="far@shop.example")
        posted = post_request(client)
        listing = request_listing(client, near)
        make_offer(client, near, listing, 45000)
        clock.advance(minutes=20)
        make_offer(client, far, listing, 44000)
        make_offer(client, near, listing, 43000)
        deliver(ctx)
        [first] = to(mail_dir, CUSTOMER[1])
        assert first["Subject"] == "New offer on your request: 450.00 USD"
        body = text(first)
        assert "Near Cycles" in body and f"request {posted['id']}" in body and "500.00 USD" in body
        unsubscribe = first["List-Unsubscribe"].strip("<>")
        assert unsubscribe.startswith(f"{ctx.settings.public_url}/unsubscribe/") and unsubscribe in body
        assert first["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        clock.advance(minutes=45)  # the next hour
        make_offer(client, far, listing, 42000)
        deliver(ctx)
        assert [m["Subject"] for m in to(mail_dir, CUSTOMER[1])] == [
            "New offer on your request: 450.00 USD", "New offer on your request: 420.00 USD"]

        # One click (a POST, no form token) and no more of these.
        assert client.post(unsubscribe.removeprefix(ctx.settings.public_url)).status_code == 200
        clock.advance(hours=1)
        make_offer(client, near, listing, 41000)
        deliver(ctx)
        assert len(to(mail_dir, CUSTOMER[1])) == 2

    def test_no_email_without_a_contact(self, client, ctx, world, mail_dir):
        near = world.retailer(north_of(HERE, 2), email="near@shop.example")
        post_request(client, contact=None)
        make_offer(client, near, request_listing(client, near), 45000)
        deliver(ctx)
        assert [m["To"] for m in inbox(mail_dir)] == []

    def test_accepting_an_offer_emails_the_winner(self, client, ctx, world, mail_dir):
        near = world.retailer(north_of(HERE, 2), name="Near Cycles", email="near@shop.example")
        posted = post_request(client)
        bid = make_offer(client, near, request_listing(client, near), 45000)
        client.post(f"/api/v1/requests/{posted['id']}/accept", headers={"X-Access-Token": posted["access_token"]},
                    json={"bid_id": bid["id"]})
        deliver(ctx)
        [award] = to(mail_dir, "near@shop.example")
        assert "The customer accepted your offer" in text(award)
        assert_no_customer_data(award)


class TestContactRelay:
    def test_each_side_is_emailed_without_the_other_s_address(self, client, ctx, world, mail_dir):
        near = world.retailer(north_of(HERE, 2), name="Near Cycles", email="near@shop.example")
        posted = post_request(client)
        bid = make_offer(client, near, request_listing(client, near), 45000)
        token = {"X-Access-Token": posted["access_token"]}
        order_id = client.post(f"/api/v1/requests/{posted['id']}/accept", headers=token,
                               json={"bid_id": bid["id"]}).get_json()["order_id"]
        deliver(ctx)

        assert client.post(f"/api/v1/orders/{order_id}/messages", headers=token,
                           json={"body": "Could you ring the bell twice?"}).status_code == 201
        deliver(ctx)
        [to_shop] = to(mail_dir, "near@shop.example", "wrote to you")
        # A notice with a link to the thread: never the message's text.
        assert "Could you ring the bell twice?" not in text(to_shop) and "ring" not in text(to_shop)
        [assignment] = client.get("/api/v1/assignments", headers=auth(near.key)).get_json()
        assert f"/portal/orders/{assignment['id']}#messages" in text(to_shop)
        assert_no_customer_data(to_shop)
        assert to_shop["From"] == ctx.settings.mail_from and to_shop["Reply-To"] is None

        client.post(f"/api/v1/orders/{order_id}/messages", headers=auth(near.key), json={"body": "Will do!"})
        deliver(ctx)
        [to_customer] = to(mail_dir, CUSTOMER[1], "wrote about your order")
        assert to_customer["Subject"] == f"Near Cycles wrote about your order {order_id}"
        assert "Will do!" not in text(to_customer)
        assert f"/requests/{posted['id']}/order#messages" in text(to_customer)
        assert posted["access_token"] not in to_customer.as_string()
        assert "near@shop.example" not in to_customer.as_string()
        assert_not_optional(to_customer)


# --- the digest ------------------------------------------------------------------------


def sign_up(ctx, email, *, at=north_of(HERE, 2), radius=50.0):
    return sign_up_verified(ctx, identity.RetailerSignUp(
        company=f"Shop {email}", name="Sam", email=email, password="correct horse battery staple",
        location=LocationQuery(lat=at[0], lon=at[1]), service_radius_km=radius))


class TestDigest:
    @pytest.fixture
    def retailers(self, ctx, maker):
        from broker.accounts import services as accounts

        keen, quiet = sign_up(ctx, "keen@shop.example"), sign_up(ctx, "quiet@shop.example")
        for who in (keen, quiet):
            accounts.authorise_dealer(ctx, maker.actor, who.company_id)
        identity.set_digest(ctx, keen, True)
        return keen, quiet

    def test_one_email_listing_the_new_listings_for_opted_in_users_only(self, ctx, world, maker, retailers, clock,
                                                                     mail_dir):
        other = world.manufacturer(products=[("SKU-1", 7000)])  # has not authorised them
        world.order(maker, when=START - timedelta(hours=30))  # too old for today's digest
        for km in (1, 2, 3):
            world.order(maker, to=north_of(HERE, km), when=START + timedelta(hours=km))
        world.order(maker, to=north_of(HERE, 300), when=START + timedelta(hours=1))  # out of range
        world.order(other, when=START + timedelta(hours=1))
        clock.now = START + timedelta(hours=20)

        assert send_digests(ctx).sent == 1
        assert send_digests(ctx).sent == 0  # the second run that day sends nothing
        deliver(ctx)

        [digest] = to(mail_dir, "keen@shop.example", "near your stores")
        assert digest["Subject"] == "3 new listings near your stores"
        body = text(digest)
        assert body.count("1 x Product SKU-1") == 3 and "70.00 USD" not in body
        assert f"{ctx.settings.public_url}/portal/" in body
        assert digest["List-Unsubscribe"] and "Unsubscribe:" in body
        assert to(mail_dir, "quiet@shop.example", "near your stores") == []

    def test_at_most_twenty_listed(self, ctx, world, maker, retailers, clock, mail_dir):
        for i in range(23):
            world.order(maker, to=(HERE[0] + i * KM / 10, HERE[1]), when=START + timedelta(minutes=i))
        clock.now = START + timedelta(hours=2)
        send_digests(ctx)
        deliver(ctx)
        [digest] = to(mail_dir, "keen@shop.example", "near your stores")
        assert digest["Subject"] == "23 new listings near your stores"
        assert text(digest).count("1 x Product SKU-1") == 20 and "and 3 more" in text(digest)

    def test_nothing_new_no_email(self, ctx, retailers, clock, mail_dir):
        assert send_digests(ctx).sent == 0
        deliver(ctx)
        assert to(mail_dir, "keen@shop.example", "near your stores") == []

    def test_a_new_day_a_new_digest_until_unsubscribed(self, client, ctx, world, maker, retailers, clock, mail_dir):
        world.order(maker, when=START)
        clock.now = START + timedelta(hours=1)
        send_digests(ctx)
        deliver(ctx)
        [first] = to(mail_dir, "keen@shop.example", "near your stores")

        world.order(maker, when=START + timedelta(days=1))
        clock.now = START + timedelta(days=1, hours=1)
        send_digests(ctx)
        deliver(ctx)
        assert len(to(mail_dir, "keen@shop.example", "near your stores")) == 2

        link = first["List-Unsubscribe"].strip("<>").removeprefix(ctx.settings.public_url)
        assert client.post(link).status_code == 200
        world.order(maker, when=START + timedelta(days=2))
        clock.now = START + timedelta(days=2, hours=1)
        assert send_digests(ctx).sent == 0
        deliver(ctx)
        assert len(to(mail_dir, "keen@shop.example", "near your stores")) == 2


# --- delivery ------------------------------------------------------------------------------


class BrokenMailer:
    def __init__(self):
        self.calls = 0

    def send(self, message):
        self.calls += 1
        raise ConnectionRefusedError("the mail server is down")


class TestDelivery:
    def test_a_failing_mailer_keeps_the_email_and_it_goes_out_later(self, client, ctx, maker, clock, mail_dir,
                                                                     session):
        placed = place(client, maker.slug)
        broken = BrokenMailer()
        down = dataclasses.replace(ctx, mailer=broken)
        report = deliver_emails(down)
        assert report.sent == 0 and report.failed >= 1 and broken.calls == report.failed
        assert deliver_emails(ctx).sent == 0  # not due again before its backoff
        assert to(mail_dir, CUSTOMER[1]) == []

        clock.advance(minutes=5)
        assert deliver(ctx) == report.failed
        [confirmation] = to(mail_dir, CUSTOMER[1])
        assert str(placed["id"]) in confirmation["Subject"]
        # All sent but the invitation to rate the store, which waits for the delivery.
        assert list(session.scalars(select(OutboxMessage.topic).where(
            OutboxMessage.topic.startswith("email."), OutboxMessage.sent_at.is_(None)))) == ["email.review_invitation"]

    def test_the_smtp_mailer_hands_the_email_to_an_smtp_server(self, client, ctx, maker):
        with SmtpServer() as server:
            placed = place(client, maker.slug)
            smtp = dataclasses.replace(ctx, mailer=SmtpMailer(f"smtp://127.0.0.1:{server.port}",
                                                              ctx.settings.mail_from, timeout=5))
            assert deliver(smtp) >= 1
        [envelope] = [e for e in server.received if e.recipients == [CUSTOMER[1]]]
        assert envelope.sender == "no-reply@broker.invalid"
        message = email.message_from_bytes(envelope.data, policy=email.policy.default)
        assert message["Subject"] == f"Your order {placed['id']} at Maker {maker.slug} is confirmed"
        assert placed["access_token"] in text(message)


# A tiny SMTP server (RFC 5321, just what smtplib needs: EHLO, MAIL, RCPT, DATA, QUIT).


@dataclasses.dataclass
class Envelope:
    sender: str = ""
    recipients: list[str] = dataclasses.field(default_factory=list)
    data: bytes = b""


class _SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        envelope = Envelope()
        self.reply("220 localhost test SMTP")
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-localhost" if verb == "EHLO" else "250 localhost")
                if verb == "EHLO":
                    self.reply("250 8BITMIME")
            elif verb == "MAIL":
                envelope = Envelope(sender=command.split(":", 1)[1].split()[0].strip("<>"))
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope.recipients.append(command.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go on")
                lines = []
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    lines.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                envelope.data = b"".join(lines)
                self.server.received.append(envelope)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _SmtpHandler)
        self.received: list[Envelope] = []
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
        self._thread.join(5)


def test_a_sent_email_keeps_its_subject_but_not_its_text(ctx, mail_dir):
    """An order confirmation's text holds the order's access link: once the email
    is delivered, Broker's copy keeps who, what subject and when, not the text."""
    world = World(ctx)
    world.order(world.manufacturer())
    with ctx.uow() as uow:
        before = uow.session.scalar(select(OutboxMessage).where(OutboxMessage.topic == "email.order_confirmation"))
        assert "/o/" in before.payload["text"]
    delivered = deliver_emails(ctx)
    assert delivered.sent >= 1
    with ctx.uow() as uow:
        after = uow.session.scalar(select(OutboxMessage).where(OutboxMessage.id == before.id))
        assert after.sent_at is not None and "text" not in after.payload
        assert after.payload["subject"] == before.payload["subject"] and after.payload["to"] == before.payload["to"]
    assert "/o/" in next(mail_dir.glob("*.eml")).read_text()

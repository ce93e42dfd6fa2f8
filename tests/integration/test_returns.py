"""Returns as records: the customer asks, the fulfiller or the order's
manufacturer accepts (the card is refunded) or refuses with a note, and the
customer hears back. Through the services, the API and the pages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from broker.accounts.models import Role
from broker.board import services as board
from broker.board.models import Listing
from broker.errors import Conflict, Invalid, NotFound
from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.geo.geocoding import LocationQuery
from broker.ledger.services import check
from broker.orders.models import OrderStatus
from broker.outbox.models import OutboxMessage
from broker.pagination import PageRequest
from broker.payments.models import Payment
from broker.payouts.models import Earning, EarningKind
from broker.personal import services as personal
from broker.privacy.models import Disclosure
from broker.returns import services as returns
from broker.returns.models import Return, ReturnStatus
from broker.settlement.services import settle
from tests.factories import HERE, north_of
from tests.pages import post, sign_in, user_for

API = "/api/v1"
REASON = "The lid came off in the box"


@pytest.fixture
def maker(world):
    maker = world.manufacturer()
    user_for(world.ctx, Role.MANUFACTURER, maker.id, "owner@maker.example")
    return maker


@pytest.fixture
def shop(world, maker):
    return world.retailer(north_of(HERE, 2), dealer_of=[maker], email="desk@shop.example", name="Corner Bikes")


def shipped(world, ctx, clock, maker, *bidders):
    placed = world.order(maker)
    for bidder in bidders:
        world.bid(bidder, placed.order.id)
    clock.advance(hours=13)
    settle(ctx)
    with ctx.uow() as uow:
        assignment = uow.session.scalar(select(Assignment).where(Assignment.order_id == placed.order.id))
    fulfiller = bidders[0].actor if bidders else maker.actor
    fulfilment.record_shipment(ctx, fulfiller, assignment.id, fulfilment.RecordShipment("UPS", "1Z"))
    return placed


def emails(session, topic: str) -> list[dict]:
    return [m.payload for m in session.scalars(select(OutboxMessage).where(OutboxMessage.topic == f"email.{topic}")
                                               .order_by(OutboxMessage.id))]


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


class TestAsking:
    def test_the_fulfiller_and_the_manufacturer_are_emailed_without_the_reason(self, world, ctx, clock, maker,
                                                                              shop, session):
        placed = shipped(world, ctx, clock, maker, shop)
        view = returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        assert [(r.status, r.reason) for r in view.returns] == [(ReturnStatus.REQUESTED, REASON)]
        sent = emails(session, "return_requested")
        assert sorted(m["to"] for m in sent) == ["desk@shop.example", "owner@maker.example"]
        assert all(REASON not in m["text"] and "Ada" not in m["text"] for m in sent)
        link = re.search(r"http://localhost(/portal/orders/\d+)", sent[0]["text"] + sent[1]["text"])
        assert link and "/console/orders/" in sent[0]["text"] + sent[1]["text"]

    def test_it_concerns_the_assignment_that_shipped(self, world, ctx, clock, maker, shop, session):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        ret = session.scalar(select(Return))
        assignment = session.scalar(select(Assignment).where(Assignment.order_id == placed.order.id))
        assert (ret.order_id, ret.assignment_id) == (placed.order.id, assignment.id)
        with pytest.raises(Invalid):
            returns.request_return(ctx, placed.order.id, placed.access_token, REASON, assignment_id=assignment.id + 99)

    def test_not_before_shipment_nor_after_the_window(self, world, ctx, clock, maker, shop):
        placed = world.order(maker)
        with pytest.raises(Conflict, match="only a shipped order"):
            returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        later = shipped(world, ctx, clock, maker, shop)
        clock.advance(days=30, minutes=1)
        with pytest.raises(Conflict, match="window of 30 days has closed"):
            returns.request_return(ctx, later.order.id, later.access_token, REASON)
        with pytest.raises(Invalid):
            returns.request_return(ctx, later.order.id, later.access_token, "   ")
        with pytest.raises(NotFound):
            returns.request_return(ctx, later.order.id, "not-the-token", REASON)

    def test_two_returns_at_once_on_one_assignment_are_one(self, world, ctx, clock, maker, shop, session,
                                                          monkeypatch):
        """The check under the order's lock answers a second request in sequence;
        when two really run at once (tests/concurrency/test_return_races.py),
        the second passes the check before the first commits, and the unique
        partial index makes it a 409, not a 500 and not a second return."""
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        with pytest.raises(Conflict, match="asked for already"):
            returns.request_return(ctx, placed.order.id, placed.access_token, "again")
        # As the second of two at once sees it: no open return yet.
        real_scalars = session.__class__.scalars

        def blind_to_returns(self, statement, *args, **kwargs):
            result = real_scalars(self, statement, *args, **kwargs)
            if "FROM returns" in str(statement) and "returns.status" in str(statement).split("FROM")[0]:
                return real_scalars(self, statement.where(Return.id < 0), *args, **kwargs)
            return result

        monkeypatch.setattr(session.__class__, "scalars", blind_to_returns)
        with pytest.raises(Conflict, match="asked for already"):
            returns.request_return(ctx, placed.order.id, placed.access_token, "at the same moment")
        monkeypatch.undo()
        assert [r.reason for r in session.scalars(select(Return))] == [REASON]

    def test_after_a_refusal_the_customer_may_ask_again_and_after_an_acceptance_not(self, world, ctx, clock, maker,
                                                                                   shop):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        returns.refuse_return(ctx, shop.actor, placed.order.id, "Send us a photo of the lid, please")
        again = returns.request_return(ctx, placed.order.id, placed.access_token, "Photo attached to a message")
        assert [r.status for r in again.returns] == [ReturnStatus.REFUSED, ReturnStatus.REQUESTED]
        returns.accept_return(ctx, shop.actor, placed.order.id)
        with pytest.raises(Conflict):
            returns.request_return(ctx, placed.order.id, placed.access_token, "once more")


class TestDeciding:
    def test_a_return_is_refused_with_a_note_and_the_customer_is_told(self, world, ctx, clock, maker, shop,
                                                                      session, client):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        no_note = client.post(f"{API}/orders/{placed.order.id}/return/refuse", headers=auth(shop.key),
                              json={"note": "  "})
        assert no_note.status_code == 422 and "note" in no_note.get_json()["errors"]
        refused = client.post(f"{API}/orders/{placed.order.id}/return/refuse", headers=auth(shop.key),
                              json={"note": "Opened and used: we cannot take it back."})
        assert refused.status_code == 200, refused.get_json()
        body = refused.get_json()
        assert body["status"] == "shipped" and body["ship_to"]["line1"] == "1 Secret Lane"
        [ret] = body["returns"]
        assert (ret["status"], ret["note"], ret["decided_by"], ret["refund_amount"]) == (
            "refused", "Opened and used: we cannot take it back.", "retailer", None)
        [told] = emails(session, "return_refused")
        text = " ".join(told["text"].split())
        assert told["to"] == "ada@example.com" and "Opened and used: we cannot take it back." in text
        assert "Corner Bikes did not accept" in text and "ask for a return again until 2026-04-01 22:00 UTC" in text
        payment = session.scalar(select(Payment).execution_options(populate_existing=True))
        assert payment.refunded_amount == 0
        # The customer reads it on the order.
        mine = client.get(f"{API}/orders/{placed.order.id}", headers={"X-Access-Token": placed.access_token})
        assert mine.get_json()["returns"][0]["note"] == "Opened and used: we cannot take it back."
        again = client.post(f"{API}/orders/{placed.order.id}/return/refuse", headers=auth(shop.key),
                            json={"note": "twice"})
        assert again.status_code == 409

    def test_accepting_refunds_what_was_captured_and_the_ledger_balances(self, world, ctx, clock, maker, shop,
                                                                        session):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        view = returns.accept_return(ctx, shop.actor, placed.order.id)
        assert view.order.status == OrderStatus.REFUNDED
        [ret] = view.returns
        payment = session.scalar(select(Payment).execution_options(populate_existing=True))
        assert ret.refund_amount == payment.captured_amount == payment.refunded_amount == 5000
        assert ret.refund_reference and ret.decided_by_kind == "retailer" and ret.decided_by_id == shop.id
        earning = session.scalar(select(Earning).where(Earning.kind == EarningKind.SALE)
                                 .execution_options(populate_existing=True))
        assert (earning.gross, earning.fee, earning.amount) == (0, 0, 0)  # out of the earning and the fee
        assert check(session).ok
        [told] = emails(session, "return_accepted")
        assert f"Corner Bikes accepted your return of order {placed.order.id}. $50.00 is refunded" in \
            " ".join(told["text"].split())

    def test_accepting_after_a_partial_refund_returns_what_is_left(self, world, ctx, clock, maker, shop, session,
                                                                  client):
        placed = shipped(world, ctx, clock, maker, shop)
        assert client.post(f"{API}/orders/{placed.order.id}/refund", headers=auth(maker.key),
                           json={"amount": 1200}).status_code == 200
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        [waiting] = returns.list_returns(ctx, shop.actor, PageRequest(), ReturnStatus.REQUESTED).items
        assert waiting.refundable == 3800
        view = returns.accept_return(ctx, shop.actor, placed.order.id)
        assert view.returns[-1].refund_amount == 3800 and view.order.status == OrderStatus.REFUNDED
        assert check(session).ok

    def test_the_manufacturer_can_decide_a_return_on_its_order(self, world, ctx, clock, maker, shop, session,
                                                               client):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        listed = client.get(f"{API}/returns?status=requested", headers=auth(maker.key))
        assert listed.status_code == 200
        [item] = listed.get_json()
        assert (item["order_id"], item["reason"], item["refundable"]) == (placed.order.id, REASON, 5000)
        accepted = client.post(f"{API}/orders/{placed.order.id}/return/accept", headers=auth(maker.key))
        assert accepted.status_code == 200 and accepted.get_json()["status"] == "refunded"
        assert accepted.get_json()["returns"][0]["decided_by"] == "manufacturer"
        assert check(session).ok
        # Who read the reason is in the customer's log.
        purposes = {d.purpose for d in session.scalars(select(Disclosure).where(
            Disclosure.order_id == placed.order.id)) if "return_reason" in d.fields}
        assert {"listed the returns to decide", "manufacturer accepted the return"} <= purposes

    def test_only_the_orders_parties_decide(self, world, ctx, clock, maker, shop):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        stranger = world.retailer(north_of(HERE, 3), dealer_of=[maker])
        other_maker = world.manufacturer()
        for actor in (stranger.actor, other_maker.actor):
            with pytest.raises(NotFound):
                returns.accept_return(ctx, actor, placed.order.id)
            with pytest.raises(NotFound):
                returns.refuse_return(ctx, actor, placed.order.id, "no")
            assert returns.list_returns(ctx, actor, PageRequest()).items == []

    def test_a_request_won_by_a_retailer_is_between_it_and_the_customer(self, world, ctx, clock, maker, shop):
        posted = personal.post_request(ctx, personal.PostRequest(
            description="a kettle", quantity=1, max_price=9000, currency="USD", sku="SKU-1",
            manufacturer=maker.slug, location=LocationQuery(lat=HERE[0], lon=HERE[1]), contact="req@example.com",
            ship_to=personal.ShipTo("Rae", "2 Secret Lane", "San Francisco", "94103", "US")))
        with ctx.uow() as uow:
            listing_id = uow.session.scalar(select(Listing.id).where(Listing.request_id == posted.request.id))
        bid, _ = board.place_bid(ctx, shop.actor, board.PlaceBid(listing_id, price=8000))
        order_id = personal.accept_offer(ctx, posted.request.id, posted.access_token, bid.id).request.order_id
        with ctx.uow() as uow:
            assignment_id = uow.session.scalar(select(Assignment.id).where(Assignment.order_id == order_id))
        fulfilment.record_shipment(ctx, shop.actor, assignment_id, fulfilment.RecordShipment("UPS", "1Z"))
        returns.request_return(ctx, order_id, posted.access_token, REASON)
        assert returns.list_returns(ctx, maker.actor, PageRequest()).items == []
        with pytest.raises(NotFound):
            returns.accept_return(ctx, maker.actor, order_id)
        assert [v.ret.reason for v in returns.list_returns(ctx, shop.actor, PageRequest()).items] == [REASON]


class TestCompatibility:
    def test_the_api_answers_as_it_did_and_more(self, world, ctx, clock, maker, shop, client):
        placed = shipped(world, ctx, clock, maker, shop)
        token = {"X-Access-Token": placed.access_token}
        asked = client.post(f"{API}/orders/{placed.order.id}/return", headers=token, json={"reason": REASON})
        assert asked.status_code == 200
        body = asked.get_json()
        assert body["return_requested_at"] == "2026-03-02T22:00:00+00:00" and body["status"] == "shipped"
        assert body["returns"][0]["status"] == "requested"
        assert client.post(f"{API}/orders/{placed.order.id}/return", headers=token,
                           json={"reason": REASON}).status_code == 409
        # The retailer's accept takes no body, as before.
        accepted = client.post(f"{API}/orders/{placed.order.id}/return/accept", headers=auth(shop.key))
        assert accepted.status_code == 200 and accepted.get_json()["status"] == "refunded"
        assert accepted.get_json()["return_requested_at"] == body["return_requested_at"]
        assert client.post(f"{API}/orders/{placed.order.id}/return/accept",
                           headers=auth(shop.key)).status_code == 409

    def test_the_fulfiller_sees_its_returns_on_the_order_and_in_its_list(self, world, ctx, clock, maker, shop,
                                                                        client):
        placed = shipped(world, ctx, clock, maker, shop)
        client.post(f"{API}/orders/{placed.order.id}/return", headers={"X-Access-Token": placed.access_token},
                    json={"reason": REASON})
        order = client.get(f"{API}/orders/{placed.order.id}", headers=auth(shop.key)).get_json()
        assert order["returns"][0]["reason"] == REASON
        listed = client.get(f"{API}/returns", headers=auth(shop.key))
        assert [r["order_id"] for r in listed.get_json()] == [placed.order.id]
        assert listed.get_json()[0]["items"][0]["sku"] == "SKU-1"
        assert client.get(f"{API}/returns?status=maybe", headers=auth(shop.key)).status_code == 422


class TestPages:
    def test_the_customer_s_page_shows_the_answer_and_asks_again_after_a_refusal(self, world, ctx, clock, maker,
                                                                                 shop, client):
        placed = shipped(world, ctx, clock, maker, shop)
        link = f"/s/{maker.slug}/o/{placed.order.id}/{placed.access_token}"
        page = client.get(link, follow_redirects=True)
        csrf = re.search(r'name="link_csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
        order_page = f"/s/{maker.slug}/o/{placed.order.id}"
        unexplained = client.post(f"{order_page}/return", data={"reason_kind": "", "reason": " ", "link_csrf": csrf})
        assert unexplained.status_code == 422 and 'id="reason_kind-error"' in unexplained.get_data(as_text=True)
        other = client.post(f"{order_page}/return", data={"reason_kind": "other", "reason": "", "link_csrf": csrf})
        assert other.status_code == 422 and 'id="reason-error"' in other.get_data(as_text=True)
        asked = client.post(f"{order_page}/return", data={"reason_kind": "damaged", "reason": REASON,
                                                          "link_csrf": csrf})
        assert asked.status_code == 303 and "done=return" in asked.headers["Location"]
        text = client.get(order_page + "?done=return").get_data(as_text=True)
        assert "Your return request is sent" in text
        assert "Waiting for the store" in text and f"Arrived damaged: {REASON}" in text and "Ask for a return" not in text
        returns.refuse_return(ctx, shop.actor, placed.order.id, "Send a photo of the lid first")
        text = client.get(order_page).get_data(as_text=True)
        assert "Not accepted" in text and "Send a photo of the lid first" in text
        assert "Ask again: what has changed?" in text
        assert client.post(f"{order_page}/return", data={"reason": "Photo sent", "link_csrf": csrf}).status_code == 303
        returns.accept_return(ctx, shop.actor, placed.order.id)
        text = client.get(order_page).get_data(as_text=True)
        assert "Accepted on" in text and "$50.00 refunded to your card" in text and "Ask for a return" not in text

    def test_the_portal_accepts_or_refuses_with_a_note(self, world, ctx, clock, maker, shop, client, session):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        user_for(ctx, Role.RETAILER, shop.id, "clerk@shop.example")
        sign_in(client, "clerk@shop.example")
        assignment_id = session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
        page_path = f"/portal/orders/{assignment_id}"
        page = client.get(page_path).get_data(as_text=True)
        assert REASON in page and "Refuse the return" in page and "Accept the return" in page
        return_id = session.scalar(select(Return.id))
        blank = post(client, f"{page_path}/return/refuse", {"note": " ", "return_id": str(return_id)}, form=page_path)
        assert blank.status_code == 422 and 'id="note-error"' in blank.get_data(as_text=True)
        asked = post(client, f"{page_path}/return/refuse", {"note": "Used: we cannot take it back",
                                                            "return_id": str(return_id)}, form=page_path)
        # A confirmation first, with the note quoted: nothing is decided yet.
        assert asked.status_code == 200 and "Refuse the return of order" in asked.get_data(as_text=True)
        assert "<q>Used: we cannot take it back</q>" in asked.get_data(as_text=True)
        assert session.scalar(select(Return.status)) == "requested"
        refused = post(client, f"{page_path}/return/refuse", {"note": "Used: we cannot take it back", "confirm": "yes",
                                                              "return_id": str(return_id)}, form=page_path)
        assert refused.status_code == 302
        assert "Your note: <q>Used: we cannot take it back</q>" in client.get(page_path).get_data(as_text=True)
        returns.request_return(ctx, placed.order.id, placed.access_token, "It is not used")
        assert post(client, f"{page_path}/return/accept", {}, form=page_path).status_code == 200  # asks first
        assert "50.00 USD refunded" not in client.get(page_path).get_data(as_text=True)
        accepted = post(client, f"{page_path}/return/accept", {"confirm": "yes"}, form=page_path)
        assert accepted.status_code == 302
        assert "50.00 USD refunded" in client.get(page_path).get_data(as_text=True)

    def test_the_console_decides_a_return_on_its_order(self, world, ctx, clock, maker, shop, client, session):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        sign_in(client, "owner@maker.example")
        page_path = f"/console/orders/{placed.order.id}"
        page = client.get(page_path).get_data(as_text=True)
        assert REASON in page and "Refuse the return" in page
        blank = post(client, f"{page_path}/return/refuse", {"note": ""}, form=page_path)
        assert blank.status_code == 422 and 'aria-describedby="note-error"' in blank.get_data(as_text=True)
        confirming = post(client, f"{page_path}/return/accept", {}, form=page_path)
        assert confirming.status_code == 200 and "Accept the return of order" in confirming.get_data(as_text=True)
        assert 'id="order-status">refunded' not in client.get(page_path).get_data(as_text=True)
        assert post(client, f"{page_path}/return/accept", {"confirm": "yes"}, form=page_path).status_code == 302
        page = client.get(page_path).get_data(as_text=True)
        assert "Accepted" in page and "by you" in page and 'id="order-status">refunded' in page
        assert check(session).ok


class TestQueues:
    """/portal/returns and /console/returns: what waits for an answer, each with
    its way to decide, confirmed before anything is refunded."""

    def test_the_portal_queue_lists_waiting_returns_and_accepts_from_there(self, world, ctx, clock, maker, shop,
                                                                          client, session):
        placed = shipped(world, ctx, clock, maker, shop)
        other = shipped(world, ctx, clock, maker, world.retailer(north_of(HERE, 1), dealer_of=[maker]))
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        returns.request_return(ctx, other.order.id, other.access_token, "Not for this shop")
        user_for(ctx, Role.RETAILER, shop.id, "clerk@shop.example")
        sign_in(client, "clerk@shop.example")
        page = client.get("/portal/returns").get_data(as_text=True)
        assert REASON in page and "Not for this shop" not in page  # only its own
        assert "$50.00" in page or "50.00" in page
        return_id = session.scalar(select(Return.id).where(Return.order_id == placed.order.id))
        assignment_id = session.scalar(select(Assignment.id).where(Assignment.order_id == placed.order.id))
        action = f"/portal/orders/{assignment_id}/return/accept"
        assert f'action="{action}"' in page
        fields = {"return_id": str(return_id), "back": "returns"}
        confirming = post(client, action, fields, form="/portal/returns")
        text = confirming.get_data(as_text=True)
        assert confirming.status_code == 200 and 'href="/portal/returns"' in text  # cancel goes back to the queue
        assert session.scalar(select(Return.status).where(Return.id == return_id)) == ReturnStatus.REQUESTED
        done = post(client, action, {**fields, "confirm": "yes"}, form="/portal/returns")
        assert done.status_code == 302 and done.headers["Location"] == "/portal/returns"
        page = client.get("/portal/returns").get_data(as_text=True)
        assert "accepted: the customer" in page and 'id="no-returns"' in page
        assert REASON in client.get("/portal/returns?status=all").get_data(as_text=True)

    def test_the_console_queue_refuses_with_a_note_after_confirming(self, world, ctx, clock, maker, shop, client,
                                                                    session):
        placed = shipped(world, ctx, clock, maker, shop)
        returns.request_return(ctx, placed.order.id, placed.access_token, REASON)
        sign_in(client, "owner@maker.example")
        page = client.get("/console/returns").get_data(as_text=True)
        assert REASON in page and f'/console/orders/{placed.order.id}/return/accept' in page
        path = f"/console/orders/{placed.order.id}/return/refuse"
        note = "Opened and used"
        asked = post(client, path, {"note": note, "back": "returns"}, form="/console/returns")
        assert asked.status_code == 200 and f"<q>{note}</q>" in asked.get_data(as_text=True)
        assert session.scalar(select(Return.status)) == ReturnStatus.REQUESTED
        done = post(client, path, {"note": note, "back": "returns", "confirm": "yes"}, form="/console/returns")
        assert done.status_code == 302 and done.headers["Location"] == "/console/returns"
        assert session.scalar(select(Return.status)) == ReturnStatus.REFUSED
        assert 'id="no-returns"' in client.get("/console/returns").get_data(as_text=True)

    def test_queues_are_for_their_own_kind_of_account(self, world, ctx, maker, shop, client):
        assert client.get("/portal/returns").status_code == 302  # signed out: to the sign-in page
        sign_in(client, "owner@maker.example")
        assert client.get("/portal/returns").status_code == 403

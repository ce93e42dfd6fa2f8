"""The portal's stock and standing bids page, part bids from the board, and the
console's view of its dealers' stock, through the Flask test client."""

from __future__ import annotations

import io

from sqlalchemy import select

from broker.board.models import Bid
from broker.stock import services as stock
from tests.integration import test_portal_pages as portal_pages
from tests.integration.test_portal_pages import csrf, html, post

# The portal pages' world and signed-in client, as fixtures of this module too.
settings = portal_pages.settings
portal = portal_pages.portal
signed_in = portal_pages.signed_in
_cheap_password_hashes = portal_pages._cheap_password_hashes


def upload(client, store_id: int, text: str, filename: str = "stock.csv"):
    return client.post(f"/portal/stock/{store_id}", content_type="multipart/form-data", data={
        "csrf_token": csrf(client, "/portal/stock"), "file": (io.BytesIO(text.encode()), filename)})


def store_id(ctx, portal):
    from broker.accounts.models import Store
    with ctx.uow() as uow:
        return uow.session.scalar(select(Store.id).where(Store.retailer_id == portal.me.company_id))


class TestStockPage:
    def test_a_csv_upload_sets_the_stock_and_shows_its_age(self, ctx, signed_in, portal):
        page = html(signed_in.get("/portal/stock"))
        assert "No stock sent yet" in page
        sid = store_id(ctx, portal)
        response = upload(signed_in, sid, "sku,quantity\nSKU-1,3\nSKU-2,0\n")
        assert response.status_code == 302
        view = stock.get_stock(ctx, portal.actor, sid)
        assert [(i.sku, i.quantity) for i in view.items] == [("SKU-1", 3), ("SKU-2", 0)]
        page = html(signed_in.get("/portal/stock"))
        assert "SKU-1" in page and "fresh" in page

    def test_a_bad_csv_comes_back_with_every_mistake_and_nothing_written(self, ctx, signed_in, portal):
        sid = store_id(ctx, portal)
        response = upload(signed_in, sid, "sku,quantity\nSKU-1,three\nSKU-2,-1\n")
        assert response.status_code == 422
        page = html(response)
        assert 'id="error-summary"' in page and 'aria-invalid="true"' in page
        assert "line 2: the quantity &#39;three&#39; is not a whole number" in page
        assert "line 3:" in page
        assert stock.get_stock(ctx, portal.actor, sid).items == []

    def test_a_standing_bid_is_set_listed_and_removed(self, ctx, signed_in, portal):
        response = post(signed_in, "/portal/standing-bids", {"max_distance_km": "25", "partial": "on",
                                                            "manufacturers": portal.maker.slug},
                        token_from="/portal/stock")
        assert response.status_code == 302
        [view] = stock.list_standing_bids(ctx, portal.actor)
        assert (view.manufacturer_slugs, view.rule.partial) == ((portal.maker.slug,), True)
        assert "on the lines in stock" in html(signed_in.get("/portal/stock"))
        response = post(signed_in, f"/portal/standing-bids/{view.rule.id}/remove", token_from="/portal/stock")
        assert response.status_code == 302
        assert stock.list_standing_bids(ctx, portal.actor) == []

    def test_a_bad_standing_bid_comes_back_with_its_errors(self, ctx, signed_in, portal):
        response = post(signed_in, "/portal/standing-bids", {"max_distance_km": "far"}, token_from="/portal/stock")
        assert response.status_code == 422
        assert 'id="standing-max_distance_km" name="max_distance_km" inputmode="decimal" size="6" value="far" ' \
               'aria-invalid="true"' in html(response)
        response = post(signed_in, "/portal/standing-bids", {"max_distance_km": "5000"}, token_from="/portal/stock")
        assert response.status_code == 422 and "at most 1000 km" in html(response)
        assert stock.list_standing_bids(ctx, portal.actor) == []


class TestPartBidsOnTheBoard:
    def test_a_multi_line_order_is_bid_on_by_its_ticked_lines(self, ctx, signed_in, portal):
        placed = portal.order(items=[("SKU-1", 1), ("SKU-2", 2)])
        listing_id = portal.world.listing_id(placed.order.id)
        page = html(signed_in.get("/portal/"))
        assert 'name="line"' in page and "What you can fill" in page
        second = placed.order.lines[1].id
        response = post(signed_in, f"/portal/board/{listing_id}/bid", {"lines_shown": "1", "line": str(second)})
        assert response.status_code == 302
        with ctx.uow() as uow:
            bid = uow.session.scalar(select(Bid).where(Bid.listing_id == listing_id))
        assert bid.lines == [{"line_id": second, "sku": "SKU-2", "quantity": 2}]
        assert "SKU-2 only" in html(signed_in.get("/portal/"))

    def test_a_retailer_bids_on_fewer_of_a_line_than_the_order_wants(self, ctx, signed_in, portal):
        placed = portal.order(items=[("SKU-1", 1), ("SKU-2", 3)])
        listing_id = portal.world.listing_id(placed.order.id)
        first, second = (line.id for line in placed.order.lines)
        page = html(signed_in.get("/portal/"))
        assert f'name="qty-{second}" value="3" min="1" max="3"' in page and f'name="qty-{first}"' not in page
        refused = post(signed_in, f"/portal/board/{listing_id}/bid",
                       {"lines_shown": "1", "line": [str(first), str(second)], f"qty-{second}": "4"})
        assert refused.status_code == 422
        bad = post(signed_in, f"/portal/board/{listing_id}/bid",
                   {"lines_shown": "1", "line": [str(second)], f"qty-{second}": "two"})
        assert bad.status_code == 422 and "how many: a whole number" in html(bad)
        response = post(signed_in, f"/portal/board/{listing_id}/bid",
                        {"lines_shown": "1", "line": [str(first), str(second)], f"qty-{second}": "2"})
        assert response.status_code == 302
        with ctx.uow() as uow:
            bid = uow.session.scalar(select(Bid).where(Bid.listing_id == listing_id))
        assert bid.lines == [{"line_id": first, "sku": "SKU-1", "quantity": 1},
                             {"line_id": second, "sku": "SKU-2", "quantity": 2}]

    def test_a_single_line_of_several_can_be_bid_on_in_part(self, ctx, signed_in, portal):
        placed = portal.order(items=[("SKU-2", 3)])
        listing_id = portal.world.listing_id(placed.order.id)
        [line] = placed.order.lines
        assert f'name="qty-{line.id}"' in html(signed_in.get("/portal/"))
        whole = post(signed_in, f"/portal/board/{listing_id}/bid",
                     {"lines_shown": "1", "line": str(line.id), f"qty-{line.id}": "3"})
        assert whole.status_code == 302
        with ctx.uow() as uow:
            assert uow.session.scalar(select(Bid.lines).where(Bid.listing_id == listing_id)) is None  # the whole

    def test_no_line_ticked_is_refused_on_the_board(self, ctx, signed_in, portal):
        placed = portal.order(items=[("SKU-1", 1), ("SKU-2", 2)])
        listing_id = portal.world.listing_id(placed.order.id)
        response = post(signed_in, f"/portal/board/{listing_id}/bid", {"lines_shown": "1"})
        assert response.status_code == 422
        assert "tick the lines you can fill" in html(response)
        with ctx.uow() as uow:
            assert uow.session.scalar(select(Bid).where(Bid.listing_id == listing_id)) is None


class TestConsoleStock:
    def test_the_manufacturer_sees_its_products_at_its_dealers_with_the_feeds_age(self, ctx, client, portal):
        from broker.accounts.models import Role
        from tests.integration.test_console_pages import sign_in as console_sign_in

        sid = store_id(ctx, portal)
        stock.set_stock(ctx, portal.actor, sid, [stock.StockItem("SKU-1", 4), stock.StockItem("ELSEWHERE", 2)],
                        snapshot=True)
        console_sign_in(client, ctx, Role.MANUFACTURER, portal.maker.id)
        page = html(client.get("/console/stock"))
        assert "Corner Bikes" in page and "SKU-1" in page and "ELSEWHERE" not in page and "fresh" in page
        assert "No dealer has sent stock of SKU-2" in html(client.get("/console/stock?sku=SKU-2"))

"""Settlement split by manufacturer: hash shards K/N that together take every
due listing once, runs for named manufacturers, what a run records, the dry
run, and how the manufacturer console shows a run's scope."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from broker.accounts.models import Role
from broker.board import services as board
from broker.board.models import Listing, ListingStatus
from broker.config import ConfigError, Settings
from broker.errors import Invalid
from broker.geo.geocoding import LocationQuery
from broker.personal import services as personal
from broker.settlement.models import SettlementDecision, SettlementRun
from broker.settlement.services import settle, settlement_scope
from tests.conftest import START
from tests.factories import HERE, Maker, Shop, north_of
from tests.integration.test_console_pages import sign_in

LATER = START + timedelta(hours=13)


@dataclasses.dataclass
class Market:
    makers: list[Maker]
    shop: Shop
    # Every due listing, with its manufacturer (None: a request naming no product).
    listings: dict[int, int | None]

    def shard(self, k: int, n: int) -> set[int]:
        return {lid for lid, maker_id in self.listings.items() if (maker_id or 0) % n == k - 1}

    def of(self, *makers: Maker) -> set[int]:
        return {lid for lid, maker_id in self.listings.items() if maker_id in {m.id for m in makers}}


def post_request(ctx, maker: Maker | None = None) -> int:
    """A personal request (for a catalog product of `maker`, or for anything), its listing's id."""
    posted = personal.post_request(ctx, personal.PostRequest(
        description="a sturdy kettle, please", quantity=1, max_price=9000, currency="USD",
        location=LocationQuery(lat=HERE[0], lon=HERE[1]),
        ship_to=personal.ShipTo("Grace Hopper", "77 Cobol Court", "San Francisco", "94103", "US"),
        sku="SKU-1" if maker else None, manufacturer=maker.slug if maker else None,
    ))
    with ctx.uow() as uow:
        return uow.session.scalar(select(Listing.id).where(Listing.request_id == posted.request.id))


@pytest.fixture
def market(ctx, world):
    """Four manufacturers (two odd ids, two even) with two orders each, one of
    them bid on; a request for one manufacturer's product and one naming no
    product, each with an offer (a request without one is not due)."""
    makers = [world.manufacturer() for _ in range(4)]
    shop = world.retailer(north_of(HERE, 2), dealer_of=makers)
    listings: dict[int, int | None] = {}
    for maker in makers:
        for n in range(2):
            placed = world.order(maker)
            listings[world.listing_id(placed.order.id)] = maker.id
            if n == 0:
                world.bid(shop, placed.order.id)
    for maker in (makers[1], None):
        listing_id = post_request(ctx, maker)
        board.place_bid(ctx, shop.actor, board.PlaceBid(listing_id, price=8000))
        listings[listing_id] = maker.id if maker else None
    return Market(makers, shop, listings)


def decided(session) -> dict[int, list[int]]:
    """Each decided listing: the runs that decided it."""
    found: dict[int, list[int]] = {}
    for listing_id, run_id in session.execute(select(SettlementDecision.listing_id, SettlementDecision.run_id)):
        found.setdefault(listing_id, []).append(run_id)
    return found


class TestShards:
    def test_two_shards_settle_every_due_listing_once_each_only_its_own_manufacturers(self, ctx, session, market):
        first = settle(ctx, as_of=LATER, scope=settlement_scope(ctx, shard="1/2"))
        second = settle(ctx, as_of=LATER, scope=settlement_scope(ctx, shard="2/2"))

        runs = decided(session)
        assert set(runs) == set(market.listings) and all(len(r) == 1 for r in runs.values())
        assert {lid for lid, [run] in runs.items() if run == first.run_id} == market.shard(1, 2)
        assert {lid for lid, [run] in runs.items() if run == second.run_id} == market.shard(2, 2)
        # Both shards had work: two manufacturers each, and the request with no manufacturer went to shard 1.
        unbranded = next(lid for lid, maker_id in market.listings.items() if maker_id is None)
        assert unbranded in market.shard(1, 2) and len(market.shard(2, 2)) >= 4
        assert first.settled + second.settled == len(market.listings)
        assert settle(ctx, as_of=LATER).settled == 0  # nothing left for a run of everything

    def test_a_shard_takes_only_due_listings(self, ctx, world, market, session):
        maker = market.makers[0]
        fresh = world.listing_id(world.order(maker, when=LATER - timedelta(hours=1)).order.id)
        k = maker.id % 3 + 1

        report = settle(ctx, as_of=LATER, scope=settlement_scope(ctx, shard=f"{k}/3"))

        assert report.settled == len(market.shard(k, 3))
        assert session.get(Listing, fresh).status == ListingStatus.OPEN

    def test_the_run_records_its_scope(self, ctx, session, market):
        sharded = settle(ctx, as_of=LATER, scope=settlement_scope(ctx, shard="2/2"))
        everything = settle(ctx, as_of=LATER)

        assert sharded.scope == "shard 2/2" and everything.scope is None
        scopes = dict(session.execute(select(SettlementRun.id, SettlementRun.scope)).tuples().all())
        assert scopes == {sharded.run_id: "shard 2/2", everything.run_id: None}

    def test_the_dry_run_honours_the_scope(self, ctx, session, market):
        plan = settle(ctx, as_of=LATER, dry_run=True, scope=settlement_scope(ctx, shard="1/2"))

        assert plan.scope == "shard 1/2" and plan.run_id is None
        assert {d["listing_id"] for d in plan.decisions} == market.shard(1, 2)
        assert session.scalar(select(func.count()).select_from(SettlementRun)) == 0
        assert session.scalar(select(func.count()).select_from(SettlementDecision)) == 0


class TestNamedManufacturers:
    def test_a_run_for_named_manufacturers_leaves_the_others_open(self, ctx, session, market):
        chosen = [market.makers[0], market.makers[3]]
        scope = settlement_scope(ctx, manufacturers=[chosen[1].slug, chosen[0].slug.upper()])

        report = settle(ctx, as_of=LATER, scope=scope)

        assert set(decided(session)) == market.of(*chosen)
        assert report.scope == f"manufacturers {', '.join(sorted(m.slug for m in chosen))}"
        assert session.get(SettlementRun, report.run_id).scope == report.scope
        still_open = set(session.scalars(select(Listing.id).where(Listing.status == ListingStatus.OPEN)))
        assert still_open == set(market.listings) - market.of(*chosen)  # the unbranded request too

    def test_one_manufacturer_reads_as_one(self, ctx, market):
        scope = settlement_scope(ctx, manufacturers=[market.makers[1].slug])
        assert scope.describe() == f"manufacturer {market.makers[1].slug}"

    def test_an_unknown_slug_is_refused_by_name(self, ctx, market):
        with pytest.raises(Invalid) as refused:
            settlement_scope(ctx, manufacturers=[market.makers[0].slug, "no-such-maker"])
        assert refused.value.errors == {"manufacturer": ["no manufacturer has the slug 'no-such-maker'"]}

    def test_a_shard_and_manufacturers_together_are_refused(self, ctx, market):
        with pytest.raises(Invalid, match="not both"):
            settlement_scope(ctx, shard="1/2", manufacturers=[market.makers[0].slug])


class TestShardSyntax:
    @pytest.mark.parametrize("text", ["2", "0/2", "3/2", "1/0", "a/b", "1/2/3", "-1/2", "1.5/2", "1 /2", "\u0661/2",
                                      "1/1001"])
    def test_a_bad_shard_is_refused_with_what_is_wrong(self, ctx, text):
        with pytest.raises(Invalid) as refused:
            settlement_scope(ctx, shard=text)
        [message] = refused.value.errors["shard"]
        assert "K/N" in message and repr(text) in message

    def test_no_shard_and_no_manufacturers_is_everything(self, ctx):
        assert settlement_scope(ctx) is None and settlement_scope(ctx, shard="") is None

    def test_a_shard_reads_the_same_however_it_was_written(self, ctx):
        scope = settlement_scope(ctx, shard=" 02/3 ")
        assert scope.shard == (2, 3) and scope.describe() == "shard 2/3"

    def test_the_setting_is_checked_when_read(self):
        assert Settings.from_env({"BROKER_SETTLE_SHARD": "2/3"}).settle_shard == "2/3"
        assert Settings.from_env({}).settle_shard == ""
        for bad in ("3/2", "half"):
            with pytest.raises(ConfigError, match="BROKER_SETTLE_SHARD must"):
                Settings.from_env({"BROKER_SETTLE_SHARD": bad})


class TestConsole:
    def test_the_console_shows_each_runs_scope_but_not_which_other_manufacturers_were_chosen(
            self, client, ctx, market):
        me, other = market.makers[0], market.makers[1]
        everything = settle(ctx, as_of=LATER - timedelta(minutes=2), scope=None)
        sharded = settle(ctx, as_of=LATER - timedelta(minutes=1), scope=settlement_scope(ctx, shard="2/2"))
        chosen = settle(ctx, as_of=LATER, scope=settlement_scope(ctx, manufacturers=[me.slug, other.slug]))
        sign_in(client, ctx, Role.MANUFACTURER, me.id)

        runs = client.get("/console/settlements").get_data(as_text=True)
        assert '<td data-label="Scope">everything</td>' in runs and '<td data-label="Scope">shard 2/2</td>' in runs
        assert '<td data-label="Scope">chosen manufacturers</td>' in runs and other.slug not in runs
        pages = {run.run_id: client.get(f"/console/settlements/{run.run_id}").get_data(as_text=True)
                 for run in (everything, sharded, chosen)}
        assert 'id="run-scope">shard 2/2<' in pages[sharded.run_id]
        assert 'id="run-scope">chosen manufacturers<' in pages[chosen.run_id]
        assert other.slug not in pages[chosen.run_id]

    def test_the_api_lists_each_runs_scope_as_the_console_does(self, client, ctx, market):
        me, other = market.makers[0], market.makers[1]
        settle(ctx, as_of=LATER - timedelta(minutes=1), scope=settlement_scope(ctx, shard="2/2"))
        settle(ctx, as_of=LATER, scope=settlement_scope(ctx, manufacturers=[me.slug, other.slug]))
        operator = {"Authorization": f"Bearer {ctx.settings.admin_token}"}
        mine = {"Authorization": f"Bearer {me.key}"}
        assert [run["scope"] for run in client.get("/api/v1/settlements", headers=operator).get_json()] == [
            f"manufacturers {', '.join(sorted([me.slug, other.slug]))}", "shard 2/2"]
        assert [run["scope"] for run in client.get("/api/v1/settlements", headers=mine).get_json()] == [
            "chosen manufacturers", "shard 2/2"]

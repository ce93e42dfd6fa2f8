"""One-time form keys: a reload or a double click of a form that creates
something creates it once, and every outcome is a redirect (post/redirect/get)."""

from __future__ import annotations

import re
import secrets

import pytest
from sqlalchemy import func, select

from broker import formkeys
from broker.catalog.services import ProductChanges, update_product
from broker.formkeys.models import FormKey
from broker.models import Order
from tests.factories import World

FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
        "city": "San Francisco", "region": "CA", "postal_code": "94103", "country": "US", "payment": "test-approve"}


@pytest.fixture
def maker(ctx):
    return World(ctx).manufacturer(slug="acme", products=[("KETTLE", 4599)])


def orders(session) -> int:
    return session.scalar(select(func.count()).select_from(Order).execution_options(populate_existing=True))


def key_of(page) -> str:
    return re.search(rb'name="form_key" value="([^"]+)"', page.data).group(1).decode()


class TestCheckout:
    def test_the_checkout_form_carries_a_new_key_each_time(self, client, maker):
        first, second = (key_of(client.get("/s/acme/checkout?cart=KETTLE:1")) for _ in range(2))
        assert first != second and len(first) == 43

    def test_a_second_post_of_the_same_form_places_no_second_order(self, client, maker, session):
        key = key_of(client.get("/s/acme/checkout?cart=KETTLE:1"))
        first = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        again = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        assert first.status_code == again.status_code == 303
        assert first.headers["Location"] == again.headers["Location"]
        assert orders(session) == 1
        # The second answer opens the order too (a double click: the browser kept only it).
        fresh = client.application.test_client()
        page = fresh.get(again.headers["Location"], follow_redirects=True)
        assert page.status_code == 200 and b"your order is placed" in page.data

    def test_a_reload_after_the_product_sold_out_still_finds_the_order(self, client, ctx, maker, session):
        key = key_of(client.get("/s/acme/checkout?cart=KETTLE:1"))
        first = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        update_product(ctx, maker.actor, "KETTLE", ProductChanges(in_stock=False))
        again = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        assert again.status_code == 303 and again.headers["Location"] == first.headers["Location"]
        assert orders(session) == 1

    def test_a_refused_form_keeps_its_key_for_the_corrected_one(self, client, maker, session):
        key = key_of(client.get("/s/acme/checkout?cart=KETTLE:1"))
        refused = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "email": "ada@", "form_key": key})
        assert refused.status_code == 422 and orders(session) == 0
        assert session.scalar(select(func.count()).select_from(FormKey)) == 0  # rolled back with the rest
        placed = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        assert placed.status_code == 303 and orders(session) == 1

    def test_two_forms_place_two_orders(self, client, maker, session):
        for _ in range(2):
            key = key_of(client.get("/s/acme/checkout?cart=KETTLE:1"))
            assert client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key}).status_code == 303
        assert orders(session) == 2

    def test_the_stored_result_holds_no_token_in_the_clear(self, client, maker, session):
        key = key_of(client.get("/s/acme/checkout?cart=KETTLE:1"))
        placed = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        token = placed.headers["Location"].split("/o/")[1].split("/")[1].split("?")[0]
        row = session.scalar(select(FormKey))
        assert token not in row.sealed and key not in row.key_hash and row.scope == "checkout:acme"

    def test_a_key_used_on_another_form_is_refused(self, client, maker, session):
        key = key_of(client.get("/s/acme/checkout?cart=KETTLE:1"))
        placed = client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
        page = client.get(placed.headers["Location"], follow_redirects=True)
        confirm = client.get(f"{page.request.path}/cancel")
        csrf = re.search(rb'name="link_csrf" value="([^"]+)"', confirm.data).group(1).decode()
        reused = client.post(f"{page.request.path}/cancel", data={"link_csrf": csrf, "form_key": key})
        assert reused.status_code == 409
        assert b'data-status="open"' in client.get(page.request.path).data

    @pytest.mark.parametrize("key", ["", "short", "é" * 43, "a" * 44, "<script>" + "a" * 35])
    def test_a_missing_or_malformed_key_is_no_key(self, client, maker, session, key):
        assert client.post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key}).status_code == 303
        assert orders(session) == 1


class TestService:
    def test_claim_then_record_then_already_done_with_the_result(self, ctx):
        once = formkeys.Once(secrets.token_urlsafe(32), "test:scope")
        with ctx.uow() as uow:
            formkeys.claim(uow.session, once, now=ctx.now())
            formkeys.record(uow.session, once, {"made": 7})
            uow.commit()
        with ctx.uow() as uow, pytest.raises(formkeys.AlreadyDone) as done:
            formkeys.claim(uow.session, once, now=ctx.now())
        assert done.value.result == {"made": 7}
        with pytest.raises(formkeys.AlreadyDone):
            formkeys.check_unused(ctx, once)

    def test_a_rolled_back_claim_leaves_the_key_free(self, ctx):
        once = formkeys.Once(secrets.token_urlsafe(32), "test:scope")
        with ctx.uow() as uow:
            formkeys.claim(uow.session, once, now=ctx.now())  # no commit: a failed POST
        formkeys.check_unused(ctx, once)
        with ctx.uow() as uow:
            formkeys.claim(uow.session, once, now=ctx.now())

    def test_keys_are_forgotten_after_thirty_days(self, ctx, clock, session):
        old, new = (formkeys.Once(secrets.token_urlsafe(32), "test:scope") for _ in range(2))
        for once in (old, new):
            with ctx.uow() as uow:
                formkeys.claim(uow.session, once, now=ctx.now())
                uow.commit()
            clock.advance(days=20)
        assert formkeys.forget_old(ctx, batch_size=1) == 1  # old is 40 days old, new 20
        formkeys.check_unused(ctx, old)
        with pytest.raises(formkeys.AlreadyDone):
            formkeys.check_unused(ctx, new)

    def test_without_a_key_nothing_is_recorded(self, ctx, session):
        with ctx.uow() as uow:
            formkeys.claim(uow.session, None, now=ctx.now())
            formkeys.record(uow.session, None, {"made": 1})
            uow.commit()
        assert session.scalar(select(func.count()).select_from(FormKey)) == 0

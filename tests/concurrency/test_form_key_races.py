"""A double click on PostgreSQL: the same checkout form, sent from several
processes' threads at once, places one order, and every answer is the same
redirect to it."""

from __future__ import annotations

import secrets

import pytest
from sqlalchemy import func, select

from broker.models import Order
from tests.concurrency.test_races import _dispose_engines, at_once, make_app, make_ctx  # noqa: F401
from tests.conftest import START, _server_url, postgres_database
from tests.factories import World
from broker.migrate import upgrade

pytestmark = pytest.mark.skipif(_server_url() is None, reason="the race on the key's row runs on PostgreSQL "
                                                               "(BROKER_TEST_DATABASE_URL)")

FORM = {"name": "Ada Lovelace", "email": "ada@example.com", "line1": "12 Analytical Row", "line2": "",
        "city": "San Francisco", "region": "CA", "postal_code": "94103", "country": "US", "payment": "test-approve"}


@pytest.fixture(scope="module")
def database():
    with postgres_database(_server_url(), prefix="broker_formkey") as url:
        upgrade(url)
        yield url


def test_the_same_form_sent_eight_times_at_once_places_one_order(database):
    ctx = make_ctx(database, START)
    World(ctx).manufacturer(slug="acme", products=[("KETTLE", 4599)])
    app = make_app(ctx)
    for _ in range(3):  # a few rounds, each with its own key
        key = secrets.token_urlsafe(32)

        def send():
            response = app.test_client().post("/s/acme/checkout?cart=KETTLE:1", data={**FORM, "form_key": key})
            return response.status_code, response.headers.get("Location")

        results = at_once([send] * 8)
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert {status for status, _ in results} == {303}, results
        assert len({location for _, location in results}) == 1, results
    with ctx.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Order)) == 3

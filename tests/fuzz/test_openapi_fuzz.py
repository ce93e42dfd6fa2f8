"""Schemathesis against the API's own OpenAPI document: every operation, as a caller
its `x-roles` let in, with generated (valid and invalid) input.

Each response must not be a server error, and must be one the document describes:
a documented status code, a documented content type, a body that matches the
documented schema and the documented headers. That is issue 8's "done when".

How it is kept deterministic and bounded for CI:

* the document is read at collection time from an app without a database (as the
  authorisation matrix does), so each operation is its own test item;
* a fixed seed and `deterministic` (Hypothesis' derandomize), no example database,
  and `MAX_EXAMPLES` generated cases per operation;
* one world per operation (the authorisation matrix's: every role and real
  objects in every state); every example runs in a savepoint rolled back after it,
  so no example sees another's writes and the order they run in cannot matter;
* path parameters point at the world's real objects most of the time (a generated
  id only finds a 404), and the caller's credentials are drawn from the
  operation's `x-roles`: a customer sends the token of the order or request in the
  path, so customer-only operations get past the door too.
"""

from __future__ import annotations

import dataclasses
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import sessionmaker

from broker.clock import FrozenClock
from broker.context import Context
from broker.geo.geocoding import OfflineGeocoder
from broker.payments.offline import OfflineProvider
from tests.conftest import ADMIN_TOKEN, START, make_settings
from tests.integration.test_authorisation_matrix import World, _document_without_a_database, build_world

# CI's budget; a longer hunt: BROKER_FUZZ_EXAMPLES=500 BROKER_FUZZ_SEED=<any int>.
MAX_EXAMPLES = int(os.environ.get("BROKER_FUZZ_EXAMPLES", 50))
SEED = int(os.environ.get("BROKER_FUZZ_SEED", 20260302))

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]

CONFIG = schemathesis.Config.from_dict({
    "seed": SEED,
    # NUL in generated strings (schemathesis' default, said here because it matters: the
    # input boundary must answer it with a documented 400). Lone surrogates it cannot be
    # told to generate (Hypothesis never draws category Cs); tests/integration/
    # test_input_boundary.py sends those to every operation and route.
    "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none",
                   "allow-x00": True, "codec": "utf-8"},
    # Generated cases only. Not the examples phase: the document's examples (one story, with
    # ids of its own) are checked against their schemas and loaded by the views' schemas in
    # tests/integration/test_api_reference.py, and schemathesis runs them only in a test
    # without `given`, which this one needs for its real objects and credentials. No coverage
    # phase (its boundary cases are unbounded by max-examples) and no stateful phase (links
    # are not documented).
    "phases": {"examples": {"enabled": False}, "coverage": {"enabled": False}, "stateful": {"enabled": False}},
})

schema = schemathesis.openapi.from_dict(_document_without_a_database(), config=CONFIG)


@dataclasses.dataclass
class Fuzz:
    world: World
    app: object
    connection: object


@pytest.fixture
def fuzz(engine, database_url):
    """A world per operation, in a transaction rolled back at the end.

    Not one for the module: on PostgreSQL every savepoint rolled back inside a
    transaction still holds a lock until the transaction ends (SQLAlchemy rolls back
    to a savepoint, it does not release it), and a module's worth of examples in one
    transaction runs out of lock slots (max_locks_per_transaction) on long runs.
    """
    from web.app import create_app

    with engine.connect() as connection:
        outer = connection.begin()
        clock = FrozenClock(START)
        factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        ctx = Context(settings=make_settings(database_url), engine=engine, session_factory=factory,
                      geocoder=OfflineGeocoder(), payments=OfflineProvider(), clock=clock)
        world = build_world(ctx, clock)
        # Rate limits count requests per wall-clock minute, so with them on whether an
        # example meets a 429 would depend on how fast the machine is. They are off
        # here; `test_refusals_before_the_view_are_documented` checks the 429 itself.
        app = create_app(context=ctx, test_config={"TESTING": True, "RATELIMIT_ENABLED": False})
        yield Fuzz(world, app, connection)
        outer.rollback()


# --- real objects and credentials -------------------------------------------------

ORDERS = ("A", "B", "S1", "S2", "P", "F", "F2", "L", "O2")
REQUESTS = ("Q", "Q2")
WITH_ASSIGNMENT = ("A", "S1", "S2", "P", "F", "F2", "L", "O2")


def _real_objects(w: World) -> dict[str, list[tuple[object, str | None]]]:
    """Path parameter -> [(value, the tag of the customer whose token opens it)]."""
    return {
        "order_id": [(w.order_id[tag], tag) for tag in ORDERS],
        "request_id": [(w.request_id[tag], tag) for tag in REQUESTS],
        "assignment_id": [(w.assignment_of[tag], tag) for tag in WITH_ASSIGNMENT],
        "listing_id": [(w.listing_of[tag], tag) for tag in ("B", "Q", "Q2", "A")],
        "store_id": [(store, None) for store in w.store_of.values()],
        "retailer_id": [(w.ids[name], None) for name in ("R1", "R2", "R3", "R4")],
        "run_id": [(w.run_id, None)],
        "sku": [(sku, None) for sku in ("M1-1", "M1-2", "M2-1")],
        "slug": [(slug, None) for slug in w.slugs.values()],
    }


def _point_at_real_objects(case, w: World, data) -> str | None:
    """Replace generated path parameters by the world's objects (mostly), and say whose
    customer token belongs with them."""
    tag = None
    real = _real_objects(w)
    for name in list(case.path_parameters or {}):
        if name not in real or not data.draw(st.integers(0, 4), label=f"real {name}?"):
            continue  # one time in five, keep the generated value
        value, owner = data.draw(st.sampled_from(real[name]), label=name)
        case.path_parameters[name] = value
        tag = owner or tag
    return tag


def _credentials(case, w: World, tag: str | None, data) -> dict[str, str]:
    roles = case.operation.definition.raw.get("x-roles", [])
    if not roles:
        return {}
    role = data.draw(st.sampled_from(sorted(roles)), label="role")
    if role == "customer":
        tag = tag if tag in w.token else data.draw(st.sampled_from(sorted(w.token)), label="token of")
        return {"X-Access-Token": w.token[tag]}
    if role == "operator":
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    who = data.draw(st.sampled_from(("R1", "R2", "R3") if role == "retailer" else ("M1", "M2")), label="who")
    return {"Authorization": f"Bearer {w.keys[who]}"}


# --- the test -----------------------------------------------------------------------

@schema.given(data=st.data())
@schema.parametrize()
# `fuzz` is shared by an operation's examples on purpose (each runs in its own savepoint).
@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                HealthCheck.filter_too_much])
def test_every_operation_answers_as_documented(fuzz, case, data):
    w = fuzz.world
    tag = _point_at_real_objects(case, w, data)
    headers = _credentials(case, w, tag, data)
    # The generated security headers are replaced by the role's real ones.
    for name in ("Authorization", "X-Access-Token"):
        (case.headers or {}).pop(name, None)
    savepoint = fuzz.connection.begin_nested()
    try:
        case.call_and_validate(app=fuzz.app, headers=headers, checks=CHECKS)
    finally:
        savepoint.rollback()


def test_refusals_before_the_view_are_documented(app):
    """A rate limit's 429 (flask-limiter) and a too-large body's 413 (Flask's
    MAX_CONTENT_LENGTH) are answered before any view runs; they must match the
    document too. Rate limits are on in the conftest's app."""
    posting = schema["/api/v1/requests"]["POST"]
    statuses = [posting.Case(body={}, media_type="application/json").call_and_validate(app=app, checks=CHECKS)
                .status_code for _ in range(11)]  # web.security.RATE_LIMITS: 10 a minute
    assert statuses == [422] * 10 + [429]

    ordering = schema["/api/v1/storefronts/{slug}/orders"]["POST"]
    case = ordering.Case(path_parameters={"slug": "any"}, body={"items": [], "note": "x" * 2**20},
                         media_type="application/json")
    assert case.call_and_validate(app=app, checks=CHECKS).status_code == 413

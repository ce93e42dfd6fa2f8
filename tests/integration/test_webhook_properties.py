"""Provider events in any order, any number of times, end in the same state with a
balanced ledger (a property test: hypothesis draws the orders and duplicates)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from broker.fulfilment import services as fulfilment
from broker.fulfilment.models import Assignment
from broker.ledger import services as ledger
from broker.orders.models import Order
from broker.payments.models import Payment
from broker.payments.provider import Account, Authorization, PaymentState
from broker.payments.webhooks import apply_event
from broker.payouts.models import Earning
from broker.settlement.services import settle
from tests.conftest import START
from tests.factories import HERE, World, north_of

AMOUNT = 10000


class ScriptedProvider:
    """A provider whose payments end as the test says: what `retrieve` re-reads
    after each event. Holds are confirmed in the browser (as with Stripe)."""

    name = "stripe"
    test_mode = True

    def __init__(self):
        self.truth: PaymentState | None = None
        self.refs = 0

    def authorize(self, session, *, amount, currency, idempotency_key, description, metadata=None):
        self.refs += 1
        return Authorization(ref=f"pi_{self.refs}", authorized=False, client_secret="secret")

    def retrieve(self, session, ref):
        return dataclasses.replace(self.truth, ref=ref)

    def capture(self, session, ref, *, amount, idempotency_key):
        return dataclasses.replace(self.truth, ref=ref, status="captured", amount_received=amount,
                                   amount_refunded=0)

    def release(self, session, ref, *, idempotency_key):
        pass

    def refund(self, session, ref, *, amount, idempotency_key):
        return "re_1"

    def create_account(self, session, *, email, country, idempotency_key):
        return Account("acct_1", True)

    def account(self, session, ref):
        return Account(ref, True)

    def onboarding_link(self, session, account_ref, *, return_url, refresh_url):
        return return_url

    def transfer(self, session, **kwargs):
        return "tr_1"


def event(event_id, kind, **obj):
    return {"id": event_id, "type": kind, "data": {"object": obj}}


@st.composite
def scenarios(draw):
    ending = draw(st.sampled_from(["captured", "released", "failed"]))
    refunded = draw(st.integers(0, AMOUNT)) if ending == "captured" else 0
    dispute = draw(st.sampled_from([None, "won", "lost"])) if ending == "captured" else None
    return ending, refunded, dispute


def events_for(ending, refunded, dispute):
    pi, ch = "pi_1", "ch_1"
    out = [event("evt_auth", "payment_intent.amount_capturable_updated", id=pi),
           event("evt_other", "customer.created", id="cus_1"),
           event("evt_acct", "account.updated", id="acct_unknown", payouts_enabled=True, details_submitted=True)]
    if ending == "captured":
        out.append(event("evt_succeeded", "payment_intent.succeeded", id=pi))
    if ending == "released":
        out.append(event("evt_canceled", "payment_intent.canceled", id=pi))
    if ending == "failed":
        out.append(event("evt_failed", "payment_intent.payment_failed", id=pi))
    if refunded:
        out.append(event("evt_refund", "charge.refunded", id=ch, payment_intent=pi, amount_refunded=refunded))
    if dispute:
        amount = AMOUNT - refunded
        out.append(event("evt_dp_open", "charge.dispute.created", id="dp_1", amount=amount, charge=ch,
                         payment_intent=pi))
        out.append(event("evt_dp_closed", "charge.dispute.closed", id="dp_1", amount=amount, charge=ch,
                         payment_intent=pi, status=dispute))
    return out


def truth_for(ending, refunded):
    status = {"captured": "captured", "released": "released", "failed": "failed"}[ending]
    return PaymentState(ref="pi_1", status=status, amount=AMOUNT,
                        amount_capturable=AMOUNT if ending == "captured" else 0,
                        amount_received=AMOUNT if ending == "captured" else 0,
                        amount_refunded=refunded, charge_ref="ch_1" if ending == "captured" else None)


def snapshot(ctx, order_id):
    with ctx.uow() as uow:
        s = uow.session
        p = s.scalar(select(Payment).where(Payment.order_id == order_id))
        o = s.get(Order, order_id)
        earnings = sorted((e.kind, e.status, e.amount) for e in s.scalars(select(Earning)))
        check = ledger.check(s)
        assert check.ok, check
        return {
            "payment": (p.status, p.captured_amount, p.refunded_amount, p.disputed),
            "order": o.status,
            "earnings": earnings,
            # Owner ids differ between runs on PostgreSQL (sequences ignore rollbacks).
            # An account that ends at zero is the same state as one never touched:
            # events in another order may post to an account and take it back (a
            # dispute closed for 0 before the capture and full refund it concerns);
            # the balances, which are the state, agree.
            "balances": {(account.rsplit(":", 1)[0] if account.startswith("payable:") else account, currency): v
                         for (account, currency), v in ledger.balances(s).items() if v},
        }


def run(ctx, connection, provider, events, *, ship: bool, final: PaymentState | None = None):
    """Place an order, optionally ship it, then deliver `events`; snapshot; undo.

    When shipping, the provider says "authorised" until we capture, and `final`
    (refunds, disputes) after."""
    savepoint = connection.begin_nested()
    provider.refs = 0  # each run's payment is pi_1 again, as the events say
    if ship:
        provider.truth = dataclasses.replace(truth_for("captured", 0), status="authorized", amount_received=0)
    try:
        ctx = dataclasses.replace(ctx, payments=provider)
        world = World(ctx)
        maker = world.manufacturer(products=[("SKU-1", AMOUNT)])
        placed = world.order(maker)
        if ship:
            shop = world.retailer(north_of(HERE, 2), dealer_of=[maker])
            apply_event(ctx, events[0])  # authorised: the order goes on the board
            world.bid(shop, placed.order.id)
            settle(ctx, as_of=START + timedelta(hours=13))
            with ctx.uow() as uow:
                assignment = uow.session.scalar(select(Assignment))
            fulfilment.record_shipment(ctx, shop.actor, assignment.id, fulfilment.RecordShipment("UPS", "1"))
            provider.truth = final
            events = events[1:]
        for e in events:
            apply_event(ctx, e)
        return snapshot(ctx, placed.order.id)
    finally:
        savepoint.rollback()


def shuffled_with_duplicates(draw, events):
    order = draw(st.permutations(events))
    repeats = draw(st.lists(st.sampled_from(events), max_size=4))
    mixed = list(order) + repeats
    return draw(st.permutations(mixed))


# Each example runs two whole order lives; 25 examples of each kind keeps the
# suite quick on PostgreSQL too, and CI runs them on both databases.
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(scenario=scenarios(), data=st.data())
def test_payment_events_in_any_order_end_in_the_same_state(ctx, connection, scenario, data):
    ending, refunded, dispute = scenario
    provider = ScriptedProvider()
    provider.truth = truth_for(ending, refunded)
    events = events_for(ending, refunded, dispute)

    expected = run(ctx, connection, provider, events, ship=False)
    got = run(ctx, connection, provider, shuffled_with_duplicates(data.draw, events), ship=False)

    assert got == expected
    assert expected["payment"][0] == {"captured": "refunded" if refunded == AMOUNT else "captured",
                                      "released": "released", "failed": "failed"}[ending]


@SETTINGS
@given(refunded=st.integers(0, AMOUNT), dispute=st.sampled_from([None, "won", "lost"]), data=st.data())
def test_events_after_shipment_in_any_order_end_in_the_same_state(ctx, connection, refunded, dispute, data):
    provider = ScriptedProvider()
    final = truth_for("captured", refunded)
    events = events_for("captured", refunded, dispute)

    expected = run(ctx, connection, provider, events, ship=True, final=final)
    later = events[1:]
    got = run(ctx, connection, provider, [events[0]] + shuffled_with_duplicates(data.draw, later), ship=True,
              final=final)

    assert got == expected
    [(kind, status, amount)] = expected["earnings"]
    if dispute == "lost" and refunded < AMOUNT:
        assert status == "reversed"
    elif refunded == AMOUNT:
        assert status == "reversed"
    else:
        # A refund takes its share of the fee with it, rounded down (in the customer's favour).
        fee = 1000 - refunded * 1000 // AMOUNT
        assert status == "accrued" and amount == (AMOUNT - refunded) - fee

"""The one order in which writers take row locks, so that PostgreSQL never
finds two transactions each waiting for the other.

    listing → personal request → order → assignment → return → payment
            → earning (the order's sale earning, then clawbacks) → payout

A transaction that needs several of these locks takes them in this order,
skipping those it does not need, and takes every lock it needs before it calls
the payment provider. Rows of one kind (several orders, several earnings) are
locked in ascending id order. For example:

* a refund: order → payment → the sale earning (`orders.refund_order`,
  `payments.record_refunded`);
* a capture at shipment: order → assignment → payment
  (`fulfilment.record_shipment`); an early capture of a lapsing hold: order (or
  listing → request, before the award) → payment
  (`fulfilment.capture_expiring_holds`);
* a payout: order → payment → earning, then the payout row it writes
  (`payouts.run_payouts`);
* a dispute or a provider's event: listing → order → payment → earning
  (`payments.webhooks`); a reversed transfer: the orders of its earnings →
  the earnings → the payout (`payouts.transfer_reversed`);
* a return decided (accepted and refunded, or refused): order → its shipped
  assignments → the return → payment (`returns.accept_return`); the delivered
  job: order, SKIP LOCKED (`orders.delivered`);
* a cancellation, a release, a lapse, a pickup that expired, an accepted offer
  or an expired request: listing → (request) → order → assignment → payment.
* stock (broker.stock): a store's stock rows come last, after whatever else
  the transaction holds, in (store, SKU) order: a settlement batch takes them
  after its listings, orders and payments; a release or a shipment after its
  assignment; a standing bid after its listing. A stock feed locks only its
  store's rows, and places its standing bids after it commits.

Inserting a row that refers to another (a ledger transaction to its order, an
earning to its order) makes PostgreSQL take a KEY SHARE lock on the row
referred to. The locks here are `FOR NO KEY UPDATE` (`lock`), which KEY SHARE
does not wait for: Broker never changes a primary key, and this way a writer
holding an order never blocks, and is never blocked by, someone merely writing a
ledger line about it.

One exception to the order: a lock taken with SKIP LOCKED never waits, so it
cannot close a cycle; jobs claim their work that way (a payout's clawbacks of
other orders, settlement's and retention's batches).

SQLite has none of this: every writing transaction takes its one write lock at
BEGIN (`broker.db`), and `FOR UPDATE` is not even rendered there.
"""

from __future__ import annotations

from sqlalchemy import Select


def lock(stmt: Select, *, skip_locked: bool = False, of=None) -> Select:
    """`stmt ... FOR NO KEY UPDATE` (with SKIP LOCKED, of the given tables): the
    rows it reads stay as read until the transaction ends."""
    return stmt.with_for_update(key_share=True, skip_locked=skip_locked, of=of)

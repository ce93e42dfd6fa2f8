"""stores in full (address, hours, time zone); returns as records; delivered

* `stores`: a postal address (`line1`, `line2`, `city`, `region`,
  `postal_code`, `country`), opening `hours` (JSON, null: not given) and a
  `timezone`. Existing stores had only a point and a coarse area ("San
  Francisco, CA 941xx", or "US 941xx" from a remote geocoder). From it:
  - the country, when the area names one (a US state's area is the US);
  - in the US, the ZIP code (and its state as the region) when exactly one ZIP
    of the area's prefix has its centre at the store's point: the store was
    placed by geocoding that ZIP. A store given by coordinates keeps no postal
    code (its point is nobody's centre), and street and city stay empty for the
    retailer to fill in;
  - the time zone at the store's point (`timezonefinder`), else BROKER_TIMEZONE
    (UTC).
* `returns`: one row per return asked for, replacing `orders.return_requested_at`
  and `orders.return_reason`, which are dropped. Each becomes a return of the
  order's shipped assignment (the only one an order had): `accepted` if the order
  was refunded (its refund is the payment's refunded amount, with the last refund's
  reference; who decided it was not recorded, so `decided_by` is empty), else
  `requested`. At most one `requested` return per assignment (a unique partial
  index).
* `orders.delivered_at`, `orders.delivered_how`: pickups already collected were
  delivered when handed over (`pickup`); shipped orders are delivered from now
  on, by the customer or the hourly job.

Revision ID: 0019
Revises: 0017
Create Date: 2026-12-08 09:00:00
"""
from __future__ import annotations

import os
import re

import sqlalchemy as sa
from alembic import op

import broker.db

revision = '0019'
down_revision = '0017'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
# The coarse areas Broker wrote: "City, ST 941xx" (the offline geocoder), and
# "US 941xx" (a remote geocoder, or coordinates given with a postal code).
_US_AREA = re.compile(r"^.*, ([A-Z]{2}) (\d{3})xx$")
_COUNTRY_AREA = re.compile(r"^([A-Z]{2}) ([A-Za-z0-9]{1,3})xx$")


def upgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table('stores', schema=None) as batch_op:
        for name, length in (('line1', 200), ('line2', 200), ('city', 120), ('region', 60), ('postal_code', 20),
                             ('country', 2)):
            batch_op.add_column(sa.Column(name, sa.String(length=length), server_default='', nullable=False))
        batch_op.add_column(sa.Column('hours', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('timezone', sa.String(length=64), server_default='UTC', nullable=False))
    _fill_stores(conn)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('delivered_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivered_how', sa.String(length=10), nullable=True))
    conn.execute(sa.text("UPDATE orders SET delivered_at = shipped_at, delivered_how = 'pickup' "
                         "WHERE delivery = 'pickup' AND shipped_at IS NOT NULL"))

    op.create_table('returns',
    sa.Column('id', BigId, nullable=False),
    sa.Column('order_id', BigId, nullable=False),
    sa.Column('assignment_id', BigId, nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('requested_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('decided_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decided_by_kind', sa.String(length=12), nullable=True),
    sa.Column('decided_by_id', BigId, nullable=True),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('refund_amount', sa.Integer(), nullable=True),
    sa.Column('refund_reference', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['assignment_id'], ['assignments.id'], name=op.f('fk_returns_assignment_id_assignments')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_returns_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_returns'))
    )
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_returns_assignment_id'), ['assignment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_returns_order_id'), ['order_id'], unique=False)
        batch_op.create_index('ix_returns_status_requested_at', ['status', 'requested_at'], unique=False)
        batch_op.create_index('uq_returns_open_assignment', ['assignment_id'], unique=True,
                              postgresql_where=sa.text("status = 'requested'"),
                              sqlite_where=sa.text("status = 'requested'"))
    _move_returns(conn)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('return_reason')
        batch_op.drop_column('return_requested_at')


def _fill_stores(conn) -> None:
    stores = conn.execute(sa.text("SELECT id, lat, lon, area FROM stores ORDER BY id")).all()
    if not stores:
        return
    default_zone = os.environ.get("BROKER_TIMEZONE") or "UTC"
    centres = _zip_centres({m[2] for s in stores if (m := _US_AREA.match(s.area or ""))})
    from timezonefinder import TimezoneFinder

    updates = []
    with TimezoneFinder() as finder:
        zones = {store.id: _zone_at(finder, store.lat, store.lon, default_zone) for store in stores}
    for store in stores:
        country = postal_code = region = ""
        us = _US_AREA.match(store.area or "")
        other = _COUNTRY_AREA.match(store.area or "")
        if us:
            country = "US"
            found = centres.get((us[2], store.lat, store.lon), [])
            if len(found) == 1:
                postal_code, region = found[0]
        elif other:
            country = other[1]
        updates.append(dict(id=store.id, country=country, postal_code=postal_code, region=region,
                            timezone=zones[store.id]))
    conn.execute(sa.text("UPDATE stores SET country = :country, postal_code = :postal_code, region = :region, "
                         "timezone = :timezone WHERE id = :id"), updates)


def _zip_centres(prefixes: set[str]) -> dict[tuple[str, float, float], list[tuple[str, str]]]:
    """(prefix, lat, lon) → the ZIP codes (and states) centred there, as the
    offline geocoder reads them."""
    if not prefixes:
        return {}
    import zipcodes

    found: dict[tuple[str, float, float], list[tuple[str, str]]] = {}
    for entry in zipcodes.list_all():
        code = entry.get("zip_code") or ""
        if code[:3] not in prefixes:
            continue
        try:
            lat, lon = float(entry["lat"]), float(entry["long"])
        except (KeyError, TypeError, ValueError):
            continue
        found.setdefault((code[:3], lat, lon), []).append((code, entry.get("state") or ""))
    return found


def _zone_at(finder, lat: float, lon: float, default: str) -> str:
    try:
        return finder.timezone_at(lng=lon, lat=lat) or default
    except ValueError:
        return default


def _move_returns(conn) -> None:
    asked = conn.execute(sa.text(
        "SELECT id, status, return_requested_at, return_reason, updated_at FROM orders "
        "WHERE return_requested_at IS NOT NULL ORDER BY id").columns(
            return_requested_at=broker.db.UTCDateTime(), updated_at=broker.db.UTCDateTime())).all()
    rows = []
    for order in asked:
        assignment = conn.execute(sa.text(
            "SELECT id FROM assignments WHERE order_id = :o ORDER BY (status = 'shipped') DESC, id DESC LIMIT 1"),
            {"o": order.id}).scalar()
        if assignment is None:
            # A return could be asked for only once the order had shipped, which
            # needs an assignment: a row without one is not Broker's.
            raise RuntimeError(f"order {order.id} has a return but no assignment; fix it by hand, then migrate")
        accepted = order.status == 'refunded'
        refunded = reference = None
        if accepted:
            refunded = conn.execute(sa.text("SELECT refunded_amount FROM payments WHERE order_id = :o"),
                                    {"o": order.id}).scalar()
            reference = conn.execute(sa.text(
                "SELECT reference FROM ledger_transactions WHERE order_id = :o AND kind = 'refund' "
                "ORDER BY id DESC LIMIT 1"), {"o": order.id}).scalar()
        rows.append(dict(order_id=order.id, assignment_id=assignment, status='accepted' if accepted else 'requested',
                         requested_at=order.return_requested_at, reason=order.return_reason or "",
                         decided_at=order.updated_at if accepted else None, refund_amount=refunded,
                         refund_reference=reference))
    if rows:
        conn.execute(sa.text(
            "INSERT INTO returns (order_id, assignment_id, status, requested_at, reason, decided_at, refund_amount, "
            "refund_reference) VALUES (:order_id, :assignment_id, :status, :requested_at, :reason, :decided_at, "
            ":refund_amount, :refund_reference)").bindparams(
                sa.bindparam("requested_at", type_=broker.db.UTCDateTime()),
                sa.bindparam("decided_at", type_=broker.db.UTCDateTime())), rows)


def downgrade() -> None:
    conn = op.get_bind()
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('return_requested_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('return_reason', sa.String(length=500), nullable=True))
    # The latest return of each order, as the two columns held it.
    latest = conn.execute(sa.text(
        "SELECT r.order_id, r.requested_at, r.reason FROM returns r WHERE r.id = "
        "(SELECT max(id) FROM returns WHERE order_id = r.order_id)").columns(
            requested_at=broker.db.UTCDateTime())).all()
    if latest:
        conn.execute(sa.text("UPDATE orders SET return_requested_at = :at, return_reason = :reason WHERE id = :o")
                     .bindparams(sa.bindparam("at", type_=broker.db.UTCDateTime())),
                     [dict(o=row.order_id, at=row.requested_at, reason=row.reason) for row in latest])
    with op.batch_alter_table('returns', schema=None) as batch_op:
        batch_op.drop_index('uq_returns_open_assignment', postgresql_where=sa.text("status = 'requested'"),
                            sqlite_where=sa.text("status = 'requested'"))
        batch_op.drop_index('ix_returns_status_requested_at')
        batch_op.drop_index(batch_op.f('ix_returns_order_id'))
        batch_op.drop_index(batch_op.f('ix_returns_assignment_id'))
    op.drop_table('returns')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('delivered_how')
        batch_op.drop_column('delivered_at')
    with op.batch_alter_table('stores', schema=None) as batch_op:
        for name in ('timezone', 'hours', 'country', 'postal_code', 'region', 'city', 'line2', 'line1'):
            batch_op.drop_column(name)

"""job failures (parked rows), the outbox's queue state in columns, settlement runs count what they parked

Every scheduled job records the rows it fails on in `job_failures` and parks a
row that keeps failing (broker.parking). The outbox's queue state moves out of
its JSON payload (`_delivery`) into columns: when a message is next due and the
lease it is claimed under; its failures go to `job_failures` like every other
job's, and what was "given up" is parked there. Messages given up because their
recipient was erased are cancelled instead.

Revision ID: 0017
Revises: 0018
Create Date: 2026-11-26 10:00:00
"""
from __future__ import annotations

from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import broker.db


revision = '0017'
down_revision = '0018'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')

# The tables as this migration reads and writes them (not the models, which move on).
outbox = sa.table(
    'outbox_messages',
    sa.column('id', BIG_ID), sa.column('topic', sa.String()), sa.column('payload', sa.JSON()),
    sa.column('created_at', broker.db.UTCDateTime()), sa.column('sent_at', broker.db.UTCDateTime()),
    sa.column('next_attempt_at', broker.db.UTCDateTime()), sa.column('lease', sa.String()),
    sa.column('cancelled_at', broker.db.UTCDateTime()),
)
failures = sa.table(
    'job_failures',
    sa.column('job', sa.String()), sa.column('row_kind', sa.String()), sa.column('row_id', BIG_ID),
    sa.column('attempts', sa.Integer()), sa.column('last_error', sa.Text()),
    sa.column('first_failed_at', broker.db.UTCDateTime()), sa.column('last_failed_at', broker.db.UTCDateTime()),
    sa.column('next_attempt_at', broker.db.UTCDateTime()), sa.column('parked_at', broker.db.UTCDateTime()),
)


def upgrade() -> None:
    op.create_table('job_failures',
    sa.Column('id', BIG_ID, nullable=False),
    sa.Column('job', sa.String(length=40), nullable=False),
    sa.Column('row_kind', sa.String(length=40), nullable=False),
    sa.Column('row_id', BIG_ID, nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=False),
    sa.Column('first_failed_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_failed_at', broker.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('next_attempt_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('parked_at', broker.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_failures')),
    sa.UniqueConstraint('job', 'row_kind', 'row_id', name=op.f('uq_job_failures_job_row_kind_row_id'))
    )
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_attempt_at', broker.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('lease', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('cancelled_at', broker.db.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table('settlement_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parked', sa.Integer(), server_default='0', nullable=False))
    _move_delivery_state_out_of_payloads()


def _move_delivery_state_out_of_payloads() -> None:
    """Each message's `_delivery` becomes its columns and, if it failed, its
    job_failures row; the payload keeps what the message says."""
    conn = op.get_bind()
    now = datetime.now(timezone.utc)
    last = 0
    while True:
        rows = conn.execute(sa.select(outbox.c.id, outbox.c.topic, outbox.c.payload, outbox.c.created_at,
                                      outbox.c.sent_at).where(outbox.c.id > last).order_by(outbox.c.id)
                            .limit(1000)).all()
        if not rows:
            return
        last = rows[-1].id
        for row in rows:
            payload = row.payload if isinstance(row.payload, dict) else None
            if payload is None or not isinstance(payload.get('_delivery'), dict):
                continue
            state = {**payload['_delivery']}
            rest = {k: v for k, v in payload.items() if k != '_delivery'}
            values: dict = {'payload': rest, 'lease': str(state.get('lease') or '')[:16]}
            if row.sent_at is None and state.get('last_error') == 'erased' and state.get('gave_up'):
                values.update(cancelled_at=now, lease='')
            elif row.sent_at is None and not state.get('gave_up'):
                values['next_attempt_at'] = _moment(state.get('next_at'))
            conn.execute(outbox.update().where(outbox.c.id == row.id).values(**values))
            attempts = int(state.get('attempts') or 0)
            if row.sent_at is None and 'cancelled_at' not in values and (attempts or state.get('gave_up')):
                parked = bool(state.get('gave_up'))
                conn.execute(failures.insert().values(
                    job='emails' if row.topic.startswith('email.') else 'callbacks', row_kind='outbox_message',
                    row_id=row.id, attempts=max(attempts, 1), last_error=str(state.get('last_error') or '')[:500],
                    first_failed_at=row.created_at, last_failed_at=now,
                    next_attempt_at=None if parked else values.get('next_attempt_at'),
                    parked_at=now if parked else None))


def _moment(text):
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None  # unreadable: due now rather than never
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def downgrade() -> None:
    # Put the queue state back into the payloads, as the code before this read it.
    conn = op.get_bind()
    known = {(r.row_id): r for r in conn.execute(
        sa.select(failures.c.row_id, failures.c.attempts, failures.c.last_error, failures.c.parked_at)
        .where(failures.c.row_kind == 'outbox_message')).all()}
    for row in conn.execute(sa.select(outbox.c.id, outbox.c.payload, outbox.c.next_attempt_at, outbox.c.lease,
                                      outbox.c.cancelled_at, outbox.c.sent_at)).all():
        if row.sent_at is not None and row.id not in known:
            continue
        failure = known.get(row.id)
        gave_up = row.cancelled_at is not None or (failure is not None and failure.parked_at is not None)
        state = {
            'attempts': failure.attempts if failure else 0,
            'next_at': None if gave_up or row.next_attempt_at is None
            else row.next_attempt_at.astimezone(timezone.utc).isoformat(timespec='microseconds'),
            'last_error': 'erased' if row.cancelled_at is not None else (failure.last_error if failure else ''),
            'gave_up': gave_up,
            'lease': row.lease,
        }
        payload = row.payload if isinstance(row.payload, dict) else {'_invalid_payload': row.payload}
        conn.execute(outbox.update().where(outbox.c.id == row.id).values(payload={**payload, '_delivery': state}))
    with op.batch_alter_table('settlement_runs', schema=None) as batch_op:
        batch_op.drop_column('parked')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('cancelled_at')
        batch_op.drop_column('lease')
        batch_op.drop_column('next_attempt_at')
    op.drop_table('job_failures')

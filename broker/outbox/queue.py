"""The outbox as a queue: claiming a due message, and recording how its delivery
went. Callbacks (`broker.outbox.delivery`) and emails
(`broker.notifications.delivery`) are two channels of it; each brings only its
way of sending.

How a delivery goes (`deliver`), one message at a time:

1. Claim: a short transaction picks the oldest due message (`FOR UPDATE SKIP
   LOCKED` on PostgreSQL; SQLite's single writer lock serialises claims),
   moves its `next_attempt_at` 60 s forward (the lease) and commits. Another
   dispatcher no longer sees it as due, so two never send it at the same time.
2. Send: outside any transaction, the channel sends it.
3. Record: a second short transaction sets `sent_at`, or records the failure
   in `job_failures` (`broker.parking`, under the channel's job) and sets when
   the message is due again (backoff). A message that keeps failing is parked:
   after the channel's `max_attempts` failures to send (a server refusing it,
   a network down), after `broker.parking.MAX_ATTEMPTS` if sending it raised
   something unexpected (a poison message: a malformed address that slipped
   in, say), at once if it can never be sent (a payload without what the
   channel needs). Parked messages wait for `broker jobs retry`.

Delivery is at least once: a dispatcher that dies between 2 and 3 leaves the
lease to expire and the message is sent again. Whatever one message does, the
others go on.

A message's state: due when it is not sent, not cancelled, not parked, and its
`next_attempt_at` is empty or past. `HELD` there keeps it back until released
(an order's confirmation, until its payment is authorised).
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, select

from broker import retry
from broker.context import Context
from broker.outbox.models import OutboxMessage
from broker.parking import services as parking
from broker.parking.models import JobFailure

log = logging.getLogger(__name__)

LEASE_SECONDS = 60
ROW_KIND = "outbox_message"
# Not due before this: held until `release`.
HELD = datetime(9999, 12, 31, tzinfo=timezone.utc)


@dataclasses.dataclass(frozen=True)
class Channel:
    """A kind of outbox message with its own sender and its own scheduled job."""

    name: str
    job: str  # the scheduled job that delivers it (jobs/definitions.py): its failures are filed under it
    prefix: str
    recipient_kind: str
    max_attempts: int  # failures to send before it is parked
    # Payload keys dropped once a message is delivered: what it said is the
    # recipient's now, and need not stay in Broker's database (an email's text
    # holds the customer's order link, for one).
    forget_when_sent: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Failure:
    reason: str
    permanent: bool = False   # retrying cannot help (a malformed message): parked at once
    unexpected: bool = False  # sending raised something no channel expects: a poison message


@dataclasses.dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0  # failed this time, will be retried
    parked: int = 0  # failed for the last time: waits for the operator

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.parked

    def add(self, other: "DeliveryReport") -> None:
        self.sent += other.sent
        self.failed += other.failed
        self.parked += other.parked


@dataclasses.dataclass(frozen=True)
class Claim:
    message_id: int
    topic: str
    payload: Any
    lease: str


def due(now: datetime, channel: Channel):
    """The channel's messages that may be claimed now, in SQL."""
    return (
        OutboxMessage.sent_at.is_(None)
        & OutboxMessage.cancelled_at.is_(None)
        & OutboxMessage.topic.startswith(channel.prefix, autoescape=True)
        & (OutboxMessage.recipient_kind == channel.recipient_kind)
        & (OutboxMessage.next_attempt_at.is_(None) | (OutboxMessage.next_attempt_at <= now))
        & parking.may_try(channel.job, ROW_KIND, OutboxMessage.id, now)
    )


def deliver(ctx: Context, channel: Channel, send: Callable[[Claim], Failure | None], *,
            limit: int) -> DeliveryReport:
    """Deliver up to `limit` due messages, one claim-send-record cycle each.
    `send` returns None when the message went out, or why it did not."""
    report = DeliveryReport()
    for _ in range(limit):
        claim = retry.run(claim_next, ctx, channel)
        if claim is None:
            break
        try:
            failure = send(claim)
        except Exception as exc:  # a poison message: recorded below, and the others go on
            log.warning("%s %s: sending raised %s", channel.name, claim.message_id, type(exc).__name__,
                        extra={"event": f"{channel.name}.raised", "message_id": claim.message_id})
            failure = Failure(parking.describe(exc), unexpected=True)
        try:
            outcome = retry.run(record_outcome, ctx, claim, failure, channel)
        except Exception:
            # The lease runs out and the message is tried again: at least once.
            log.exception("%s %s: recording the outcome failed", channel.name, claim.message_id,
                          extra={"event": f"{channel.name}.record_failed", "message_id": claim.message_id})
            continue
        if outcome == "sent":
            report.sent += 1
        elif outcome == "parked":
            report.parked += 1
        elif outcome == "failed":
            report.failed += 1
    return report


def claim_next(ctx: Context, channel: Channel) -> Claim | None:
    with ctx.uow() as uow:
        now = ctx.now()
        message = uow.session.scalar(
            select(OutboxMessage).where(due(now, channel)).order_by(OutboxMessage.id).limit(1)
            .with_for_update(skip_locked=True, of=OutboxMessage)
        )
        if message is None:
            return None
        message.lease = secrets.token_hex(8)
        message.next_attempt_at = now + timedelta(seconds=LEASE_SECONDS)
        claim = Claim(message.id, message.topic, message.payload, message.lease)
        uow.commit()
        return claim


def attempts_allowed(failure: Failure, channel: Channel) -> int:
    if failure.permanent:
        return 1
    if failure.unexpected:
        return parking.MAX_ATTEMPTS
    return channel.max_attempts


def record_outcome(ctx: Context, claim: Claim, failure: Failure | None, channel: Channel) -> str:
    """sent, failed, parked; or gone (deleted or sent meanwhile) or superseded
    (our lease ran out and another dispatcher claimed it: its outcome counts)."""
    with ctx.uow() as uow:
        session = uow.session
        message = session.scalar(select(OutboxMessage).where(OutboxMessage.id == claim.message_id)
                                 .with_for_update())
        if message is None or message.sent_at is not None:
            return "gone"
        now = ctx.now()
        if failure is None:
            message.sent_at = now
            if channel.forget_when_sent and isinstance(message.payload, dict):
                message.payload = {k: v for k, v in message.payload.items() if k not in channel.forget_when_sent}
            message.next_attempt_at, message.lease = None, ""
            parking.forget(session, channel.job, ROW_KIND, [message.id])
            uow.commit()
            log.info("%s %s delivered", channel.name, claim.message_id,
                     extra={"event": f"{channel.name}.sent", "message_id": claim.message_id, "topic": claim.topic})
            return "sent"
        if message.lease != claim.lease:
            return "superseded"
        recorded = parking.record_failure(session, channel.job, ROW_KIND, message.id, failure.reason, now,
                                          max_attempts=attempts_allowed(failure, channel))
        message.next_attempt_at, message.lease = recorded.next_attempt_at, ""
        uow.commit()
    return parking.logged(recorded)


# --- a message's state, for the services that decide it ------------------------------


def hold(message: OutboxMessage) -> None:
    """Not due until `release` (caller's transaction)."""
    message.next_attempt_at = HELD


def release(message: OutboxMessage) -> None:
    if message.sent_at is None and message.next_attempt_at == HELD:
        message.next_attempt_at = None


def cancel(session, message: OutboxMessage, now: datetime) -> None:
    """Never send it (its recipient's data was erased); its failures go too."""
    if message.sent_at is None:
        message.cancelled_at = now
        message.next_attempt_at, message.lease = None, ""
    # A message's id is its own whichever channel's job filed the failure.
    session.execute(delete(JobFailure).where(JobFailure.row_kind == ROW_KIND, JobFailure.row_id == message.id))


def scrub_errors(session, message: OutboxMessage, redact: Callable[[str], str]) -> None:
    """Pass the message's recorded failure through `redact` (an erasure)."""
    for failure in session.scalars(select(JobFailure).where(JobFailure.row_kind == ROW_KIND,
                                                            JobFailure.row_id == message.id)):
        failure.last_error = redact(failure.last_error)

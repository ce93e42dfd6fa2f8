"""Delivering the outbox's emails through the configured mailer (the `emails` job).

The same claim-send-record cycle as callbacks (`broker.outbox.delivery`): a
claim is a short transaction with a lease, the send happens outside any
transaction, and the outcome is recorded in a second one; failures retry with
backoff and give up after MAX_ATTEMPTS. Delivery is at least once; each email
carries a Message-ID made from its outbox id, so a repeat is recognisable.
"""

from __future__ import annotations

import logging
import smtplib

from broker.context import Context
from broker.notifications.mailer import Email
from broker.notifications.services import RECIPIENT_KIND, TOPIC_PREFIX
from broker.outbox.delivery import Channel, DeliveryReport, Failure, claim_next, record_outcome

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10  # with the shared backoff: about a day and a half
# A sent email keeps its recipient, subject and time (the customer's data download
# lists them); its text, which may hold an order's access link or a pickup code,
# is dropped.
EMAILS = Channel("email", TOPIC_PREFIX, RECIPIENT_KIND, MAX_ATTEMPTS, forget_when_sent=("text",))


def deliver_emails(ctx: Context, *, limit: int = 500) -> DeliveryReport:
    mailer = ctx.email()
    report = DeliveryReport()
    for _ in range(limit):
        claim = claim_next(ctx, EMAILS)
        if claim is None:
            break
        payload = claim.payload if isinstance(claim.payload, dict) else {}
        failure = None
        try:
            mailer.send(Email(to=payload["to"], subject=payload["subject"], text=payload["text"],
                              message_id=f"broker-{claim.message_id}",
                              unsubscribe_url=payload.get("unsubscribe_url")))
        except (KeyError, TypeError, ValueError) as exc:
            # ValueError: a header the email library refuses (a line break in a
            # subject written before subjects were made one line). Retrying cannot
            # help, and it must not hold up the emails behind it.
            failure = Failure(f"malformed email: {exc}", permanent=True)
        except (OSError, smtplib.SMTPException) as exc:
            failure = Failure(f"{type(exc).__name__}: {exc}")
        try:
            outcome = record_outcome(ctx, claim, failure, EMAILS)
        except Exception:
            log.exception("email %s: recording the outcome failed", claim.message_id)
            continue
        if outcome == "sent":
            report.sent += 1
        elif outcome == "gave_up":
            report.gave_up += 1
        elif outcome == "failed":
            report.failed += 1
    if report.handled:
        log.info("emails: %s sent, %s failed, %s gave up", report.sent, report.failed, report.gave_up,
                 extra={"event": "emails.run", "sent": report.sent, "failed": report.failed,
                        "gave_up": report.gave_up})
    return report

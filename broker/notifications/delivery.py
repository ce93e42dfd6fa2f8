"""Delivering the outbox's emails through the configured mailer (the `emails` job).

Emails are a channel of the outbox's queue (`broker.outbox.queue`): a claim is
a short transaction with a lease, the send happens outside any transaction, and
the outcome is recorded in a second one. A mail server that refuses or cannot
be reached is retried with backoff, and the email is parked after MAX_ATTEMPTS
(about a day and a half); an email whose sending raises anything else (an
address that slipped in malformed, say) is parked after five tries, and one
that lacks a recipient, subject or text at once. The rest go out meanwhile.
Delivery is at least once; each email carries a Message-ID made from its
outbox id, so a repeat is recognisable.
"""

from __future__ import annotations

import logging
import smtplib

from broker.context import Context
from broker.notifications.mailer import Email, Mailer
from broker.notifications.services import RECIPIENT_KIND, TOPIC_PREFIX
from broker.outbox.queue import Channel, Claim, DeliveryReport, Failure, deliver

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10  # with the shared backoff: about a day and a half
# A sent email keeps its recipient, subject and time (the customer's data download
# lists them); its text, which may hold an order's access link or a pickup code,
# is dropped.
EMAILS = Channel("email", "emails", TOPIC_PREFIX, RECIPIENT_KIND, MAX_ATTEMPTS, forget_when_sent=("text", "html"))


def deliver_emails(ctx: Context, *, limit: int = 500) -> DeliveryReport:
    mailer = ctx.email()
    report = deliver(ctx, EMAILS, lambda claim: _send(mailer, claim), limit=limit)
    if report.handled:
        log.info("emails: %s sent, %s failed, %s parked", report.sent, report.failed, report.parked,
                 extra={"event": "emails.run", "sent": report.sent, "failed": report.failed,
                        "parked": report.parked})
    return report


def _send(mailer: Mailer, claim: Claim) -> Failure | None:
    payload = claim.payload if isinstance(claim.payload, dict) else {}
    try:
        email = Email(to=payload["to"], subject=payload["subject"], text=payload["text"],
                      message_id=f"broker-{claim.message_id}", unsubscribe_url=payload.get("unsubscribe_url"),
                      html=payload.get("html") if isinstance(payload.get("html"), str) else None,
                      sender_name=payload.get("sender_name") if isinstance(payload.get("sender_name"), str) else None)
    except KeyError as exc:
        return Failure(f"malformed email: no {exc}", permanent=True)
    try:
        mailer.send(email)
    except ValueError as exc:
        # A header the email library refuses (a line break in a subject written
        # before subjects were made one line): retrying cannot help.
        return Failure(f"malformed email: {exc}", permanent=True)
    except (OSError, smtplib.SMTPException) as exc:
        return Failure(f"{type(exc).__name__}: {exc}")
    return None

"""The jobs, as data. Each has a stable id, runs at most one instance at a time,
coalesces missed runs into one, and does its work in its own units of work.

Every job is safe to run in two schedulers at once: it claims its work in the
database (see each service), so two schedulers are redundancy, not double work.

Every job that works through rows does each row (or batch) in its own unit of
work through `broker.parking`: a row that fails is recorded and retried later,
parked after a few failures, and never stops the rest of the run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from broker import formkeys
from broker.context import Context
from broker.fulfilment.services import check_deadlines
from broker.identity.services import expire_sign_ups
from broker.notifications.delivery import deliver_emails
from broker.notifications.digest import send_digests
from broker.orders.delivered import assume_deliveries
from broker.orders.services import sweep_unrecorded as sweep_unrecorded_orders
from broker.outbox.delivery import run_callbacks
from broker.payouts.services import run_payouts
from broker.personal.services import expire_requests
from broker.personal.services import sweep_unrecorded as sweep_unrecorded_requests
from broker.privacy.retention import run_retention
from broker.settlement.schedule import settle_trigger
from broker.settlement.scope import SettlementScope
from broker.settlement.services import missed_settlement, settle, settlement_scope


@dataclasses.dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[Context], object]
    trigger: Callable[[Context], BaseTrigger]
    # How late a run may start and still run (a scheduler paused, a busy host).
    misfire_grace_seconds: int = 6 * 3600
    # At start-up: the scheduled time this job missed while no scheduler ran, if any.
    missed: Callable[[Context, datetime], datetime | None] | None = None


def _settlement_scope(ctx: Context) -> SettlementScope | None:
    # BROKER_SETTLE_SHARD (or `broker scheduler --shard`): this scheduler's shard.
    return settlement_scope(ctx, shard=ctx.settings.settle_shard or None)


def run_settlement(ctx: Context) -> None:
    settle(ctx, trigger="scheduled", scope=_settlement_scope(ctx))


def missed_settlement_run(ctx: Context, now: datetime) -> datetime | None:
    return missed_settlement(ctx, now, _settlement_scope(ctx))


def run_deadline_check(ctx: Context) -> None:
    check_deadlines(ctx)


def run_payouts_job(ctx: Context) -> None:
    run_payouts(ctx)


def run_request_expiry(ctx: Context) -> None:
    expire_requests(ctx)


def run_delivered(ctx: Context) -> None:
    assume_deliveries(ctx)


def run_emails(ctx: Context) -> None:
    deliver_emails(ctx)


def run_digest(ctx: Context) -> None:
    send_digests(ctx)


def run_accounts(ctx: Context) -> None:
    expire_sign_ups(ctx)


def run_unrecorded_holds(ctx: Context) -> None:
    sweep_unrecorded_orders(ctx)
    sweep_unrecorded_requests(ctx)


def run_form_keys(ctx: Context) -> None:
    formkeys.forget_old(ctx)


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        id="settlement",
        func=run_settlement,
        trigger=lambda ctx: settle_trigger(ctx.settings.settle_cron, ctx.settings.timezone),
        missed=missed_settlement_run,
    ),
    JobSpec(
        id="deadlines",
        func=run_deadline_check,
        # Hourly, a few minutes past the hour (away from the settlement minute).
        trigger=lambda ctx: CronTrigger(minute=7, timezone=ctx.settings.timezone),
        misfire_grace_seconds=3600,
    ),
    JobSpec(
        id="payouts",
        func=run_payouts_job,
        trigger=lambda ctx: CronTrigger.from_crontab(ctx.settings.payout_cron, timezone=ctx.settings.timezone),
    ),
    JobSpec(
        id="requests",
        func=run_request_expiry,
        # Hourly: a request is awarded, handed to its manufacturer or released
        # within the hour after it expires.
        trigger=lambda ctx: CronTrigger(minute=17, timezone=ctx.settings.timezone),
        misfire_grace_seconds=3600,
    ),
    JobSpec(
        id="delivered",
        func=run_delivered,
        # Hourly: a shipped order nobody confirmed is taken as delivered within the
        # hour after BROKER_DELIVERED_AFTER_DAYS (away from the other hourly jobs).
        trigger=lambda ctx: CronTrigger(minute=37, timezone=ctx.settings.timezone),
        misfire_grace_seconds=3600,
    ),
    JobSpec(
        id="callbacks",
        func=run_callbacks,
        # Every minute: agents hear of offers quickly; failures back off per message.
        trigger=lambda ctx: CronTrigger(minute="*", timezone=ctx.settings.timezone),
        misfire_grace_seconds=300,
    ),
    JobSpec(
        id="emails",
        func=run_emails,
        # Every minute: an email goes out within a minute of the commit that decided
        # it; failures back off per message.
        trigger=lambda ctx: CronTrigger(minute="*", timezone=ctx.settings.timezone),
        misfire_grace_seconds=300,
    ),
    JobSpec(
        id="digest",
        func=run_digest,
        # Daily (BROKER_DIGEST_CRON, in BROKER_TIMEZONE); a run late by a few hours
        # still sends the day's digest, and a second run that day sends nothing.
        trigger=lambda ctx: CronTrigger.from_crontab(ctx.settings.digest_cron, timezone=ctx.settings.timezone),
    ),
    JobSpec(
        id="retention",
        func=run_retention,
        # Daily at a quiet hour (in BROKER_TIMEZONE): after the 02:00 settlement,
        # away from the payouts. Erasing a day late harms nobody.
        trigger=lambda ctx: CronTrigger(hour=3, minute=30, timezone=ctx.settings.timezone),
    ),
    JobSpec(
        id="accounts",
        func=run_accounts,
        # Daily: sign-ups never verified are deleted a day or so after they lapse,
        # and session rows long over with them.
        trigger=lambda ctx: CronTrigger(hour=3, minute=45, timezone=ctx.settings.timezone),
    ),
    JobSpec(
        id="unrecorded-holds",
        func=run_unrecorded_holds,
        # Every quarter hour: a checkout that stopped between asking for its card
        # hold and recording it is released within 45 minutes.
        trigger=lambda ctx: CronTrigger(minute="4,19,34,49", timezone=ctx.settings.timezone),
        misfire_grace_seconds=900,
    ),
    JobSpec(
        id="form-keys",
        func=run_form_keys,
        # Daily: one-time form keys used more than 30 days ago are forgotten.
        trigger=lambda ctx: CronTrigger(hour=3, minute=50, timezone=ctx.settings.timezone),
    ),
)

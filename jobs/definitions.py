"""The jobs, as data. Each has a stable id, runs at most one instance at a time,
coalesces missed runs into one, and does its work in its own unit of work."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from broker.context import Context
from broker.settlement.schedule import settle_trigger
from broker.settlement.services import missed_settlement, settle

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class JobSpec:
    id: str
    func: Callable[[Context], object]
    trigger: Callable[[Context], CronTrigger]
    # How late a run may start and still run (a scheduler paused, a busy host).
    misfire_grace_seconds: int = 6 * 3600
    # Run once at start-up if the scheduler missed the last scheduled time.
    catch_up: Callable[[Context, datetime], datetime | None] | None = None


def run_settlement(ctx: Context, as_of: datetime | None = None) -> None:
    settle(ctx, as_of=as_of, trigger="scheduled")


JOBS: tuple[JobSpec, ...] = (
    JobSpec(
        id="settlement",
        func=run_settlement,
        trigger=lambda ctx: settle_trigger(ctx.settings.settle_cron, ctx.settings.timezone),
        catch_up=missed_settlement,
    ),
)


def timezone_of(ctx: Context) -> ZoneInfo:
    return ZoneInfo(ctx.settings.timezone)

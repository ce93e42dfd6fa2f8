"""Building and running the APScheduler scheduler from the job definitions."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from broker.context import Context
from jobs.definitions import JOBS, JobSpec, timezone_of

log = logging.getLogger(__name__)


def _runner(ctx: Context, spec: JobSpec):
    def run() -> None:
        # Every run gets its own units of work from the context; a failure is
        # logged (and, for settlement, recorded as a failed run) and the next
        # scheduled run tries again.
        try:
            spec.func(ctx)
        except Exception:
            log.exception("job %s failed", spec.id)

    run.__name__ = f"job_{spec.id}"
    return run


def build_scheduler(ctx: Context, *, background: bool) -> BaseScheduler:
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(timezone=timezone_of(ctx))
    for spec in JOBS:
        scheduler.add_job(
            _runner(ctx, spec),
            trigger=spec.trigger(ctx),
            id=spec.id,
            name=spec.id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=spec.misfire_grace_seconds,
            replace_existing=True,
        )
    return scheduler


def catch_up(ctx: Context) -> None:
    """Run, once, every job whose last scheduled time passed while no scheduler ran."""
    now = ctx.now()
    for spec in JOBS:
        if spec.catch_up is None:
            continue
        missed = spec.catch_up(ctx, now)
        if missed is not None:
            log.info("job %s missed its run at %s; running it now", spec.id, missed.isoformat())
            try:
                spec.func(ctx)
            except Exception:
                log.exception("catch-up of job %s failed", spec.id)

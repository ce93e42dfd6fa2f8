"""Building and running the APScheduler scheduler from the job definitions."""

from __future__ import annotations

import logging
from datetime import timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from broker.context import Context
from jobs.definitions import JOBS, JobSpec

log = logging.getLogger(__name__)
MAX_RETRIES = 3


def run_job(ctx: Context, spec: JobSpec, scheduler: BaseScheduler | None = None, attempt: int = 0) -> bool:
    """Run one job now. A failure is logged loudly and, with a scheduler, retried
    later (up to MAX_RETRIES times); it never takes the scheduler down."""
    try:
        spec.func(ctx)
        return True
    except Exception:
        log.exception("job %s failed (attempt %s)", spec.id, attempt + 1,
                      extra={"event": "job.failed", "job": spec.id, "attempt": attempt + 1})
        if scheduler is not None and attempt < MAX_RETRIES:
            when = ctx.now() + timedelta(minutes=ctx.settings.job_retry_minutes)
            scheduler.add_job(run_job, "date", run_date=when, args=(ctx, spec, scheduler, attempt + 1),
                              id=f"{spec.id}-retry", name=f"{spec.id} (retry {attempt + 1})",
                              replace_existing=True, misfire_grace_time=spec.misfire_grace_seconds)
            log.warning("job %s will be retried at %s", spec.id, when.isoformat(),
                        extra={"event": "job.retry_scheduled", "job": spec.id, "at": when.isoformat()})
        return False


def build_scheduler(ctx: Context, *, background: bool) -> BaseScheduler:
    cls = BackgroundScheduler if background else BlockingScheduler
    scheduler = cls(timezone=ZoneInfo(ctx.settings.timezone))
    for spec in JOBS:
        scheduler.add_job(
            run_job,
            trigger=spec.trigger(ctx),
            args=(ctx, spec, scheduler),
            id=spec.id,
            name=spec.id,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=spec.misfire_grace_seconds,
            replace_existing=True,
        )
    return scheduler


def catch_up(ctx: Context) -> list[str]:
    """Run, once, every job whose scheduled time passed while no scheduler ran."""
    ran = []
    now = ctx.now()
    for spec in JOBS:
        missed = spec.missed(ctx, now) if spec.missed else None
        if missed is not None:
            log.info("job %s missed its run at %s; running it now", spec.id, missed.isoformat(),
                     extra={"event": "job.catch_up", "job": spec.id, "missed": missed.isoformat()})
            run_job(ctx, spec)
            ran.append(spec.id)
    return ran

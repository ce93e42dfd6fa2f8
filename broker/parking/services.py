"""How a scheduled job works through rows, so that one bad row never stops it.

A job that goes through rows (emails, callbacks, deadlines, pickups, early
captures, expiring requests, payouts, settlement's listings, retention, the
digest) handles each row, or each batch of rows, in its own unit of work, and:

* a row that loses a race to another transaction is run again at once
  (`broker.retry`);
* a row that raises is recorded in `job_failures` (job, row, attempts, the last
  error, first and last failure) and tried again later, after a backoff (30 s,
  doubling, at most 6 h), while the job goes on with the rest;
* a row that has failed `max_attempts` times (5 unless the job says otherwise)
  is **parked**: no job tries it again until the operator has looked at it and
  puts it back (`broker jobs parked`, `broker jobs retry ID|--all`). `/healthz`
  says how many rows are parked;
* a row that succeeds has its record deleted.

The job itself succeeds: its report says how many rows failed or were parked,
and each failure is logged (`job.row_failed`, `job.row_parked`).

Every job selects its rows with `may_try` (or `parked`), so rows held back are
never even read; `each` and `in_batches` check again for callers that were
given their ids.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session

from broker import retry
from broker.context import Context
from broker.db import insert_if_absent
from broker.errors import NotFound
from broker.locks import lock
from broker.parking.models import JobFailure

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=6)
BACKOFF_JITTER = 0.10

_ERROR_LENGTH = 500
_ADDRESS = re.compile(r"[^\s@<>()\[\]{}'\",;:]+@[^\s@<>()\[\]{}'\",;:]*")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def backoff(attempts: int, *, seed: object = 0) -> timedelta:
    """How long to wait after the `attempts`-th failure: 30 s, doubling, capped at
    6 h, each ±10%. The jitter is seeded by the row and the attempt, so it spreads
    retries of a batch that failed together yet is the same on every replay."""
    exponent = max(attempts - 1, 0)
    # Compare before multiplying: 2**exponent is huge for a large attempt count.
    if exponent >= 20:
        base = BACKOFF_CAP
    else:
        base = min(BACKOFF_FIRST * (2 ** exponent), BACKOFF_CAP)
    # Spreading retries, not a secret: a seeded generator makes it repeatable.
    jitter = random.Random(f"{seed}:{attempts}").uniform(1 - BACKOFF_JITTER, 1 + BACKOFF_JITTER)  # noqa: S311
    return base * jitter


def describe(error: BaseException | str) -> str:
    """An error as an operator reads it, without the addresses it may quote (an
    SMTP refusal quotes its recipient; a bad address is quoted by its parser),
    without control characters (PostgreSQL refuses NUL in text), and short."""
    if isinstance(error, BaseException):
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    else:
        text = error
    text = _CONTROL.sub(" ", _ADDRESS.sub("<address>", text))
    return text[:_ERROR_LENGTH]


# --- which rows a job may try now --------------------------------------------------


def may_try(job: str, kind: str, row_id, now: datetime):
    """A WHERE clause: the row (`row_id`, a column) is neither parked nor waiting
    for its next try."""
    return ~exists().where(
        JobFailure.job == job, JobFailure.row_kind == kind, JobFailure.row_id == row_id,
        or_(JobFailure.parked_at.is_not(None), JobFailure.next_attempt_at > now))


def parked(job: str, kind: str):
    """The ids of the job's parked rows of this kind, as a subquery."""
    return select(JobFailure.row_id).where(JobFailure.job == job, JobFailure.row_kind == kind,
                                           JobFailure.parked_at.is_not(None))


# --- recording ----------------------------------------------------------------------


def record_failure(session: Session, job: str, kind: str, row_id: int, error: BaseException | str, now: datetime,
                   *, max_attempts: int = MAX_ATTEMPTS) -> JobFailure:
    """Count a failure of the row in the caller's transaction, and set when it may
    be tried again, or park it if this was its `max_attempts`-th."""
    insert_if_absent(session, JobFailure, dict(job=job, row_kind=kind, row_id=row_id, attempts=0, last_error="",
                                               first_failed_at=now, last_failed_at=now),
                     unique=["job", "row_kind", "row_id"])
    failure = session.scalar(lock(select(JobFailure).where(
        JobFailure.job == job, JobFailure.row_kind == kind, JobFailure.row_id == row_id))
        .execution_options(populate_existing=True))
    failure.attempts += 1
    failure.last_error = describe(error)
    failure.last_failed_at = now
    if failure.attempts >= max_attempts:
        failure.parked_at, failure.next_attempt_at = now, None
    else:
        failure.next_attempt_at = now + backoff(failure.attempts, seed=f"{job}:{kind}:{row_id}")
    return failure


def forget(session: Session, job: str, kind: str, row_ids: Iterable[int]) -> None:
    """The rows succeeded (or are gone): their failures no longer matter."""
    ids = list(row_ids)
    for start in range(0, len(ids), 1000):
        session.execute(delete(JobFailure).where(JobFailure.job == job, JobFailure.row_kind == kind,
                                                 JobFailure.row_id.in_(ids[start:start + 1000])))


def logged(failure: JobFailure) -> str:
    """Log a failure just recorded (after its commit); "parked" or "failed"."""
    what = {"job": failure.job, "row_kind": failure.row_kind, "row_id": failure.row_id,
            "attempts": failure.attempts}
    if failure.parked_at is not None:
        log.error("job %s: %s %s parked after %s failures: %s", failure.job, failure.row_kind, failure.row_id,
                  failure.attempts, failure.last_error, extra={"event": "job.row_parked", **what})
        return "parked"
    log.warning("job %s: %s %s failed (attempt %s), next try at %s: %s", failure.job, failure.row_kind,
                failure.row_id, failure.attempts, failure.next_attempt_at.isoformat(), failure.last_error,
                extra={"event": "job.row_failed", **what})
    return "failed"


# --- working through rows -----------------------------------------------------------


@dataclasses.dataclass
class RowsReport:
    done: int = 0
    failed: int = 0   # failed this time; tried again later
    parked: int = 0   # failed for the last time: waits for the operator
    parked_ids: list[int] = dataclasses.field(default_factory=list)

    def add(self, other: "RowsReport") -> None:
        self.done += other.done
        self.failed += other.failed
        self.parked += other.parked
        self.parked_ids += other.parked_ids


def each(ctx: Context, job: str, kind: str, ids: Iterable[int], handle: Callable[[int], object], *,
         max_attempts: int = MAX_ATTEMPTS) -> RowsReport:
    """`handle(row_id)` for each row that may be tried now, each in its own unit
    of work (`handle` opens it). A row that raises is recorded; the rest go on."""
    report = RowsReport()
    ids = list(ids)
    failing = _failing(ctx, job, kind, ids)
    now = ctx.now()
    for row_id in ids:
        if not _may_try(failing.get(row_id), now):
            continue
        try:
            retry.run(handle, row_id)
        except Exception as exc:  # any bug in one row: recorded, and the job goes on
            _count(report, row_id, _failed(ctx, job, kind, row_id, exc, max_attempts))
            continue
        report.done += 1
        if row_id in failing:
            _succeeded(ctx, job, kind, [row_id])
    return report


def in_batches(ctx: Context, job: str, kind: str, ids: Sequence[int], handle: Callable[[list[int]], object], *,
               max_attempts: int = MAX_ATTEMPTS) -> RowsReport:
    """`handle(ids)` for the rows that may be tried now, in one unit of work; if
    that fails, `handle([row_id])` for each of them alone, so that only the rows
    that fail alone are recorded (`each`)."""
    failing = _failing(ctx, job, kind, ids)
    now = ctx.now()
    batch = [row_id for row_id in ids if _may_try(failing.get(row_id), now)]
    if not batch:
        return RowsReport()
    try:
        retry.run(handle, batch)
    except Exception as exc:  # which row it was, each will tell
        if len(batch) == 1:
            report = RowsReport()
            _count(report, batch[0], _failed(ctx, job, kind, batch[0], exc, max_attempts))
            return report
        log.warning("job %s: a batch of %s %ss failed (%s); trying them one at a time", job, len(batch), kind,
                    describe(exc), extra={"event": "job.batch_failed", "job": job, "rows": len(batch)})
        return each(ctx, job, kind, batch, lambda row_id: handle([row_id]), max_attempts=max_attempts)
    _succeeded(ctx, job, kind, [row_id for row_id in batch if row_id in failing])
    return RowsReport(done=len(batch))


def _may_try(failure: JobFailure | None, now: datetime) -> bool:
    if failure is None:
        return True
    return failure.parked_at is None and (failure.next_attempt_at is None or failure.next_attempt_at <= now)


def _failing(ctx: Context, job: str, kind: str, ids: Sequence[int]) -> dict[int, JobFailure]:
    found: dict[int, JobFailure] = {}
    with ctx.uow() as uow:
        for start in range(0, len(ids), 1000):
            found.update((f.row_id, f) for f in uow.session.scalars(select(JobFailure).where(
                JobFailure.job == job, JobFailure.row_kind == kind,
                JobFailure.row_id.in_(list(ids[start:start + 1000])))))
    return found


def _failed(ctx: Context, job: str, kind: str, row_id: int, error: BaseException, max_attempts: int) -> str:
    with ctx.uow() as uow:
        failure = record_failure(uow.session, job, kind, row_id, error, ctx.now(), max_attempts=max_attempts)
        uow.commit()
    if not isinstance(error, retry.Contended):
        log.debug("job %s: %s %s raised", job, kind, row_id, exc_info=error)
    return logged(failure)


def _succeeded(ctx: Context, job: str, kind: str, row_ids: list[int]) -> None:
    if row_ids:
        with ctx.uow() as uow:
            forget(uow.session, job, kind, row_ids)
            uow.commit()


def _count(report: RowsReport, row_id: int, outcome: str) -> None:
    if outcome == "parked":
        report.parked += 1
        report.parked_ids.append(row_id)
    else:
        report.failed += 1


# --- for the operator ----------------------------------------------------------------


def list_parked(ctx: Context) -> list[JobFailure]:
    """Every parked row, oldest failure first."""
    with ctx.uow() as uow:
        return list(uow.session.scalars(select(JobFailure).where(JobFailure.parked_at.is_not(None))
                                        .order_by(JobFailure.first_failed_at, JobFailure.id)))


def count_parked(ctx: Context) -> dict[str, int]:
    """How many rows each job has parked (jobs with none are left out)."""
    with ctx.uow() as uow:
        return dict(uow.session.execute(
            select(JobFailure.job, func.count()).where(JobFailure.parked_at.is_not(None))
            .group_by(JobFailure.job).order_by(JobFailure.job)).tuples().all())


def put_back(ctx: Context, ids: Sequence[int] | None = None) -> int:
    """Put parked rows back (all of them with None): their failures are
    forgotten, and their jobs try them at their next run as if new. Returns how
    many. :raise 404: an id that is no parked row."""
    with ctx.uow() as uow:
        stmt = select(JobFailure.id).where(JobFailure.parked_at.is_not(None))
        if ids is not None:
            stmt = stmt.where(JobFailure.id.in_(list(ids)))
        found = set(uow.session.scalars(stmt))
        missing = sorted(set(ids or ()) - found)
        if missing:
            raise NotFound(f"no parked row {', '.join(map(str, missing))}")
        if found:
            uow.session.execute(delete(JobFailure).where(JobFailure.id.in_(sorted(found))))
        uow.commit()
    log.info("put back %s parked rows", len(found), extra={"event": "job.rows_put_back", "rows": len(found)})
    return len(found)

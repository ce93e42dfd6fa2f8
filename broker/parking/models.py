from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from broker.db import Base, BigId, UTCDateTime


class JobFailure(Base):
    """A row a scheduled job failed on (an email, an assignment, an earning, a
    listing...): how often, the last error, and when it may be tried again.

    One per (job, row); the job deletes it when the row succeeds. Once the row
    has failed `max_attempts` times it is parked (`parked_at`): no job tries it
    again until the operator puts it back (`broker jobs retry`).
    """

    __tablename__ = "job_failures"
    __table_args__ = (UniqueConstraint("job", "row_kind", "row_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    job: Mapped[str] = mapped_column(String(40))        # the scheduled job's id: emails, deadlines, ...
    row_kind: Mapped[str] = mapped_column(String(40))   # what the row is: outbox_message, assignment, ...
    row_id: Mapped[int] = mapped_column(BigId)
    attempts: Mapped[int] = mapped_column(Integer)
    # With addresses masked: an operator reads it, and logs never carry one either.
    last_error: Mapped[str] = mapped_column(Text)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Not tried again before this (the backoff); None once parked.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    parked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
